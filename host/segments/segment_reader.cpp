#include "segments/segment_reader.hpp"

#include "segments/readers.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace segpush {

std::unique_ptr<SegmentReader> open_segment(const std::string& path, const std::string& source,
                                            const std::vector<std::string>& wanted_columns,
                                            const SegmentOpenOptions& options) {
    if (source == "csv") return segments::open_csv(path, wanted_columns, options);
    if (source == "jsonl") return segments::open_jsonl(path, wanted_columns, options);
    throw SegmentError("segment file " + path + ": unknown source \"" + source + "\" (expected csv or jsonl)");
}

SegmentColumns peek_segment_columns(const std::string& path, const std::string& source,
                                    const std::vector<std::string>& wanted_columns) {
    // Looked at before opening: a FIFO must not be opened at all (see the header).
    struct stat status {};
    if (::stat(path.c_str(), &status) != 0) {
        if (errno == ENOENT) throw SegmentError("segment file " + path + " does not exist yet");
        throw SegmentError("cannot look at segment file " + path + ": " + std::strerror(errno));
    }
    if (S_ISFIFO(status.st_mode)) {
        throw SegmentError("segment file " + path + " is a FIFO (named pipe), which only a run reads");
    }
    if (!S_ISREG(status.st_mode)) throw SegmentError("segment file " + path + " is not a regular file");
    SegmentOpenOptions options;
    options.max_bytes = kPeekBytes;  // the CSV reader's own cap on the header is the same 1 MiB
    SegmentColumns columns;
    if (source == "csv") {
        // Nothing wanted, so that the reader reports the header instead of refusing it.
        const auto reader = segments::open_csv(path, {}, options);
        columns.present = reader->present_columns();
        for (const auto& column : wanted_columns) {
            if (std::find(columns.present.begin(), columns.present.end(), column) == columns.present.end() &&
                std::find(columns.absent.begin(), columns.absent.end(), column) == columns.absent.end()) {
                columns.absent.push_back(column);
            }
        }
        return columns;
    }
    const auto reader = open_segment(path, source, wanted_columns, options);
    SegmentRow row;
    RowProblem problem;
    while (columns.records_read < kPeekRecords && reader->next(row, problem) != SegmentReader::Next::end) {
        ++columns.records_read;  // a line that cannot be read is a record too: its keys are not known
    }
    if (columns.records_read == 0) throw SegmentError("segment file " + path + " has no records yet");
    columns.present = reader->present_columns();
    columns.absent = reader->absent_columns();
    return columns;
}

}  // namespace segpush
