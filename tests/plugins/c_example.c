/*
 * A complete plugin written in C99, built with -pedantic -Werror: proof that the ABI header is
 * plain C and that the contract can be implemented without C++. It "delivers" records to
 * memory, rejecting ones whose key field has no '@', and reports outcomes through the
 * release-callback protocol. PLUGIN_ID can be overridden at compile time so the same source
 * also builds the duplicate-id fixtures.
 */
#include <segpush/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PLUGIN_ID
#define PLUGIN_ID "c-example"
#endif

static const segpush_host* g_host;

struct segpush_connection {
    int checks;
};

struct segpush_export {
    segpush_connection* connection;
    size_t n_fields;
    unsigned long delivered;
    void* token;
};

static const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email", NULL},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "name", "Name", "Shown in greetings."},
};

static const segpush_limits kLimits = {sizeof(segpush_limits), 100, 65536, 0, 0, 1};

static void set_error(segpush_error* err, segpush_status status, const char* field, const char* message) {
    err->status = status;
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s", message);
}

static segpush_status validate_settings(const char* kind, const char* settings_json, segpush_error* err) {
    /* Deliberately simple: a real plugin parses JSON. This one refuses a label of "forbidden". */
    if (strcmp(kind, "connection") == 0 && strstr(settings_json, "\"label\":\"forbidden\"")) {
        set_error(err, SEGPUSH_ERR_CONFIG, "label", "label may not be \"forbidden\"");
        return SEGPUSH_ERR_CONFIG;
    }
    return SEGPUSH_OK;
}

static segpush_status open_connection(const char* settings_json, segpush_connection** out, segpush_error* err) {
    (void)settings_json;
    *out = calloc(1, sizeof **out);
    if (!*out) {
        set_error(err, SEGPUSH_ERR_INTERNAL, "", "out of memory");
        return SEGPUSH_ERR_INTERNAL;
    }
    return SEGPUSH_OK;
}

static segpush_status check_connection(segpush_connection* conn, segpush_error* err) {
    (void)err;
    conn->checks++;
    if (g_host) g_host->log(g_host->host_data, SEGPUSH_LOG_INFO, "connection checked");
    return SEGPUSH_OK;
}

static segpush_status begin_export(segpush_connection* conn, const char* settings_json, const char* const* field_ids,
                                   size_t n_fields, void* export_token, segpush_export** out, segpush_error* err) {
    (void)settings_json;
    if (n_fields == 0 || strcmp(field_ids[0], "email") != 0) {
        set_error(err, SEGPUSH_ERR_CONFIG, "mapping", "email must be the first mapped field");
        return SEGPUSH_ERR_CONFIG;
    }
    *out = calloc(1, sizeof **out);
    if (!*out) {
        set_error(err, SEGPUSH_ERR_INTERNAL, "", "out of memory");
        return SEGPUSH_ERR_INTERNAL;
    }
    (*out)->connection = conn;
    (*out)->n_fields = n_fields;
    (*out)->token = export_token;
    return SEGPUSH_OK;
}

static void release_outcomes(segpush_outcomes* self) {
    free(self->private_data);
    self->items = NULL;
    self->private_data = NULL;
    self->release = NULL;
}

static segpush_status push_batch(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                                 segpush_error* err) {
    size_t i;
    segpush_record_outcome* items;
    if (batch->n_fields != exp->n_fields) {
        set_error(err, SEGPUSH_ERR_INTERNAL, "", "batch field count differs from begin_export");
        return SEGPUSH_ERR_INTERNAL;
    }
    items = calloc(batch->n_records ? batch->n_records : 1, sizeof *items);
    if (!items) {
        set_error(err, SEGPUSH_ERR_INTERNAL, "", "out of memory");
        return SEGPUSH_ERR_INTERNAL;
    }
    for (i = 0; i < batch->n_records; ++i) {
        const segpush_value* email = &batch->values[i * batch->n_fields];
        items[i].record_id = batch->record_ids[i];
        if (email->data && memchr(email->data, '@', email->size)) {
            items[i].status = SEGPUSH_RECORD_ACCEPTED;
            exp->delivered++;
        } else {
            items[i].status = SEGPUSH_RECORD_REJECTED;
            items[i].reason = "email has no @";
        }
    }
#if SEGPUSH_ABI_MINOR < 5
    /* Built against a frozen header: behave as plugins of that version did. */
    outcomes->struct_size = sizeof *outcomes;
#endif
    /* Since 1.5 struct_size is the host's; only ABI 1.0's fields are written, which fit every host. */
    outcomes->count = batch->n_records;
    outcomes->items = items;
    outcomes->private_data = items;
    outcomes->release = release_outcomes;
    if (g_host) g_host->progress(g_host->host_data, exp->token, exp->delivered, 0, NULL);
    return SEGPUSH_OK;
}

static segpush_status finish_export(segpush_export* exp, segpush_outcomes* outcomes, segpush_error* err) {
    (void)outcomes;
    (void)err;
    free(exp);
    return SEGPUSH_OK;
}

static void abort_export(segpush_export* exp) { free(exp); }

static void close_connection(segpush_connection* conn) { free(conn); }

#if SEGPUSH_ABI_MINOR >= 5
/* Nothing to undo; it says so, so that a test sees when and how often the host calls it. */
static void unload(void) {
    if (g_host) g_host->log(g_host->host_data, SEGPUSH_LOG_INFO, "unloading");
}
#endif

static const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    PLUGIN_ID,
    "C example",
    "1.0.0",
    "Delivers records to memory; written in C to prove the ABI is plain C.",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"label\":{\"type\":\"string\",\"description\":\"A name for logs.\"},"
    "\"token\":{\"type\":\"string\",\"x-secret\":true}}}",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
    "\"batch_note\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}}}",
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
#if SEGPUSH_ABI_MINOR >= 1
    0,    /* capabilities */
    NULL, /* collect_outcomes: outcomes are final at push time */
#endif
#if SEGPUSH_ABI_MINOR >= 3
    NULL, /* resume_pending: nothing is ever left pending */
#endif
#if SEGPUSH_ABI_MINOR >= 5
    unload,
#endif
};

SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    g_host = host;
    return &kPlugin;
}
