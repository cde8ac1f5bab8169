#include "engine/export_runner.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include "engine/progress.hpp"
#include "engine/record.hpp"
#include "engine/retry_policy.hpp"
#include "engine/run_report.hpp"
#include "engine/segment_feed.hpp"
#include "log/log.hpp"
#include "plugins/host_services.hpp"
#include "plugins/registry.hpp"
#include "text/suggest.hpp"

namespace segpush {

namespace {

using Clock = std::chrono::steady_clock;

// Rows staged at a time while batches are already being sent: about 10 ms of staging between
// two looks at finished pushes.
constexpr int64_t kReadSlice = 5000;

// A run that cannot go on; its status says whether a later run can simply retry.
struct RunFailure {
    RunStatus status;
    std::string message;
};

const char* status_class(segpush_status status) {
    switch (status) {
        case SEGPUSH_RETRY: return "temporary failure";
        case SEGPUSH_ERR_CONFIG: return "configuration refused";
        case SEGPUSH_ERR_AUTH: return "credentials refused";
        case SEGPUSH_ERR_DATA: return "request refused";
        case SEGPUSH_ERR_CANCELLED: return "cancelled";
        default: return "plugin error";
    }
}

bool retryable(segpush_status status) { return status == SEGPUSH_RETRY || status == SEGPUSH_ERR_INTERNAL; }

segpush_error fresh_error() {
    segpush_error error{};
    error.struct_size = sizeof error;
    return error;
}

// An outcome list as the host hands it to the plugin: zeroed, struct_size this host's, so a
// plugin built against a later minor writes none of its newer fields past our struct.
segpush_outcomes fresh_outcomes() {
    segpush_outcomes outcomes{};
    outcomes.struct_size = sizeof outcomes;
    return outcomes;
}

std::string message_of(const segpush_error& error) {
    std::string text(error.message, strnlen(error.message, sizeof error.message));
    return text.empty() ? std::string("(no message)") : text;
}

// One push_batch call and its result, owned by the runner while in flight.
struct Job {
    std::vector<StagedMember> members;
    std::vector<uint64_t> ids;
    std::vector<segpush_value> values;
    std::vector<int64_t> removed_at;  // parallel to ids; empty when no member was removed by segpush
    uint32_t action = SEGPUSH_ACTION_UPSERT;
    int failed_attempts = 0;
    Clock::time_point not_before;
    // Result, filled by the worker.
    segpush_status status = SEGPUSH_OK;
    segpush_error error = fresh_error();
    std::vector<MemberOutcome> outcomes;

    // The records as the plugin sees them; valid while the job's vectors are unchanged.
    segpush_batch batch() const {
        return {sizeof(segpush_batch), static_cast<uint32_t>(values.size() / ids.size()), ids.size(), ids.data(),
                values.data(), action, removed_at.empty() ? nullptr : removed_at.data()};
    }
};

// A status this host does not know (a later minor's) is RETRY: never counted as delivered.
MemberState member_state(segpush_record_status status) {
    switch (status) {
        case SEGPUSH_RECORD_ACCEPTED: return MemberState::done;
        case SEGPUSH_RECORD_PENDING: return MemberState::pending;
        case SEGPUSH_RECORD_REJECTED: return MemberState::rejected;
        case SEGPUSH_RECORD_SUPPRESSED: return MemberState::suppressed;
        default: return MemberState::todo;
    }
}

// Copies a plugin's outcome list into host memory and hands it back to the plugin.
std::vector<MemberOutcome> take_outcomes(segpush_outcomes& outcomes) {
    std::vector<MemberOutcome> out;
    out.reserve(outcomes.items ? outcomes.count : 0);
    const char* const* receipts =
        outcomes.items && SEGPUSH_HAS_FIELD(&outcomes, segpush_outcomes, receipts) ? outcomes.receipts : nullptr;
    // A plugin may point every record a receipt covers at the same text (ours does): copied
    // once, then shared. Equal texts behind different pointers are simply copied each.
    const char* last_receipt = nullptr;
    SharedText last_copy;
    for (size_t i = 0; i < outcomes.count && outcomes.items; ++i) {
        const auto& item = outcomes.items[i];
        const char* receipt = receipts ? receipts[i] : nullptr;
        if (receipt != last_receipt) {
            last_copy = receipt ? SharedText(receipt) : SharedText();
            last_receipt = receipt;
        }
        out.push_back({static_cast<int64_t>(item.record_id), member_state(item.status),
                       item.reason ? std::string(item.reason) : std::string(), last_copy});
    }
    if (outcomes.release) outcomes.release(&outcomes);
    return out;
}

// A small pool that runs push_batch calls; the runner's thread keeps all state writes.
class PushPool {
public:
    PushPool(const segpush_plugin& api, segpush_export* exp, size_t threads) : api_(api), export_(exp) {
        for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
    }
    ~PushPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        queued_.notify_all();
        for (auto& worker : workers_) worker.join();
    }

