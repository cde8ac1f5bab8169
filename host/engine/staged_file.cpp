#include "engine/staged_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace segpush {

namespace {

// Written as is: the file is read back only by the process that wrote it.
struct RowHeader {
    int64_t seq, hash, source, line;
    uint32_t key_size, value_size, payload_size;
    uint8_t action, has_payload, unused[2];
};
static_assert(sizeof(RowHeader) == 48, "a staged row's header has no padding of its own");

std::runtime_error file_error(const std::string& what, const std::string& where, int error) {
    return std::runtime_error("the staging file in " + where + ": " + what + ": " + std::strerror(error));
}

}  // namespace

StagedFile::~StagedFile() {
    if (fd_ >= 0) ::close(fd_);
}

void StagedFile::open() {
    std::vector<std::string> candidates;
    if (const char* tmpdir = std::getenv("TMPDIR"); tmpdir != nullptr && *tmpdir != '\0')
        candidates.emplace_back(tmpdir);
    candidates.emplace_back("/var/tmp");
    candidates.emplace_back("/tmp");
    int first_error = 0;
    for (const std::string& directory : candidates) {
        std::string path = directory + "/segpush-staged-XXXXXX";
        const int fd = ::mkostemp(path.data(), O_CLOEXEC);  // not inherited by what the host starts
        if (fd < 0) {
            if (first_error == 0) first_error = errno;
            continue;
        }
        ::unlink(path.c_str());
        fd_ = fd;
        where_ = directory;
        return;
    }
    throw file_error("cannot create it (set TMPDIR to a writable directory)", candidates.front(), first_error);
}

void StagedFile::clear() {
    if (fd_ >= 0 && ::ftruncate(fd_, 0) != 0) {
        // A file that cannot shrink is replaced: a new run must not read the last one's rows.
        ::close(fd_);
        fd_ = -1;
    }
    blocks_.clear();
    rows_in_last_block_ = 0;
    last_seq_ = 0;
    written_ = 0;
    buffer_.clear();
    read_.clear();
}

void StagedFile::append(const StagedRow& row) {
    if (row.seq <= last_seq_) throw std::logic_error("StagedFile::append: seqs must rise");
    if (fd_ < 0) open();
    // Written before, not after: a row this call fails to add is not in the file at all.
    if (buffer_.size() >= kWriteBuffer) flush();
    if (blocks_.empty() || rows_in_last_block_ == kRowsPerBlock) {
        blocks_.push_back({row.seq, written_ + buffer_.size()});
        rows_in_last_block_ = 0;
    }
    RowHeader header;
    std::memset(&header, 0, sizeof header);
    header.seq = row.seq;
    header.hash = row.hash;
    header.source = row.source;
    header.line = row.line;
    header.key_size = static_cast<uint32_t>(row.member_key.size());
    // Most keys are written as they are kept (emails in lower case): a key_value equal to the key
    // is not stored again.
    const std::string_view key_value = row.key_value == row.member_key ? std::string_view() : row.key_value;
    header.value_size = static_cast<uint32_t>(key_value.size());
    header.payload_size = static_cast<uint32_t>(row.has_payload ? row.payload.size() : 0);
    header.action = static_cast<uint8_t>(row.action);
    header.has_payload = row.has_payload ? 1 : 0;
    const size_t at = buffer_.size();
    buffer_.resize(at + sizeof header + header.key_size + header.value_size + header.payload_size);
    char* out = buffer_.data() + at;
    std::memcpy(out, &header, sizeof header);
    out += sizeof header;
    // An empty view may hold a null pointer, which memcpy must not be given even for 0 bytes.
    auto put = [&out](std::string_view bytes, uint32_t size) {
        if (size == 0) return;
        std::memcpy(out, bytes.data(), size);
        out += size;
    };
    put(row.member_key, header.key_size);
    put(key_value, header.value_size);
    put(row.payload, header.payload_size);
    ++rows_in_last_block_;
    last_seq_ = row.seq;
}

void StagedFile::flush() {
    size_t done = 0;
    while (done < buffer_.size()) {
        const ssize_t wrote = ::pwrite(fd_, buffer_.data() + done, buffer_.size() - done,
                                       static_cast<off_t>(written_ + done));
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) {
            // The rows stay buffered, to be written by the next attempt: none is half-known.
            // A part written is written again, at the same offset, with the rest.
            throw file_error("cannot write it", where_, wrote < 0 ? errno : ENOSPC);
        }
        done += static_cast<size_t>(wrote);
    }
    written_ += buffer_.size();
    buffer_.clear();
}

