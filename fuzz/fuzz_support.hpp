// Helpers shared by the fuzz targets: the readers under test take a path, so each input is
// written to a file that lives for the whole fuzzing process.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace segpush::fuzz {

// An anonymous in-memory file (memfd), reachable by path as /proc/self/fd/N. Opening that path
// gives a fresh file description at offset 0, as opening a real file would.
class MemFile {
public:
    MemFile() : fd_(memfd_create("segpush-fuzz", 0)) {
        if (fd_ < 0) {
            std::perror("memfd_create");
            std::abort();
        }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }

    // Replaces the contents with `data`; returns the path to open.
    const std::string& write(const uint8_t* data, size_t size) {
        if (ftruncate(fd_, 0) != 0) std::abort();
        size_t done = 0;
        while (done < size) {
            const ssize_t n = pwrite(fd_, data + done, size - done, static_cast<off_t>(done));
            if (n <= 0) std::abort();
            done += static_cast<size_t>(n);
        }
        return path_;
    }

private:
    int fd_;
    std::string path_;
};

// A private folder under $TMPDIR (or /tmp) holding one file that each input overwrites. Used
// where the code under test resolves other paths against the file's folder (the config loader).
class TempFile {
public:
    explicit TempFile(const char* name) {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/segpush-fuzz-XXXXXX";
        if (!mkdtemp(pattern.data())) {
            std::perror("mkdtemp");
            std::abort();
        }
        dir_ = pattern;
        path_ = dir_ + "/" + name;
    }

    const std::string& write(const uint8_t* data, size_t size) {
        std::FILE* file = std::fopen(path_.c_str(), "wb");
        if (!file) std::abort();
        if (size && std::fwrite(data, 1, size, file) != size) std::abort();
        std::fclose(file);
        return path_;
    }

    const std::string& dir() const { return dir_; }

private:
    std::string dir_;
    std::string path_;
};

}  // namespace segpush::fuzz
