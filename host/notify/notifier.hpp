#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "notify/notice.hpp"

namespace segpush {

class RunHistory;
struct ExportConfig;

// Delivers notices on a thread of its own, so a slow or unreachable receiver never holds up
// an export: submit() only queues. The queue is bounded; when it is full the oldest notice is
// dropped (and logged) so the newest outcome still gets out.
class Notifier {
public:
    static constexpr size_t kMaxQueued = 64;

    // The process's notifier (serve and `export run` have one each).
    static Notifier& process();

    Notifier() = default;
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    // Queues `event` about `run` for each channel of `policy`.
    void submit(const NotifyPolicy& policy, NotifyEvent event, const RunRecord& run);
    // Waits at most `bound` for the queued and in-flight deliveries, then stops the rest (an
    // in-flight request is aborted, a running command hook killed) and logs what was not
    // delivered. The notifier can be used again afterwards.
    void finish(std::chrono::milliseconds bound);

private:
    struct Delivery {
        enum class Channel { command, webhook } channel;
        NotifyPolicy policy;  // the run's policy, as it was when the run finished
        NotifyEvent event;
        RunRecord run;
        std::string body;
    };
    void work();
    void deliver(const Delivery& delivery);
    void run_command(const Delivery& delivery);
    void post_webhook(const Delivery& delivery);
    // Sleeps `duration` unless told to stop first; false when stopped.
    bool pause(std::chrono::milliseconds duration);

    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<Delivery> queue_;
    bool busy_ = false;                 // a delivery is in flight
    std::atomic<bool> abandon_{false};  // finish() ran out of time: stop what is in flight, drop the rest
    bool stop_ = false;                 // the worker ends once the queue is empty
    std::thread worker_;
};

// Called once a run has finished: reads the run and the export's previous finished run from
// `history`, decides what the run warrants under the export's policy and queues it. Never
// throws and never waits for a delivery; problems are logged.
void notify_run_finished(const ExportConfig& export_config, RunHistory& history, int64_t run_id) noexcept;

// How long `export run` and a stopping `serve` wait for notices still being delivered.
inline constexpr std::chrono::seconds kNotifyWaitAtExit{30};

}  // namespace segpush
