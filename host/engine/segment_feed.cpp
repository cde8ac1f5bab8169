#include "engine/segment_feed.hpp"

namespace segpush {

namespace {

// 1,024 rows (about 150 KB at four mapped fields) per hand-over: the lock is taken a
// thousand times per million rows, and eight chunks in waiting hold a few megabytes. A chunk
// of very long rows is handed over at 16 MiB (its offsets are 32-bit).
constexpr size_t kRowsPerChunk = 1024;
constexpr size_t kBytesPerChunk = size_t{16} << 20;
constexpr size_t kChunksWaiting = 8;

FeedRow::Span append(FeedChunk& chunk, std::string_view text) {
    const FeedRow::Span span{static_cast<uint32_t>(chunk.text.size()), static_cast<uint32_t>(text.size())};
    chunk.text.append(text);
    return span;
}

}  // namespace

SegmentFeed::SegmentFeed(std::vector<std::unique_ptr<SegmentReader>>& readers, const RecordPlan& plan,
                         const std::atomic<bool>& cancel)
    : readers_(readers), plan_(plan), cancel_(cancel), thread_([this] { read_all(); }) {}

SegmentFeed::~SegmentFeed() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

SegmentFeed::Got SegmentFeed::next(FeedChunk& chunk, std::chrono::milliseconds wait) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, wait, [this] { return !ready_.empty() || ended_; });
    if (ready_.empty()) {
        if (!ended_) return Got::nothing_yet;
        if (error_) std::rethrow_exception(error_);
        return Got::end;
    }
    spare_.push_back(std::move(chunk));
    chunk = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    changed_.notify_all();
    return Got::chunk;
}

bool SegmentFeed::publish(FeedChunk& chunk) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return ready_.size() < kChunksWaiting || stopping_; });
    if (stopping_) return false;
    ready_.push_back(std::move(chunk));
    if (spare_.empty()) {
        chunk = FeedChunk{};
    } else {
        chunk = std::move(spare_.back());
        spare_.pop_back();
    }
    chunk.text.clear();
    chunk.rows.clear();
    lock.unlock();
    changed_.notify_all();
    return true;
}

void SegmentFeed::read_all() {
    FeedChunk chunk;
    SegmentRow row;
    RowProblem problem;
    Record record;
    try {
        for (size_t source = 0; source < readers_.size(); ++source) {
            for (;;) {
                if (cancel_) return;  // no end: the run stops reading where it is
                const auto next = readers_[source]->next(row, problem);
                if (next == SegmentReader::Next::end) break;
                FeedRow out;
                out.source = static_cast<uint32_t>(source);
                if (next == SegmentReader::Next::problem) {
                    out.kind = FeedRow::Kind::unreadable;
                    out.line = problem.line;
                    out.reason = append(chunk, problem.reason);
                } else if (auto reason = normalize_row(plan_, row, record)) {
                    out.kind = FeedRow::Kind::invalid;
                    out.line = row.line;
                    out.key_value = append(chunk, row.values[plan_.column_of_field[plan_.key_field]]);
                    out.reason = append(chunk, *reason);
                } else {
                    out.line = row.line;
                    out.hash = record_hash(plan_, record);
                    out.key = append(chunk, record.key);
                    out.key_value = append(chunk, *record.values[plan_.key_field]);
                    const auto start = static_cast<uint32_t>(chunk.text.size());
                    encode_record(record, chunk.text);
                    out.payload = {start, static_cast<uint32_t>(chunk.text.size()) - start};
                }
                chunk.rows.push_back(out);
                const bool full = chunk.rows.size() == kRowsPerChunk || chunk.text.size() >= kBytesPerChunk;
                if (full && !publish(chunk)) return;
            }
        }
        if (!chunk.rows.empty() && !publish(chunk)) return;
    } catch (const SegmentCancelled&) {
        return;  // as when cancel_ is seen between rows: no end
    } catch (...) {
        // The rows read before the error are handed over first, then the error.
        std::lock_guard<std::mutex> lock(mutex_);
        if (!chunk.rows.empty()) ready_.push_back(std::move(chunk));
        error_ = std::current_exception();
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        ended_ = true;
    }
    changed_.notify_all();
}

}  // namespace segpush
