/*
 * segpush/plugin.h — the C ABI between the segpush host and a destination plugin.
 *
 * This header is the whole contract: a plugin needs nothing else from segpush to build.
 * It is plain C99 so plugins may be written in C, C++, Rust, Zig or anything with a C FFI.
 *
 * Reading guide
 *   1. Versioning: SEGPUSH_ABI_MAJOR / SEGPUSH_ABI_MINOR, struct_size rules.
 *   2. Status classes (segpush_status) and the error struct plugins fill.
 *   3. Host services handed to the plugin at load (segpush_host).
 *   4. The descriptor the plugin returns: identity, schemas, mapping fields, limits, functions.
 *      The lifecycle:  open_connection -> check_connection -> begin_export ->
 *      (push_batch | collect_outcomes)* -> finish_export | abort_export -> close_connection.
 *   5. The one exported symbol: segpush_plugin_entry.
 *
 * History
 *   1.0  first version.
 *   1.1  segpush_batch.action (remove members); segpush_plugin.capabilities and
 *        collect_outcomes (settle asynchronous records before finish).
 *   1.2  SEGPUSH_CAP_EXTRA_FIELDS; a failed push_batch may report the records it settled.
 *   1.3  segpush_outcomes.receipts and resume_pending: a record left PENDING by a host that
 *        was stopped is confirmed by the next run instead of being sent again.
 *   1.4  SEGPUSH_RECORD_SUPPRESSED (the destination keeps a record out by a choice made there);
 *        segpush_batch.removed_at (undo only the host's own removals); an empty non-NULL value
 *        clears the destination's value; segpush_host.reserve_slot and hold_budget (request
 *        budgets shared by every export of an account).
 *   1.5  the host sets struct_size on every struct it allocates, segpush_outcomes included, and
 *        a plugin writes only the fields that fit; segpush_field is fixed-size; the limits'
 *        0 names the host's defaults (SEGPUSH_DEFAULT_*); segpush_plugin.unload.
 *
 * Conventions used in the comments
 *   [any-thread]     may be called from any host thread.
 *   [serial:X]       the host never makes two such calls on the same X at once.
 *   [concurrent:N]   the host may make up to N such calls at once on the same object.
 *   borrowed         the pointer is valid only until the call returns; copy what you keep.
 *   plugin-owned     the plugin allocated it and keeps it valid as stated; the host never frees it.
 *   host-owned       the host allocated it; the plugin never frees it.
 * All strings are UTF-8. Strings are NUL-terminated unless a byte length is given beside them.
 *
 * Versioning policy
 *   - MAJOR changes when anything is removed, retyped or reordered. The host refuses a plugin
 *     whose abi_major differs from its own, naming both versions.
 *   - MINOR changes only append: new fields at the end of structs, new status or flag values
 *     that older peers may treat as unknown. Every extensible struct starts with struct_size;
 *     a reader uses a field only when  offsetof(field) + sizeof(field) <= struct_size.
 *   - struct_size is set by whoever allocates the struct, to the size it allocated: the plugin
 *     for what it returns (segpush_plugin, segpush_limits), the host for what it hands over
 *     (segpush_host, segpush_batch, segpush_error, segpush_outcomes). The other side writes
 *     only the fields that fit (SEGPUSH_HAS_FIELD) and reads only those.
 *   - segpush_field is fixed-size: it lives in an array the host indexes by
 *     sizeof(segpush_field), so it can never grow. A new per-field attribute would come as a
 *     new parallel array in segpush_plugin.
 */
#ifndef SEGPUSH_PLUGIN_H
#define SEGPUSH_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* 1. Version                                                                                */
/* ---------------------------------------------------------------------------------------- */

#define SEGPUSH_ABI_MAJOR 1
#define SEGPUSH_ABI_MINOR 5

/* The name of the single symbol every plugin exports. */
#define SEGPUSH_ENTRY_SYMBOL "segpush_plugin_entry"

#if defined(_WIN32)
#define SEGPUSH_EXPORT __declspec(dllexport)
#else
#define SEGPUSH_EXPORT __attribute__((visibility("default")))
#endif

/* True when a struct the peer filled in (or, for a struct the host allocated, the host's
 * allocation) is large enough to hold FIELD. */
