#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace segpush {

// One row of a segment, holding only the columns the export needs, in the order asked for.
struct SegmentRow {
    uint64_t line = 0;                // 1-based line in the file where the row starts
    std::vector<std::string> values;  // one per wanted column; "" when empty or absent
};

// A row that could not be read; reading goes on with the next one.
struct RowProblem {
    uint64_t line = 0;
    std::string reason;  // for a person, e.g. "row has 3 fields, the header has 5"
};

// The file cannot be used at all (unreadable, not a regular file, no header, a header past
// its caps, a wanted column missing). Thrown when the file is opened, except a read error
// (the disk, a network file system, a silent FIFO) or a row without end met later.
class SegmentError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Opening or reading stopped because `SegmentOpenOptions::stop` said so; what() says where,
// e.g. "cancelled while waiting for the writer of FIFO segment file x.csv".
class SegmentCancelled : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct SegmentOpenOptions {
    // Only regular files are read unless this is set: then a FIFO (named pipe) is read too,
    // giving up when its writer sends nothing for this long (to open it, or between writes).
    std::optional<std::chrono::seconds> fifo_timeout;
    // Asked while opening and before each read (at least every 100 ms while a FIFO is
    // waited on): true makes the reader throw SegmentCancelled. Called from the thread that
    // reads, so it must be thread-safe.
    std::function<bool()> stop;
    // Read no more than this many bytes: what follows reads as the end of the file. For a
    // look at a file's start (peek_segment_columns); runs read files whole.
    std::optional<uint64_t> max_bytes;
};

// Streams a segment file: memory stays constant whatever the file's size.
class SegmentReader {
public:
    enum class Next { row, problem, end };

    virtual ~SegmentReader() = default;
    // Fills `row` (Next::row) or `problem` (Next::problem), or reports the end.
    virtual Next next(SegmentRow& row, RowProblem& problem) = 0;

    // Wanted columns no row read so far had (complete once next() has reported the end), and
    // the columns seen (for "did you mean"). A file with a header is checked when it is
    // opened, so it has no absent columns, and its present ones are the header's named
    // columns; JSON Lines has no header and learns both by reading.
    virtual std::vector<std::string> absent_columns() const { return {}; }
    virtual std::vector<std::string> present_columns() const { return {}; }
    // True when opening the file proved every wanted column exists (a header), so no error
    // about the file as a whole can come after its first row: its rows may be sent while
    // the rest is still being read.
    virtual bool columns_checked_when_opened() const { return true; }
};

// source: "csv" or "jsonl". wanted_columns: the columns the mapping reads. Anything but a
// regular file (or a FIFO the options allow) is refused with a SegmentError naming it.
std::unique_ptr<SegmentReader> open_segment(const std::string& path, const std::string& source,
                                            const std::vector<std::string>& wanted_columns,
                                            const SegmentOpenOptions& options = {});

// What `config check` learns of a segment file's columns without reading it through.
struct SegmentColumns {
    // The columns found, as a run reads them: a CSV file's header (its named columns), or the
    // top-level keys of the JSON Lines records read (the wanted ones and up to 50 others).
    std::vector<std::string> present;
    // The wanted columns not found. A CSV run refuses the file for any of them; a JSON Lines
    // key absent from the records read may still come later in the file.
    std::vector<std::string> absent;
    uint64_t records_read = 0;  // JSON Lines: the records (non-blank lines) read; CSV: 0
};

// The most peek_segment_columns reads of a JSON Lines file.
constexpr uint64_t kPeekRecords = 100;
constexpr uint64_t kPeekBytes = uint64_t{1} << 20;

// Reads a segment file's header row (CSV) or its first kPeekRecords records, within kPeekBytes
// (JSON Lines), through the readers a run uses, so that a column means the same here as in a
// run. Only a regular file is opened: a FIFO is not even opened, since that would release a
// writer waiting for its reader, and reading would take the rows meant for the run. Throws
// SegmentError saying why the columns cannot be known now (no such file, not a regular file,
// unreadable, no header row, no records yet).
SegmentColumns peek_segment_columns(const std::string& path, const std::string& source,
                                    const std::vector<std::string>& wanted_columns);

}  // namespace segpush
