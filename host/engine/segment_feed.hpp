#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/record.hpp"
#include "segments/segment_reader.hpp"

namespace segpush {

// One row of a segment as read, checked and encoded; its strings live in the chunk's text.
struct FeedRow {
    enum class Kind : uint8_t {
        member,      // key, key_value, payload
        unreadable,  // reason (the file's syntax)
        invalid,     // key_value (the key as written), reason (the mapping's rules)
    };
    struct Span {
        uint32_t offset = 0, size = 0;
    };
    Kind kind = Kind::member;
    uint32_t source = 0;  // index of the file in the export's segments
    uint64_t line = 0;
    uint64_t hash = 0;  // members: record_hash
    Span key, key_value, payload, reason;
};

struct FeedChunk {
    std::string text;
    std::vector<FeedRow> rows;
    std::string_view at(FeedRow::Span span) const { return std::string_view(text).substr(span.offset, span.size); }
};

// Reads an export's segment files on a thread of its own: rows are parsed, checked against
// the mapping and encoded there, a chunk at a time, while the run's thread stages the chunk
// before (on two cores the halves of reading a segment overlap) or pushes batches (a run that
// sends while reading is never held up by a read). Memory stays bounded: at most a few chunks
// wait to be taken.
class SegmentFeed {
public:
    enum class Got { chunk, nothing_yet, end };

    // `readers` and `plan` must outlive the feed; the readers are the feed's until next()
    // says end (then the caller may ask them about absent columns). Reading stops early,
    // without an end, once `cancel` is set or a reader throws SegmentCancelled.
    SegmentFeed(std::vector<std::unique_ptr<SegmentReader>>& readers, const RecordPlan& plan,
                const std::atomic<bool>& cancel);
    ~SegmentFeed();
    SegmentFeed(const SegmentFeed&) = delete;
    SegmentFeed& operator=(const SegmentFeed&) = delete;

    // The next chunk, waiting up to `wait` for it; `chunk`'s old buffers are recycled. After
    // the last chunk: end. An error reading a file is thrown here, after the rows before it,
    // and again by every later call.
    Got next(FeedChunk& chunk, std::chrono::milliseconds wait);

private:
    void read_all();
    bool publish(FeedChunk& chunk);  // false when the feed is stopping

    std::vector<std::unique_ptr<SegmentReader>>& readers_;
    const RecordPlan& plan_;
    const std::atomic<bool>& cancel_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<FeedChunk> ready_;
    std::vector<FeedChunk> spare_;
    bool ended_ = false;
    bool stopping_ = false;
    std::exception_ptr error_;
    std::thread thread_;
};

}  // namespace segpush
