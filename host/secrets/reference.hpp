#pragma once

#include <optional>
#include <string>

namespace segpush {

// A setting given as "${env:NAME}" or "${file:PATH}" instead of its value.
struct SecretReference {
    enum class Kind { env, file } kind;
    std::string target;  // variable name or path (as written)
};

std::optional<SecretReference> parse_secret_reference(const std::string& text);

// Resolves a reference. On failure returns nullopt and sets `problem` to a message that names
// the variable or file (never a value). Relative file paths are relative to `base_dir`.
// A file's trailing newline is dropped: `echo key > file` is how people write them.
std::optional<std::string> resolve_secret_reference(const SecretReference& ref, const std::string& base_dir,
                                                    std::string& problem);

}  // namespace segpush
