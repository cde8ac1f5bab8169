#include "systemd/service_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <cstring>
#include <ctime>

#include "log/log.hpp"

namespace segpush {

ServiceNotifier::ServiceNotifier() {
    uint64_t usec = 0;
    // > 0 only when systemd set WATCHDOG_USEC (and WATCHDOG_PID, if set, is this process).
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_interval_ = std::chrono::microseconds(usec);
}

void ServiceNotifier::ready(const std::string& status) {
    send("READY=1\nSTATUS=" + status);
    alive();
}

void ServiceNotifier::alive() {
    if (watchdog_interval_.count() == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (last_ping_ != std::chrono::steady_clock::time_point{} && now - last_ping_ < watchdog_interval_ / 2) return;
    last_ping_ = now;
    send("WATCHDOG=1");
}

void ServiceNotifier::reloading() {
    // systemd 253 and later want the monotonic time of the reload with it; older ones ignore it.
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const uint64_t usec = static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
    send("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=" + std::to_string(usec));
}

void ServiceNotifier::stopping() { send("STOPPING=1\nSTATUS=stopping: running exports finish their batches"); }

void ServiceNotifier::send(const std::string& state) {
    // 0 when NOTIFY_SOCKET is unset: not started by systemd, nothing to tell.
    const int result = sd_notify(0, state.c_str());
    if (result < 0 && !reported_failure_) {
        // Once: a service manager that cannot be reached would otherwise flood the log.
        reported_failure_ = true;
        log_line(LogLevel::warn,
                 std::string("serve: cannot notify the service manager (NOTIFY_SOCKET): ") + std::strerror(-result));
    }
}

}  // namespace segpush
