/*
 * Plugins that are wrong in one way each, selected at compile time with BROKEN_*:
 * a different ABI major, a descriptor with invalid JSON Schema, an entry that declines
 * (returns NULL), a library with no entry symbol at all, mapping fields larger than
 * segpush_field (as if a later header had appended to it), two key fields, and neither a key
 * field nor an email field.
 */
#include <segpush/plugin.h>

#include <stddef.h>

#if defined(BROKEN_NO_ENTRY)

SEGPUSH_EXPORT int some_other_function(void) { return 42; }

#else

static segpush_status ok_open(const char* s, segpush_connection** out, segpush_error* e) {
    (void)s;
    (void)e;
    *out = NULL;
    return SEGPUSH_OK;
}
static segpush_status ok_check(segpush_connection* c, segpush_error* e) {
    (void)c;
    (void)e;
    return SEGPUSH_OK;
}
static segpush_status ok_begin(segpush_connection* c, const char* s, const char* const* f, size_t n, void* t,
                               segpush_export** out, segpush_error* e) {
    (void)c;
    (void)s;
    (void)f;
    (void)n;
    (void)t;
    (void)e;
    *out = NULL;
    return SEGPUSH_OK;
}
static segpush_status ok_push(segpush_export* x, const segpush_batch* b, segpush_outcomes* o, segpush_error* e) {
    (void)x;
    (void)b;
    (void)o;
    (void)e;
    return SEGPUSH_OK;
}
static segpush_status ok_finish(segpush_export* x, segpush_outcomes* o, segpush_error* e) {
    (void)x;
    (void)o;
    (void)e;
    return SEGPUSH_OK;
}
static void ok_abort(segpush_export* x) { (void)x; }
static void ok_close(segpush_connection* c) { (void)c; }

#if defined(BROKEN_FIELD_SIZE)
#define FIELD_SIZE (sizeof(segpush_field) + 8)
#else
#define FIELD_SIZE sizeof(segpush_field)
#endif

static const segpush_field kFields[] = {
#if defined(BROKEN_TWO_KEYS)
    {FIELD_SIZE, SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_STRING, "user_id", "User id", NULL},
    {FIELD_SIZE, SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email", NULL},
#elif defined(BROKEN_NO_KEY)
    {FIELD_SIZE, SEGPUSH_FIELD_REQUIRED, SEGPUSH_FIELD_STRING, "user_id", "User id", NULL},
#else
    {FIELD_SIZE, SEGPUSH_FIELD_REQUIRED, SEGPUSH_FIELD_EMAIL, "email", "Email", NULL},
#endif
};

static const segpush_host* g_host;

/* Says so, so that a test sees it is never called for a descriptor the host refused. */
static void unload(void) {
    if (g_host) g_host->log(g_host->host_data, SEGPUSH_LOG_INFO, "unloading");
}

#if defined(BROKEN_ABI_MAJOR)
#define DECLARED_MAJOR (SEGPUSH_ABI_MAJOR + 1)
#else
#define DECLARED_MAJOR SEGPUSH_ABI_MAJOR
#endif

#if defined(BROKEN_SCHEMA)
#define CONNECTION_SCHEMA "{\"type\": \"object\", \"properties\": {"
#else
#define CONNECTION_SCHEMA "{\"type\":\"object\"}"
#endif

static const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    DECLARED_MAJOR,
    0,
    "broken",
    "Broken",
    "0.0.1",
    NULL,
    CONNECTION_SCHEMA,
    "{\"type\":\"object\"}",
    kFields,
    sizeof kFields / sizeof kFields[0],
    NULL,
    NULL,
    ok_open,
    ok_check,
    ok_begin,
    ok_push,
    ok_finish,
    ok_abort,
    ok_close,
    0,
    NULL,
    NULL,
    unload,
};

SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
#if defined(BROKEN_DECLINES)
    host->log(host->host_data, SEGPUSH_LOG_ERROR, "this plugin needs a newer host");
    return host->abi_minor > 1000 ? &kPlugin : NULL;
#else
    g_host = host;
    return &kPlugin;
#endif
}

#endif
