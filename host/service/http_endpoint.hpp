#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "service/listen_address.hpp"

namespace segpush {

// Why `serve` is not ready, if it is not: each condition not met yet, with its reason. Thread-safe.
class Readiness {
public:
    // `condition` is not met, because of `reason` ("the scheduler is not running yet").
    void block(const std::string& condition, const std::string& reason);
    void clear(const std::string& condition);
    // The reasons of every condition not met, "; "-separated; empty when ready.
    std::string problems() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::string> blocked_;
};

// The HTTP endpoint of `serve`: GET /healthz (200 while the process answers), GET /readyz (200
// when `readiness` has no problems, else 503 with them), GET /metrics (`metrics()`, Prometheus
// text format). Anything else is 404, a method other than GET 405.
//
// It runs on one thread of its own and holds at most a few connections; each request must
// arrive within a few seconds and fit in a few kilobytes, with no body. Nothing it does waits on
// an export: `metrics` and `readiness` answer from memory.
class HttpEndpoint {
public:
    using Metrics = std::function<std::string()>;

    // Binds and starts answering; throws std::runtime_error saying why when the address cannot
    // be used (in use, not an address of this host, a privileged port).
    HttpEndpoint(const ListenAddress& address, const Readiness& readiness, Metrics metrics);
    // Stops answering and joins the thread.
    ~HttpEndpoint();
    HttpEndpoint(const HttpEndpoint&) = delete;
    HttpEndpoint& operator=(const HttpEndpoint&) = delete;

    // The port bound: the configured one, or the one the system chose for port 0.
    uint16_t port() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace segpush