    void submit(std::unique_ptr<Job> job) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            todo_.push_back(std::move(job));
        }
        queued_.notify_one();
    }

    // Finished jobs, waiting at most until `deadline` for the first one.
    std::vector<std::unique_ptr<Job>> finished(Clock::time_point deadline) {
        std::unique_lock<std::mutex> lock(mutex_);
        done_cv_.wait_until(lock, deadline, [this] { return !done_.empty(); });
        std::vector<std::unique_ptr<Job>> out;
        while (!done_.empty()) {
            out.push_back(std::move(done_.front()));
            done_.pop_front();
        }
        return out;
    }

private:
    void work() {
        for (;;) {
            std::unique_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                queued_.wait(lock, [this] { return stopping_ || !todo_.empty(); });
                if (todo_.empty()) return;
                job = std::move(todo_.front());
                todo_.pop_front();
            }
            const segpush_batch batch = job->batch();
            segpush_outcomes outcomes = fresh_outcomes();
            job->error = fresh_error();
            job->status = api_.push_batch(export_, &batch, &outcomes, &job->error);
            job->outcomes = take_outcomes(outcomes);
            {
                std::lock_guard<std::mutex> lock(mutex_);
                done_.push_back(std::move(job));
            }
            done_cv_.notify_one();
        }
    }

    const segpush_plugin& api_;
    segpush_export* export_;
    std::mutex mutex_;
    std::condition_variable queued_, done_cv_;
    std::deque<std::unique_ptr<Job>> todo_, done_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
};

class Run : public ExportObserver {
public:
    Run(const Config& config, const ExportConfig& export_config, const LoadedPlugin& plugin,
        const ConnectionConfig& connection, StateStore& state, const std::atomic<bool>& cancel,
        const RunOptions& options)
        : config_(config), export_(export_config), plugin_(plugin), api_(plugin.api), connection_(connection),
          state_(state), cancel_(cancel), options_(options), rng_(std::random_device{}()),
          progress_("export " + export_config.name, options.progress_on_terminal) {
        retry_.max_attempts = export_config.retry_max_attempts;
        retry_.max_delay = std::chrono::seconds(export_config.retry_max_backoff_seconds);
    }

    RunSummary execute() {
        const auto started = Clock::now();
        const StateStore::Claim claim = state_.begin_run(export_.name, options_.full, options_.dry_run);
        state_.set_removals_are_own(api_.abi_minor >= 4);
        summary_.run_id = claim.run_id;
        baseline_ = claim.baseline;
        if (claim.continues) {
            log_line(LogLevel::info, "export " + export_.name + ": continuing the unfinished --full run #" +
                                         std::to_string(*claim.continues));
        }
        try {
            open_segments();
            const bool while_reading = sends_while_reading();
            feed_ = std::make_unique<SegmentFeed>(readers_, plan_, cancel_);
            if (while_reading) {
                deliver(claim.run_id, true);
            } else {
                stage_all();
                state_.diff(export_.name, claim.baseline, removes_leavers() && !options_.dry_run,
                            last_seq_ + 1, counts_);
                // The comparison runs to its end (seconds at a million members); a stop asked
                // meanwhile is honoured here, before the destination is contacted.
                if (cancel_) {
                    throw RunFailure{RunStatus::cancelled,
                                     "cancelled while comparing the segment with earlier deliveries; nothing was sent"};
                }
                check_max_profiles();
                log_members();
                if (!options_.dry_run) deliver(claim.run_id, false);
            }
            summary_.status = cancel_ ? RunStatus::cancelled : RunStatus::succeeded;
            if (cancel_) summary_.error = "cancelled; the next run continues from here";
        } catch (const RunFailure& failure) {
            summary_.status = failure.status;
            summary_.error = failure.message;
        } catch (const SegmentError& error) {
            summary_.status = RunStatus::failed_permanent;
            summary_.error = std::string(error.what()) + "; nothing was sent";
        } catch (const SegmentCancelled& stopped) {  // opening a segment or reading its header
            summary_.status = RunStatus::cancelled;
            summary_.error = std::string(stopped.what()) + "; nothing was sent";
        } catch (const std::exception& error) {
            summary_.status = RunStatus::failed_retryable;
            summary_.error = error.what();
        }
        // The feed's thread may be waiting on a FIFO: it stops within its next poll.
        stop_reading_ = true;
        feed_.reset();
        summary_.report_path = write_report(claim.run_id);
        summary_.counts = counts_;
        state_.finish_run(claim.run_id, summary_.status, counts_, summary_.error, summary_.report_path);
        prune_old_reports();
        summary_.seconds = std::chrono::duration<double>(Clock::now() - started).count();
        return summary_;
    }

    // ExportObserver: the plugin's own progress is informational; the host counts outcomes.
    void on_plugin_progress(uint64_t, uint64_t, const std::string& message) override {
        if (!message.empty()) log_line(LogLevel::debug, "[" + plugin_.id() + "] " + message);
    }
    bool cancel_requested() const override { return cancel_.load(); }

private:
    bool removes_leavers() const {
        return export_.on_leave == OnLeave::unsubscribe && (api_.capabilities & SEGPUSH_CAP_REMOVE);
    }

