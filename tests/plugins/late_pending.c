/*
 * A plugin whose first push reports its records PENDING only after collect_outcomes has given
 * them back (RETRY): the order a destination produces when it loses an import while the push
 * that sent it is still busy with a further request. The host must keep the RETRY (the
 * records are sent again), not let the late PENDING turn them into "delivered" at finish.
 * Every later push accepts its records at once.
 */
#include <segpush/plugin.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const segpush_host* g_host;

struct segpush_connection {
    int unused;
};

struct segpush_export {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int pushes;
    uint64_t* first_ids; /* the first push's records, until collect gives them back */
    size_t n_first;
    int given_back;
};

static const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email", NULL},
};

static const segpush_limits kLimits = {sizeof(segpush_limits), 100, 65536, 0, 0, 1};

static void fail(segpush_error* err, const char* message) {
    err->status = SEGPUSH_ERR_INTERNAL;
    strncpy(err->message, message, sizeof err->message - 1);
}

static segpush_status open_connection(const char* settings_json, segpush_connection** out, segpush_error* err) {
    (void)settings_json;
    *out = calloc(1, sizeof **out);
    if (!*out) fail(err, "out of memory");
    return *out ? SEGPUSH_OK : SEGPUSH_ERR_INTERNAL;
}

static segpush_status check_connection(segpush_connection* conn, segpush_error* err) {
    (void)conn;
    (void)err;
    return SEGPUSH_OK;
}

static segpush_status begin_export(segpush_connection* conn, const char* settings_json, const char* const* field_ids,
                                   size_t n_fields, void* export_token, segpush_export** out, segpush_error* err) {
    (void)conn;
    (void)settings_json;
    (void)field_ids;
    (void)n_fields;
    (void)export_token;
    *out = calloc(1, sizeof **out);
    if (!*out) {
        fail(err, "out of memory");
        return SEGPUSH_ERR_INTERNAL;
    }
    pthread_mutex_init(&(*out)->lock, NULL);
    pthread_cond_init(&(*out)->changed, NULL);
    return SEGPUSH_OK;
}

static void release_outcomes(segpush_outcomes* self) {
    free(self->private_data);
    self->items = NULL;
    self->private_data = NULL;
    self->release = NULL;
}

static segpush_status report(const uint64_t* ids, size_t n, segpush_record_status status, segpush_outcomes* outcomes,
                             segpush_error* err) {
    size_t i;
    segpush_record_outcome* items = calloc(n ? n : 1, sizeof *items);
    if (!items) {
        fail(err, "out of memory");
        return SEGPUSH_ERR_INTERNAL;
    }
    for (i = 0; i < n; ++i) {
        items[i].record_id = ids[i];
        items[i].status = status;
    }
    /* Only ABI 1.0's fields are written, which every host's struct holds: struct_size is the host's. */
    outcomes->count = n;
    outcomes->items = items;
    outcomes->private_data = items;
    outcomes->release = release_outcomes;
    return SEGPUSH_OK;
}

static segpush_status push_batch(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                                 segpush_error* err) {
    struct timespec deadline;
    int first;
    pthread_mutex_lock(&exp->lock);
    first = exp->pushes++ == 0;
    if (first) {
        exp->first_ids = malloc(batch->n_records * sizeof *exp->first_ids);
        if (exp->first_ids) memcpy(exp->first_ids, batch->record_ids, batch->n_records * sizeof *exp->first_ids);
        exp->n_first = exp->first_ids ? batch->n_records : 0;
        /* The host calls collect_outcomes about once a second while pushes run. */
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        while (!exp->given_back && pthread_cond_timedwait(&exp->changed, &exp->lock, &deadline) == 0) {
        }
    }
    pthread_mutex_unlock(&exp->lock);
    return report(batch->record_ids, batch->n_records, first ? SEGPUSH_RECORD_PENDING : SEGPUSH_RECORD_ACCEPTED,
                  outcomes, err);
}

static segpush_status collect_outcomes(segpush_export* exp, segpush_outcomes* outcomes, segpush_error* err) {
    segpush_status status = SEGPUSH_OK;
    pthread_mutex_lock(&exp->lock);
    if (exp->first_ids && !exp->given_back) {
        status = report(exp->first_ids, exp->n_first, SEGPUSH_RECORD_RETRY, outcomes, err);
        exp->given_back = 1;
        pthread_cond_broadcast(&exp->changed);
    }
    pthread_mutex_unlock(&exp->lock);
    return status;
}

static void free_export(segpush_export* exp) {
    pthread_mutex_destroy(&exp->lock);
    pthread_cond_destroy(&exp->changed);
    free(exp->first_ids);
    free(exp);
}

/* Records still PENDING here and never reported are ACCEPTED: nothing is listed. */
static segpush_status finish_export(segpush_export* exp, segpush_outcomes* outcomes, segpush_error* err) {
    (void)outcomes;
    (void)err;
    free_export(exp);
    return SEGPUSH_OK;
}

static void abort_export(segpush_export* exp) { free_export(exp); }

static void close_connection(segpush_connection* conn) { free(conn); }

static const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    "late-pending",
    "Late PENDING",
    "1.0.0",
    "Reports its first batch PENDING after collect_outcomes gave it back (a test of the host).",
    "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}",
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
    0,
    collect_outcomes,
    NULL,
    NULL,
};

SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    g_host = host;
    return &kPlugin;
}
