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

// For a ${file:PATH} reference whose file group or others may read or change (any of the mode
// bits 066, through a symlink too): what is wrong, naming the file and the fix (chmod 600).
// Empty when the file is private to its owner, cannot be looked at, or for ${env:NAME}.
std::string secret_file_exposure(const SecretReference& ref, const std::string& base_dir);

}  // namespace segpush
