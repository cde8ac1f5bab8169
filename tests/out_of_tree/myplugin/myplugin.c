/*
 * The smallest complete segpush plugin: accepts every record and forgets it. It exists to
 * prove that a plugin builds from a separate source folder against the installed kit
 * (CMake package or pkg-config) and loads in the host. Plain C99.
 */
#include <segpush/plugin.h>

#include <stdio.h>
#include <stdlib.h>

#ifndef PLUGIN_ID
#define PLUGIN_ID "out-of-tree-example"
#endif

struct segpush_connection {
    int unused;
};
struct segpush_export {
    unsigned long records;
};

static const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email", NULL},
};

static const segpush_limits kLimits = {sizeof(segpush_limits), 1000, 0, 0, 0, 1};

static segpush_status no_memory(segpush_error* err) {
    err->status = SEGPUSH_ERR_INTERNAL;
    snprintf(err->message, sizeof err->message, "out of memory");
    return SEGPUSH_ERR_INTERNAL;
}

static segpush_status open_connection(const char* settings_json, segpush_connection** out, segpush_error* err) {
    (void)settings_json;
    *out = calloc(1, sizeof **out);
    return *out ? SEGPUSH_OK : no_memory(err);
}

static segpush_status check_connection(segpush_connection* conn, segpush_error* err) {
    (void)conn;
    (void)err;
    return SEGPUSH_OK;
}

static segpush_status begin_export(segpush_connection* conn, const char* settings_json, const char* const* field_ids,
                                   size_t n_fields, void* export_token, segpush_export** out, segpush_error* err) {
    (void)conn, (void)settings_json, (void)field_ids, (void)n_fields, (void)export_token;
    *out = calloc(1, sizeof **out);
    return *out ? SEGPUSH_OK : no_memory(err);
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
    segpush_record_outcome* items = calloc(batch->n_records ? batch->n_records : 1, sizeof *items);
    if (!items) return no_memory(err);
    for (i = 0; i < batch->n_records; ++i) {
        items[i].record_id = batch->record_ids[i];
        items[i].status = SEGPUSH_RECORD_ACCEPTED;
    }
    exp->records += batch->n_records;
    /* Only ABI 1.0's fields are written, which every host's struct holds: struct_size is the host's. */
    outcomes->count = batch->n_records;
    outcomes->items = items;
    outcomes->private_data = items;
    outcomes->release = release_outcomes;
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

static const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    PLUGIN_ID,
    "Out-of-tree example",
    "1.0.0",
    "Accepts every record; built against the installed kit.",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
    kFields,
    sizeof kFields / sizeof kFields[0],
    &kLimits,
    NULL, /* validate_settings: the schemas say everything */
    open_connection,
    check_connection,
    begin_export,
    push_batch,
    finish_export,
    abort_export,
    close_connection,
    0,    /* capabilities */
    NULL, /* collect_outcomes */
    NULL, /* resume_pending */
    NULL, /* unload: nothing to undo */
};

SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    (void)host;
    return &kPlugin;
}
