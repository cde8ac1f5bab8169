// The push pipeline's one retry policy, and the host-side adapter it calls the plugin through,
// driven by a scripted in-process plugin: each push answers what the test's script says.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

#include "engine/push_pipeline.hpp"

using namespace segpush;

namespace {

// What the scripted plugin answers to one push: a status, an error message, and outcomes.
struct Answer {
    segpush_status status = SEGPUSH_OK;
    std::string message;
    std::vector<std::pair<uint64_t, segpush_record_status>> outcomes;
};

struct Script {
    std::mutex mutex;
    std::function<Answer(const std::vector<uint64_t>& ids)> answer;
    std::vector<std::vector<uint64_t>> pushes;  // the record ids of each push, in order
    int released = 0;
    uint32_t outcomes_struct_size = 0;  // as the host stamped it
};
Script* script = nullptr;

struct OwnedOutcomes {
    std::vector<segpush_record_outcome> items;
};

void release_outcomes(segpush_outcomes* outcomes) {
    delete static_cast<OwnedOutcomes*>(outcomes->private_data);
    outcomes->release = nullptr;
    std::lock_guard<std::mutex> lock(script->mutex);
    ++script->released;
}

segpush_status scripted_push(segpush_export*, const segpush_batch* batch, segpush_outcomes* out, segpush_error* err) {
    std::vector<uint64_t> ids(batch->record_ids, batch->record_ids + batch->n_records);
    Answer answer;
    {
        std::lock_guard<std::mutex> lock(script->mutex);
        script->pushes.push_back(ids);
        script->outcomes_struct_size = out->struct_size;
        answer = script->answer(ids);
    }
    if (!answer.outcomes.empty()) {
        auto* owned = new OwnedOutcomes;
        for (const auto& [id, status] : answer.outcomes) owned->items.push_back({id, status, nullptr});
        out->count = owned->items.size();
        out->items = owned->items.data();
        out->private_data = owned;
        out->release = release_outcomes;
    }
    if (answer.status != SEGPUSH_OK) {
        err->status = answer.status;
        std::snprintf(err->message, sizeof err->message, "%s", answer.message.c_str());
    }
    return answer.status;
}

void scripted_abort(segpush_export*) {}

segpush_plugin scripted_plugin() {
    segpush_plugin api{};
    api.struct_size = sizeof api;
    api.push_batch = scripted_push;
    api.abort_export = scripted_abort;
    return api;
}

// A job of members with ids `ids`, one field each.
std::unique_ptr<PushJob> job_of(const std::vector<uint64_t>& ids) {
    auto job = std::make_unique<PushJob>();
    job->n_fields = 1;
    for (uint64_t id : ids) {
        StagedMember member;
        member.seq = static_cast<int64_t>(id);
        job->members.push_back(member);
        job->ids.push_back(id);
        job->values.push_back({"x", 1});
    }
    return job;
}

// Runs the pipeline over `jobs` until nothing is in flight or waiting, or a failure.
struct Outcome {
    std::map<int64_t, MemberState> states;  // the last outcome of each record
    std::map<int64_t, std::string> reasons;
    std::optional<RunFailure> failure;
};

// `refused_pending`: the sink does not take PENDINGs of these records (as the state store does
// not take a push's PENDING for a record a collect gave back).
// Each of `batches` (the record ids of one job) is submitted as a job of its own.
Outcome run_pipeline(const std::vector<std::vector<uint64_t>>& batches, int max_attempts = 4,
                     std::vector<int64_t> refused_pending = {}) {
    const segpush_plugin api = scripted_plugin();
    DestinationExport exp(api, reinterpret_cast<segpush_export*>(&script));
    RetryPolicy retry;
    retry.max_attempts = max_attempts;
    retry.first_delay = std::chrono::milliseconds(1);
    retry.max_delay = std::chrono::milliseconds(5);
    std::mt19937_64 rng(1);
    Outcome result;
    PushPipeline pipeline(exp, 2, retry, rng, "export test", [&](std::vector<MemberOutcome>& outcomes) {
        outcomes.erase(std::remove_if(outcomes.begin(), outcomes.end(),
                                      [&](const MemberOutcome& outcome) {
                                          return outcome.state == MemberState::pending &&
                                                 std::count(refused_pending.begin(), refused_pending.end(),
                                                            outcome.seq);
                                      }),
                       outcomes.end());
        for (const auto& outcome : outcomes) {
            result.states[outcome.seq] = outcome.state;
            result.reasons[outcome.seq] = outcome.reason;
        }
    });
    for (const auto& ids : batches) pipeline.submit(job_of(ids));
    while (pipeline.in_flight() > 0 || pipeline.retries_waiting()) {
        pipeline.submit_due_retries();
        if (auto failure = pipeline.wait(std::chrono::steady_clock::now() + std::chrono::milliseconds(50))) {
            result.failure = failure;
            break;
        }
    }
    return result;
}

// A script whose first push fails with `first` and whose later pushes accept every record.
std::function<Answer(const std::vector<uint64_t>&)> fails_once_then_accepts(Answer first) {
    auto calls = std::make_shared<int>(0);
    return [calls, first](const std::vector<uint64_t>& ids) {
        if (++*calls == 1) return first;
        Answer answer;
        for (uint64_t id : ids) answer.outcomes.push_back({id, SEGPUSH_RECORD_ACCEPTED});
        return answer;
    };
}

struct ScriptScope {
    Script state;
    explicit ScriptScope(std::function<Answer(const std::vector<uint64_t>&)> answer) {
        state.answer = std::move(answer);
        script = &state;
    }
    ~ScriptScope() { script = nullptr; }
};

}  // namespace