#define SEGPUSH_HAS_FIELD(ptr, type, field) \
    ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))

/* ---------------------------------------------------------------------------------------- */
/* 2. Status classes and errors                                                              */
/* ---------------------------------------------------------------------------------------- */

/*
 * What every fallible call returns. The plugin only classifies; the host owns what follows
 * (retry timing, backoff, giving up, reporting). A value the host does not know is treated
 * as SEGPUSH_ERR_INTERNAL.
 */
typedef int32_t segpush_status;
/* Success. */
#define SEGPUSH_OK 0
/* Transient: rate limited (429), server unavailable (5xx), timeout, connection reset.
 * Nothing was changed that a retry of the same call would duplicate harmfully. The plugin
 * may set segpush_error.retry_after_ms (e.g. from a Retry-After header). */
#define SEGPUSH_RETRY 1
/* Permanent: the settings are wrong (unknown list, bad host, invalid option). Fix the config. */
#define SEGPUSH_ERR_CONFIG 2
/* Permanent: the credentials were refused or the account cannot be used (403, 402). */
#define SEGPUSH_ERR_AUTH 3
/* Permanent: the destination refused the request itself (not one record, the request). */
#define SEGPUSH_ERR_DATA 4
/* The plugin failed in a way it did not expect (a bug, out of memory, bad response). The
 * host retries the call within the export's retry budget, as for SEGPUSH_RETRY (an
 * unexpected answer is often a passing fault), so the same rule holds: a retry of the call
 * must not duplicate anything harmfully. */
#define SEGPUSH_ERR_INTERNAL 5
/* The host asked to stop (is_cancelled returned non-zero) and the call gave up early. */
#define SEGPUSH_ERR_CANCELLED 6

#define SEGPUSH_MESSAGE_MAX 1024
#define SEGPUSH_FIELD_PATH_MAX 256

/*
 * Filled by the plugin when a call does not return SEGPUSH_OK. Host-owned: the host
 * allocates it, zeroes it and sets struct_size before each call; the plugin writes into it
 * and keeps no pointer to it. Messages are for people: say what to do, never include a
 * secret (API keys, passwords, tokens), never include the raw request.
 */
typedef struct segpush_error {
    uint32_t struct_size;
    /* The same class the call returns. */
    segpush_status status;
    /* With SEGPUSH_RETRY: the earliest the host should retry, in milliseconds; 0 = host decides. */
    uint32_t retry_after_ms;
    /* The destination's own code, e.g. an HTTP status; 0 when there is none. */
    int32_t vendor_code;
    /* With SEGPUSH_ERR_CONFIG: the settings key at fault, as a dotted path ("host",
     * "list_id"), so the host can point at the file and line that set it. Empty if none. */
    char field[SEGPUSH_FIELD_PATH_MAX];
    /* NUL-terminated, truncated to fit. */
    char message[SEGPUSH_MESSAGE_MAX];
} segpush_error;

/* ---------------------------------------------------------------------------------------- */
/* 3. Host services                                                                          */
/* ---------------------------------------------------------------------------------------- */

typedef enum segpush_log_level {
    SEGPUSH_LOG_DEBUG = 0,
    SEGPUSH_LOG_INFO = 1,
    SEGPUSH_LOG_WARN = 2,
    SEGPUSH_LOG_ERROR = 3
} segpush_log_level;

/*
 * Services the host offers the plugin. Host-owned; valid from segpush_plugin_entry until the
 * library is unloaded. All functions may be called from any thread, the plugin's own threads
 * included, and return quickly.
 */
