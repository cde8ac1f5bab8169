// What `serve` tells systemd when its unit is Type=notify (packaging/segpush.service).
#pragma once

#include <chrono>
#include <string>

namespace segpush {

// READY=1 once serve is serving (RELOADING=1 then READY=1 again around a reload), WATCHDOG=1
// from its main loop while WatchdogSec= is set, and STOPPING=1 on the way out, through
// libsystemd's sd_notify. Started any other way (a terminal,
// a container, a test without NOTIFY_SOCKET) every call does nothing.
class ServiceNotifier {
public:
    ServiceNotifier();

    // `status` is what `systemctl status` shows beside the unit.
    void ready(const std::string& status);
    // Called on every turn of the main loop. Pings at half the watchdog interval: a loop that
    // stops turning misses the deadline and systemd restarts the service.
    void alive();
    // RELOADING=1 while serve reads its configuration again; ready() ends it.
    void reloading();
    void stopping();

private:
    void send(const std::string& state);

    std::chrono::microseconds watchdog_interval_{0};
    std::chrono::steady_clock::time_point last_ping_{};
    bool reported_failure_ = false;
};

}  // namespace segpush
