// The file destination: descriptor, the ABI functions and the entry point.
//
// Each export run writes its members to a CSV or JSON Lines file, and the members who left the
// segment (REMOVE batches) to a separate "leavers" file. Files are written under a temporary
// name next to their final path and renamed into place by finish_export, so readers of the
// final path only ever see a complete file, from this run or the previous one.
#include <segpush/plugin.h>
#include <segpush/plugin_kit.hpp>

#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "output.hpp"
#include "settings.hpp"

using namespace segpush::file;
namespace kit = segpush::kit;

// The handles the ABI keeps opaque. They are defined at global scope because plugin.h
// declares them there.
struct segpush_connection {
    std::string directory;  // "" = the working directory
};

struct segpush_export {
    void* token = nullptr;
    Format format = Format::csv;
    std::vector<std::string> field_ids;
    size_t key_index = 0;  // where "email" is among field_ids
    AtomicFile members;
    AtomicFile leavers;  // opened on the first REMOVE batch
    std::string leavers_final;
    uint64_t done = 0;
};

namespace {

kit::Host g_host;

segpush_status fail_io(segpush_error* err, const IoFailure& failure) {
    const segpush_status status = failure.transient ? SEGPUSH_RETRY
                                  : failure.config  ? SEGPUSH_ERR_CONFIG
                                                    : SEGPUSH_ERR_INTERNAL;
    return kit::fail(err, status, "", failure.message);
}

// ---- descriptor data ---------------------------------------------------------------------

const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email",
     "The member's email; the only value written for leavers."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "first_name", "First name", nullptr},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "last_name", "Last name", nullptr},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_PHONE, "phone", "Phone", nullptr},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "attribute_1", "Attribute 1",
     "Any other segment column; written under the name attribute_1."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "attribute_2", "Attribute 2",
     "Any other segment column; written under the name attribute_2."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "attribute_3", "Attribute 3",
     "Any other segment column; written under the name attribute_3."},
};

// Local files have no request budget. One push at a time keeps records in segment order and
// the export free of locks; writing is far faster than reading and normalising the segment.
const segpush_limits kLimits = {sizeof(segpush_limits), 5000, 0, 0, 0, 1};

// Final paths being written by exports of this process: two exports renaming over the same
// file would silently lose one run, so the second is refused at begin_export.
std::mutex g_paths_mutex;
std::set<std::string> g_paths_in_use;

void release_paths(segpush_export* exp) {
    std::lock_guard<std::mutex> lock(g_paths_mutex);
    g_paths_in_use.erase(exp->members.final_path());
    g_paths_in_use.erase(exp->leavers_final);
}

void destroy(segpush_export* exp) {
    release_paths(exp);
    delete exp;  // ~AtomicFile removes temporaries that were not committed
}

// An export whose paths are reserved: however its owner ends, the paths are released too.
struct Destroy {
    void operator()(segpush_export* exp) const { destroy(exp); }
};
using OwnedExport = std::unique_ptr<segpush_export, Destroy>;

// ---- formatting --------------------------------------------------------------------------

std::string header(Format format, const std::vector<std::string>& ids) {
    if (format == Format::jsonl) return {};
    std::string out;
    for (size_t f = 0; f < ids.size(); ++f) {
        if (f) out += ',';
        append_csv_field(out, ids[f].data(), ids[f].size());
    }
    return out + "\r\n";
}

// One record; only the fields in `which` (indexes into the batch's fields).
void append_record(std::string& out, Format format, const std::vector<std::string>& ids, const segpush_value* row,
                   const std::vector<size_t>& which) {
    if (format == Format::csv) {
        for (size_t i = 0; i < which.size(); ++i) {
            if (i) out += ',';
            const segpush_value& value = row[which[i]];
            if (value.data) append_csv_field(out, value.data, value.size);  // absent: empty field
        }
        out += "\r\n";
        return;
    }
    out += '{';
    bool first = true;
    for (size_t f : which) {
        const segpush_value& value = row[f];
        if (!value.data) continue;  // absent values are omitted, never written as ""
        if (!first) out += ',';
        first = false;
        append_json_string(out, ids[f].data(), ids[f].size());
        out += ':';
        append_json_string(out, value.data, value.size);
    }
    out += "}\n";
}

// ---- the ABI functions -------------------------------------------------------------------

segpush_status validate_settings_impl(const char* kind, const char* settings_json, segpush_error* err) {
    Problem problem;
    const bool ok = std::strcmp(kind, "connection") == 0 ? parse_connection(settings_json, problem).has_value()
                                                         : parse_export(settings_json, problem).has_value();
    if (ok) return SEGPUSH_OK;
    return kit::fail(err, SEGPUSH_ERR_CONFIG, problem.field, problem.message);
}