typedef struct segpush_host {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;
    /* Host version string, e.g. "0.1.0". */
    const char* host_version;
    /* Opaque; pass it back to the functions below. */
    void* host_data;

    /* Write one log line. The host prefixes the plugin id and, where known, the export.
     * message: borrowed. Never pass secrets. */
    void (*log)(void* host_data, segpush_log_level level, const char* message);

    /* Report progress of the export identified by export_token (the token the host passed
     * to begin_export). done/total count records; total may be 0 when unknown.
     * message: borrowed, may be NULL. Progress may move backwards after a retry. */
    void (*progress)(void* host_data, void* export_token, uint64_t done, uint64_t total,
                     const char* message);

    /* Non-zero once the host wants the export to stop (Ctrl-C, shutdown). Cheap: poll it
     * inside long waits (rate-limit pauses, status polling) and return SEGPUSH_ERR_CANCELLED. */
    int (*is_cancelled)(void* host_data, void* export_token);

    /* ---- since 1.4 ---- */

    /*
     * Request budgets shared by every export of this process and by every segpush process
     * that keeps its state in the same directory: a destination's limits are often per
     * account, not per export, so two exports to one account must pace as one.
     * budget: names one budget of one account, [A-Za-z0-9._-]{1,128}, borrowed. The plugin
     * derives it from what identifies the account (say, a hash of its host and key: never
     * the secret itself, which would end up in a file name) and the limit ("general").
     * Times are CLOCK_MONOTONIC nanoseconds (std::chrono::steady_clock on Linux).
     *
     * reserve_slot: takes the next start under `budget`, at least interval_ns after the
     * start any caller took before it, and returns its time. The caller waits until then
     * itself (polling is_cancelled); a slot it does not use is lost, never given twice.
     * Returns 0 when the host cannot share the budget: the plugin then paces on its own.
     * hold_budget: no start under `budget` before until_ns (after the destination asked to
     * wait, a 429's Retry-After), for every caller.
     */
    uint64_t (*reserve_slot)(void* host_data, const char* budget, uint64_t interval_ns);
    void (*hold_budget)(void* host_data, const char* budget, uint64_t until_ns);
} segpush_host;

/* ---------------------------------------------------------------------------------------- */
/* 4. The descriptor                                                                         */
/* ---------------------------------------------------------------------------------------- */

/*
 * The value type of a mapping field; the host validates values of known types before push.
 * The type of the KEY field (below) also says when two records are the same member, for
 * de-duplication within a run, for what changed since the last run and for who left:
 *   EMAIL   trimmed and case-folded ("Ann@Example.com" and "ann@example.com" are one member);
 *   PHONE   in E.164: spaces, dashes, dots, parentheses and a "(0)" after the country code
 *           are dropped, a leading "00" reads as "+", and the result must be "+" and 7 to 15
 *           digits, not starting with 0. A number without a country code ("0151 2345678")
 *           is ambiguous, so the host refuses the row as invalid, naming the row and field;
 *   others  trimmed and exact ("ABC", "abc" and "Abc" are three members).
 * Values are always sent as the segment wrote them (trimmed): only the comparison changes.
 */
typedef enum segpush_field_type {
    SEGPUSH_FIELD_STRING = 0,
    SEGPUSH_FIELD_EMAIL = 1, /* the host checks syntax, trims and case-folds for de-duplication */
    SEGPUSH_FIELD_PHONE = 2, /* as a key: compared in E.164, refused without a country code */
    SEGPUSH_FIELD_INTEGER = 3,
    SEGPUSH_FIELD_NUMBER = 4,
    SEGPUSH_FIELD_DATE = 5, /* YYYY-MM-DD */
    SEGPUSH_FIELD_BOOLEAN = 6
} segpush_field_type;

/* segpush_field.flags */
/* Every export must map it; records without a value are rejected. */
#define SEGPUSH_FIELD_REQUIRED 0x1u
/* Identifies a member at the destination (the de-duplication key, compared by the field's type).
 * A plugin declares at most one KEY field: the host refuses a plugin that declares several,
 * naming them. A plugin that declares none is keyed by its first SEGPUSH_FIELD_EMAIL field;
 * one with neither is refused. */
#define SEGPUSH_FIELD_KEY 0x2u

/*
 * A destination field a segment column can be mapped to. Plugin-owned, static.
 * Fixed-size, unlike the other structs: the host reads fields[i] with its own
 * sizeof(segpush_field), so no minor version appends to it (see the versioning policy).
 * struct_size must be sizeof(segpush_field); the host refuses a descriptor where it is not.
 */
typedef struct segpush_field {
    uint32_t struct_size;
    uint32_t flags;
    segpush_field_type type;
    /* Stable id used in configuration ("email", "first_name"). [a-z0-9_]+ */
    const char* id;
    /* Label for people ("Email", "First name"). */
    const char* label;
    /* One sentence, may be NULL. */
    const char* description;
} segpush_field;

