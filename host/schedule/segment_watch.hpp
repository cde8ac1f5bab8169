#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace segpush {

// Tells an `on_change` export when to run: when one of its segment files was replaced or
// modified since the export last ran, and then nothing about any of them changed for `settle`,
// so a run never starts on a file still being written.
//
// It polls (one stat() a file each time it is asked) instead of using inotify: a stat sees a
// file replaced by rename, written in place, or changed by another host on a network file
// system, where inotify sees only changes made through this kernel and needs its watches set
// again on each replaced file and re-created directory.
//
// A file counts as changed when its device, inode, size, modification or status-change time
// differs. A file that is missing holds the run back until it is there: between an upstream
// job's delete and its rename, say.
class SegmentWatch {
public:
    using Clock = std::chrono::system_clock;

    // The files as they are at `now` count as seen: watching starts no run.
    SegmentWatch(std::vector<std::string> files, std::chrono::seconds settle, Clock::time_point now);

    // The files as they are now count as a change not yet run (catch_up at start). It still has
    // to settle.
    void forget_seen();

    // Looks at the files again at `now` and returns whether a change has settled: the files
    // differ from what the last run started on, all exist, and none changed for `settle`.
    bool settled(Clock::time_point now);
    // A run starts on the files as last looked at: the next change is measured from them.
    void run_starting();

    // Whether the last look found a change that is still settling (or waiting for a file
    // that is missing). Cleared by run_starting.
    bool change_pending() const { return current_ != seen_; }
    // The files the last look found changed from what the last run started on, or missing.
    std::vector<std::string> changed_files() const;
    // The files as last looked at, as text every host sharing them writes alike: each file's
    // size, modification and status-change times (nanoseconds), comma-separated. The status
    // change time moves with every rename or write and cannot be set back (cp -p, rsync -a set
    // the modification time only), so a new version of the files never repeats an old one's.
    std::string version_text() const;
    // The newest modification time among the files as last looked at; nullopt when none exists.
    std::optional<Clock::time_point> newest_modification() const;

    const std::vector<std::string>& files() const { return files_; }
    std::chrono::seconds settle() const { return settle_; }

private:
    struct FileState {
        bool exists = false;
        dev_t device = 0;
        ino_t inode = 0;
        off_t size = 0;
        std::chrono::nanoseconds modified{0};
        std::chrono::nanoseconds status_changed{0};
        bool operator==(const FileState& other) const;
        bool operator!=(const FileState& other) const { return !(*this == other); }
    };

    std::vector<FileState> look() const;

    std::vector<std::string> files_;
    std::chrono::seconds settle_;
    std::vector<FileState> seen_;      // what the last run started on (or what watching started with)
    std::vector<FileState> current_;   // the last look
    Clock::time_point current_since_;  // when the last look's state was first seen
};

}  // namespace segpush
