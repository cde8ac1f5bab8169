#include "segments/byte_source.hpp"

#include "segments/segment_reader.hpp"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace segpush::segments {

ByteSource::ByteSource(const std::string& path) : path_(path), buffer_(new char[kBufferSize]) {
    do {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) throw SegmentError("cannot open segment file " + path + ": " + std::strerror(errno));
    p = e = buffer_.get();
}

ByteSource::~ByteSource() {
    if (fd_ >= 0) ::close(fd_);
}

bool ByteSource::refill() {
    if (eof_) return false;
    ssize_t got;
    do {
        got = ::read(fd_, buffer_.get(), kBufferSize);
    } while (got < 0 && errno == EINTR);
    if (got < 0) throw SegmentError("cannot read segment file " + path_ + ": " + std::strerror(errno));
    p = buffer_.get();
    e = p + got;
    if (got == 0) eof_ = true;
    return got > 0;
}

size_t find_invalid_utf8(const char* text, size_t size) {
    const auto* s = reinterpret_cast<const unsigned char*>(text);
    size_t i = 0;
    while (i < size) {
        // ASCII runs, eight bytes at a time.
        while (i + 8 <= size) {
            uint64_t chunk;
            std::memcpy(&chunk, s + i, 8);
            if (chunk & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= size) break;
        const unsigned char c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t length;
        unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) {
            length = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            length = 3;
            if (c == 0xE0) low = 0xA0;       // overlong
            else if (c == 0xED) high = 0x9F;  // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            length = 4;
            if (c == 0xF0) low = 0x90;       // overlong
            else if (c == 0xF4) high = 0x8F;  // above U+10FFFF
        } else {
            return i;  // continuation byte without a lead, 0xC0/0xC1 or 0xF5..0xFF
        }
        if (i + 1 >= size || s[i + 1] < low || s[i + 1] > high) return i;
        for (size_t k = 2; k < length; ++k) {
            if (i + k >= size || (s[i + k] & 0xC0) != 0x80) return i;
        }
        i += length;
    }
    return static_cast<size_t>(-1);
}

}  // namespace segpush::segments