void StagedFile::read(uint64_t begin, uint64_t end) {
    // What is still buffered is copied from the buffer: a read never writes (a batch read
    // right after its rows were staged would write a sliver of file each time, and a write
    // that failed would fail every read after it).
    if (read_.capacity() > kReadKept && end - begin <= kReadKept) std::string().swap(read_);
    read_.resize(end - begin);
    const uint64_t from_file = std::min(end, written_);
    size_t done = 0;
    while (begin + done < from_file) {
        const ssize_t got = ::pread(fd_, read_.data() + done, from_file - begin - done,
                                    static_cast<off_t>(begin + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) throw file_error("cannot read it back", where_, got < 0 ? errno : EIO);
        done += static_cast<size_t>(got);
    }
    if (end > written_) {
        const uint64_t buffered_from = std::max(begin, written_);
        std::memcpy(read_.data() + (buffered_from - begin), buffer_.data() + (buffered_from - written_),
                    end - buffered_from);
    }
}

uint64_t StagedFile::block_end(size_t block) const {
    return block + 1 < blocks_.size() ? blocks_[block + 1].offset : written_ + buffer_.size();
}

size_t StagedFile::block_of(int64_t seq) const {
    const auto after = std::upper_bound(blocks_.begin(), blocks_.end(), seq,
                                        [](int64_t wanted, const Block& block) { return wanted < block.first_seq; });
    return after == blocks_.begin() ? blocks_.size() : static_cast<size_t>(after - blocks_.begin()) - 1;
}

StagedRow StagedFile::parse(size_t& at) const {
    if (read_.size() - at < sizeof(RowHeader)) throw std::logic_error("StagedFile: a row's header runs past its block");
    RowHeader header;
    std::memcpy(&header, read_.data() + at, sizeof header);
    at += sizeof header;
    if (read_.size() - at < size_t{header.key_size} + header.value_size + header.payload_size) {
        throw std::logic_error("StagedFile: a row runs past its block");
    }
    StagedRow row;
    row.seq = header.seq;
    row.action = header.action;
    row.hash = header.hash;
    row.source = header.source;
    row.line = header.line;
    const std::string_view bytes(read_);
    row.member_key = bytes.substr(at, header.key_size);
    at += header.key_size;
    row.key_value = bytes.substr(at, header.value_size);
    at += header.value_size;
    row.payload = bytes.substr(at, header.payload_size);
    at += header.payload_size;
    row.has_payload = header.has_payload != 0;
    return row;
}

void StagedFile::visit(const std::vector<int64_t>& seqs, const std::function<void(const StagedRow&)>& visit) {
    if (seqs.empty() || blocks_.empty()) return;
    // Reads blocks [first, last] and visits the wanted rows among them, from `wanted` on.
    auto visit_blocks = [&](size_t first, size_t last, std::vector<int64_t>::const_iterator& wanted) {
        read(blocks_[first].offset, block_end(last));
        for (size_t at = 0; at < read_.size() && wanted != seqs.end();) {
            const StagedRow row = parse(at);
            while (wanted != seqs.end() && *wanted < row.seq) ++wanted;
            if (wanted != seqs.end() && *wanted == row.seq) {
                visit(row);
                ++wanted;
            }
        }
    };
    auto wanted = seqs.cbegin();
    if (seqs.back() - seqs.front() < 2 * static_cast<int64_t>(seqs.size())) {
        const size_t first = block_of(seqs.front()), last = block_of(seqs.back());
        if (last == blocks_.size()) return;  // all before the first row
        // A few blocks to a read, however many seqs: settling a whole run's members at once
        // would otherwise hold all their rows in memory.
        for (size_t block = first == blocks_.size() ? 0 : first; block <= last; block += kBlocksPerRead) {
            visit_blocks(block, std::min(block + kBlocksPerRead - 1, last), wanted);
        }
        return;
    }
    while (wanted != seqs.end()) {
        const size_t block = block_of(*wanted);
        if (block == blocks_.size()) {
            ++wanted;
            continue;
        }
        visit_blocks(block, block, wanted);
        // Past this block: the wanted seqs it did not hold are not in the file.
        const int64_t next_first = block + 1 < blocks_.size() ? blocks_[block + 1].first_seq : INT64_MAX;
        while (wanted != seqs.end() && *wanted < next_first) ++wanted;
    }
}

void StagedFile::visit_all(const std::function<void(const StagedRow&)>& visit) {
    for (size_t first = 0; first < blocks_.size(); first += kBlocksPerRead) {
        const size_t last = std::min(first + kBlocksPerRead, blocks_.size()) - 1;
        read(blocks_[first].offset, block_end(last));
        for (size_t at = 0; at < read_.size();) visit(parse(at));
    }
}

}  // namespace segpush