    void open_segments() {
        plan_ = RecordPlan::build(export_, plugin_);
        for (const auto& name : export_.segments) {
            const SegmentConfig* segment = config_.find_segment(name);
            sources_.push_back(segment->path);
            SegmentOpenOptions options;
            options.fifo_timeout = segment->fifo_timeout;
            options.stop = [this] { return cancel_.load() || stop_reading_.load(); };
            // Every file is opened (and its header checked) before any row is staged.
            readers_.push_back(open_segment(segment->path, segment->source, plan_.columns, options));
        }
    }

    // A first delivery sends while the segment is still being read, and opens the connection
    // meanwhile: its first bulk import leaves after the first rows instead of after the whole
    // file. Only when nothing learnt at the end of reading can stop the run: no max_profiles
    // (it needs the count), only files whose columns were checked when opened (JSON Lines
    // finds an absent column at its end), and nothing recorded for the export (every member
    // is new: no diff, nobody leaving, no receipts to resume).
    bool sends_while_reading() {
        if (options_.dry_run || export_.max_profiles) return false;
        for (const auto& reader : readers_) {
            if (!reader->columns_checked_when_opened()) return false;
        }
        return state_.nothing_recorded(export_.name);
    }

    // Stages what the feed has read: waits up to `wait` for a first chunk, then takes those
    // already waiting, up to about `max_rows` rows, in one staging transaction. reading_done_
    // once the last file has ended and its columns are checked.
    void stage_rows(std::chrono::milliseconds wait, int64_t max_rows) {
        auto got = feed_->next(chunk_, wait);
        if (got == SegmentFeed::Got::nothing_yet) return;
        state_.begin_staging();
        // A read error leaves by exception: what was staged is committed then too, so that the
        // run's end is recorded outside the staging transaction.
        struct StagingGuard {
            StateStore& state;
            bool ended = false;
            void end() {
                state.end_staging();
                ended = true;
            }
            ~StagingGuard() {
                if (ended) return;
                try {
                    state.end_staging();
                } catch (const std::exception&) {  // already failing: the first error is the one to report
                }
            }
        } staging{state_};
        for (int64_t staged = 0; got == SegmentFeed::Got::chunk;) {
            stage_chunk(chunk_);
            staged += static_cast<int64_t>(chunk_.rows.size());
            got = staged < max_rows ? feed_->next(chunk_, std::chrono::milliseconds(0)) : SegmentFeed::Got::nothing_yet;
        }
        staging.end();
        if (got != SegmentFeed::Got::end) return;
        for (size_t source = 0; source < readers_.size(); ++source) check_columns_present(*readers_[source], sources_[source]);
        state_.all_members_staged();
        reading_done_ = true;
    }

    void stage_chunk(const FeedChunk& chunk) {
        for (const FeedRow& row : chunk.rows) {
            ++counts_.rows_read;
            const auto source = static_cast<int64_t>(row.source);
            const auto line = static_cast<int64_t>(row.line);
            switch (row.kind) {
                case FeedRow::Kind::unreadable:
                    ++counts_.invalid;
                    state_.stage_reject(source, line, "", chunk.at(row.reason));
                    break;
                case FeedRow::Kind::invalid:
                    ++counts_.invalid;
                    state_.stage_reject(source, line, chunk.at(row.key_value), chunk.at(row.reason));
                    break;
                case FeedRow::Kind::member:
                    if (state_.stage_member(last_seq_ + 1, chunk.at(row.key), chunk.at(row.key_value), row.hash,
                                            chunk.at(row.payload), source, line)) {
                        ++last_seq_;
                    } else {
                        ++counts_.duplicates;
                    }
                    break;
            }
        }
    }

    // Stages every row (before a diff).
    void stage_all() {
        while (!reading_done_ && !cancel_) stage_rows(std::chrono::milliseconds(100), 20000);
        if (cancel_) {
            throw RunFailure{RunStatus::cancelled, "cancelled while reading the segment, after " +
                                                       std::to_string(counts_.rows_read) + " rows; nothing was sent"};
        }
    }

    // stage_rows while batches are being sent: the totals grow with it, and are final at the end.
    void read_more(std::chrono::milliseconds wait) {
        stage_rows(wait, kReadSlice);
        progress_.set_total(last_seq_);
        counts_.members = counts_.new_members = last_seq_;  // a run stopped while reading says how far it got
        if (reading_done_) log_members();
    }

    // Only a read error (the disk, a network file system) can stop reading once sending has
    // started, headers being checked when a file opens: the next run may well read the file.
    // Whatever the destination confirmed before it is recorded.
    RunFailure reading_failed(const SegmentError& error) const {
        return {RunStatus::failed_retryable,
                std::string(error.what()) + (counts_.sent == 0 ? "; nothing was sent"
                                                               : "; " + std::to_string(counts_.sent) +
                                                                     " members were sent before it, and the next "
                                                                     "run sends only what was not confirmed")};
    }

