/*
 * A destination keyed by a case-sensitive user id, written from segpush/plugin.h alone: it
 * appends what it receives to a log file ("upsert ID|NAME", "remove ID"), so a test can see
 * which members reached it. "ABC", "abc" and "Abc" are three different users here. Plain C99.
 */
#include <segpush/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct segpush_connection {
    char log_path[1024];
};
struct segpush_export {
    FILE* log;
};

static const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_KEY | SEGPUSH_FIELD_REQUIRED, SEGPUSH_FIELD_STRING, "user_id", "User id",
     "Case-sensitive: ABC and abc are two users."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "name", "Name", NULL},
};

/* One push at a time: the log is appended without a lock. */
static const segpush_limits kLimits = {sizeof(segpush_limits), 100, 0, 0, 0, 1};

static segpush_status fail(segpush_error* err, segpush_status status, const char* message) {
    err->status = status;
    snprintf(err->message, sizeof err->message, "%s", message);
    return status;
}

/* The settings are {"log": "PATH"}, checked by the schema: the path is the one string value. */
static segpush_status open_connection(const char* settings_json, segpush_connection** out, segpush_error* err) {
    const char* start = strstr(settings_json, "\"log\"");
    const char* end;
    size_t size;
    if (start) start = strchr(start + 5, '"');
    end = start ? strchr(start + 1, '"') : NULL;
    if (!end) return fail(err, SEGPUSH_ERR_CONFIG, "settings have no log path");
    size = (size_t)(end - start - 1);
    *out = calloc(1, sizeof **out);
    if (!*out) return fail(err, SEGPUSH_ERR_INTERNAL, "out of memory");
    if (size >= sizeof(*out)->log_path) size = sizeof(*out)->log_path - 1;
    memcpy((*out)->log_path, start + 1, size);
    return SEGPUSH_OK;
}

static segpush_status check_connection(segpush_connection* conn, segpush_error* err) {
    (void)conn;
    (void)err;
    return SEGPUSH_OK;
}

static segpush_status begin_export(segpush_connection* conn, const char* settings_json, const char* const* field_ids,
                                   size_t n_fields, void* export_token, segpush_export** out, segpush_error* err) {
    (void)settings_json, (void)export_token;
    if (n_fields < 1 || strcmp(field_ids[0], "user_id") != 0) {
        return fail(err, SEGPUSH_ERR_CONFIG, "user_id must come first");
    }
    *out = calloc(1, sizeof **out);
    if (!*out) return fail(err, SEGPUSH_ERR_INTERNAL, "out of memory");
    (*out)->log = fopen(conn->log_path, "a");
    if (!(*out)->log) {
        free(*out);
        return fail(err, SEGPUSH_ERR_CONFIG, "cannot open the log file");
    }
    return SEGPUSH_OK;
}

static void release_outcomes(segpush_outcomes* self) {
    free(self->private_data);
    self->items = NULL;
    self->private_data = NULL;
    self->release = NULL;
}

static void write_value(FILE* log, const segpush_value* value) {
    if (value->data) fwrite(value->data, 1, value->size, log);
}

static segpush_status push_batch(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                                 segpush_error* err) {
    size_t i;
    const size_t n_fields = batch->n_fields;
    segpush_record_outcome* items = calloc(batch->n_records ? batch->n_records : 1, sizeof *items);
    if (!items) return fail(err, SEGPUSH_ERR_INTERNAL, "out of memory");
    for (i = 0; i < batch->n_records; ++i) {
        const segpush_value* row = batch->values + i * n_fields;
        const int remove = batch->action == SEGPUSH_ACTION_REMOVE;
        fputs(remove ? "remove " : "upsert ", exp->log);
        write_value(exp->log, &row[0]);
        if (!remove && n_fields > 1) {
            fputc('|', exp->log);
            write_value(exp->log, &row[1]);
        }
        fputc('\n', exp->log);
        items[i].record_id = batch->record_ids[i];
        items[i].status = SEGPUSH_RECORD_ACCEPTED;
    }
    fflush(exp->log);
    outcomes->count = batch->n_records;
    outcomes->items = items;
    outcomes->private_data = items;
    outcomes->release = release_outcomes;
    return SEGPUSH_OK;
}

static segpush_status finish_export(segpush_export* exp, segpush_outcomes* outcomes, segpush_error* err) {
    (void)outcomes;
    (void)err;
    fclose(exp->log);
    free(exp);
    return SEGPUSH_OK;
}

static void abort_export(segpush_export* exp) {
    fclose(exp->log);
    free(exp);
}

static void close_connection(segpush_connection* conn) { free(conn); }

static const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    "userid",
    "User ids",
    "1.0.0",
    "Logs the members it receives, keyed by a case-sensitive user id.",
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"log\"],"
    "\"properties\":{\"log\":{\"type\":\"string\"}}}",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
    kFields,
    sizeof kFields / sizeof kFields[0],
    &kLimits,
    NULL,
    open_connection,
    check_connection,
    begin_export,
    push_batch,
    finish_export,
    abort_export,
    close_connection,
    SEGPUSH_CAP_REMOVE,
    NULL, /* collect_outcomes */
    NULL, /* resume_pending */
    NULL, /* unload */
};

SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    (void)host;
    return &kPlugin;
}
