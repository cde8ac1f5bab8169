#include "engine/push_pipeline.hpp"

#include <algorithm>

#include "log/log.hpp"
#include "service/metrics.hpp"

namespace segpush {

using Clock = std::chrono::steady_clock;

void PushJob::keep_only(const std::vector<size_t>& indices) {
    std::vector<StagedMember> kept_members;
    std::vector<uint64_t> kept_ids;
    std::vector<segpush_value> kept_values;
    std::vector<int64_t> kept_removed_at;
    for (size_t index : indices) {
        kept_members.push_back(std::move(members[index]));
        kept_ids.push_back(ids[index]);
        kept_values.insert(kept_values.end(), values.begin() + static_cast<std::ptrdiff_t>(index * n_fields),
                           values.begin() + static_cast<std::ptrdiff_t>((index + 1) * n_fields));
        if (!removed_at.empty()) kept_removed_at.push_back(removed_at[index]);
    }
    members = std::move(kept_members);
    ids = std::move(kept_ids);
    values = std::move(kept_values);
    // As prepare_values leaves it: no array at all when no kept member was removed by segpush.
    const bool any_removed = std::any_of(kept_removed_at.begin(), kept_removed_at.end(),
                                         [](int64_t at) { return at != 0; });
    removed_at = any_removed ? std::move(kept_removed_at) : std::vector<int64_t>();
}

PushPipeline::PushPipeline(DestinationExport& destination, size_t concurrency, const RetryPolicy& retry,
                           std::mt19937_64& rng, std::string log_label, OutcomeSink on_outcomes)
    : destination_(destination),
      concurrency_(concurrency),
      retry_(retry),
      rng_(rng),
      log_label_(std::move(log_label)),
      on_outcomes_(std::move(on_outcomes)) {
    // The plugin logs from these threads: its lines belong to the run that pushes.
    const LogRunScope::Context run_context = LogRunScope::current();
    for (size_t i = 0; i < concurrency_; ++i) {
        workers_.emplace_back([this, run_context] {
            const LogRunScope log_scope(run_context);
            work();
        });
    }
}

PushPipeline::~PushPipeline() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stopping_ = true;
    }
    queued_.notify_all();
    for (auto& worker : workers_) worker.join();
}

void PushPipeline::submit(std::unique_ptr<PushJob> job) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(std::move(job));
    }
    ++in_flight_;
    queued_.notify_one();
}

void PushPipeline::submit_due_retries() {
    while (has_room()) {
        auto due = std::find_if(waiting_.begin(), waiting_.end(),
                                [](const auto& job) { return job->not_before <= Clock::now(); });
        if (due == waiting_.end()) return;
        std::unique_ptr<PushJob> job = std::move(*due);
        waiting_.erase(due);
        submit(std::move(job));
    }
}

void PushPipeline::work() {
    for (;;) {
        std::unique_ptr<PushJob> job;
        {
            std::unique_lock<std::mutex> lock(mutex_);
            queued_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;
            job = std::move(queue_.front());
            queue_.pop_front();
        }
        job->result = destination_.push(job->view());
        {
            std::lock_guard<std::mutex> lock(mutex_);
            finished_.push_back(std::move(job));
        }
        finished_cv_.notify_one();
    }
}

std::optional<RunFailure> PushPipeline::wait(Clock::time_point deadline) {
    for (const auto& job : waiting_) deadline = std::min(deadline, job->not_before);
    std::deque<std::unique_ptr<PushJob>> finished;
    {
        std::unique_lock<std::mutex> lock(mutex_);
        finished_cv_.wait_until(lock, deadline, [this] { return !finished_.empty(); });
        finished.swap(finished_);
    }
    std::optional<RunFailure> failure;
    for (auto& job : finished) {
        --in_flight_;
        if (auto problem = settle(std::move(job))) failure = problem;
    }
    return failure;
}

std::chrono::milliseconds PushPipeline::retry_later(std::unique_ptr<PushJob> job, uint32_t retry_after_ms) {
    const auto delay = retry_.delay(job->failed_attempts, retry_after_ms, rng_);
    job->not_before = Clock::now() + delay;
    waiting_.push_back(std::move(job));
    return delay;
}

