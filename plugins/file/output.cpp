#include "output.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace segpush::file {

namespace {

std::string error_text(int error) { return std::strerror(error); }

IoFailure classify(int error, const std::string& what) {
    IoFailure failure;
    failure.message = what + ": " + error_text(error);
    failure.transient = error == ENOSPC || error == EDQUOT || error == EIO || error == EINTR || error == EAGAIN;
    failure.config = error == EACCES || error == EPERM || error == EROFS || error == ENOENT || error == ENOTDIR ||
                     error == EEXIST || error == EISDIR || error == ENAMETOOLONG || error == ELOOP;
    return failure;
}

// The process umask, read without changing it (umask(2) would race with other threads).
mode_t current_umask() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8));
    }
    return 077;  // unknown: keep the files private
}

bool sync_directory(const std::string& directory, IoFailure& failure) {
    const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        failure = classify(errno, "cannot open folder " + directory + " to sync it");
        return false;
    }
    const bool ok = ::fsync(fd) == 0 || errno == EINVAL;  // some file systems cannot sync folders
    const int error = errno;
    ::close(fd);
    if (!ok) failure = classify(error, "cannot sync folder " + directory);
    return ok;
}

}  // namespace

void append_csv_field(std::string& out, const char* data, size_t size) {
    bool quote = false;
    for (size_t i = 0; i < size && !quote; ++i) {
        quote = data[i] == ',' || data[i] == '"' || data[i] == '\r' || data[i] == '\n';
    }
    if (!quote) {
        out.append(data, size);
        return;
    }
    out += '"';
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == '"') out += '"';
        out += data[i];
    }
    out += '"';
}

void append_json_string(std::string& out, const char* data, size_t size) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (size_t i = 0; i < size; ++i) {
        const unsigned char c = static_cast<unsigned char>(data[i]);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xf];
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

std::string absolute_path(const std::string& path) {
    std::string full = path;
    if (full.empty() || full.front() != '/') {
        char cwd[4096];
        const std::string base = ::getcwd(cwd, sizeof cwd) ? cwd : ".";
        full = base + "/" + full;
    }
    std::string out;
    size_t start = 0;
    while (start <= full.size()) {
        size_t end = full.find('/', start);
        if (end == std::string::npos) end = full.size();
        const std::string part = full.substr(start, end - start);
        if (!part.empty() && part != ".") out += "/" + part;
        start = end + 1;
    }
    return out.empty() ? "/" : out;
}

std::string parent_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string check_writable_directory(const std::string& directory) {
    struct stat info {};
    if (::stat(directory.c_str(), &info) != 0) {
        return "folder " + directory + (errno == ENOENT ? " does not exist" : " cannot be used: " + error_text(errno));
    }
    if (!S_ISDIR(info.st_mode)) return directory + " is not a folder";
    // Really create a file: access(2) says yes to root on read-only bind mounts and to
    // folders an ACL or SELinux would refuse.
    std::string probe = directory + (directory.back() == '/' ? "" : "/") + ".segpush-probe-XXXXXX";
    const int fd = ::mkstemp(probe.data());
    if (fd < 0) return "cannot create files in folder " + directory + ": " + error_text(errno);
    ::close(fd);
    ::unlink(probe.c_str());
    return {};
}

bool AtomicFile::create(const std::string& final_path, IoFailure& failure) {
    discard();
    final_path_ = final_path;
    created_dirs_.clear();
    const std::string directory = parent_of(final_path);
    // mkdir -p, remembering what we made so commit() can make those entries durable too.
    for (size_t at = 1; at <= directory.size(); ++at) {
        if (at != directory.size() && directory[at] != '/') continue;
        const std::string prefix = directory.substr(0, at);
        if (::mkdir(prefix.c_str(), 0777) == 0) {
            created_dirs_.push_back(prefix);
        } else if (errno != EEXIST) {
            failure = classify(errno, "cannot create folder " + prefix);
            return false;
        }
    }
    const size_t slash = final_path.rfind('/');
    temp_path_ = directory + (directory == "/" ? "" : "/") + "." + final_path.substr(slash + 1) + ".tmp-XXXXXX";
    fd_ = ::mkostemp(temp_path_.data(), O_CLOEXEC);
    if (fd_ < 0) {
        failure = classify(errno, "cannot create a file in folder " + directory);
        temp_path_.clear();
        return false;
    }
    // mkstemp makes 0600; give the file the mode any other new file of this process gets.
    ::fchmod(fd_, 0666 & ~current_umask());
    size_ = 0;
    return true;
}

bool AtomicFile::append(const std::string& data, IoFailure& failure) {
    size_t written = 0;
    while (written < data.size()) {
        const ssize_t n = ::write(fd_, data.data() + written, data.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const int error = n < 0 ? errno : ENOSPC;
            failure = classify(error, "cannot write " + temp_path_);
            // All or nothing: cut back what part of the batch made it.
            if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0 ||
                ::lseek(fd_, static_cast<off_t>(size_), SEEK_SET) < 0) {
                failure.transient = false;
                failure.message += "; the partial write could not be undone either";
            }
            return false;
        }
        written += static_cast<size_t>(n);
    }
    size_ += data.size();
    return true;
}

bool AtomicFile::sync(IoFailure& failure) {
    if (::fsync(fd_) != 0) {
        failure = classify(errno, "cannot flush " + temp_path_ + " to disk");
        failure.transient = false;  // after a failed fsync the page cache state is unknown
        return false;
    }
    return true;
}

bool AtomicFile::commit(IoFailure& failure) {
    if (::close(fd_) != 0) {
        fd_ = -1;
        failure = classify(errno, "cannot close " + temp_path_);
        return false;
    }
    fd_ = -1;
    if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
        failure = classify(errno, "cannot rename " + temp_path_ + " to " + final_path_);
        return false;
    }
    temp_path_.clear();
    if (!sync_directory(parent_of(final_path_), failure)) return false;
    for (const auto& created : created_dirs_) {
        if (!sync_directory(parent_of(created), failure)) return false;
    }
    return true;
}

void AtomicFile::discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
    temp_path_.clear();
}

}  // namespace segpush::file
