#pragma once

#include <array>
#include <cctype>
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace segpush {

// How a run ended. succeeded_with_rejections: every member was dealt with, but some rows were
// refused before sending (invalid) or by the destination (rejected), so not everyone in the
// segment is at the destination. failed_retryable means "transient trouble outlasted the retry
// budget": the next run (scheduled or manual) picks up where it stopped. failed_permanent means
// a person must change something (credentials, settings, the segment file) first.
enum class RunStatus { running, succeeded, succeeded_with_rejections, failed_retryable, failed_permanent, cancelled };
// The names are what the state keeps and what `runs list` shows: a backend stores these.
std::string to_string(RunStatus status);
// Text no status is named by reads as failed_permanent: a person looks at such a run.
RunStatus run_status_from(const std::string& text);
// The run got to its end: succeeded, with or without rejections.
inline bool ran_to_end(RunStatus status) {
    return status == RunStatus::succeeded || status == RunStatus::succeeded_with_rejections;
}

// What a run did, in the words every output uses (the summary, runs list and show, JSON, logs,
// metrics, notices; docs/operations.md defines them for users). For every run:
//   sent + resumed = accepted + rejected + removed + suppressed + pending
// and across an interrupted run and the runs that continue it, each member is sent once
// unless the destination lost it or a receipt could not be read.
struct RunCounts {
    int64_t rows_read = 0;    // data rows read from the segment files
    int64_t invalid = 0;      // rows refused before sending (unreadable, bad key, too large, ...)
    int64_t duplicates = 0;   // rows whose key (member_key.hpp) appeared earlier
    int64_t members = 0;      // distinct valid members
    int64_t new_members = 0;  // not delivered before
    int64_t changed = 0;      // delivered before with other values
    int64_t unchanged = 0;    // delivered before with the same values: not sent
    int64_t leaving = 0;      // delivered before, no longer in the segment
    // Records in a request the destination answered (a retried request counts once, and
    // records it answered "try again" for are not sent until it takes them).
    int64_t sent = 0;
    int64_t accepted = 0;
    int64_t rejected = 0;  // refused by the destination
    int64_t removed = 0;   // leavers removed (on_leave: unsubscribe)
    // Kept out by a choice made at the destination (the person unsubscribed, the address
    // bounced): nothing was changed there, and the member is not sent again until its
    // values change. Leavers already off the list count here too, not in removed.
    int64_t suppressed = 0;
    // Records an earlier, interrupted run sent whose outcome this run learned from their
    // receipts: counted in this run's outcomes, in the earlier run's sent.
    int64_t resumed = 0;
    // Sent, outcome not known when the run ended (an interrupted run; an import still being
    // processed): the next run learns it (resumed) or sends them again.
    int64_t pending = 0;
    // Members an earlier run saw refused with the values they have now: sent again
    // (retry_rejected_runs, --retry-rejected, --full), or held, not sent until their values
    // change. Both are among the new and changed members.
    int64_t rejected_retried = 0;
    int64_t rejected_held = 0;
};

// The share of the rows read that did not reach the destination: refused before sending, by it,
// or held since it refused them on earlier runs. What max_rejected_ratio and notify's
// rejected_ratio_above compare.
inline double rejected_ratio(const RunCounts& counts) {
    if (counts.rows_read <= 0) return 0;
    return static_cast<double>(counts.rejected + counts.invalid + counts.rejected_held) /
           static_cast<double>(counts.rows_read);
}

// `error` (a run's error, which may quote a destination's message about one member) with every
// occurrence of the keys (member keys), compared case-insensitively, masked with '*';
// nullopt when it names none. What redact_from_errors writes back, in every backend.
inline std::optional<std::string> error_without_keys(std::string error, const std::set<std::string>& keys) {
    std::string folded = error;
    for (char& c : folded) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool named = false;
    for (const std::string& key : keys) {
        for (size_t at = folded.find(key); at != std::string::npos; at = folded.find(key, at + 1)) {
            error.replace(at, key.size(), std::string(key.size(), '*'));
            named = true;
        }
    }
    if (!named) return std::nullopt;
    return error;
}

// Each count under the name segpush's JSON outputs give it (`runs show --json`, notices), in
// the order they list them: one list, so the outputs cannot drift apart.
inline std::array<std::pair<const char*, int64_t>, 17> named_counts(const RunCounts& c) {
    return {{{"rows_read", c.rows_read},
             {"invalid", c.invalid},
             {"duplicates", c.duplicates},
             {"members", c.members},
             {"new", c.new_members},
             {"changed", c.changed},
             {"unchanged", c.unchanged},
             {"leaving", c.leaving},
             {"sent", c.sent},
             {"resumed", c.resumed},
             {"accepted", c.accepted},
             {"rejected", c.rejected},
             {"removed", c.removed},
             {"suppressed", c.suppressed},
             {"pending", c.pending},
             {"rejected_retried", c.rejected_retried},
             {"rejected_held", c.rejected_held}}};
}

struct RunRecord {
    int64_t id = 0;
    std::string export_name;
    RunStatus status = RunStatus::running;
    std::string started_at;   // UTC, "2026-01-31T12:00:00Z"
    std::string finished_at;  // empty while running
    bool full = false;
    bool dry_run = false;
    int64_t pid = 0;
    std::string hostname;
    RunCounts counts;
    std::string error;        // empty when none
    std::string report_path;  // empty when none
};

// The export (or, for forgetting people, the state) is in use by a live process: `run` is its run.
class AlreadyRunning : public std::runtime_error {
public:
    AlreadyRunning(const RunRecord& run, const std::string& message) : std::runtime_error(message), run(run) {}
    RunRecord run;
};

// The history of runs, which is also what keeps two processes from running one export at
// once. The engine and the CLI see only this; SqliteRunHistory is the embedded backend.
//
// What every backend guarantees:
// - begin_run is atomic and exclusive: of the processes claiming one export at the same time,
//   at most one gets a run while a live process holds it; the others get AlreadyRunning. The
//   check and the insert happen in one transaction that excludes other claims of the export.
// - A run recorded as running whose process is gone (on this host: the pid is dead, a zombie,
//   or now another process, told apart by its start time) is closed as failed_retryable, with
//   the error "interrupted: process PID stopped without finishing", by the next begin_run of
//   its export, in the same transaction as the claim. A run of another host is taken as alive
//   (this one cannot ask) unless the backend keeps leases and its lease ran out (PostgreSQL).
// - Run ids grow: a later run has a higher id, and ids are never reused.
// - What a run records survives the process (the next process reads it), and finish_run's
//   error text is stored scrubbed of secrets (Redactor).
class RunHistory {
public:
    virtual ~RunHistory() = default;

    struct Claim {
        int64_t run_id = 0;
        // Members delivered by runs older than this count as changed: 0 for a normal run,
        // the run itself for --full, or the interrupted --full run it continues.
        int64_t baseline = 0;
        std::optional<int64_t> continues;  // the interrupted run whose work this one resumes
    };

    // Claims the export for this process and records the run as running, with this process's
    // pid, identity and host. Throws AlreadyRunning when a live process is running it; a run
    // left running by a dead process is closed as failed_retryable first. A --full run that
    // is not a dry run continues the export's last non-dry run when that was a --full run that
    // neither succeeded nor failed permanently (it takes over its baseline).
    virtual Claim begin_run(const std::string& export_name, bool full, bool dry_run) = 0;
    // Records how the run ended, its counts, error (empty: none) and report (empty: none).
    virtual void finish_run(int64_t run_id, RunStatus status, const RunCounts& counts, const std::string& error,
                            const std::string& report_path) = 0;

    // The newest `limit` runs, newest first; of one export, or of all when `export_name` is empty.
    virtual std::vector<RunRecord> list_runs(const std::string& export_name, int limit) = 0;
    virtual std::optional<RunRecord> get_run(int64_t id) = 0;

    // Runs of any export recorded as running whose process is alive (by begin_run's rule),
    // oldest first. Closes none. A caller that must keep runs from starting while it works
    // (forgetting people) calls this inside a transaction that excludes begin_run.
    virtual std::vector<RunRecord> live_runs() = 0;
    // The other runs recorded as running: their process is gone (by begin_run's rule), and the
    // next begin_run of their export closes them. Oldest first; closes none. What a replica
    // looks for to take over.
    virtual std::vector<RunRecord> abandoned_runs() = 0;

    // Whether this process may still act for its run `run_id` (begun here, not finished):
    // held; renewing (its lease may have run out: this process was paused or cut off, and
    // it is finding out, so send nothing new meanwhile); or lost (another process closed the
    // run and may be running its export: stop). A backend without leases always says held.
    // Answered from memory, without I/O, from any thread.
    enum class Lease { held, renewing, lost };
    virtual Lease lease(int64_t /*run_id*/) const { return Lease::held; }
    // Masks with '*' every occurrence of the keys (member keys) in runs' errors, the
    // errors compared case-insensitively; returns how many runs' errors changed.
    virtual int64_t redact_from_errors(const std::set<std::string>& keys) = 0;

    // Claims the scheduled run of `export_name` due at `due_at_utc` (the slot's time as the
    // schedule computed it) for `claimer` (one `serve` process: host and pid), so that of
    // several `serve` processes sharing the state, one alone starts it. True for exactly one
    // claimer of each (export, due_at), ever, however many ask at once; that claimer asking
    // again gets true again (an answer lost with a connection can be asked for anew). Atomic
    // like begin_run. Claims older than a week are forgotten as claims are made: a slot is
    // asked for around its time, never a week later.
    virtual bool claim_slot(const std::string& export_name, const std::string& due_at_utc,
                            const std::string& claimer) = 0;
};

}  // namespace segpush
