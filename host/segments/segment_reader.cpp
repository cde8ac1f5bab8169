#include "segments/segment_reader.hpp"

#include "segments/readers.hpp"

namespace segpush {

std::unique_ptr<SegmentReader> open_segment(const std::string& path, const std::string& source,
                                            const std::vector<std::string>& wanted_columns,
                                            const SegmentOpenOptions& options) {
    if (source == "csv") return segments::open_csv(path, wanted_columns, options);
    if (source == "jsonl") return segments::open_jsonl(path, wanted_columns, options);
    throw SegmentError("segment file " + path + ": unknown source \"" + source + "\" (expected csv or jsonl)");
}

}  // namespace segpush
