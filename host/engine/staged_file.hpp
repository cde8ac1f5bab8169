#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace segpush {

// A staged member as the staged file holds it. The views point into the file's read buffer:
// valid until the next call on the file.
struct StagedRow {
    int64_t seq = 0;
    int action = 0;  // a MemberAction
    int64_t hash = 0;
    int64_t source = 0;
    int64_t line = 0;
    std::string_view member_key;
    std::string_view key_value;  // empty: the same as member_key (append stores it so when equal)
    std::string_view payload;
    bool has_payload = true;  // a leaver has none: it is sent its key_value

    std::string_view key_value_or_key() const { return key_value.empty() ? member_key : key_value; }
    std::string_view payload_or_key_value() const { return has_payload ? payload : key_value_or_key(); }
};

// A run's staged members, in a file of our own: appended in rising seq order, read back by
// seq. Not a TEMP table: writing each row through SQLite's B-tree and reading it back is a
// large share of an export's host cost, and past the TEMP cache every page costs a pwrite and
// a pread; here a member is a copy into a buffer written a MiB at a time. The file (mode 0600)
// is unlinked as soon as it is made, so nothing is left behind whatever ends the process;
// like a TEMP table it is private to the run, and nothing in it needs to outlive it (a run
// reads its segment again). It lives where SQLite puts its own temporary files: $TMPDIR,
// else /var/tmp, else /tmp.
//
// In memory: the file offset of every 64th row (rows are found by seq within their block of
// 64), and the MiB not yet written. Not thread-safe: the run's thread uses it.
class StagedFile {
public:
    StagedFile() = default;
    ~StagedFile();
    StagedFile(const StagedFile&) = delete;
    StagedFile& operator=(const StagedFile&) = delete;

    // Forgets every row (a new run).
    void clear();
    // Throws std::logic_error unless row.seq is above every seq appended before, and
    // std::runtime_error when the file cannot be made or written (naming the directory).
    void append(const StagedRow& row);
    int64_t last_seq() const { return last_seq_; }
    bool empty() const { return blocks_.empty(); }

    // Calls `visit` with the rows of `seqs` (ascending, distinct) that are in the file, in
    // seq order: one read when they lie close together (a first delivery's batch), a read of
    // a block each when they are spread out (a refresh's changed members among a million).
    void visit(const std::vector<int64_t>& seqs, const std::function<void(const StagedRow&)>& visit);
    // Calls `visit` with every row, in seq order.
    void visit_all(const std::function<void(const StagedRow&)>& visit);

private:
    struct Block {
        int64_t first_seq;
        uint64_t offset;
    };
    static constexpr size_t kRowsPerBlock = 64;
    static constexpr size_t kWriteBuffer = size_t{1} << 20;
    // Reads take this many blocks at most (about a MiB with 100-byte members)...
    static constexpr size_t kBlocksPerRead = 128;
    // ...and a read buffer grown past this by larger rows is given back by the next read.
    static constexpr size_t kReadKept = size_t{4} << 20;

    void open();
    void flush();
    // Reads bytes [begin, end) of the file into read_, those still buffered from the buffer.
    void read(uint64_t begin, uint64_t end);
    uint64_t block_end(size_t block) const;
    size_t block_of(int64_t seq) const;  // blocks_.size() when before the first row
    // The row at `at` in read_; advances `at`.
    StagedRow parse(size_t& at) const;

    int fd_ = -1;
    std::string where_;  // the directory, for errors
    std::vector<Block> blocks_;
    size_t rows_in_last_block_ = 0;
    int64_t last_seq_ = 0;
    uint64_t written_ = 0;  // bytes in the file; buffer_ follows them
    std::string buffer_;
    std::string read_;
};

}  // namespace segpush
