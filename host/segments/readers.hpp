#pragma once

#include "segments/segment_reader.hpp"

namespace segpush::segments {

// The readers behind open_segment; see segment_reader.cpp for what each accepts.
std::unique_ptr<SegmentReader> open_csv(const std::string& path, const std::vector<std::string>& wanted_columns,
                                        const SegmentOpenOptions& options);
std::unique_ptr<SegmentReader> open_jsonl(const std::string& path, const std::vector<std::string>& wanted_columns,
                                          const SegmentOpenOptions& options);

}  // namespace segpush::segments
