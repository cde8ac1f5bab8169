#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace segpush::segments {

// Reads a file in fixed-size chunks through read(2): the readers scan [p, e) and call
// refill() when it is used up, so memory stays at one buffer whatever the file's size.
class ByteSource {
public:
    static constexpr size_t kBufferSize = 64 * 1024;

    // Throws SegmentError naming the path and strerror when the file cannot be opened.
    explicit ByteSource(const std::string& path);
    ~ByteSource();
    ByteSource(const ByteSource&) = delete;
    ByteSource& operator=(const ByteSource&) = delete;

    // Call when p == e. Reads the next chunk into the buffer; false at end of file.
    // Throws SegmentError on a read error.
    bool refill();

    const std::string& path() const { return path_; }

    const char* p = nullptr;  // next unread byte
    const char* e = nullptr;  // end of the bytes in the buffer

private:
    std::string path_;
    int fd_ = -1;
    bool eof_ = false;
    std::unique_ptr<char[]> buffer_;
};

// Index of the first byte that does not belong to well-formed UTF-8 (overlong forms,
// surrogates and code points above U+10FFFF are rejected), or npos when all is well.
size_t find_invalid_utf8(const char* text, size_t size);

// Fields and lines longer than this are reported as a problem instead of being kept.
constexpr size_t kMaxValueBytes = 1024 * 1024;

}  // namespace segpush::segments