segpush_status open_connection_impl(const char* settings_json, segpush_connection** out, segpush_error* err) {
    Problem problem;
    auto settings = parse_connection(settings_json, problem);
    if (!settings) return kit::fail(err, SEGPUSH_ERR_CONFIG, problem.field, problem.message);
    *out = new segpush_connection{settings->directory};
    return SEGPUSH_OK;
}

segpush_status check_connection_impl(segpush_connection* conn, segpush_error* err) {
    const std::string directory = absolute_path(conn->directory.empty() ? "." : conn->directory);
    if (auto problem = check_writable_directory(directory); !problem.empty()) {
        const bool working_directory = conn->directory.empty();
        return kit::fail(err, SEGPUSH_ERR_CONFIG, working_directory ? "" : "directory",
                         problem +
                             (working_directory ? " (the working directory; set the connection's directory)" : ""));
    }
    return SEGPUSH_OK;
}

segpush_status begin_export_impl(segpush_connection* conn, const char* settings_json, const char* const* field_ids,
                                 size_t n_fields, void* export_token, segpush_export** out, segpush_error* err) {
    Problem problem;
    auto settings = parse_export(settings_json, problem);
    if (!settings) return kit::fail(err, SEGPUSH_ERR_CONFIG, problem.field, problem.message);
    auto fresh = std::make_unique<segpush_export>();  // reserves no path yet: a plain delete frees it
    segpush_export* exp = fresh.get();
    exp->token = export_token;
    exp->format = settings->format;
    bool has_key = false;
    for (size_t f = 0; f < n_fields; ++f) {
        exp->field_ids.emplace_back(field_ids[f]);
        if (exp->field_ids.back() == "email") {
            exp->key_index = f;
            has_key = true;
        }
    }
    if (!has_key) {
        return kit::fail(err, SEGPUSH_ERR_CONFIG, "mapping",
                         "the file plugin needs email mapped: it identifies members");
    }
    // One instant for both templates, so a run's members and leavers files carry the same stamp.
    const std::time_t now = std::time(nullptr);
    const std::string members_final = absolute_path(
        resolve_path(conn->directory, expand_template(settings->path, now)));
    exp->leavers_final = absolute_path(resolve_path(conn->directory, expand_template(settings->leavers_path, now)));
    OwnedExport owned;  // declared before the lock: freeing it takes the lock again
    {
        std::lock_guard<std::mutex> lock(g_paths_mutex);
        for (const auto& path : {members_final, exp->leavers_final}) {
            if (g_paths_in_use.count(path)) {
                return kit::fail(err, SEGPUSH_ERR_CONFIG, path == members_final ? "path" : "leavers_path",
                                 "another export in this process is writing " + path +
                                     " right now; give each export its own path (add {time}, or the export's name)");
            }
        }
        owned.reset(fresh.release());
        g_paths_in_use.insert(members_final);
        g_paths_in_use.insert(exp->leavers_final);
    }
    IoFailure failure;
    // create() sets final_path before it can fail, so freeing `owned` releases both paths.
    if (!exp->members.create(members_final, failure) ||
        !exp->members.append(header(exp->format, exp->field_ids), failure)) {
        return fail_io(err, failure);
    }
    g_host.log(SEGPUSH_LOG_DEBUG, "writing " + members_final + " through " + exp->members.temp_path());
    *out = owned.release();
    return SEGPUSH_OK;
}

