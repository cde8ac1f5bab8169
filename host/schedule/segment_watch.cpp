#include "schedule/segment_watch.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <utility>

namespace segpush {

namespace {

std::chrono::nanoseconds since_epoch(const timespec& time) {
    return std::chrono::seconds(time.tv_sec) + std::chrono::nanoseconds(time.tv_nsec);
}

}  // namespace

bool SegmentWatch::FileState::operator==(const FileState& other) const {
    return exists == other.exists && device == other.device && inode == other.inode && size == other.size &&
           modified == other.modified && status_changed == other.status_changed;
}

SegmentWatch::SegmentWatch(std::vector<std::string> files, std::chrono::seconds settle, Clock::time_point now)
    : files_(std::move(files)), settle_(settle), seen_(look()), current_(seen_), current_since_(now) {}

std::vector<SegmentWatch::FileState> SegmentWatch::look() const {
    std::vector<FileState> states;
    for (const auto& file : files_) {
        FileState state;
        struct stat info {};
        if (::stat(file.c_str(), &info) == 0) {
            state.exists = true;
            state.device = info.st_dev;
            state.inode = info.st_ino;
            state.size = info.st_size;
            state.modified = since_epoch(info.st_mtim);
            state.status_changed = since_epoch(info.st_ctim);
        }
        states.push_back(state);
    }
    return states;
}

void SegmentWatch::forget_seen() { seen_.assign(files_.size(), FileState{}); }

bool SegmentWatch::settled(Clock::time_point now) {
    auto states = look();
    if (states != current_) {
        current_ = std::move(states);
        current_since_ = now;
    }
    if (current_ == seen_) return false;
    const bool all_exist = std::all_of(current_.begin(), current_.end(),
                                       [](const FileState& state) { return state.exists; });
    return all_exist && now - current_since_ >= settle_;
}

void SegmentWatch::run_starting() { seen_ = current_; }

std::vector<std::string> SegmentWatch::changed_files() const {
    std::vector<std::string> changed;
    for (size_t i = 0; i < files_.size(); ++i) {
        if (current_[i] != seen_[i] || !current_[i].exists) changed.push_back(files_[i]);
    }
    return changed;
}

std::string SegmentWatch::version_text() const {
    std::string text;
    for (const auto& state : current_) {
        if (!text.empty()) text += ",";
        text += state.exists ? std::to_string(state.size) + ":" + std::to_string(state.modified.count()) + ":" +
                                   std::to_string(state.status_changed.count())
                             : "missing";
    }
    return text;
}

std::optional<SegmentWatch::Clock::time_point> SegmentWatch::newest_modification() const {
    std::optional<Clock::time_point> newest;
    for (const auto& state : current_) {
        if (!state.exists) continue;
        const Clock::time_point modified(std::chrono::duration_cast<Clock::duration>(state.modified));
        if (!newest || modified > *newest) newest = modified;
    }
    return newest;
}

}  // namespace segpush