/* What the host uses where a plugin's max_records_per_batch or max_concurrent_pushes is 0. */
#define SEGPUSH_DEFAULT_MAX_RECORDS_PER_BATCH 1000u
#define SEGPUSH_DEFAULT_MAX_CONCURRENT_PUSHES 4u

/*
 * What the destination can take. The host batches and schedules within these; the plugin
 * still paces its own requests against the destination. A field left 0 (or absent, or
 * limits NULL) means: the host's default for the two counts the host must bound
 * (SEGPUSH_DEFAULT_MAX_RECORDS_PER_BATCH, SEGPUSH_DEFAULT_MAX_CONCURRENT_PUSHES), no limit
 * for the others.
 */
typedef struct segpush_limits {
    uint32_t struct_size;
    /* Records per push_batch call; 0: SEGPUSH_DEFAULT_MAX_RECORDS_PER_BATCH. */
    uint32_t max_records_per_batch;
    /* Sum of value bytes per push_batch call (the host keeps a batch under this); 0: no limit. */
    uint64_t max_bytes_per_batch;
    /* Destination request budgets, informational for the host's scheduling and ETA; 0: none. */
    uint32_t requests_per_second;
    uint32_t requests_per_minute;
    /* How many push_batch calls the host may have in flight on one export at once;
     * 0: SEGPUSH_DEFAULT_MAX_CONCURRENT_PUSHES. */
    uint32_t max_concurrent_pushes;
} segpush_limits;

/* segpush_plugin.capabilities */
/* push_batch understands SEGPUSH_ACTION_REMOVE (enables `on_leave: unsubscribe`). */
#define SEGPUSH_CAP_REMOVE 0x1u
/* Since 1.2: besides the declared fields, the mapping may name destination fields the plugin
 * only learns at run time (custom fields), written "field:NAME" where NAME is the
 * destination's own id or name for it. The host passes each as an optional
 * SEGPUSH_FIELD_STRING field, after the declared ones, with its id as written ("field:NAME");
 * begin_export checks that each exists (SEGPUSH_ERR_CONFIG with err->field set otherwise). */
#define SEGPUSH_CAP_EXTRA_FIELDS 0x2u

/* Opaque plugin handles. The host never dereferences them. */
typedef struct segpush_connection segpush_connection;
typedef struct segpush_export segpush_export;

/* segpush_batch.action */
/* Create or update each record at the destination (the only action before 1.1). */
#define SEGPUSH_ACTION_UPSERT 0u
/* The records left the segment: remove them (e.g. unsubscribe from the list). Only the key
 * fields carry values. Sent only to plugins declaring SEGPUSH_CAP_REMOVE. */
#define SEGPUSH_ACTION_REMOVE 1u

/* One field value in a batch. data == NULL means "no value": the plugin must leave the
 * destination's existing value alone (never send an empty value that would erase it).
 * Since 1.4, data != NULL with size 0 means "clear it": the export asked for blank values to
 * erase the destination's (clear_blank_values). Hosts before 1.4 never send one, and a host
 * sends one only to plugins built for 1.4 or later. Key fields are never empty. */
typedef struct segpush_value {
    const char* data; /* UTF-8, not NUL-terminated; size bytes */
    size_t size;
} segpush_value;

/*
 * Records handed to push_batch. Host-owned, borrowed for the call.
 * values is row-major: record r, field f is values[r * n_fields + f], fields in the order
 * given to begin_export.
 */
typedef struct segpush_batch {
    uint32_t struct_size;
    uint32_t n_fields;
    size_t n_records;
    /* Host-assigned ids, unique within the export; outcomes refer to records by these. */
    const uint64_t* record_ids;
    const segpush_value* values;
    /* Since 1.1: SEGPUSH_ACTION_*. A plugin built against 1.0 never sees REMOVE batches. */
    uint32_t action;

    /* ---- since 1.4 ---- */

    /*
     * NULL, or n_records entries parallel to record_ids. Non-zero for an UPSERT record whose
     * member the host itself removed from the destination in an earlier run (a REMOVE the
     * plugin reported ACCEPTED) and has not delivered since: when the host recorded that
     * removal, in seconds since 1970-01-01 UTC. The plugin may undo that removal, and only
     * that: when anything at the destination changed the member's state after it (the person
     * unsubscribed or bounced, an account user acted), the record is SUPPRESSED instead.
     * 0 for every other record, whose removal (if any) the host did not make.
     */
    const int64_t* removed_at;
} segpush_batch;

