// The smallest complete segpush plugin in C++, on the helper kit: accepts every record that has
// an email and rejects the others. It exists to prove that a C++ plugin builds from a separate
// source folder against the installed kit and loads in the host.
#include <segpush/plugin.h>
#include <segpush/plugin_kit.hpp>

#include <memory>
#include <string>

namespace kit = segpush::kit;

struct segpush_connection {};
struct segpush_export {
    void* token = nullptr;
    uint64_t records = 0;
};

namespace {

kit::Host g_host;

const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email", nullptr},
};

const segpush_limits kLimits = {sizeof(segpush_limits), 1000, 0, 0, 0, 1};

segpush_status open_connection(const char*, segpush_connection** out, segpush_error* err) {
    return kit::guard(err, "opening the connection", [&] {
        *out = new segpush_connection;
        return SEGPUSH_OK;
    });
}

segpush_status check_connection(segpush_connection*, segpush_error*) { return SEGPUSH_OK; }

segpush_status begin_export(segpush_connection*, const char*, const char* const* field_ids, size_t n_fields,
                            void* export_token, segpush_export** out, segpush_error* err) {
    return kit::guard(err, "starting the export", [&] {
        if (n_fields != 1 || std::string(field_ids[0]) != "email") {
            return kit::fail(err, SEGPUSH_ERR_CONFIG, "mapping", "map email, and only email");
        }
        auto exp = std::make_unique<segpush_export>();
        exp->token = export_token;
        g_host.log(SEGPUSH_LOG_DEBUG, "export started");
        *out = exp.release();
        return SEGPUSH_OK;
    });
}

segpush_status push_batch(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                          segpush_error* err) {
    return kit::guard(err, "pushing a batch", [&] {
        if (kit::action_of(*batch) != SEGPUSH_ACTION_UPSERT) {
            return kit::fail(err, SEGPUSH_ERR_INTERNAL, "", "this plugin declares no REMOVE capability");
        }
        auto list = std::make_unique<kit::OutcomeList>();
        list->reserve(batch->n_records);
        for (size_t r = 0; r < batch->n_records; ++r) {
            const segpush_value& email = kit::row_of(*batch, r)[0];
            if (email.data && email.size > 0) {
                list->add(batch->record_ids[r], SEGPUSH_RECORD_ACCEPTED);
            } else {
                list->add(batch->record_ids[r], SEGPUSH_RECORD_REJECTED, "the record has no email");
            }
        }
        exp->records += batch->n_records;
        kit::publish(std::move(list), outcomes, g_host);
        g_host.progress(exp->token, exp->records);
        return SEGPUSH_OK;
    });
}

segpush_status finish_export(segpush_export* exp, segpush_outcomes*, segpush_error*) {
    delete exp;
    return SEGPUSH_OK;
}

void abort_export(segpush_export* exp) { delete exp; }
void close_connection(segpush_connection* conn) { delete conn; }

const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    "out-of-tree-cpp",
    "Out-of-tree example in C++",
    "1.0.0",
    "Accepts every record with an email; built on the helper kit.",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
    kFields,
    sizeof kFields / sizeof kFields[0],
    &kLimits,
    nullptr,  // validate_settings: the schemas say everything
    open_connection,
    check_connection,
    begin_export,
    push_batch,
    finish_export,
    abort_export,
    close_connection,
    0,        // capabilities
    nullptr,  // collect_outcomes
    nullptr,  // resume_pending
    nullptr,  // unload: nothing to undo
};

}  // namespace

extern "C" SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    if (!g_host.attach(host)) return nullptr;
    return &kPlugin;
}
