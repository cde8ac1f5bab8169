#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/retry_policy.hpp"
#include "engine/run_failure.hpp"
#include "plugins/destination.hpp"

namespace segpush {

// Members on their way to the destination in one push_batch call, with their values as the
// plugin sees them (pointing into the members' payloads, which the job keeps alive).
// record ids ascend: outcomes are matched to records by binary search.
struct PushJob {
    std::vector<StagedMember> members;
    std::vector<uint64_t> ids;
    std::vector<segpush_value> values;  // row-major, n_fields a record
    std::vector<int64_t> removed_at;    // parallel to ids; empty when no member was removed by segpush
    uint32_t n_fields = 0;
    uint32_t action = SEGPUSH_ACTION_UPSERT;
    int failed_attempts = 0;
    std::chrono::steady_clock::time_point not_before;
    OutcomesResult result;  // filled by the worker that pushed it

    BatchView view() const { return {n_fields, &ids, &values, &removed_at, action}; }
    // Keeps only the records at `indices` (ascending), for a retry of part of the job.
    void keep_only(const std::vector<size_t>& indices);
};

// Sends jobs to the destination on up to `concurrency` threads and applies the one retry
// policy to what comes back. The run's thread submits jobs and calls wait(); outcomes are
// handed to `on_outcomes` on that thread, one job's at a time, so every state write stays on
// it. Each retry is counted for the destination's plugin in ServiceMetrics.
//
// What a finished push means:
// - OK: each record's outcome is delivered; a record the plugin reported RETRY, or did not
//   mention at all, is pushed again after a backoff (nothing is lost by a forgetful plugin).
// - RETRY or a plugin error: the records the plugin settled before failing keep their
//   outcome; the rest are pushed again after a backoff (the destination's retry-after first).
// - SEGPUSH_ERR_DATA: the destination refused the request as a whole: its records are
//   rejected with the reason, and the export goes on.
// - Cancelled: nothing; the next run sends those records.
// - Anything else (credentials, configuration), or retries used up: a RunFailure.
class PushPipeline {
public:
    // Takes a finished push's outcomes; it may remove those it does not take (a stale PENDING):
    // after a failed push, only what it kept counts as settled.
    using OutcomeSink = std::function<void(std::vector<MemberOutcome>&)>;

    PushPipeline(DestinationExport& destination, size_t concurrency, const RetryPolicy& retry, std::mt19937_64& rng,
                 std::string log_label, OutcomeSink on_outcomes);
    PushPipeline(const PushPipeline&) = delete;
    PushPipeline& operator=(const PushPipeline&) = delete;
    // Waits for the pushes in flight (their outcomes are dropped: the next run resends them).
    ~PushPipeline();

    // Room for one more push now.
    bool has_room() const { return in_flight_ < concurrency_; }
    void submit(std::unique_ptr<PushJob> job);
    // Submits the retries whose backoff is over, while there is room.
    void submit_due_retries();
    size_t in_flight() const { return in_flight_; }
    bool retries_waiting() const { return !waiting_.empty(); }

    // Waits until `deadline`, or until the next retry is due if sooner, for pushes to finish,
    // and settles each finished one (see above). Returns a failure that must stop the run.
    std::optional<RunFailure> wait(std::chrono::steady_clock::time_point deadline);

private:
    void work();
    std::optional<RunFailure> settle(std::unique_ptr<PushJob> job);
    // Queues the job again after the policy's delay, which it returns.
    std::chrono::milliseconds retry_later(std::unique_ptr<PushJob> job, uint32_t retry_after_ms);

    DestinationExport& destination_;
    const size_t concurrency_;
    const RetryPolicy& retry_;
    std::mt19937_64& rng_;
    const std::string log_label_;
    const OutcomeSink on_outcomes_;
    size_t in_flight_ = 0;                           // the run's thread only
    std::vector<std::unique_ptr<PushJob>> waiting_;  // retries, with their not_before; the run's thread only

    std::mutex mutex_;  // guards what the workers share: the two queues and stopping_
    std::condition_variable queued_, finished_cv_;
    std::deque<std::unique_ptr<PushJob>> queue_, finished_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

// Calls `call` until it succeeds, under the same retry policy as pushes: a failure that
// cannot be retried, or the last try, throws RunFailure (cancelled when `stop` was asked
// meanwhile or the plugin says so). `what` names the call in messages ("opening the
// connection"); each retry is counted for `destination` (the plugin id) in ServiceMetrics.
void call_with_retries(const std::string& what, const RetryPolicy& retry, std::mt19937_64& rng,
                       const std::string& log_label, const std::string& destination, const std::function<bool()>& stop,
                       const std::function<PluginCallResult()>& call);

// What a finish_export that did not succeed (or was given up after RETRYs) means for the run:
// cancelled when the host asked to stop (`cancelled`) or the plugin says it stopped, however
// the plugin's call ended; else failed_retryable after a RETRY, failed_permanent after the
// rest. Records left unconfirmed keep their receipts either way: the next run confirms them.
RunFailure finish_failure(const PluginCallResult& result, bool cancelled);

// Sleeps for `delay`, waking early once `stop` says so.
void sleep_unless(const std::function<bool()>& stop, std::chrono::milliseconds delay);

}  // namespace segpush
