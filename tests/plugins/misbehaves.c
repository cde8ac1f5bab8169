/*
 * Plugins whose code misbehaves while loading, selected at compile time with MISBEHAVE_*:
 * a crash (SIGSEGV) in the entry point, an entry point that never returns, and a constructor
 * that calls exit(0) before the entry point is even reached. The host must report each by
 * name and carry on.
 */
#include <segpush/plugin.h>

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(MISBEHAVE_EXIT_IN_CONSTRUCTOR)
__attribute__((constructor)) static void leave_at_once(void) { exit(0); }
#endif

SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    (void)host;
#if defined(MISBEHAVE_CRASH_IN_ENTRY)
    raise(SIGSEGV);
#elif defined(MISBEHAVE_HANG_IN_ENTRY)
    for (;;) pause();
#endif
    return NULL;
}
