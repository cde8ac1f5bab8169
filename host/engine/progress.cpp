#include "engine/progress.hpp"

#include <cstdio>

#include "log/log.hpp"
#include "text/wording.hpp"

namespace segpush {

ProgressReporter::ProgressReporter(std::string label, bool terminal) : label_(std::move(label)), terminal_(terminal) {}

void ProgressReporter::start(int64_t total) {
    total_ = total;
    done_ = 0;
    started_ = last_drawn_ = std::chrono::steady_clock::now();
}

void ProgressReporter::update(int64_t done) {
    done_ = done;
    const auto now = std::chrono::steady_clock::now();
    const auto interval = terminal_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000);
    if (now - last_drawn_ < interval) return;
    last_drawn_ = now;
    draw(false);
}

void ProgressReporter::finish() {
    if (total_ > 0) draw(true);
}

void ProgressReporter::draw(bool final_line) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    const double rate = elapsed > 0 ? done_ / elapsed : 0;
    const double fraction = total_ > 0 ? static_cast<double>(done_) / total_ : 1.0;
    const std::string eta = rate > 0 && done_ < total_ ? duration_text((total_ - done_) / rate) : "-";
    char numbers[160];
    std::snprintf(numbers, sizeof numbers, "%lld/%lld records  %.0f/s  elapsed %s  ETA %s",
                  static_cast<long long>(done_), static_cast<long long>(total_), rate, duration_text(elapsed).c_str(),
                  eta.c_str());
    if (!terminal_) {
        log_line(LogLevel::info, label_ + ": " + numbers);
        return;
    }
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(filled, '#');
    bar.resize(kWidth, ' ');
    std::fprintf(stderr, "\r%s [%s] %3.0f%% %s\033[K%s", label_.c_str(), bar.c_str(), fraction * 100, numbers,
                 final_line ? "\n" : "");
    std::fflush(stderr);
}

}  // namespace segpush
