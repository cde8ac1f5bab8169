#include "state/private_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace segpush {

namespace {

std::system_error file_error(const std::string& what, const std::string& path, int error) {
    return std::system_error(error, std::generic_category(), what + " " + path);
}

// The umask can only take bits away from a mode given to open/mkdir: the owner's own bits
// too (umask 0777), so the mode is set again on the descriptor.
void set_mode(int fd, mode_t mode, const std::string& path) {
    struct stat info {};
    if (::fstat(fd, &info) != 0) throw file_error("cannot read the mode of", path, errno);
    if ((info.st_mode & 07777) != mode && ::fchmod(fd, mode) != 0) {
        throw file_error("cannot make private (chmod " + std::string(mode == 0600 ? "600" : "700") + ")", path, errno);
    }
}

}  // namespace

void create_private_directories(const std::string& directory) {
    if (directory.empty()) return;
    std::filesystem::path built;
    for (const auto& part : std::filesystem::path(directory)) {
        built /= part;
        if (::mkdir(built.c_str(), 0700) == 0) {
            if (::chmod(built.c_str(), 0700) != 0) throw file_error("cannot make private (chmod 700)", built, errno);
        } else if (errno != EEXIST) {
            throw file_error("cannot create directory", built, errno);
        }
    }
    std::error_code error;
    if (!std::filesystem::is_directory(directory, error)) {
        throw std::runtime_error("cannot use " + directory + ": it is not a directory");
    }
}

void ensure_private_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw file_error("cannot open", path, errno);
    try {
        set_mode(fd, 0600, path);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
}

int create_private_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) throw file_error("cannot create", path, errno);
    try {
        set_mode(fd, 0600, path);
    } catch (...) {
        ::close(fd);
        throw;
    }
    return fd;
}

}  // namespace segpush