TEST_CASE("push pipeline: a record the plugin did not mention is pushed again, alone, until it settles") {
    ScriptScope scope([](const std::vector<uint64_t>& ids) {
        Answer answer;
        for (uint64_t id : ids) {
            if (id != 2 || ids.size() == 1) answer.outcomes.push_back({id, SEGPUSH_RECORD_ACCEPTED});
        }
        return answer;
    });
    const Outcome result = run_pipeline({{1, 2, 3}});
    REQUIRE_FALSE(result.failure);
    CHECK(result.states.at(1) == MemberState::done);
    CHECK(result.states.at(2) == MemberState::done);
    CHECK(result.states.at(3) == MemberState::done);
    REQUIRE(scope.state.pushes.size() == 2);
    CHECK(scope.state.pushes[1] == std::vector<uint64_t>{2});
    // Every outcome list the plugin handed over was given back to it, and the host stamped its own size.
    CHECK(scope.state.released == 2);
    CHECK(scope.state.outcomes_struct_size == sizeof(segpush_outcomes));
}

TEST_CASE("push pipeline: records settled before a RETRY keep their outcome; only the rest are pushed again") {
    ScriptScope scope(fails_once_then_accepts(
        {SEGPUSH_RETRY, "rate limited", {{1, SEGPUSH_RECORD_ACCEPTED}, {3, SEGPUSH_RECORD_RETRY}}}));
    const Outcome result = run_pipeline({{1, 2, 3}});
    REQUIRE_FALSE(result.failure);
    REQUIRE(scope.state.pushes.size() == 2);
    CHECK(scope.state.pushes[1] == std::vector<uint64_t>({2, 3}));
    for (int64_t id : {1, 2, 3}) CHECK(result.states.at(id) == MemberState::done);
}

TEST_CASE("push pipeline: retries give up after the policy's attempts, as a retryable failure") {
    ScriptScope scope([](const std::vector<uint64_t>&) { return Answer{SEGPUSH_RETRY, "still busy", {}}; });
    const Outcome result = run_pipeline({{7}}, 3);
    REQUIRE(result.failure);
    CHECK(result.failure->status == RunStatus::failed_retryable);
    CHECK_THAT(result.failure->message, Catch::Contains("pushing a batch: temporary failure: still busy") &&
                                            Catch::Contains("gave up after 3 tries"));
    CHECK(scope.state.pushes.size() == 3);
}

