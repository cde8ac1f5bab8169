#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace segpush {

// Progress of a run's delivery: a redrawn bar on a terminal (done/total, rate, ETA), a log
// line every few seconds otherwise (files, CI, journald).
class ProgressReporter {
public:
    ProgressReporter(std::string label, bool terminal);
    void start(int64_t total);
    // The total grows while the records to send are still being read.
    void set_total(int64_t total) { total_ = total; }
    void update(int64_t done);
    void finish();

private:
    std::string label_;
    bool terminal_;
    int64_t total_ = 0;
    int64_t done_ = 0;
    std::chrono::steady_clock::time_point started_;
    std::chrono::steady_clock::time_point last_drawn_;
    void draw(bool final_line);
};

}  // namespace segpush
