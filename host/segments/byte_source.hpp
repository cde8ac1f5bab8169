#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "segments/segment_reader.hpp"

namespace segpush::segments {

// Reads a file in fixed-size chunks through read(2): the readers scan [p, e) and call
// refill() when it is used up, so memory stays at one buffer whatever the file's size.
// Only a regular file is read, or a FIFO when options.fifo_timeout allows it: anything else
// (a device that never ends, a directory, a socket) is refused when opened.
class ByteSource {
public:
    static constexpr size_t kBufferSize = 64 * 1024;

    // Throws SegmentError naming the path and strerror when the file cannot be opened, or
    // naming what it is when it is not a file segpush reads; SegmentCancelled when stopped.
    explicit ByteSource(const std::string& path, const SegmentOpenOptions& options = {});
    ~ByteSource();
    ByteSource(const ByteSource&) = delete;
    ByteSource& operator=(const ByteSource&) = delete;

    // Call when p == e. Reads the next chunk into the buffer; false at end of file.
    // Throws SegmentError on a read error or when a FIFO's writer is silent past its timeout,
    // SegmentCancelled once options.stop says so.
    bool refill();

    const std::string& path() const { return path_; }

    const char* p = nullptr;  // next unread byte
    const char* e = nullptr;  // end of the bytes in the buffer

private:
    ssize_t read_fifo(size_t wanted);
    [[noreturn]] void cancelled() const;

    std::string path_;
    SegmentOpenOptions options_;
    int fd_ = -1;
    bool fifo_ = false;
    bool fifo_written_ = false;  // some bytes came through the FIFO
    bool eof_ = false;
    uint64_t bytes_read_ = 0;  // against options_.max_bytes
    std::unique_ptr<char[]> buffer_;
};

// Index of the first byte that does not belong to well-formed UTF-8 (overlong forms,
// surrogates and code points above U+10FFFF are rejected), or npos when all is well.
size_t find_invalid_utf8(const char* text, size_t size);

// Fields and lines longer than this are reported as a problem instead of being kept.
constexpr size_t kMaxValueBytes = 1024 * 1024;
// A CSV header longer than this, or with more columns, makes the file unusable: no real
// header comes near, and a runaway one (a binary file, /dev/zero through a FIFO) would
// otherwise be read and kept without end.
constexpr size_t kMaxHeaderBytes = 1024 * 1024;
constexpr size_t kMaxColumns = 10000;
// A row (a CSV record, a JSON line) still going past this stops reading the file: where the
// next row starts cannot be known, and an endless one (a FIFO fed without line ends) would
// otherwise be scanned forever.
constexpr size_t kMaxRowBytes = size_t{64} << 20;

}  // namespace segpush::segments
