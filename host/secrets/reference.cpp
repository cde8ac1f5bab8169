#include "secrets/reference.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "config/paths.hpp"
#include "secrets/redactor.hpp"

namespace segpush {

namespace {

constexpr size_t kMaxSecretFileBytes = 64 * 1024;

}  // namespace

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
        // Read bounded: a reference to /dev/zero or a huge file must not take all memory.
        char chunk[4096];
        while (value.size() <= kMaxSecretFileBytes) {
            in.read(chunk, sizeof chunk);
            value.append(chunk, static_cast<size_t>(in.gcount()));
            if (!in) break;
        }
        if (value.size() > kMaxSecretFileBytes) {
            problem = "secret file " + path +
                      " is larger than 64 KiB, more than any key or token: is it the "
                      "right file?";
            return std::nullopt;
        }
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
        if (value.empty()) {
            problem = "secret file " + path + " is empty";
            return std::nullopt;
        }
    }
    Redactor::instance().add_secret(value);
    return value;
}

std::string secret_file_exposure(const SecretReference& ref, const std::string& base_dir) {
    if (ref.kind != SecretReference::Kind::file) return {};
    const std::string path = config_path(base_dir, ref.target);
    struct stat info {};
    if (stat(path.c_str(), &info) != 0) return {};
    const bool readable = (info.st_mode & (S_IRGRP | S_IROTH)) != 0;
    const bool writable = (info.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    if (!readable && !writable) return {};
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    const std::string access = readable && writable ? "read and changed" : readable ? "read" : "changed";
    return "secret file " + path + " can be " + access + " by group or others (mode " + mode +
           "): make it private to its owner with chmod 600 " + path;
}

}  // namespace segpush