std::optional<RunFailure> PushPipeline::settle(std::unique_ptr<PushJob> job) {
    OutcomesResult& result = job->result;
    // The index of the job's record with this id, or nullopt for an id the job does not hold.
    const auto index_of = [&](int64_t seq) -> std::optional<size_t> {
        const auto at = std::lower_bound(job->ids.begin(), job->ids.end(), static_cast<uint64_t>(seq));
        if (at == job->ids.end() || *at != static_cast<uint64_t>(seq)) return std::nullopt;
        return static_cast<size_t>(at - job->ids.begin());
    };
    if (result.call.ok()) {
        // Each record's reports netted as the state store nets them: the first final one wins,
        // otherwise the last. A record left to retry, or not mentioned at all, is sent again.
        std::vector<std::optional<MemberState>> net(job->ids.size());
        for (const auto& outcome : result.outcomes) {
            const auto index = index_of(outcome.seq);
            if (!index) continue;
            std::optional<MemberState>& state = net[*index];
            const bool final_already = state == MemberState::done || state == MemberState::rejected ||
                                       state == MemberState::suppressed;
            if (!final_already) state = outcome.state;
        }
        std::vector<bool> settled(job->ids.size());
        for (size_t i = 0; i < net.size(); ++i) settled[i] = net[i] && *net[i] != MemberState::todo;
        on_outcomes_(result.outcomes);
        std::vector<size_t> again;
        for (size_t i = 0; i < settled.size(); ++i) {
            if (!settled[i]) again.push_back(i);
        }
        if (again.empty()) return std::nullopt;
        job->keep_only(again);
        if (++job->failed_attempts >= retry_.max_attempts) {
            return RunFailure{RunStatus::failed_retryable,
                              std::to_string(job->ids.size()) + " records were not accepted after " +
                                  std::to_string(job->failed_attempts) + " tries; the next run sends them"};
        }
        ServiceMetrics::process().retry(destination_.plugin_id(), 0);
        retry_later(std::move(job), 0);
        return std::nullopt;
    }

    const std::string message = result.call.describe("pushing a batch");
    // Records the plugin settled before the failure keep their outcome; only the rest are
    // retried or reported.
    if (!result.outcomes.empty()) {
        on_outcomes_(result.outcomes);  // may drop what it does not take: only the rest counts
        std::vector<bool> settled(job->ids.size());
        for (const auto& outcome : result.outcomes) {
            if (outcome.state == MemberState::todo) continue;
            if (auto index = index_of(outcome.seq)) settled[*index] = true;
        }
        std::vector<size_t> rest;
        for (size_t i = 0; i < settled.size(); ++i) {
            if (!settled[i]) rest.push_back(i);
        }
        if (rest.empty()) return std::nullopt;
        job->keep_only(rest);
        result.outcomes.clear();
    }
    if (result.call.retryable()) {
        if (++job->failed_attempts >= retry_.max_attempts) {
            return RunFailure{RunStatus::failed_retryable, message + " (gave up after " +
                                                               std::to_string(job->failed_attempts) +
                                                               " tries; the next run continues from here)"};
        }
        ServiceMetrics::process().retry(destination_.plugin_id(), result.call.vendor_code);
        const auto delay = retry_later(std::move(job), result.call.retry_after_ms);
        log_line(LogLevel::warn,
                 log_label_ + ": " + message + "; retrying in " + std::to_string(delay.count()) + " ms");
        return std::nullopt;
    }
    if (result.call.status == SEGPUSH_ERR_DATA) {
        std::vector<MemberOutcome> rejected;
        for (const auto& member : job->members) {
            rejected.push_back({member.seq, MemberState::rejected, result.call.message, {}});
        }
        on_outcomes_(rejected);
        return std::nullopt;
    }
    if (result.call.status == SEGPUSH_ERR_CANCELLED) {
        // The plugin stops a call only when the host asks (cancel_requested): the run is
        // stopping, or its lease may have run out and it waits to learn whether it still holds
        // it. The records wait here either way: sent once the run goes on, left for the next
        // run if it stops (a stopping run submits nothing more). Not a failed attempt.
        retry_later(std::move(job), 0);
        return std::nullopt;
    }
    return RunFailure{RunStatus::failed_permanent, message};
}

RunFailure finish_failure(const PluginCallResult& result, bool cancelled) {
    if (cancelled || result.status == SEGPUSH_ERR_CANCELLED) {
        return {RunStatus::cancelled,
                "cancelled while waiting for the destination to finish its imports; the next run confirms them "
                "and sends only what was not imported"};
    }
    return {result.status == SEGPUSH_RETRY ? RunStatus::failed_retryable : RunStatus::failed_permanent,
            result.describe("finishing the export") + "; records not yet confirmed are sent again by the next run"};
}

void sleep_unless(const std::function<bool()>& stop, std::chrono::milliseconds delay) {
    const auto until = Clock::now() + delay;
    while (!stop() && Clock::now() < until) {
        std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(100), until - Clock::now()));
    }
}

void call_with_retries(const std::string& what, const RetryPolicy& retry, std::mt19937_64& rng,
                       const std::string& log_label, const std::string& destination, const std::function<bool()>& stop,
                       const std::function<PluginCallResult()>& call) {
    for (int failed = 0;;) {
        const PluginCallResult result = call();
        if (result.ok()) return;
        const std::string message = result.describe(what);
        if (!result.retryable()) {
            throw RunFailure{
                result.status == SEGPUSH_ERR_CANCELLED ? RunStatus::cancelled : RunStatus::failed_permanent, message};
        }
        if (++failed >= retry.max_attempts) {
            throw RunFailure{RunStatus::failed_retryable,
                             message + " (gave up after " + std::to_string(failed) + " tries)"};
        }
        ServiceMetrics::process().retry(destination, result.vendor_code);
        const auto delay = retry.delay(failed, result.retry_after_ms, rng);
        log_line(LogLevel::warn, log_label + ": " + message + "; retrying in " + std::to_string(delay.count()) + " ms");
        sleep_unless(stop, delay);
        if (stop()) throw RunFailure{RunStatus::cancelled, "cancelled while waiting to retry " + what};
    }
}

}  // namespace segpush