/* Per-record outcome classes. */
typedef int32_t segpush_record_status;
/* The destination has the record. Final. */
#define SEGPUSH_RECORD_ACCEPTED 0
/* The destination took the record for asynchronous processing; its final outcome comes from
 * collect_outcomes or finish_export. Records still PENDING when finish_export returns OK are
 * ACCEPTED. Since 1.3 a PENDING outcome may carry a receipt (see segpush_outcomes). */
#define SEGPUSH_RECORD_PENDING 1
/* The destination refused this record permanently; reason says why. Never resent. */
#define SEGPUSH_RECORD_REJECTED 2
/* Not delivered for a transient reason; the host may send it again later. */
#define SEGPUSH_RECORD_RETRY 3
/* Since 1.4. Kept out by a choice made at the destination, which the export must respect:
 * the person unsubscribed from the list, the address bounced. Nothing was changed (for a
 * REMOVE: the member was already off the list, so the host did not remove it). Final, and
 * not an error: reason says what the destination holds ("unsubscribed from list 3"). The
 * host sends the record again only when its values change or a full run asks. A plugin
 * reports it only to hosts of minor 4 or later (segpush_host.abi_minor); to an older host,
 * whose record statuses stop at RETRY, it reports REJECTED with the same reason. */
#define SEGPUSH_RECORD_SUPPRESSED 4

typedef struct segpush_record_outcome {
    uint64_t record_id;
    segpush_record_status status;
    /* For REJECTED (and optionally RETRY): why, for a person. Plugin-owned, valid until the
     * enclosing segpush_outcomes is released. NULL otherwise. */
    const char* reason;
} segpush_record_outcome;

/*
 * A list of per-record outcomes produced by the plugin (Arrow C Data Interface style).
 * The host allocates the struct itself, zeroed, sets struct_size to the size it allocated and
 * passes a pointer; the plugin fills the fields that fit (SEGPUSH_HAS_FIELD: a plugin built
 * against a later minor than the host's must not write its newer fields) and owns everything
 * they point to. The host reads it, then calls release(outcomes) exactly once
 * if release is not NULL; release frees the plugin's memory and sets release to NULL.
 * A plugin that has nothing to report leaves the struct zeroed (release NULL).
 * release may be called on any thread, but before close_connection of the owning connection.
 */
typedef struct segpush_outcomes {
    /* Set by the host (since 1.5); see SEGPUSH_LEGACY_OUTCOMES_SIZE for older hosts. */
    uint32_t struct_size;
    size_t count;
    const segpush_record_outcome* items;
    void (*release)(struct segpush_outcomes* self);
    void* private_data;

    /* ---- since 1.3 ---- */

    /*
     * NULL, or count entries parallel to items: receipts[i] names where the destination holds
     * items[i] while it is PENDING (an asynchronous import's id, say), NULL for any other item
     * or when there is nothing to name. Plugin-owned, valid until release.
     * The host stores a receipt durably, in its state file, with the values the record was
     * pushed with, before it asks for more work; so a receipt is never a secret, and it is at
     * most SEGPUSH_RECEIPT_MAX bytes (longer ones are not stored). When the host stops before
     * the record settles (a crash, kill -9), the next run of the export hands the receipt back
     * to resume_pending instead of sending the record again.
     */
    const char* const* receipts;
} segpush_outcomes;

#define SEGPUSH_RECEIPT_MAX 256

/*
 * Hosts before 1.5 hand the struct over with struct_size 0: it is then this large for a host
 * of that minor (segpush_host.abi_minor), and the host reads receipts only when struct_size
 * covers them. A plugin that finds struct_size 0 sets it to this first and then proceeds
 * as with any host:
 *     if (out->struct_size == 0) out->struct_size = SEGPUSH_LEGACY_OUTCOMES_SIZE(host->abi_minor);
 *     ...
 *     if (SEGPUSH_HAS_FIELD(out, segpush_outcomes, receipts)) out->receipts = ...;
 * A plugin that writes only the fields of 1.0 (count, items, release, private_data), which
 * every host's struct holds, need not touch struct_size at all.
 */
