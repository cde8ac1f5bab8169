#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli/cli.hpp"

namespace {

// A core dump holds what the process held: API keys and the people being sent. None is written,
// and other processes of the same user cannot attach to read its memory, unless
// SEGPUSH_CORE_DUMPS=1 asks for them to debug a crash (README: personal data and secrets).
void keep_memory_private() {
    const char* wanted = std::getenv("SEGPUSH_CORE_DUMPS");
    if (wanted != nullptr && std::strcmp(wanted, "1") == 0) return;
    const rlimit none{0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

}  // namespace

int main(int argc, char** argv) {
    keep_memory_private();
#ifdef __GLIBC__
    // glibc gives each thread that allocates its own arena, up to eight per core, and each
    // keeps what was freed in it. An export's two dozen push threads each build and free
    // request bodies of tens of kilobytes, so memory grew with the threads, not the work.
    // They mostly wait on the network; the run's thread and the segment reader are the ones
    // that compute, and two arenas serve them, which keeps peak memory down at no cost in CPU.
    // Whoever set MALLOC_ARENA_MAX or a glibc.malloc.arena_max tunable meant it.
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (std::getenv("MALLOC_ARENA_MAX") == nullptr &&
        (tunables == nullptr || std::strstr(tunables, "glibc.malloc.arena_max") == nullptr)) {
        mallopt(M_ARENA_MAX, 2);
    }
#endif
    std::vector<std::string> args(argv + 1, argv + argc);
    try {
        return segpush::run_cli(args, std::cout, std::cerr);
    } catch (const std::exception& e) {
        std::cerr << "segpush: internal error: " << e.what() << "\n";
        return segpush::kExitFailure;
    }
}
