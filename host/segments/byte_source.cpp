#include "segments/byte_source.hpp"

#include "segments/segment_reader.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>

namespace segpush::segments {

namespace {

const char* kind_of(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    return "a special file";
}

std::string not_regular(const std::string& path, mode_t mode) {
    std::string message = "segment file " + path + " is " + kind_of(mode) + ", not a regular file";
    if (S_ISFIFO(mode)) {
        return message + "; to read from a FIFO, set fifo_timeout_seconds in its segment's configuration "
                         "(how long to wait for the writer)";
    }
    return message + "; a segment must be a regular file (or a FIFO with fifo_timeout_seconds)";
}

}  // namespace

ByteSource::ByteSource(const std::string& path, const SegmentOpenOptions& options)
    : path_(path), options_(options), buffer_(new char[kBufferSize]) {
    if (options_.stop && options_.stop()) throw SegmentCancelled("cancelled before opening segment file " + path);
    // O_NONBLOCK so that opening a FIFO cannot wait for a writer (nor a device for its
    // hardware); what the file is, is learnt from the open descriptor, which no rename can
    // change afterwards.
    do {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) {
        const int error = errno;
        struct stat status {};
        // A Unix socket cannot be opened at all; say what it is rather than "no such device".
        if (error == ENXIO && ::stat(path.c_str(), &status) == 0 && S_ISSOCK(status.st_mode)) {
            throw SegmentError(not_regular(path, status.st_mode));
        }
        throw SegmentError("cannot open segment file " + path + ": " + std::strerror(error));
    }
    struct stat status {};
    std::string refused;
    if (::fstat(fd_, &status) != 0) {
        refused = "cannot read segment file " + path + ": " + std::strerror(errno);
    } else if (S_ISREG(status.st_mode)) {
        // A regular file's reads return at once whatever the flag; plain blocking reads it is.
        const int flags = ::fcntl(fd_, F_GETFL);
        if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
    } else if (S_ISFIFO(status.st_mode) && options_.fifo_timeout) {
        fifo_ = true;  // stays non-blocking: read_fifo polls it
    } else {
        refused = not_regular(path, status.st_mode);
    }
    if (!refused.empty()) {
        ::close(fd_);
        fd_ = -1;
        throw SegmentError(refused);
    }
    p = e = buffer_.get();
}

ByteSource::~ByteSource() {
    if (fd_ >= 0) ::close(fd_);
}

void ByteSource::cancelled() const {
    if (fifo_ && !fifo_written_) {
        throw SegmentCancelled("cancelled while waiting for the writer of FIFO segment file " + path_);
    }
    throw SegmentCancelled("cancelled while reading segment file " + path_);
}

bool ByteSource::refill() {
    if (eof_) return false;
    if (options_.stop && options_.stop()) cancelled();
    size_t wanted = kBufferSize;
    if (options_.max_bytes) wanted = static_cast<size_t>(std::min<uint64_t>(wanted, *options_.max_bytes - bytes_read_));
    ssize_t got = 0;  // max_bytes read: the end, as far as the reader knows
    if (wanted > 0 && fifo_) {
        got = read_fifo(wanted);
    } else if (wanted > 0) {
        do {
            got = ::read(fd_, buffer_.get(), wanted);
        } while (got < 0 && errno == EINTR);
    }
    if (got < 0) throw SegmentError("cannot read segment file " + path_ + ": " + std::strerror(errno));
    bytes_read_ += static_cast<uint64_t>(got);
    p = buffer_.get();
    e = p + got;
    if (got == 0) eof_ = true;
    return got > 0;
}

// Waits for the writer in slices of at most 100 ms, asking options_.stop between them. A
// FIFO no writer has opened yet polls as not ready (Linux reports a hang-up only once a
// writer has come and gone), so reading starts only when there are bytes or an end.
ssize_t ByteSource::read_fifo(size_t wanted) {
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + *options_.fifo_timeout;
    for (;;) {
        if (options_.stop && options_.stop()) cancelled();
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            const std::string seconds = std::to_string(options_.fifo_timeout->count());
            throw SegmentError(fifo_written_ ? "FIFO segment file " + path_ + ": the writer sent nothing more for " +
                                                   seconds + " s (fifo_timeout_seconds) and did not close it"
                                             : "FIFO segment file " + path_ + ": no writer sent anything within " +
                                                   seconds + " s (fifo_timeout_seconds)");
        }
        pollfd waiting{fd_, POLLIN, 0};
        const int ready = ::poll(&waiting, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
        if (ready < 0 && errno != EINTR) return -1;
        if (ready <= 0) continue;
        const ssize_t got = ::read(fd_, buffer_.get(), wanted);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (got > 0) fifo_written_ = true;
        return got;  // 0: the writer closed it
    }
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
            if (c == 0xE0) low = 0xA0;        // overlong
            else if (c == 0xED) high = 0x9F;  // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            length = 4;
            if (c == 0xF0) low = 0x90;        // overlong
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
