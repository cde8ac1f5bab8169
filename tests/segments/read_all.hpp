#pragma once

#include <catch2/catch.hpp>

#include "segments/segment_reader.hpp"

#include <string>
#include <vector>

namespace segpush::test {

// One result of SegmentReader::next, kept for assertions.
struct ReadItem {
    bool problem = false;
    uint64_t line = 0;
    std::vector<std::string> values;  // rows only
    std::string reason;               // problems only
};

inline std::vector<ReadItem> read_all(SegmentReader& reader) {
    std::vector<ReadItem> items;
    SegmentRow row;
    RowProblem problem;
    for (;;) {
        const auto next = reader.next(row, problem);
        if (next == SegmentReader::Next::end) break;
        ReadItem item;
        item.problem = next == SegmentReader::Next::problem;
        item.line = item.problem ? problem.line : row.line;
        if (item.problem) item.reason = problem.reason;
        else item.values = row.values;
        items.push_back(std::move(item));
    }
    // The end is sticky.
    if (reader.next(row, problem) != SegmentReader::Next::end) items.push_back(ReadItem{true, 0, {}, "not sticky"});
    return items;
}

inline std::vector<ReadItem> read_all(const std::string& path, const std::string& source,
                                      const std::vector<std::string>& wanted) {
    auto reader = open_segment(path, source, wanted);
    return read_all(*reader);
}

// The message open_segment throws, or "" when it opens.
inline std::string open_error(const std::string& path, const std::string& source,
                              const std::vector<std::string>& wanted) {
    try {
        open_segment(path, source, wanted);
    } catch (const SegmentError& error) {
        return error.what();
    }
    return "";
}

// Asserts that `item` is a row read from `line` with these values.
inline void require_row(const ReadItem& item, uint64_t line, const std::vector<std::string>& values) {
    INFO("line " << line << (item.problem ? ", problem: " + item.reason : std::string()));
    REQUIRE_FALSE(item.problem);
    CHECK(item.line == line);
    CHECK(item.values == values);
}

// Asserts that `item` is a problem on `line` with exactly this reason.
inline void require_problem(const ReadItem& item, uint64_t line, const std::string& reason) {
    INFO("line " << line);
    REQUIRE(item.problem);
    CHECK(item.line == line);
    CHECK(item.reason == reason);
}

}  // namespace segpush::test