    void log_members() {
        log_line(LogLevel::info, "export " + export_.name + ": " + std::to_string(counts_.members) + " members (" +
                                     std::to_string(counts_.new_members) + " new, " + std::to_string(counts_.changed) +
                                     " changed, " + std::to_string(counts_.unchanged) + " unchanged), " +
                                     std::to_string(counts_.leaving) + " leaving, " + std::to_string(counts_.invalid) +
                                     " invalid rows");
    }

    // A file without a header (JSON Lines) shows a missing column only once read: a column a
    // required field needs that no row had is a mistake in the mapping or the file, so the
    // run stops here, before anything is sent. An optional one may just be empty everywhere.
    void check_columns_present(const SegmentReader& reader, const std::string& path) {
        for (const auto& column : reader.absent_columns()) {
            bool required = false;
            std::string fields;
            for (const auto& field : plan_.fields) {
                if (field.column != column) continue;
                required = required || field.required;
                fields += (fields.empty() ? "" : ", ") + field.id;
            }
            const std::string message = "segment file " + path + ": no row has the column \"" + column +
                                        "\" that the mapping reads for " + fields +
                                        did_you_mean(column, reader.present_columns());
            if (required) {
                throw SegmentError(message + "; its rows have " + join(reader.present_columns(), ", "));
            }
            log_line(LogLevel::warn, "export " + export_.name + ": " + message);
        }
    }

    void check_max_profiles() {
        if (export_.max_profiles && static_cast<uint64_t>(counts_.members) > *export_.max_profiles) {
            throw RunFailure{RunStatus::failed_permanent,
                             "the segment has " + std::to_string(counts_.members) + " members, more than max_profiles " +
                                 std::to_string(*export_.max_profiles) + " allows; nothing was sent"};
        }
    }

    // Calls `call` until it succeeds, retrying transient failures with backoff.
    void with_retries(const std::string& what, const std::function<segpush_status(segpush_error*)>& call) {
        for (int failed = 0;;) {
            segpush_error error = fresh_error();
            const segpush_status status = call(&error);
            if (status == SEGPUSH_OK) return;
            const std::string message = what + ": " + status_class(status) + ": " + message_of(error);
            if (!retryable(status)) {
                throw RunFailure{status == SEGPUSH_ERR_CANCELLED ? RunStatus::cancelled : RunStatus::failed_permanent,
                                 message};
            }
            if (++failed >= retry_.max_attempts) {
                throw RunFailure{RunStatus::failed_retryable, message + " (gave up after " + std::to_string(failed) +
                                                                  " tries)"};
            }
            const auto delay = retry_.delay(failed, error.retry_after_ms, rng_);
            log_line(LogLevel::warn, "export " + export_.name + ": " + message + "; retrying in " +
                                         std::to_string(delay.count()) + " ms");
            sleep_unless_cancelled(delay);
            if (stop_waiting()) throw RunFailure{RunStatus::cancelled, "cancelled while waiting to retry " + what};
        }
    }

    // Cancelled, or the run no longer needs the connection being set up on another thread.
    bool stop_waiting() const { return cancel_ || setup_abandoned_; }

