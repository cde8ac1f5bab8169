// The ActiveCampaign destination: descriptor, settings validation and the entry point.
#include <segpush/plugin.h>

#include <rapidjson/document.h>

#include <cstdio>
#include <cstring>

#include "settings.hpp"

namespace {

using namespace segpush::activecampaign;

void fail(segpush_error* err, segpush_status status, const char* field, const std::string& message) {
    if (!err) return;
    err->status = status;
    std::snprintf(err->field, sizeof err->field, "%s", field);
    std::snprintf(err->message, sizeof err->message, "%s", message.c_str());
}

const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email",
     "Contact email; ActiveCampaign matches contacts by it, case-insensitively."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "first_name", "First name", nullptr},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "last_name", "Last name", nullptr},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_PHONE, "phone", "Phone", nullptr},
};

// Bulk import: 250 contacts and < 400,000 bytes per request, 100 requests/minute, and the
// account-wide 5 requests/second.
const segpush_limits kLimits = {sizeof(segpush_limits), 250, 399999, 5, 100, 4};

segpush_status validate_settings(const char* kind, const char* settings_json, segpush_error* err) {
    rapidjson::Document doc;
    doc.Parse(settings_json ? settings_json : "");
    if (doc.HasParseError() || !doc.IsObject()) {
        fail(err, SEGPUSH_ERR_CONFIG, "", "settings are not a JSON object");
        return SEGPUSH_ERR_CONFIG;
    }
    if (std::strcmp(kind, "connection") == 0) {
        auto host = doc.FindMember("host");
        if (host != doc.MemberEnd() && host->value.IsString()) {
            if (auto problem = check_host(host->value.GetString())) {
                fail(err, SEGPUSH_ERR_CONFIG, "host", problem->message);
                return SEGPUSH_ERR_CONFIG;
            }
        }
    }
    return SEGPUSH_OK;
}

segpush_status not_ready(segpush_error* err) {
    fail(err, SEGPUSH_ERR_INTERNAL, "", "the ActiveCampaign plugin cannot push yet in this build");
    return SEGPUSH_ERR_INTERNAL;
}

segpush_status open_connection(const char*, segpush_connection**, segpush_error* err) { return not_ready(err); }
segpush_status check_connection(segpush_connection*, segpush_error* err) { return not_ready(err); }
segpush_status begin_export(segpush_connection*, const char*, const char* const*, size_t, void*,
                            segpush_export**, segpush_error* err) { return not_ready(err); }
segpush_status push_batch(segpush_export*, const segpush_batch*, segpush_outcomes*, segpush_error* err) {
    return not_ready(err);
}
segpush_status finish_export(segpush_export*, segpush_outcomes*, segpush_error* err) { return not_ready(err); }
void abort_export(segpush_export*) {}
void close_connection(segpush_connection*) {}

const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    "activecampaign",
    "ActiveCampaign",
    "0.1.0",
    "Subscribes segment members to an ActiveCampaign list through bulk import.",
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
};

}  // namespace

extern "C" SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host*) { return &kPlugin; }
