// libFuzzer target for the segment readers (host/segments). Built twice: SEGPUSH_FUZZ_SOURCE is
// "csv" or "jsonl". The input is the whole segment file. Every input must end in rows, row
// problems or a SegmentError, never a crash, a leak or undefined behaviour; the end is sticky.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "segments/segment_reader.hpp"

#ifndef SEGPUSH_FUZZ_SOURCE
#error "define SEGPUSH_FUZZ_SOURCE as \"csv\" or \"jsonl\""
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static segpush::fuzz::MemFile file;
    // The columns the seed corpus uses, plus one that is usually absent from a row.
    static const std::vector<std::string> wanted = {"email", "first_name", "tier"};
    const std::string& path = file.write(data, size);

    try {
        auto reader = segpush::open_segment(path, SEGPUSH_FUZZ_SOURCE, wanted);
        segpush::SegmentRow row;
        segpush::RowProblem problem;
        uint64_t last_line = 0;
        for (;;) {
            const auto next = reader->next(row, problem);
            if (next == segpush::SegmentReader::Next::end) break;
            const uint64_t line = next == segpush::SegmentReader::Next::row ? row.line : problem.line;
            // Rows come in file order and carry exactly the wanted columns.
            if (line == 0 || line < last_line) std::abort();
            if (next == segpush::SegmentReader::Next::row && row.values.size() != wanted.size()) std::abort();
            if (next == segpush::SegmentReader::Next::problem && problem.reason.empty()) std::abort();
            last_line = line;
        }
        if (reader->next(row, problem) != segpush::SegmentReader::Next::end) std::abort();
    } catch (const segpush::SegmentError&) {
        // The file cannot be used at all: a documented outcome.
    }
    return 0;
}
