#include "secrets/reference.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "config/paths.hpp"
#include "secrets/redactor.hpp"

namespace segpush {

std::optional<SecretReference> parse_secret_reference(const std::string& text) {
    static const std::regex pattern(R"(^\$\{(env|file):([^}]+)\}$)");
    std::smatch match;
    if (!std::regex_match(text, match, pattern)) return std::nullopt;
    return SecretReference{match[1] == "env" ? SecretReference::Kind::env : SecretReference::Kind::file,
                           match[2].str()};
}

std::optional<std::string> resolve_secret_reference(const SecretReference& ref, const std::string& base_dir,
                                                    std::string& problem) {
    std::string value;
    if (ref.kind == SecretReference::Kind::env) {
        const char* found = std::getenv(ref.target.c_str());
        if (!found) {
            problem = "environment variable " + ref.target + " is not set";
            return std::nullopt;
        }
        value = found;
        if (value.empty()) {
            problem = "environment variable " + ref.target + " is empty";
            return std::nullopt;
        }
    } else {
        const std::string path = config_path(base_dir, ref.target);
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            problem = "cannot read secret file " + path;
            return std::nullopt;
        }
        std::ostringstream content;
        content << in.rdbuf();
        value = content.str();
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
        if (value.empty()) {
            problem = "secret file " + path + " is empty";
            return std::nullopt;
        }
    }
    Redactor::instance().add_secret(value);
    return value;
}

}  // namespace segpush