#define SEGPUSH_LEGACY_OUTCOMES_SIZE(host_minor)                                        \
    ((uint32_t)((host_minor) >= 3                                                       \
                    ? offsetof(segpush_outcomes, receipts) + sizeof(const char* const*) \
                    : offsetof(segpush_outcomes, private_data) + sizeof(void*)))

/*
 * The plugin's static description and its functions. Plugin-owned; valid and unchanged from
 * segpush_plugin_entry until the library is unloaded. Producing it does no I/O.
 */
typedef struct segpush_plugin {
    uint32_t struct_size;
    uint32_t abi_major; /* SEGPUSH_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor; /* SEGPUSH_ABI_MINOR the plugin was built with */

    /* Identity. id: [a-z0-9_-]+, unique among loaded plugins, used in configuration. */
    const char* id;
    const char* name;
    const char* version;
    const char* description;

    /* JSON Schema (draft-04 keywords) of the connection settings and the export settings, as
     * JSON text. The host validates configuration against them before calling the plugin.
     * Properties carrying "x-secret": true hold credentials: the host resolves them from
     * references (${env:NAME}, ${file:PATH}) and never prints them. Properties carrying
     * "x-file": true name a file: the host resolves a relative path against the configuration
     * file's directory, checks that the file can be read, and passes the full path. */
    const char* connection_schema;
    const char* export_schema;

    /* Mapping fields the destination accepts; n_fields entries. */
    const segpush_field* fields;
    size_t n_fields;

    /* Limits; may be NULL, which reads as every limit 0 (see segpush_limits). */
    const segpush_limits* limits;

    /*
     * Semantic checks the schema cannot express (e.g. "host must be a bare hostname"), done
     * without any I/O. kind is "connection" or "export"; settings_json is the resolved settings
     * object (borrowed; secrets included). Returns OK or SEGPUSH_ERR_CONFIG with err->field set.
     * May be NULL. [any-thread]
     */
    segpush_status (*validate_settings)(const char* kind, const char* settings_json,
                                        segpush_error* err);

    /*
     * Open a connection with validated settings (borrowed JSON object text). No network I/O
     * is required here; check_connection talks to the destination. On OK, *out is a handle
     * valid until close_connection. [any-thread]
     */
    segpush_status (*open_connection)(const char* settings_json, segpush_connection** out,
                                      segpush_error* err);

    /* Verify credentials and reachability (one cheap request). [serial:connection] */
    segpush_status (*check_connection)(segpush_connection* conn, segpush_error* err);

    /*
     * Start one export run. settings_json: validated export settings (borrowed).
     * field_ids: the mapped destination field ids, in the order values arrive in batches
     * (borrowed; n_fields entries). export_token: host-owned opaque token to pass to the host's
     * progress and is_cancelled. The plugin verifies what it must (e.g. the list exists).
     * On OK, *out is valid until finish_export or abort_export returns.
     * [serial:connection] — no other call on the same connection runs meanwhile.
     */
    segpush_status (*begin_export)(segpush_connection* conn, const char* settings_json,
                                   const char* const* field_ids, size_t n_fields,
                                   void* export_token, segpush_export** out, segpush_error* err);

    /*
     * Deliver one batch (at most limits->max_records_per_batch records and
     * limits->max_bytes_per_batch bytes). On OK, outcomes holds exactly one outcome per record
     * of the batch (ACCEPTED, PENDING, REJECTED, RETRY or, since 1.4, SUPPRESSED). On any other
     * status, outcomes lists the records the plugin settled before the failure (since 1.2; a batch
     * may take several requests) and every record not listed was not delivered; the host keeps the
     * listed outcomes and decides what to do with the rest.
     * [concurrent:limits->max_concurrent_pushes] on the same export.
     */
    segpush_status (*push_batch)(segpush_export* exp, const segpush_batch* batch,
                                 segpush_outcomes* outcomes, segpush_error* err);

    /*
     * Wait for asynchronous work and report final outcomes of PENDING records: outcomes lists
     * the ones that ended REJECTED (or RETRY); pending records not listed here nor settled by
     * collect_outcomes are ACCEPTED.
     * On SEGPUSH_RETRY the host may call finish_export again. On other errors the final state
     * of pending records is unknown and the host treats them as not delivered.
     * After a non-RETRY return the export handle is gone. [serial:export], never concurrent
     * with push_batch.
     */
    segpush_status (*finish_export)(segpush_export* exp, segpush_outcomes* outcomes,
                                    segpush_error* err);

    /* Drop the export without waiting; frees the handle. Never fails. [serial:export] */
    void (*abort_export)(segpush_export* exp);

    /* Free the connection; every export on it has been finished or aborted. [serial:connection] */
    void (*close_connection)(segpush_connection* conn);

    /* ---- since 1.1 ---- */

    /* SEGPUSH_CAP_* bits. */
    uint32_t capabilities;

    /*
     * Report final outcomes of PENDING records that have settled since the last call, without
     * waiting: ACCEPTED, REJECTED or SUPPRESSED (with reason), or RETRY when the destination
     * lost them.
     * The host calls it between pushes so it can record delivery as it happens; a host killed
     * mid-export then resends only what was still unsettled. Records reported here are not
     * reported again by finish_export. May be NULL (outcomes then arrive at finish_export).
     * [serial:export] with itself and finish_export, but may run while push_batch calls on the
     * same export are in flight (so the host never drains its pipeline to collect). A final
     * outcome reported here may reach the host before the PENDING of the push that sent the
     * record; the host keeps the final one (ACCEPTED and REJECTED are never downgraded), and
     * a RETRY reported here stands (that push's PENDING for the record is ignored; the record
     * is sent again by the next run).
     */
    segpush_status (*collect_outcomes)(segpush_export* exp, segpush_outcomes* outcomes,
                                       segpush_error* err);

    /* ---- since 1.3 ---- */

    /*
     * Settle records that an earlier run of the same export left PENDING with a receipt (the
     * host stopped before their outcome arrived). batch holds them with the values they were
     * pushed with (the host resumes a record only while its values are unchanged), and
     * receipts[r] is the receipt given with record r's PENDING (borrowed, like batch).
     * On OK, outcomes holds exactly one outcome per record:
     *   ACCEPTED or REJECTED  the destination settled it;
     *   RETRY                 the destination did not take it or no longer knows the receipt:
     *                         the host sends it again in this run;
     *   PENDING               still being processed: the plugin now tracks it as if this export
     *                         had pushed it, and its outcome arrives through collect_outcomes or
     *                         finish_export (a receipt may come with it again).
     * On any other status every record counts as not delivered and is sent again.
     * Called after begin_export and before the first push_batch, at most
     * limits->max_records_per_batch records per call; [serial:export].
     * May be NULL: records left pending are then simply sent again.
     */
    segpush_status (*resume_pending)(segpush_export* exp, const segpush_batch* batch,
                                     const char* const* receipts, segpush_outcomes* outcomes,
                                     segpush_error* err);

    /* ---- since 1.5 ---- */

    /*
     * Undo what segpush_plugin_entry set up (global library state such as curl_global_init)
     * and stop any thread the plugin started: the library's code is unmapped right after.
     * Called by the host at most once per load, on the thread that releases the plugin, after
     * every connection was closed and every outcome list released, never concurrently with
     * any other call into the plugin; host services may still be called during it. Called only
     * when the host accepted the descriptor: a descriptor it refused, and a plugin loaded in
     * a load probe (a child process that exits without releasing the library), never see it.
     * May be NULL.
     */
    void (*unload)(void);
} segpush_plugin;

/* ---------------------------------------------------------------------------------------- */
/* 5. The entry point                                                                        */
/* ---------------------------------------------------------------------------------------- */

/*
 * The only symbol a plugin exports. Called once per load, before anything else, never
 * concurrently with any other call into the plugin. host: host-owned, valid until unload.
 * Returns the plugin's descriptor, or NULL when the plugin cannot work with this host (it
 * should say why through host->log first). Must not do I/O beyond reading its own files.
 */
typedef const segpush_plugin* (*segpush_plugin_entry_fn)(const segpush_host* host);

SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host);

#ifdef __cplusplus
}
#endif

#endif /* SEGPUSH_PLUGIN_H */
