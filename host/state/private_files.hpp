#pragma once

#include <string>

namespace segpush {

// What segpush keeps (the state file, its WAL and shared-memory files, run reports, budget
// files) holds personal data and text that may once have echoed a secret: it is for the user
// running segpush alone. Directories segpush creates are 0700 and its files 0600, whatever the
// umask. Directories that already exist are left as they are: the state file may live in a
// folder the user shares on purpose, and its files are private on their own.

// Creates `directory` and any missing parent, each 0700. Throws std::system_error naming the
// directory that could not be made (std::runtime_error when the path is not a directory).
void create_private_directories(const std::string& directory);

// Creates `path` empty with mode 0600 if it is missing; an existing file is tightened to 0600
// (files an older segpush left with the umask's mode). Refuses a symlink. Throws
// std::system_error naming the file.
void ensure_private_file(const std::string& path);

// Opens `path` for writing, truncated, mode 0600 whatever the umask; refuses a symlink.
// Returns the descriptor; throws std::system_error naming the file.
int create_private_file(const std::string& path);

}  // namespace segpush
