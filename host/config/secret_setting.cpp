#include "config/secret_setting.hpp"

#include <filesystem>

#include "secrets/redactor.hpp"
#include "secrets/reference.hpp"

namespace segpush {

namespace fs = std::filesystem;

std::optional<std::string> read_secret_setting(YamlReader& reader, const YAML::Node& map, const std::string& key,
                                               const std::string& path, bool must_be_reference, bool strict) {
    const YAML::Node node = map[key];
    const std::string key_path = path + "." + key;
    if (!node.IsScalar()) {
        reader.error(node, key_path, "expected a string, found " + describe_node_type(node));
        return std::nullopt;
    }
    const std::string written = node.Scalar();
    const auto reference = parse_secret_reference(written);
    if (!reference) {
        Redactor::instance().add_secret(written);
        if (must_be_reference) {
            reader.error(node, key_path,
                         "is a secret: give it by reference as ${env:NAME} or ${file:PATH} so it never sits in a "
                         "configuration file");
            return std::nullopt;
        }
        return written;
    }
    std::string base_dir = fs::path(reader.file()).parent_path().string();
    if (base_dir.empty()) base_dir = ".";
    std::string problem;
    auto value = resolve_secret_reference(*reference, base_dir, problem);
    if (!value) {
        reader.error(node, key_path, problem);
        return std::nullopt;
    }
    if (const std::string exposure = secret_file_exposure(*reference, base_dir); !exposure.empty()) {
        if (strict) {
            reader.error(node, key_path, exposure);
        } else {
            reader.diagnostics().warning(reader.pos(node), key_path, exposure);
        }
    }
    if (value->empty()) {
        reader.error(node, key_path, "the referenced value is empty");
        return std::nullopt;
    }
    Redactor::instance().add_secret(*value);
    return value;
}

}  // namespace segpush
