#include "state/sqlite_run_history.hpp"

#include <unistd.h>

#include <cctype>
#include <ctime>

#include "secrets/redactor.hpp"
#include "state/process_liveness.hpp"

namespace segpush {

namespace {

std::string now_utc() {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

// A run recorded as running whose process is alive, or runs on another host (which this
// one cannot ask): `identity` is the run's process_identity column.
bool still_running(const RunRecord& run, const std::string& identity) {
    return !can_see_process(run.hostname, identity) || process_alive(run.pid, identity);
}

// read_run's columns; kRunColumnCount of them.
const char* const kRunColumns =
    "id, export, status, started_at, COALESCE(finished_at, ''), COALESCE(pid, 0), COALESCE(hostname, ''), full, "
    "dry_run, rows_read, invalid, duplicates, members, new_members, changed, unchanged, leaving, sent, accepted, "
    "rejected, removed, suppressed, resumed, pending, rejected_retried, rejected_held, COALESCE(error, ''), "
    "COALESCE(report_path, '')";
constexpr int kRunColumnCount = 28;

RunRecord read_run(const sqlite::Statement& row) {
    RunRecord run;
    run.id = row.integer(0);
    run.export_name = row.text(1);
    run.status = run_status_from(row.text(2));
    run.started_at = row.text(3);
    run.finished_at = row.text(4);
    run.pid = row.integer(5);
    run.hostname = row.text(6);
    run.full = row.integer(7) != 0;
    run.dry_run = row.integer(8) != 0;
    RunCounts& c = run.counts;
    int64_t* fields[] = {&c.rows_read,  &c.invalid, &c.duplicates, &c.members,          &c.new_members,  &c.changed,
                         &c.unchanged,  &c.leaving, &c.sent,       &c.accepted,         &c.rejected,     &c.removed,
                         &c.suppressed, &c.resumed, &c.pending,    &c.rejected_retried, &c.rejected_held};
    constexpr int kCounts = sizeof fields / sizeof fields[0];
    for (int i = 0; i < kCounts; ++i) *fields[i] = row.integer(9 + i);
    run.error = row.text(9 + kCounts);
    run.report_path = row.text(10 + kCounts);
    static_assert(11 + kCounts == kRunColumnCount, "read_run reads every column of kRunColumns");
    return run;
}

// The counts in the order of kCountAssignments; returns the next parameter's number.
int bind_counts(sqlite::Statement& statement, int first, const RunCounts& c) {
    const int64_t values[] = {c.rows_read,  c.invalid, c.duplicates, c.members,          c.new_members,  c.changed,
                              c.unchanged,  c.leaving, c.sent,       c.accepted,         c.rejected,     c.removed,
                              c.suppressed, c.resumed, c.pending,    c.rejected_retried, c.rejected_held};
    for (const int64_t value : values) statement.bind(first++, value);
    return first;
}

const char* const kCountAssignments =
    "rows_read=?, invalid=?, duplicates=?, members=?, new_members=?, changed=?, unchanged=?, leaving=?, sent=?, "
    "accepted=?, rejected=?, removed=?, suppressed=?, resumed=?, pending=?, rejected_retried=?, rejected_held=?";

}  // namespace

std::string to_string(RunStatus status) {
    switch (status) {
        case RunStatus::running: return "running";
        case RunStatus::succeeded: return "succeeded";
        case RunStatus::succeeded_with_rejections: return "succeeded_with_rejections";
        case RunStatus::failed_retryable: return "failed_will_retry";
        case RunStatus::failed_permanent: return "failed_permanently";
        case RunStatus::cancelled: return "cancelled";
    }
    return "unknown";
}

RunStatus run_status_from(const std::string& text) {
    for (RunStatus status : {RunStatus::running, RunStatus::succeeded, RunStatus::succeeded_with_rejections,
                             RunStatus::failed_retryable, RunStatus::failed_permanent, RunStatus::cancelled}) {
        if (to_string(status) == text) return status;
    }
    return RunStatus::failed_permanent;
}

RunHistory::Claim SqliteRunHistory::begin_run(const std::string& export_name, bool full, bool dry_run) {
    sqlite::Transaction transaction(db_);
    auto running = db_.prepare(
        std::string("SELECT ") + kRunColumns +
        ", COALESCE(process_identity, '') FROM runs WHERE export=? AND status='running' ORDER BY id");
    running.bind(1, export_name);
    while (running.step()) {
        const RunRecord run = read_run(running);
        if (still_running(run, running.text(kRunColumnCount))) {
            throw AlreadyRunning(run, "export '" + export_name + "' is already running as run #" +
                                          std::to_string(run.id) + " (pid " + std::to_string(run.pid) + " on " +
                                          run.hostname + ", started " + run.started_at + ")");
        }
        auto close = db_.prepare("UPDATE runs SET status=?, finished_at=?, error=? WHERE id=?");
        close.bind(1, to_string(RunStatus::failed_retryable))
            .bind(2, now_utc())
            .bind(3, std::string("interrupted: process ") + std::to_string(run.pid) + " stopped without finishing")
            .bind(4, run.id)
            .run();
    }
    Claim claim;
    if (full && !dry_run) {
        // A --full run that did not finish is continued by the next --full run: members it
        // already delivered are not sent again.
        auto last = db_.prepare("SELECT id, baseline, status, full FROM runs WHERE export=? AND dry_run=0 "
                                "ORDER BY id DESC LIMIT 1");
        last.bind(1, export_name);
        if (last.step() && last.integer(3) != 0 && !ran_to_end(run_status_from(last.text(2))) &&
            last.text(2) != to_string(RunStatus::failed_permanent)) {
            claim.continues = last.integer(0);
            claim.baseline = last.integer(1);
        }
    }
    auto insert = db_.prepare("INSERT INTO runs(export, status, started_at, pid, hostname, full, dry_run, baseline, "
                              "process_identity) VALUES(?, 'running', ?, ?, ?, ?, ?, ?, ?)");
    insert.bind(1, export_name)
        .bind(2, now_utc())
        .bind(3, static_cast<int64_t>(getpid()))
        .bind(4, this_hostname())
        .bind(5, full ? 1 : 0)
        .bind(6, dry_run ? 1 : 0)
        .bind(7, claim.baseline)
        .bind(8, process_identity(getpid()))
        .run();
    claim.run_id = db_.last_insert_id();
    if (full && !dry_run && !claim.continues) {
        claim.baseline = claim.run_id;
        db_.prepare("UPDATE runs SET baseline=? WHERE id=?").bind(1, claim.run_id).bind(2, claim.run_id).run();
    }
    transaction.commit();
    return claim;
}

void SqliteRunHistory::finish_run(int64_t run_id, RunStatus status, const RunCounts& counts, const std::string& error,
                                  const std::string& report_path) {
    // The error may come from a plugin or a server, which may echo a secret: it is scrubbed
    // before it reaches the file, its WAL, or `runs show`.
    auto update = db_.prepare(std::string("UPDATE runs SET ") + kCountAssignments +
                              ", status=?, finished_at=?, error=?, report_path=? WHERE id=?");
    const int next = bind_counts(update, 1, counts);
    update.bind(next, to_string(status)).bind(next + 1, now_utc());
    if (error.empty()) update.bind_null(next + 2);
    else update.bind(next + 2, Redactor::instance().scrub(error));
    if (report_path.empty()) update.bind_null(next + 3);
    else update.bind(next + 3, report_path);
    update.bind(next + 4, run_id).run();
}

std::vector<RunRecord> SqliteRunHistory::list_runs(const std::string& export_name, int limit) {
    auto query = db_.prepare(std::string("SELECT ") + kRunColumns + " FROM runs" +
                             (export_name.empty() ? "" : " WHERE export=?1") + " ORDER BY id DESC LIMIT ?2");
    if (!export_name.empty()) query.bind(1, export_name);
    query.bind(2, static_cast<int64_t>(limit));
    std::vector<RunRecord> runs;
    while (query.step()) runs.push_back(read_run(query));
    return runs;
}

std::optional<RunRecord> SqliteRunHistory::get_run(int64_t id) {
    auto query = db_.prepare(std::string("SELECT ") + kRunColumns + " FROM runs WHERE id=?");
    query.bind(1, id);
    if (!query.step()) return std::nullopt;
    return read_run(query);
}

std::vector<RunRecord> SqliteRunHistory::live_runs() { return recorded_running(true); }

std::vector<RunRecord> SqliteRunHistory::abandoned_runs() { return recorded_running(false); }

std::vector<RunRecord> SqliteRunHistory::recorded_running(bool alive) {
    auto running = db_.prepare(std::string("SELECT ") + kRunColumns +
                               ", COALESCE(process_identity, '') FROM runs WHERE status='running' ORDER BY id");
    std::vector<RunRecord> runs;
    while (running.step()) {
        RunRecord run = read_run(running);
        if (still_running(run, running.text(kRunColumnCount)) == alive) runs.push_back(std::move(run));
    }
    return runs;
}

int64_t SqliteRunHistory::redact_from_errors(const std::set<std::string>& keys) {
    auto errors = db_.prepare("SELECT id, error FROM runs WHERE error IS NOT NULL");
    std::vector<std::pair<int64_t, std::string>> cleaned;
    while (errors.step()) {
        if (auto masked = error_without_keys(errors.text(1), keys)) cleaned.emplace_back(errors.integer(0), *masked);
    }
    errors.reset();
    for (const auto& [id, error] : cleaned) {
        db_.prepare("UPDATE runs SET error=? WHERE id=?").bind(1, error).bind(2, id).run();
    }
    return static_cast<int64_t>(cleaned.size());
}

bool SqliteRunHistory::claim_slot(const std::string& export_name, const std::string& due_at_utc,
                                  const std::string& claimer) {
    sqlite::Transaction transaction(db_);
    db_.prepare("DELETE FROM schedule_slots WHERE claimed_at < CAST(strftime('%s', 'now') AS INTEGER) - 7 * 86400")
        .run();
    db_.prepare("INSERT OR IGNORE INTO schedule_slots(export, due_at, claimed_by, claimed_at) "
                "VALUES(?, ?, ?, CAST(strftime('%s', 'now') AS INTEGER))")
        .bind(1, export_name)
        .bind(2, due_at_utc)
        .bind(3, claimer)
        .run();
    auto holder = db_.prepare("SELECT claimed_by FROM schedule_slots WHERE export=? AND due_at=?");
    holder.bind(1, export_name).bind(2, due_at_utc);
    const bool claimed = holder.step() && holder.text(0) == claimer;
    holder.reset();
    transaction.commit();
    return claimed;
}

}  // namespace segpush
