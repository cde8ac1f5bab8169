#include "engine/export_runner.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <iomanip>
#include <optional>
#include <random>
#include <sstream>

#include "engine/batch_packing.hpp"
#include "engine/dry_run.hpp"
#include "engine/mass_change.hpp"
#include "engine/member_key.hpp"
#include "engine/progress.hpp"
#include "engine/push_pipeline.hpp"
#include "engine/record.hpp"
#include "engine/retry_policy.hpp"
#include "engine/run_failure.hpp"
#include "engine/run_members.hpp"
#include "engine/run_report.hpp"
#include "engine/segment_intake.hpp"
#include "log/log.hpp"
#include "plugins/destination.hpp"
#include "plugins/host_services.hpp"
#include "plugins/registry.hpp"

namespace segpush {

namespace {

using Clock = std::chrono::steady_clock;

// Rows staged at a time while batches are already being sent: about 10 ms of staging between
// two looks at finished pushes.
constexpr int64_t kReadSlice = 5000;

// The records of one push the destination answered for (any outcome but "try again"): what
// the push adds to the run's sent count. A record the plugin reported twice counts once.
int64_t answered_records(const std::vector<MemberOutcome>& outcomes) {
    std::vector<int64_t> seqs;
    for (const auto& outcome : outcomes) {
        if (outcome.state != MemberState::todo) seqs.push_back(outcome.seq);
    }
    std::sort(seqs.begin(), seqs.end());
    return std::unique(seqs.begin(), seqs.end()) - seqs.begin();
}

constexpr const char* kTooLargeReason = "record is larger than the destination accepts in one request";

class Run : public ExportObserver {
public:
    Run(const Config& config, const ExportConfig& export_config, const LoadedPlugin& plugin,
        const ConnectionConfig& connection, StateStore& state, const std::atomic<bool>& cancel,
        const RunOptions& options)
        : config_(config),
          export_(export_config),
          plugin_(plugin),
          connection_(connection),
          state_(state),
          cancel_(cancel),
          options_(options),
          rng_(std::random_device{}()),
          progress_("export " + export_config.name, options.progress_on_terminal) {
        retry_.max_attempts = export_config.retry_max_attempts;
        retry_.max_delay = std::chrono::seconds(export_config.retry_max_backoff_seconds);
    }