TEST_CASE("push pipeline: a request refused as a whole rejects its records and the export goes on") {
    ScriptScope scope([](const std::vector<uint64_t>& ids) {
        if (ids.front() == 1) return Answer{SEGPUSH_ERR_DATA, "payload malformed", {}};
        Answer answer;
        for (uint64_t id : ids) answer.outcomes.push_back({id, SEGPUSH_RECORD_ACCEPTED});
        return answer;
    });
    const Outcome result = run_pipeline({{1, 2}, {3, 4}});
    REQUIRE_FALSE(result.failure);
    CHECK(result.states.at(1) == MemberState::rejected);
    CHECK(result.reasons.at(2) == "payload malformed");
    CHECK(result.states.at(3) == MemberState::done);
    CHECK(result.states.at(4) == MemberState::done);
}

TEST_CASE("push pipeline: refused credentials stop the run as a permanent failure, without retries") {
    ScriptScope scope([](const std::vector<uint64_t>&) { return Answer{SEGPUSH_ERR_AUTH, "key revoked", {}}; });
    const Outcome result = run_pipeline({{1}});
    REQUIRE(result.failure);
    CHECK(result.failure->status == RunStatus::failed_permanent);
    CHECK(result.failure->message == "pushing a batch: credentials refused: key revoked");
    CHECK(scope.state.pushes.size() == 1);
}

TEST_CASE("push job: keeping part of a job keeps each record's values and removal time with it") {
    auto job = job_of({1, 2, 3});
    job->values = {{"a", 1}, {"b", 1}, {"c", 1}};
    job->removed_at = {0, 0, 1700000000};
    job->keep_only({0, 2});
    CHECK(job->ids == std::vector<uint64_t>({1, 3}));
    REQUIRE(job->values.size() == 2);
    CHECK(std::string(job->values[1].data, job->values[1].size) == "c");
    CHECK(job->removed_at == std::vector<int64_t>({0, 1700000000}));
    CHECK(job->members[1].seq == 3);
}

TEST_CASE("push pipeline: after a failed push, an outcome the sink did not take leaves its record to retry") {
    ScriptScope scope(fails_once_then_accepts(
        {SEGPUSH_RETRY, "connection reset", {{1, SEGPUSH_RECORD_ACCEPTED}, {2, SEGPUSH_RECORD_PENDING}}}));
    const Outcome result = run_pipeline({{1, 2}}, 4, {2});
    REQUIRE_FALSE(result.failure);
    REQUIRE(scope.state.pushes.size() == 2);
    CHECK(scope.state.pushes[1] == std::vector<uint64_t>{2});
    CHECK(result.states.at(2) == MemberState::done);
}

TEST_CASE("finish failure: a stop while the destination finishes its imports is a cancel, whatever the plugin said") {
    PluginCallResult cancelled_by_plugin;
    cancelled_by_plugin.status = SEGPUSH_ERR_CANCELLED;
    cancelled_by_plugin.message = "cancelled";
    const RunFailure plugin_stopped = finish_failure(cancelled_by_plugin, false);
    CHECK(plugin_stopped.status == RunStatus::cancelled);
    CHECK(plugin_stopped.message == "cancelled while waiting for the destination to finish its imports; the next run "
                                    "confirms them and sends only what was not imported");
    // The host asked to stop: a request cut short, or the tries of a RETRY given up, are part of the stop.
    PluginCallResult temporary;
    temporary.status = SEGPUSH_RETRY;
    temporary.message = "connection reset";
    CHECK(finish_failure(temporary, true).status == RunStatus::cancelled);
    PluginCallResult internal;
    internal.status = SEGPUSH_ERR_INTERNAL;
    internal.message = "aborted";
    CHECK(finish_failure(internal, true).status == RunStatus::cancelled);
    // Not stopping: what the plugin said decides.
    const RunFailure retry = finish_failure(temporary, false);
    CHECK(retry.status == RunStatus::failed_retryable);
    CHECK(retry.message == "finishing the export: temporary failure: connection reset; records not yet confirmed are "
                           "sent again by the next run");
    PluginCallResult refused;
    refused.status = SEGPUSH_ERR_AUTH;
    refused.message = "key revoked";
    CHECK(finish_failure(refused, false).status == RunStatus::failed_permanent);
}