segpush_status push_batch_impl(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                               segpush_error* err) {
    if (batch->n_fields != exp->field_ids.size()) {
        return kit::fail(err, SEGPUSH_ERR_INTERNAL, "",
                         "batch has a different number of fields than begin_export declared");
    }
    const uint32_t action = kit::action_of(*batch);
    const bool remove = action == SEGPUSH_ACTION_REMOVE;
    if (action != SEGPUSH_ACTION_UPSERT && !remove) {
        return kit::fail(err, SEGPUSH_ERR_INTERNAL, "",
                         "batch action " + std::to_string(action) + " is not known to this plugin");
    }
    auto outcomes_of_batch = std::make_unique<kit::OutcomeList>();
    outcomes_of_batch->reserve(batch->n_records);
    std::vector<size_t> which;
    if (remove) {
        which.push_back(exp->key_index);  // leavers carry only the key
    } else {
        for (size_t f = 0; f < batch->n_fields; ++f) which.push_back(f);
    }
    std::string text;
    uint64_t accepted = 0;
    for (size_t r = 0; r < batch->n_records; ++r) {
        const segpush_value* row = kit::row_of(*batch, r);
        if (!row[exp->key_index].data || row[exp->key_index].size == 0) {
            // The host rejects these before pushing; never write a member nobody can identify.
            outcomes_of_batch->add(batch->record_ids[r], SEGPUSH_RECORD_REJECTED, "the record has no email");
            continue;
        }
        outcomes_of_batch->add(batch->record_ids[r], SEGPUSH_RECORD_ACCEPTED);
        append_record(text, exp->format, exp->field_ids, row, which);
        ++accepted;
    }
    IoFailure failure;
    AtomicFile& file = remove ? exp->leavers : exp->members;
    bool ok = true;
    if (remove && !file.is_open() && accepted > 0) {
        ok = file.create(exp->leavers_final, failure) &&
             file.append(header(exp->format, {exp->field_ids[exp->key_index]}), failure);
        if (!ok) file.discard();  // the next REMOVE batch starts over
    }
    if (ok && accepted > 0) ok = file.append(text, failure);
    if (!ok) return fail_io(err, failure);  // nothing of this batch is in the file
    // Nothing below can fail: the batch is in the file, and the host must not send it again.
    kit::publish(std::move(outcomes_of_batch), outcomes, g_host);
    exp->done += batch->n_records;
    g_host.progress(exp->token, exp->done);
    return SEGPUSH_OK;
}

// Reports no outcome: every record was final (ACCEPTED or REJECTED) at push time.
segpush_status finish_export_impl(segpush_export* exp, segpush_error* err) {
    IoFailure failure;
    // Both files reach the disk before either is renamed, so a crash leaves either the old
    // pair or the new members file, never a half-written one.
    bool ok = exp->members.sync(failure) && (!exp->leavers.is_open() || exp->leavers.sync(failure));
    ok = ok && exp->members.commit(failure);
    if (ok && exp->leavers.is_open()) {
        ok = exp->leavers.commit(failure);
        if (!ok) failure.message = "the members file is in place, but the leavers file is not: " + failure.message;
    }
    if (ok) g_host.log(SEGPUSH_LOG_INFO, "wrote " + exp->members.final_path());
    return ok ? SEGPUSH_OK : fail_io(err, failure);
}

// ---- entry points: no exception crosses the C ABI ------------------------------------------

segpush_status validate_settings(const char* kind, const char* settings_json, segpush_error* err) {
    return kit::guard(err, "checking settings", [&] { return validate_settings_impl(kind, settings_json, err); });
}
segpush_status open_connection(const char* settings_json, segpush_connection** out, segpush_error* err) {
    return kit::guard(err, "opening the connection", [&] { return open_connection_impl(settings_json, out, err); });
}
segpush_status check_connection(segpush_connection* conn, segpush_error* err) {
    return kit::guard(err, "checking the connection", [&] { return check_connection_impl(conn, err); });
}
segpush_status begin_export(segpush_connection* conn, const char* settings_json, const char* const* field_ids,
                            size_t n_fields, void* export_token, segpush_export** out, segpush_error* err) {
    return kit::guard(err, "starting the export", [&] {
        return begin_export_impl(conn, settings_json, field_ids, n_fields, export_token, out, err);
    });
}
segpush_status push_batch(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                          segpush_error* err) {
    return kit::guard(err, "pushing a batch", [&] { return push_batch_impl(exp, batch, outcomes, err); });
}
segpush_status finish_export(segpush_export* exp, segpush_outcomes* outcomes, segpush_error* err) {
    (void)outcomes;
    return kit::guard(err, "finishing the export", [&] {
        // Never SEGPUSH_RETRY, so the handle is gone after this call however it ends.
        const OwnedExport owned(exp);
        return finish_export_impl(exp, err);
    });
}

void abort_export(segpush_export* exp) { destroy(exp); }

void close_connection(segpush_connection* conn) { delete conn; }

const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    "file",
    "Files (CSV / JSON Lines)",
    "0.1.0",
    "Writes each run's members to a CSV or JSON Lines file, replaced atomically; leavers go to a separate file.",
    kConnectionSchema,
    kExportSchema,
    kFields,
    sizeof kFields / sizeof kFields[0],
    &kLimits,
    validate_settings,
    open_connection,
    check_connection,
    begin_export,
    push_batch,
    finish_export,
    abort_export,
    close_connection,
    SEGPUSH_CAP_REMOVE,
    nullptr,  // collect_outcomes: outcomes are final when push_batch returns
    nullptr,  // resume_pending: nothing is ever left pending
    nullptr,  // unload: the entry point sets up nothing to undo
};

}  // namespace

extern "C" SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    if (!g_host.attach(host)) return nullptr;  // another ABI major; attach said so
    return &kPlugin;
}