    RunSummary execute() {
        const auto started = Clock::now();
        RunHistory& history = state_.history();
        const RunHistory::Claim claim = history.begin_run(export_.name, options_.full, options_.dry_run);
        summary_.run_id = claim.run_id;
        LogRunScope::set_run_id(claim.run_id);
        baseline_ = claim.baseline;
        if (claim.continues) {
            log_line(LogLevel::info, "export " + export_.name + ": continuing the unfinished --full run #" +
                                         std::to_string(*claim.continues));
        }
        try {
            // Inside the try: whatever fails from here on is recorded as the claimed run's end.
            plan_ = RecordPlan::build(export_, plugin_);
            if (plan_.key_field < plan_.fields.size()) {
                const MappedField& key = plan_.fields[plan_.key_field];
                summary_.key_name = key_noun(key.type, key.id);
            }
            members_.emplace(state_.delivered(), export_.name, claim.run_id, plugin_.api.abi_minor >= 4,
                             plan_.context_hash);
            members_->set_refusal_policy({export_.retry_rejected_runs, options_.retry_rejected});
            intake_.emplace(config_, export_, plan_, *members_, counts_, cancel_);
            if (sends_while_reading()) {
                deliver(true);
            } else {
                intake_->stage_all();
                if (options_.dry_run) {
                    preview(claim.baseline);
                } else {
                    members_->diff(claim.baseline, removes_leavers(), intake_->last_seq() + 1, counts_);
                }
                // The comparison runs to its end (seconds at a million members); a stop asked
                // meanwhile is honoured here, before the destination is contacted.
                if (cancel_) {
                    throw RunFailure{RunStatus::cancelled,
                                     "cancelled while comparing the segment with earlier deliveries; nothing was sent"};
                }
                check_max_profiles();
                log_members();
                guard_against_mass_change();
                log_refused();
                if (!options_.dry_run) {
                    members_->forget_obsolete_refusals();
                    deliver(false);
                }
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
        // Transient trouble met while stopping (a request cut short, say) is part of the stop:
        // the next run continues from here either way, as it does after any cancelled run.
        if (cancel_ && summary_.status == RunStatus::failed_retryable) {
            summary_.status = RunStatus::cancelled;
            summary_.error = "cancelled (" + summary_.error + ")";
        }
        if (intake_) intake_->stop();  // before the report and history: the feed's thread may wait on a FIFO
        counts_.pending = std::max<int64_t>(0, counts_.sent + counts_.resumed -
                                                   (counts_.accepted + counts_.rejected + counts_.removed +
                                                    counts_.suppressed));
        if (summary_.status == RunStatus::succeeded) judge_refusals();
        summary_.report_path = write_report(claim.run_id);
        summary_.counts = counts_;
        history.finish_run(claim.run_id, summary_.status, counts_, summary_.error, summary_.report_path);
        prune_old_reports();
        summary_.seconds = std::chrono::duration<double>(Clock::now() - started).count();
        return summary_;
    }

    // ExportObserver: the plugin's own progress is informational; the host counts outcomes.
    void on_plugin_progress(uint64_t, uint64_t, const std::string& message) override {
        if (!message.empty()) log_line(LogLevel::debug, "[" + plugin_.id() + "] " + message);
    }
    // Also while the run's lease may have run out: a request the plugin is pacing (or
    // retrying) is not sent by a process another may have replaced; its members stay to send.
    bool cancel_requested() const override {
        return cancel_.load() || state_.history().lease(summary_.run_id) != RunHistory::Lease::held;
    }

private:
    bool removes_leavers() const {
        return export_.on_leave == OnLeave::unsubscribe && (plugin_.api.capabilities & SEGPUSH_CAP_REMOVE);
    }

    // A first delivery sends while the segment is still being read, and opens the connection
    // meanwhile: its first bulk import leaves after the first rows instead of after the whole
    // file. Only when nothing learnt at the end of reading can stop the run: no max_profiles
    // (it needs the count), only files whose columns were checked when opened (JSON Lines
    // finds an absent column at its end), and nothing recorded for the export (every member
    // is new: no diff, nobody leaving, no receipts to resume).
    bool sends_while_reading() {
        if (options_.dry_run || export_.max_profiles || !intake_->columns_checked_when_opened()) return false;
        return state_.delivered().nothing_recorded(export_.name);
    }

    // Stages rows while batches are being sent: the totals grow with it, and are final at the end.
    void read_more(std::chrono::milliseconds wait) {
        intake_->stage(wait, kReadSlice);
        progress_.set_total(intake_->last_seq());
        counts_.members = counts_.new_members = intake_->last_seq();  // a run stopped while reading says how far it got
        if (intake_->done()) log_members();
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

    // A run that got to its end with rows refused (before sending, by the destination, or held
    // since it refused them before) did not bring everyone to the destination: it says so, and
    // fails over max_rejected_ratio.
    void judge_refusals() {
        if (counts_.invalid + counts_.rejected + counts_.rejected_held == 0) return;
        summary_.status = RunStatus::succeeded_with_rejections;
        const double ratio = rejected_ratio(counts_);
        if (!export_.max_rejected_ratio || ratio <= *export_.max_rejected_ratio) return;
        std::ostringstream text;
        text << std::fixed << std::setprecision(1) << 100 * ratio << "% of the " << counts_.rows_read
             << " rows read were refused (" << counts_.invalid << " invalid, " << counts_.rejected
             << " rejected by the destination, " << counts_.rejected_held
             << " held after earlier refusals), more than max_rejected_ratio " << *export_.max_rejected_ratio
             << " allows"
             << (options_.dry_run ? ": a real run would fail"
                                  : "; the members the destination accepted are recorded as delivered, and the "
                                    "report says why each refused row was refused");
        summary_.status = RunStatus::failed_permanent;
        summary_.error = text.str();
    }

    void log_refused() {
        if (counts_.rejected_retried == 0 && counts_.rejected_held == 0) return;
        log_line(LogLevel::info, "export " + export_.name + ": " +
                                     std::to_string(counts_.rejected_retried + counts_.rejected_held) +
                                     " members were refused before with the values they have now: " +
                                     std::to_string(counts_.rejected_retried) + " sent again, " +
                                     std::to_string(counts_.rejected_held) +
                                     " held (not sent until their values change or --retry-rejected is given)");
    }

    // A dry run's diff stages every leaver (kept ones too, to show them) and counts what a run
    // would send by the rule it sends by.
    void preview(int64_t baseline) {
        const BatchPacking packing{plugin_.max_records_per_batch(), plugin_.limits.max_bytes_per_batch,
                                   plan_.fields.size()};
        DryRunPreviewBuilder builder(plan_, packing, options_.show, removes_leavers());
        members_->diff(baseline, true, intake_->last_seq() + 1, counts_,
                       [&](int64_t seq, std::string_view sent_values) { builder.changed(seq, sent_values); });
        std::vector<int64_t> resumed;
        for (const ResumableMember& member : members_->resumable(baseline)) resumed.push_back(member.member.seq);
        std::sort(resumed.begin(), resumed.end());
        summary_.preview = builder.build(*members_, resumed, plugin_.api.resume_pending != nullptr);
        summary_.preview->email_key = summary_.key_name == "email";
    }

    void check_max_profiles() {
        if (export_.max_profiles && static_cast<uint64_t>(counts_.members) > *export_.max_profiles) {
            throw RunFailure{RunStatus::failed_permanent, "the segment has " + std::to_string(counts_.members) +
                                                              " members, more than max_profiles " +
                                                              std::to_string(*export_.max_profiles) +
                                                              " allows; nothing was sent"};
        }
    }

    // Before the destination is contacted at all: not even the new members go when the run
    // would remove or change too many of the delivered ones.
    void guard_against_mass_change() {
        const MassChange change = find_mass_change(counts_, export_, removes_leavers(), options_.full);
        if (!change.found()) return;
        summary_.mass_change = change.text();
        if (options_.dry_run) {
            log_line(LogLevel::warn, log_label() + ": guard against mass change: " + change.text() +
                                         "; a real run stops here, sending nothing, unless given --allow-mass-change");
        } else if (options_.allow_mass_change) {
            log_line(LogLevel::warn,
                     log_label() + ": going ahead with a mass change (--allow-mass-change): " + change.text());
        } else {
            summary_.guarded = true;
            throw RunFailure{RunStatus::failed_permanent, change.error(export_)};
        }
    }

    // Cancelled, or the run no longer needs the connection being set up on another thread.
    bool stop_waiting() const { return cancel_ || setup_abandoned_; }

    std::string log_label() const { return "export " + export_.name; }

    // The connection and the export begun on it. Members go in reverse order: the export
    // (aborted unless it finished) before the connection closes.
    struct Session {
        std::unique_ptr<DestinationConnection> connection;
        std::unique_ptr<DestinationExport> exp;
    };

    // Opens and checks the connection and begins the export, each with retries.
    void begin(Session& session) {
        const auto stop = [this] { return stop_waiting(); };
        call_with_retries("opening the connection", retry_, rng_, log_label(), plugin_.id(), stop, [&] {
            PluginCallResult result;
            session.connection = DestinationConnection::open(plugin_, connection_.settings.resolved_json, result);
            return result;
        });
        call_with_retries("checking the connection", retry_, rng_, log_label(), plugin_.id(), stop,
                          [&] { return session.connection->check(); });
        std::vector<std::string> field_ids;
        for (const auto& field : plan_.fields) field_ids.push_back(field.id);
        call_with_retries("starting the export", retry_, rng_, log_label(), plugin_.id(), stop, [&] {
            PluginCallResult result;
            session.exp = session.connection->begin_export(export_.settings.resolved_json, field_ids, this, result);
            return result;
        });
    }

    // begin() on another thread while this one reads on (its round trips cost the run
    // nothing then), once there is a batch to send: a segment without members contacts
    // nobody, as when the diff finds nothing to send. Only this thread touches the state
    // file. False: nothing to send, or cancelled before anything was begun.
    bool begin_while_reading(Session& session) {
        const int64_t batch = plugin_.max_records_per_batch();
        while (!intake_->done() && !cancel_ && intake_->last_seq() < batch) read_more(std::chrono::milliseconds(20));
        if (cancel_ || intake_->last_seq() == 0) return false;
        auto setup = std::async(std::launch::async, [&, log_context = LogRunScope::current()] {
            const LogRunScope log_scope(log_context);  // the plugin's lines from here belong to this run
            begin(session);
        });
        try {
            while (!intake_->done() && !cancel_ &&
                   setup.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
                read_more(std::chrono::milliseconds(20));
            }
        } catch (...) {
            // Reading failed: stop the other thread's retries; the session drops what it began.
            setup_abandoned_ = true;
            try {
                setup.get();
            } catch (...) {  // the reading error is the one to report
            }
            throw;
        }
        setup.get();
        return true;
    }

    void deliver(bool while_reading) {
        const int64_t to_send = counts_.new_members + counts_.changed - counts_.rejected_held +
                                (removes_leavers() ? counts_.leaving : 0);
        if (to_send == 0 && !while_reading) return;
        Session session;
        if (while_reading) {
            if (!begin_while_reading(session)) return;
        } else {
            begin(session);
        }
        DestinationExport& exp = *session.exp;
        progress_.start(while_reading ? intake_->last_seq() : to_send);
        std::optional<RunFailure> failure;
        try {
            if (!while_reading) resume_pending(exp);  // while reading, nothing was recorded to resume
            push_all(exp);
        } catch (const RunFailure& caught) {
            failure = caught;
        } catch (const std::exception& error) {
            // The state file failed (say, locked past the busy timeout by another export):
            // the export is still aborted, so the plugin's handle is not left open.
            failure = RunFailure{RunStatus::failed_retryable, error.what()};
        }
        if (failure || cancel_) {
            try {
                collect(exp);  // whatever settled is saved; the rest is resent next run
            } catch (const std::exception& error) {
                log_line(LogLevel::error, log_label() + ": saving the last outcomes: " + error.what());
            }
            exp.abort();
            progress_.finish();
            if (failure) throw *failure;
            return;
        }
        finish(exp);
        tally(members_->settle_pending());
        progress_.update(done_);
        progress_.finish();
        // Records the destination gave back after the cursor passed them (an accepted import it
        // then lost, or one still unconfirmed when the plugin's wait ran out) went back to todo:
        // the run must not call itself done while they are undelivered.
        if (const int64_t unsent = members_->count_todo(); unsent > 0) {
            throw RunFailure{RunStatus::failed_retryable,
                             std::to_string(unsent) + " records were not confirmed by the destination; the next run "
                                                      "sends them again"};
        }
    }

    // Waits for the destination to settle every pending record; a RETRY is tried again under
    // the retry policy.
    void finish(DestinationExport& exp) {
        for (int failed = 0;;) {
            OutcomesResult finished = exp.finish();
            apply(finished.outcomes);
            if (finished.call.ok()) return;
            const bool retry = finished.call.status == SEGPUSH_RETRY;
            if (!retry || ++failed >= retry_.max_attempts || cancel_) {
                exp.abort();  // still open only after a RETRY
                progress_.finish();
                throw finish_failure(finished.call, cancel_);
            }
            sleep_unless([this] { return stop_waiting(); }, retry_.delay(failed, finished.call.retry_after_ms, rng_));
        }
    }

    // Members an earlier run left pending at the destination are confirmed through their
    // receipts before anything is sent: a run killed after the destination took a batch but
    // before it confirmed it costs no second copy of that batch.
    void resume_pending(DestinationExport& exp) {
        auto resumable = members_->resumable(baseline_);
        if (resumable.empty() || !exp.can_resume()) {
            members_->forget_earlier_receipts();
            return;
        }
        const size_t max_records = plugin_.max_records_per_batch();
        const OutcomeTally before{counts_.accepted, counts_.removed, counts_.rejected};
        int64_t resent = 0, processing = 0, attempted = 0;
        for (size_t first = 0; first < resumable.size() && !cancel_; first += max_records) {
            const size_t end = std::min(resumable.size(), first + max_records);
            PushJob job;
            std::vector<const char*> receipts;
            for (size_t i = first; i < end; ++i) {
                job.members.push_back(std::move(resumable[i].member));
                receipts.push_back(resumable[i].receipt.c_str());
            }
            prepare_values(job);
            OutcomesResult resumed = exp.resume(job.view(), receipts);
            if (resumed.call.status == SEGPUSH_ERR_CANCELLED) break;  // the receipts stay for the next run
            attempted += static_cast<int64_t>(job.ids.size());
            if (!resumed.call.ok()) {
                if (resumed.call.status == SEGPUSH_ERR_AUTH || resumed.call.status == SEGPUSH_ERR_CONFIG) {
                    throw RunFailure{RunStatus::failed_permanent,
                                     resumed.call.describe("confirming the last run's records")};
                }
                log_line(LogLevel::warn, log_label() + ": cannot confirm " + std::to_string(job.ids.size()) +
                                             " records the last run left unconfirmed (" + resumed.call.message +
                                             "); they are sent again");
                resent += static_cast<int64_t>(job.ids.size());
                continue;
            }
            for (const auto& result : resumed.outcomes) {
                resent += result.state == MemberState::todo;
                processing += result.state == MemberState::pending;
            }
            apply(resumed.outcomes);
        }
        log_line(LogLevel::info,
                 log_label() + ": " + std::to_string(resumable.size()) + " records the last run left unconfirmed: " +
                     std::to_string(counts_.accepted - before.accepted) + " confirmed, " +
                     std::to_string(counts_.rejected - before.rejected) + " rejected, " + std::to_string(processing) +
                     " still being processed, " + std::to_string(resent) + " to send again");
        counts_.resumed += attempted - resent;
        if (!cancel_) members_->forget_earlier_receipts();  // cancelled: the next run resumes the rest
    }

    // The next batch to send, within the plugin's limits; nullptr when none is ready yet.
    std::unique_ptr<PushJob> next_batch() {
        const uint32_t max_records = plugin_.max_records_per_batch();
        const uint64_t max_bytes = plugin_.limits.max_bytes_per_batch;
        // While reading, only full batches leave: each import counts against a per-minute budget.
        if (!intake_->done() && intake_->last_seq() - cursor_ < static_cast<int64_t>(max_records)) return nullptr;
        auto members = members_->next_todo(cursor_, static_cast<int>(max_records));
        if (members.empty()) return nullptr;
        auto job = std::make_unique<PushJob>();
        uint64_t bytes = 0;
        const BatchPacking packing{max_records, max_bytes, plan_.fields.size()};
        for (auto& member : members) {
            const uint32_t action = member.action == MemberAction::remove ? SEGPUSH_ACTION_REMOVE
                                                                          : SEGPUSH_ACTION_UPSERT;
            const uint64_t size = packing.size_of(member.payload.size());
            const BatchPacking::Fit fit = packing.fit(job->members.size(), job->action, bytes, action, size);
            if (fit == BatchPacking::Fit::next_batch) break;
            if (fit == BatchPacking::Fit::too_large) {
                // Never sent: refused here, so it counts as invalid, not as the destination's refusal.
                cursor_ = member.seq;
                const OutcomeTally refused = members_->apply_outcomes(
                    {{member.seq, MemberState::rejected, kTooLargeReason, {}}});
                counts_.invalid += refused.rejected;
                done_ += refused.rejected;
                continue;
            }
            bytes += size;
            cursor_ = member.seq;
            job->action = action;
            job->members.push_back(std::move(member));
        }
        if (job->members.empty()) return next_batch();
        prepare_values(*job);
        return job;
    }

    // The job's records as the plugin sees them, decoded from the staged payloads.
    void prepare_values(PushJob& job) {
        const size_t n_fields = plan_.fields.size();
        job.n_fields = static_cast<uint32_t>(n_fields);
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

    // Sends every batch (reading on meanwhile, when sending while reading), with at most the
    // plugin's max_concurrent_pushes in flight, and looks for late outcomes every second.
    void push_all(DestinationExport& exp) {
        PushPipeline pipeline(exp, plugin_.max_concurrent_pushes(), retry_, rng_, log_label(),
                              [&](std::vector<MemberOutcome>& outcomes) {
                                  counts_.sent += answered_records(outcomes);
                                  tally(members_->apply_pushed(outcomes));
                              });
        bool exhausted = false;
        std::optional<RunFailure> failure;
        auto last_collect = Clock::now();
        while (true) {
            // With a shared state, another process may take the run over once this one's lease
            // runs out (it was paused, or cut off from the database): nothing new is sent while
            // the lease may have run out, and the run stops once it is lost. What is in flight lands.
            const RunHistory::Lease lease = state_.history().lease(summary_.run_id);
            if (lease == RunHistory::Lease::lost && !failure) {
                failure = RunFailure{RunStatus::failed_retryable,
                                     "this process lost the run's lease (it was paused or cut off from the state "
                                     "database for longer than the lease): another process may run the export now"};
            }
            const bool stopping = cancel_ || failure.has_value();
            if (!stopping && lease == RunHistory::Lease::held) {
                pipeline.submit_due_retries();
                while (pipeline.has_room() && !exhausted) {
                    std::unique_ptr<PushJob> job = next_batch();
                    if (!job) {
                        exhausted = intake_->done();
                        break;
                    }
                    pipeline.submit(std::move(job));
                }
            }
            if (pipeline.in_flight() == 0 && (stopping || (exhausted && !pipeline.retries_waiting()))) break;
            // While the segment is still being read, this thread waits for rows rather than for
            // finished pushes, and looks at those between chunks.
            const bool reading = !intake_->done() && !stopping;
            const auto deadline = Clock::now() +
                                  (reading ? std::chrono::milliseconds(0) : std::chrono::milliseconds(250));
            if (auto problem = pipeline.wait(deadline)) failure = problem;
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
            if (exp.can_collect() && Clock::now() - last_collect > std::chrono::seconds(1)) {
                collect(exp);
                last_collect = Clock::now();
            }
            progress_.update(done_);
        }
        if (failure) throw *failure;
    }

    void collect(DestinationExport& exp) {
        if (!exp.can_collect()) return;
        OutcomesResult collected = exp.collect();
        if (!collected.call.ok())
            log_line(LogLevel::warn, log_label() + ": collecting outcomes: " + collected.call.message);
        // RETRY from collect means the destination lost those records: they go back to todo
        // and are resent by the next run (the cursor has passed them in this one).
        tally(members_->apply_collected(collected.outcomes));
    }

    void apply(const std::vector<MemberOutcome>& outcomes) {
        if (!outcomes.empty()) tally(members_->apply_outcomes(outcomes));
    }

    void tally(const OutcomeTally& tally) {
        counts_.accepted += tally.accepted;
        counts_.removed += tally.removed;
        counts_.rejected += tally.rejected;
        counts_.suppressed += tally.suppressed;
        done_ += tally.accepted + tally.removed + tally.rejected + tally.suppressed;
    }

    // Reports list people by their keys: every run deletes those older than the configured retention.
    void prune_old_reports() {
        const uint64_t days = config_.report_retention_days;
        const auto removed = prune_reports(config_.reports_dir, std::chrono::hours(24 * days));
        if (!removed.empty()) {
            log_line(LogLevel::info, "deleted " + std::to_string(removed.size()) + " run report(s) older than " +
                                         std::to_string(days) + " days (report_retention_days)");
        }
    }

    std::string write_report(int64_t run_id) {
        if (!members_ ||
            (counts_.invalid == 0 && counts_.rejected == 0 && counts_.suppressed == 0 && counts_.rejected_held == 0))
            return {};  // nothing to list
        std::vector<ReportedMember> reported;
        try {
            reported = members_->reported_members(intake_ ? intake_->sources() : std::vector<std::string>{});
        } catch (const std::exception& error) {
            log_line(LogLevel::error, std::string("cannot read the records for the run's report: ") + error.what());
            return {};
        }
        if (reported.empty()) return {};
        const std::string path = report_path_for(config_, export_.name, run_id);
        try {
            segpush::write_report(path, reported, summary_.key_name);
        } catch (const std::exception& error) {
            log_line(LogLevel::error, std::string("cannot write the run's report: ") + error.what());
            return {};
        }
        return path;
    }

    const Config& config_;
    const ExportConfig& export_;
    const LoadedPlugin& plugin_;
    const ConnectionConfig& connection_;
    StateStore& state_;
    std::optional<RunMembers> members_;  // the claimed run's
    const std::atomic<bool>& cancel_;
    RunOptions options_;
    RetryPolicy retry_;
    std::mt19937_64 rng_;
    ProgressReporter progress_;
    RecordPlan plan_;
    RunCounts counts_;
    RunSummary summary_;
    std::optional<SegmentIntake> intake_;  // stages into members_, counts into counts_: declared after both
    std::atomic<bool> setup_abandoned_{false};
    int64_t baseline_ = 0;
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
