#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model.hpp"
#include "engine/record.hpp"
#include "engine/run_members.hpp"
#include "engine/segment_feed.hpp"
#include "segments/segment_reader.hpp"
#include "state/run_history.hpp"

namespace segpush {

// Gets a run's members in: opens the export's segment files, reads them on a SegmentFeed's
// thread, and stages what is read into the run's RunMembers, members numbered 1, 2, ... in the
// order they are read (a key seen before is a duplicate: the first row wins).
//
// Reading is done only once every file has ended and the columns the mapping reads were
// found; then RunMembers is told no more members come. Until then the run's thread takes
// what has been read when it chooses (stage), so that it can send batches in between.
//
// Not thread-safe: the run's orchestrating thread calls it; only the feed reads on its own.
class SegmentIntake {
public:
    // Opens every segment file of the export and checks its header before any row is staged
    // (a file that cannot be opened costs nothing), then starts reading. Throws SegmentError
    // (a file cannot be read) or SegmentCancelled (`cancel` was set while opening a FIFO).
    // Everything passed must outlive the intake; it adds the rows it reads to `counts`'
    // rows_read, invalid and duplicates.
    SegmentIntake(const Config& config, const ExportConfig& export_config, const RecordPlan& plan, RunMembers& members,
                  RunCounts& counts, const std::atomic<bool>& cancel);
    ~SegmentIntake();
    SegmentIntake(const SegmentIntake&) = delete;
    SegmentIntake& operator=(const SegmentIntake&) = delete;

    // True when every file's header proved its columns exist when it was opened: nothing
    // learnt at the end of reading can then stop the run (JSON Lines finds an absent column
    // only once read).
    bool columns_checked_when_opened() const { return columns_checked_when_opened_; }

    // Stages what has been read: waits up to `wait` for a first chunk, then takes those
    // already waiting, up to about `max_rows` rows, in one staging transaction (ended on an
    // exception too, so that the run's end is recorded outside it). At the last file's end,
    // checks that the columns a required field reads appeared (SegmentError otherwise).
    // A read error is thrown as SegmentError, after the rows before it were staged.
    void stage(std::chrono::milliseconds wait, int64_t max_rows);
    // Stages every row, for a diff. RunFailure (cancelled) when `cancel` is set meanwhile.
    void stage_all();

    bool done() const { return done_; }
    // The seq of the last member staged: how many members have been staged.
    int64_t last_seq() const { return last_seq_; }
    // The segment files' paths, in the order of the export's segments (a row's source index).
    const std::vector<std::string>& sources() const { return sources_; }

    // The run is over: the feed stops (its thread may wait on a FIFO: it ends within its next
    // poll) and nothing more is read. Idempotent.
    void stop();

private:
    void stage_chunk(const FeedChunk& chunk);
    void check_columns_present(const SegmentReader& reader, const std::string& path) const;

    const ExportConfig& export_;
    const RecordPlan& plan_;
    RunMembers& members_;
    RunCounts& counts_;
    const std::atomic<bool>& cancel_;
    std::atomic<bool> stop_reading_{false};  // the readers' stop, with cancel_
    std::vector<std::string> sources_;
    // Declared before feed_, which reads them until it is destroyed.
    std::vector<std::unique_ptr<SegmentReader>> readers_;
    bool columns_checked_when_opened_ = true;
    std::unique_ptr<SegmentFeed> feed_;
    FeedChunk chunk_;  // its buffers are reused from one chunk to the next
    bool done_ = false;
    int64_t last_seq_ = 0;
};

}  // namespace segpush