    void sleep_unless_cancelled(std::chrono::milliseconds delay) {
        const auto until = Clock::now() + delay;
        while (!stop_waiting() && Clock::now() < until) {
            std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(100), until - Clock::now()));
        }
    }

    // Opens and checks the connection and begins the export; `connection` is set as soon as
    // it is open, so that the caller closes it whatever fails next.
    segpush_export* begin(segpush_connection*& connection) {
        with_retries("opening the connection", [&](segpush_error* error) {
            segpush_connection* opened = nullptr;  // the ABI defines it only on OK
            const segpush_status status = api_.open_connection(connection_.settings.resolved_json.c_str(), &opened, error);
            if (status == SEGPUSH_OK) connection = opened;
            return status;
        });
        with_retries("checking the connection", [&](segpush_error* error) { return api_.check_connection(connection, error); });
        std::vector<const char*> field_ids;
        for (const auto& field : plan_.fields) field_ids.push_back(field.id.c_str());
        segpush_export* exp = nullptr;
        with_retries("starting the export", [&](segpush_error* error) {
            return api_.begin_export(connection, export_.settings.resolved_json.c_str(), field_ids.data(),
                                     field_ids.size(), static_cast<ExportObserver*>(this), &exp, error);
        });
        return exp;
    }

    // begin() on another thread while this one reads on (its round trips cost the run
    // nothing then), once there is a batch to send: a segment without members contacts
    // nobody, as when the diff finds nothing to send. Only this thread touches the state
    // file. nullptr: nothing to send, or cancelled before anything was begun.
    segpush_export* begin_while_reading(segpush_connection*& connection) {
        const int64_t batch = plugin_.max_records_per_batch();
        while (!reading_done_ && !cancel_ && last_seq_ < batch) read_more(std::chrono::milliseconds(20));
        if (cancel_ || last_seq_ == 0) return nullptr;
        auto setup = std::async(std::launch::async, [&] { return begin(connection); });
        try {
            while (!reading_done_ && !cancel_ && setup.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
                read_more(std::chrono::milliseconds(20));
            }
        } catch (...) {
            // Reading failed: stop the other thread's retries, and drop the export it may have begun.
            setup_abandoned_ = true;
            try {
                if (segpush_export* exp = setup.get()) api_.abort_export(exp);
            } catch (...) {  // the reading error is the one to report
            }
            throw;
        }
        return setup.get();
    }

    void deliver(int64_t run_id, bool while_reading) {
        const int64_t to_send = counts_.new_members + counts_.changed + (removes_leavers() ? counts_.leaving : 0);
        if (to_send == 0 && !while_reading) return;
        struct CloseConnection {
            const segpush_plugin& api;
            segpush_connection* connection = nullptr;
            ~CloseConnection() {
                if (connection) api.close_connection(connection);
            }
        } closer{api_};
        segpush_export* exp = while_reading ? begin_while_reading(closer.connection) : begin(closer.connection);
        if (!exp) return;
        progress_.start(while_reading ? last_seq_ : to_send);
        std::optional<RunFailure> failure;
        try {
            if (!while_reading) resume_pending(run_id, exp);  // while reading, nothing was recorded to resume
            push_all(run_id, exp);
        } catch (const RunFailure& caught) {
            failure = caught;
        } catch (const std::exception& error) {
            // The state file failed (say, locked past the busy timeout by another export):
            // the export is still aborted, so the plugin's handle is not left open.
            failure = RunFailure{RunStatus::failed_retryable, error.what()};
        }
        if (failure || cancel_) {
            try {
                collect(run_id, exp);  // whatever settled is saved; the rest is resent next run
            } catch (const std::exception& error) {
                log_line(LogLevel::error, "export " + export_.name + ": saving the last outcomes: " + error.what());
            }
            api_.abort_export(exp);
            progress_.finish();
            if (failure) throw *failure;
            return;
        }
        for (int failed = 0;;) {
            segpush_outcomes outcomes = fresh_outcomes();
            segpush_error error = fresh_error();
            const segpush_status status = api_.finish_export(exp, &outcomes, &error);
            apply(run_id, take_outcomes(outcomes));
            if (status == SEGPUSH_OK) break;
            const std::string message = std::string("finishing the export: ") + status_class(status) + ": " +
                                        message_of(error);
            if (status != SEGPUSH_RETRY || ++failed >= retry_.max_attempts || cancel_) {
                if (status == SEGPUSH_RETRY) api_.abort_export(exp);
                progress_.finish();
                throw RunFailure{status == SEGPUSH_RETRY ? RunStatus::failed_retryable : RunStatus::failed_permanent,
                                 message + "; records not yet confirmed are sent again by the next run"};
            }
            sleep_unless_cancelled(retry_.delay(failed, error.retry_after_ms, rng_));
        }
        tally(state_.settle_pending(run_id, export_.name));
        progress_.update(done_);
        progress_.finish();
        // Records the destination gave back after the cursor passed them (an accepted import it
        // then lost, or one still unconfirmed when the plugin's wait ran out) went back to todo:
        // the run must not call itself done while they are undelivered.
        if (const int64_t unsent = state_.count_todo(); unsent > 0) {
            throw RunFailure{RunStatus::failed_retryable,
                             std::to_string(unsent) + " records were not confirmed by the destination; the next run "
                                                      "sends them again"};
        }
    }

    // Members an earlier run left pending at the destination are confirmed through their
    // receipts before anything is sent: a run killed after the destination took a batch but
    // before it confirmed it costs no second copy of that batch.
    void resume_pending(int64_t run_id, segpush_export* exp) {
        auto resumable = state_.resumable_members(export_.name, run_id, baseline_);
        if (resumable.empty() || !api_.resume_pending) {
            state_.forget_earlier_receipts(export_.name, run_id);
            return;
        }
        const size_t max_records = plugin_.max_records_per_batch();
        const OutcomeTally before{counts_.accepted, counts_.removed, counts_.rejected};
        int64_t resent = 0, processing = 0, attempted = 0;
        for (size_t first = 0; first < resumable.size() && !cancel_; first += max_records) {
            const size_t end = std::min(resumable.size(), first + max_records);
            Job job;
            std::vector<const char*> receipts;
            for (size_t i = first; i < end; ++i) {
                job.members.push_back(std::move(resumable[i].member));
                receipts.push_back(resumable[i].receipt.c_str());
            }
            prepare_values(job);
            attempted += static_cast<int64_t>(job.ids.size());
            const segpush_batch batch = job.batch();
            segpush_outcomes outcomes = fresh_outcomes();
            segpush_error error = fresh_error();
            const segpush_status status = api_.resume_pending(exp, &batch, receipts.data(), &outcomes, &error);
            auto results = take_outcomes(outcomes);
            if (status != SEGPUSH_OK) {
                if (status == SEGPUSH_ERR_AUTH || status == SEGPUSH_ERR_CONFIG) {
                    throw RunFailure{RunStatus::failed_permanent, std::string("confirming the last run's records: ") +
                                                                      status_class(status) + ": " + message_of(error)};
                }
                log_line(LogLevel::warn, "export " + export_.name + ": cannot confirm " + std::to_string(job.ids.size()) +
                                             " records the last run left unconfirmed (" + message_of(error) +
                                             "); they are sent again");
                resent += static_cast<int64_t>(job.ids.size());
                continue;
            }
            for (const auto& result : results) {
                resent += result.state == MemberState::todo;
                processing += result.state == MemberState::pending;
            }
            apply(run_id, results);
        }
        log_line(LogLevel::info, "export " + export_.name + ": " + std::to_string(resumable.size()) +
                                     " records the last run left unconfirmed: " +
                                     std::to_string(counts_.accepted - before.accepted) + " confirmed, " +
                                     std::to_string(counts_.rejected - before.rejected) + " rejected, " +
                                     std::to_string(processing) + " still being processed, " + std::to_string(resent) +
                                     " to send again");
        counts_.sent += attempted - resent;
        if (!cancel_) state_.forget_earlier_receipts(export_.name, run_id);  // cancelled: the next run resumes the rest
    }

    std::unique_ptr<Job> next_batch(int64_t run_id) {
        const uint32_t max_records = plugin_.max_records_per_batch();
        const uint64_t max_bytes = plugin_.limits.max_bytes_per_batch;
        // While reading, only full batches leave: each import counts against a per-minute budget.
        if (!reading_done_ && last_seq_ - cursor_ < static_cast<int64_t>(max_records)) return nullptr;
        auto members = state_.next_todo(cursor_, static_cast<int>(max_records));
        if (members.empty()) return nullptr;
        auto job = std::make_unique<Job>();
        uint64_t bytes = 0;
        const size_t n_fields = plan_.fields.size();
        for (auto& member : members) {
            if (!job->members.empty() && static_cast<int>(member.action) != static_cast<int>(job->action)) break;
            // Values plus a little JSON framing per field: a conservative estimate of the
            // request size, kept under the plugin's byte limit.
            const uint64_t size = member.payload.size() + 16 * n_fields;
            if (max_bytes && size > max_bytes) {
                cursor_ = member.seq;
                apply(run_id, {{member.seq, MemberState::rejected,
                                "record is larger than the destination accepts in one request", {}}});
                continue;
            }
            if (max_bytes && bytes + size > max_bytes && !job->members.empty()) break;
            bytes += size;
            cursor_ = member.seq;
            job->action = member.action == MemberAction::remove ? SEGPUSH_ACTION_REMOVE : SEGPUSH_ACTION_UPSERT;
            job->members.push_back(std::move(member));
        }
        if (job->members.empty()) return next_batch(run_id);
        prepare_values(*job);
        counts_.sent += static_cast<int64_t>(job->members.size());
        return job;
    }

    void prepare_values(Job& job) {
        const size_t n_fields = plan_.fields.size();
        job.ids.clear();
        job.removed_at.clear();
        job.values.assign(job.members.size() * n_fields, segpush_value{nullptr, 0});
        for (size_t i = 0; i < job.members.size(); ++i) {
            const auto& member = job.members[i];
            job.ids.push_back(static_cast<uint64_t>(member.seq));
            if (member.removed_at != 0) {
                job.removed_at.resize(job.members.size(), 0);
                job.removed_at[i] = member.removed_at;
            }
            segpush_value* row = &job.values[i * n_fields];
            if (member.action == MemberAction::remove) {
                row[plan_.key_field] = {member.payload.data(), member.payload.size()};  // the key only
            } else if (!decode_record(member.payload, n_fields, row)) {
                throw RunFailure{RunStatus::failed_permanent, "the state file holds a corrupt record; run with --full"};
            }
        }
    }

    void push_all(int64_t run_id, segpush_export* exp) {
        const size_t concurrency = plugin_.max_concurrent_pushes();
        PushPool pool(api_, exp, concurrency);
        std::vector<std::unique_ptr<Job>> waiting;  // retries, with their not_before
        size_t in_flight = 0;
        bool exhausted = false;
        std::optional<RunFailure> failure;
        auto last_collect = Clock::now();
        while (true) {
            const bool stopping = cancel_ || failure.has_value();
            while (!stopping && in_flight < concurrency) {
                auto ready = std::find_if(waiting.begin(), waiting.end(),
                                          [](const auto& job) { return job->not_before <= Clock::now(); });
                std::unique_ptr<Job> job;
                if (ready != waiting.end()) {
                    job = std::move(*ready);
                    waiting.erase(ready);
                } else if (!exhausted) {
                    job = next_batch(run_id);
                    exhausted = job == nullptr && reading_done_;
                }
                if (!job) break;
                pool.submit(std::move(job));
                ++in_flight;
            }
            if (in_flight == 0 && (stopping || (exhausted && waiting.empty()))) break;
            // While the segment is still being read, this thread waits for rows rather than for
            // finished pushes, and looks at those between chunks.
            const bool reading = !reading_done_ && !stopping;
            auto deadline = Clock::now() + (reading ? std::chrono::milliseconds(0) : std::chrono::milliseconds(250));
            for (const auto& job : waiting) deadline = std::min(deadline, job->not_before);
            for (auto& job : pool.finished(deadline)) {
                --in_flight;
                if (auto problem = handle(run_id, std::move(job), waiting)) failure = problem;
            }
            if (reading && !failure) {
                // A failure to read stops the run like a failed push: what is in flight still
                // lands and is recorded.
                try {
                    read_more(std::chrono::milliseconds(20));
                } catch (const SegmentError& error) {
                    failure = reading_failed(error);
                } catch (const std::exception& error) {
                    failure = RunFailure{RunStatus::failed_retryable, error.what()};
                }
            }
            if (api_.collect_outcomes && Clock::now() - last_collect > std::chrono::seconds(1)) {
                collect(run_id, exp);
                last_collect = Clock::now();
            }
            progress_.update(done_);
        }
        if (failure) throw *failure;
        if (!waiting.empty() && cancel_) return;
    }

    // Records a finished push; returns a failure that must stop the run.
    std::optional<RunFailure> handle(int64_t run_id, std::unique_ptr<Job> job, std::vector<std::unique_ptr<Job>>& waiting) {
        if (job->status == SEGPUSH_OK) {
            std::vector<MemberOutcome> outcomes = std::move(job->outcomes);
            // A record the plugin forgot is not lost: it is retried like a RETRY outcome.
            std::vector<bool> seen(job->members.size());
            std::vector<size_t> retry;
            for (auto& outcome : outcomes) {
                auto at = std::lower_bound(job->ids.begin(), job->ids.end(), static_cast<uint64_t>(outcome.seq));
                if (at == job->ids.end() || *at != static_cast<uint64_t>(outcome.seq)) continue;
                seen[at - job->ids.begin()] = true;
                if (outcome.state == MemberState::todo) retry.push_back(at - job->ids.begin());
            }
            for (size_t i = 0; i < seen.size(); ++i) {
                if (!seen[i]) retry.push_back(i);
            }
            drop_stale_pending(outcomes);
            apply(run_id, outcomes);
            if (!retry.empty()) {
                auto again = std::make_unique<Job>();
                again->action = job->action;
                again->failed_attempts = job->failed_attempts + 1;
                for (size_t index : retry) again->members.push_back(std::move(job->members[index]));
                if (again->failed_attempts >= retry_.max_attempts) {
                    return RunFailure{RunStatus::failed_retryable,
                                      std::to_string(again->members.size()) + " records were not accepted after " +
                                          std::to_string(again->failed_attempts) + " tries; the next run sends them"};
                }
                prepare_values(*again);
                again->not_before = Clock::now() + retry_.delay(again->failed_attempts, 0, rng_);
                waiting.push_back(std::move(again));
            }
            return std::nullopt;
        }
        const std::string message = std::string("pushing a batch: ") + status_class(job->status) + ": " +
                                    message_of(job->error);
        // Records the plugin settled before the failure keep their outcome; only the rest
        // are retried or reported.
        if (!job->outcomes.empty()) {
            drop_stale_pending(job->outcomes);
            apply(run_id, job->outcomes);
            std::vector<int64_t> settled;
            for (const auto& outcome : job->outcomes) {
                if (outcome.state != MemberState::todo) settled.push_back(outcome.seq);
            }
            std::sort(settled.begin(), settled.end());
            auto& members = job->members;
            members.erase(std::remove_if(members.begin(), members.end(),
                                         [&](const StagedMember& member) {
                                             return std::binary_search(settled.begin(), settled.end(), member.seq);
                                         }),
                          members.end());
            job->outcomes.clear();
            if (members.empty()) return std::nullopt;
            prepare_values(*job);
        }
        if (retryable(job->status)) {
            if (++job->failed_attempts >= retry_.max_attempts) {
                return RunFailure{RunStatus::failed_retryable,
                                  message + " (gave up after " + std::to_string(job->failed_attempts) +
                                      " tries; the next run continues from here)"};
            }
            const auto delay = retry_.delay(job->failed_attempts, job->error.retry_after_ms, rng_);
            log_line(LogLevel::warn, "export " + export_.name + ": " + message + "; retrying in " +
                                         std::to_string(delay.count()) + " ms");
            job->not_before = Clock::now() + delay;
            waiting.push_back(std::move(job));
            return std::nullopt;
        }
        if (job->status == SEGPUSH_ERR_DATA) {
            // The destination refused the request as a whole: its records are reported, the
            // rest of the export goes on.
            std::vector<MemberOutcome> rejected;
            for (const auto& member : job->members) rejected.push_back({member.seq, MemberState::rejected, message_of(job->error), {}});
            apply(run_id, rejected);
            return std::nullopt;
        }
        if (job->status == SEGPUSH_ERR_CANCELLED) return std::nullopt;
        return RunFailure{RunStatus::failed_permanent, message};
    }

    void collect(int64_t run_id, segpush_export* exp) {
        if (!api_.collect_outcomes) return;
        segpush_outcomes outcomes = fresh_outcomes();
        segpush_error error = fresh_error();
        const segpush_status status = api_.collect_outcomes(exp, &outcomes, &error);
        auto collected = take_outcomes(outcomes);
        if (status != SEGPUSH_OK) {
            log_line(LogLevel::warn, "export " + export_.name + ": collecting outcomes: " + message_of(error));
        }
        // RETRY from collect means the destination lost those records: they go back to todo
        // and are resent by the next run (the cursor has passed them in this one).
        for (const auto& outcome : collected) {
            if (outcome.state == MemberState::todo) given_back_.insert(outcome.seq);
        }
        apply(run_id, collected);
    }

    // A push that took several requests can report its records PENDING after collect gave
    // some of them back (a request the destination lost while the push was still busy). That
    // PENDING is stale: applied, it would have finish count the records as delivered.
    void drop_stale_pending(std::vector<MemberOutcome>& outcomes) const {
        if (given_back_.empty()) return;
        outcomes.erase(std::remove_if(outcomes.begin(), outcomes.end(),
                                      [&](const MemberOutcome& outcome) {
                                          return outcome.state == MemberState::pending && given_back_.count(outcome.seq);
                                      }),
                       outcomes.end());
    }

    void apply(int64_t run_id, const std::vector<MemberOutcome>& outcomes) {
        if (!outcomes.empty()) tally(state_.apply_outcomes(run_id, export_.name, outcomes));
    }

    void tally(const OutcomeTally& tally) {
        counts_.accepted += tally.accepted;
        counts_.removed += tally.removed;
        counts_.rejected += tally.rejected;
        counts_.suppressed += tally.suppressed;
        done_ += tally.accepted + tally.removed + tally.rejected + tally.suppressed;
    }

    // Reports list people by email: every run deletes those older than the configured retention.
    void prune_old_reports() {
        const uint64_t days = config_.report_retention_days;
        const auto removed = prune_reports(reports_directory(config_.state_path), std::chrono::hours(24 * days));
        if (!removed.empty()) {
            log_line(LogLevel::info, "deleted " + std::to_string(removed.size()) + " run report(s) older than " +
                                         std::to_string(days) + " days (report_retention_days)");
        }
    }

    std::string write_report(int64_t run_id) {
        if (counts_.invalid == 0 && counts_.rejected == 0 && counts_.suppressed == 0) return {};  // nothing to list
        std::vector<ReportedMember> reported;
        try {
            reported = state_.reported_members(sources_);
        } catch (const std::exception& error) {
            log_line(LogLevel::error, std::string("cannot read the records for the run's report: ") + error.what());
            return {};
        }
        if (reported.empty()) return {};
        const std::string path = report_path_for(config_, export_.name, run_id);
        try {
            segpush::write_report(path, reported);
        } catch (const std::exception& error) {
            log_line(LogLevel::error, std::string("cannot write the run's report: ") + error.what());
            return {};
        }
        return path;
    }

    const Config& config_;
    const ExportConfig& export_;
    const LoadedPlugin& plugin_;
    const segpush_plugin& api_;
    const ConnectionConfig& connection_;
    StateStore& state_;
    const std::atomic<bool>& cancel_;
    RunOptions options_;
    RetryPolicy retry_;
    std::mt19937_64 rng_;
    ProgressReporter progress_;
    RecordPlan plan_;
    RunCounts counts_;
    RunSummary summary_;
    std::vector<std::string> sources_;
    std::vector<std::unique_ptr<SegmentReader>> readers_;
    std::unique_ptr<SegmentFeed> feed_;  // reads readers_ on its own thread
    FeedChunk chunk_;
    std::unordered_set<int64_t> given_back_;  // records collect_outcomes reported RETRY
    std::atomic<bool> setup_abandoned_{false};
    std::atomic<bool> stop_reading_{false};  // the run is over: readers stop waiting on their files
    bool reading_done_ = false;
    int64_t baseline_ = 0;
    int64_t last_seq_ = 0;
    int64_t cursor_ = 0;
    int64_t done_ = 0;
};

}  // namespace

ExportRunner::ExportRunner(const Config& config, const ExportConfig& export_config, const PluginRegistry& plugins,
                           StateStore& state, const std::atomic<bool>& cancel)
    : config_(config), export_(export_config), plugins_(plugins), state_(state), cancel_(cancel) {}

RunSummary ExportRunner::run(const RunOptions& options) {
    const ConnectionConfig* connection = config_.find_connection(export_.connection);
    const LoadedPlugin* plugin = connection ? plugins_.find(connection->plugin) : nullptr;
    if (!connection || !plugin) throw std::logic_error("export run on an unchecked configuration");
    Run run(config_, export_, *plugin, *connection, state_, cancel_, options);
    return run.execute();
}

}  // namespace segpush
