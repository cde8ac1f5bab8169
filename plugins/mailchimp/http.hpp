// HTTPS to one Mailchimp account. Mailchimp limits an API key to 10 simultaneous connections
// (more are answered 429) and has no per-second budget, so what this paces is concurrency:
// every thread of a connection shares its request slots, and one call sends many requests at
// once through a curl multi handle. The slots start at `concurrency` and lose one at each
// throttling answer (other tools may use the same key), then grow back by one after as many
// answers in a row without one: requests settle at what the account has room for instead of
// each backing off alone while the rest keep hitting the limit. Connections, TLS sessions and
// DNS are shared by every handle through a CURLSH.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "settings.hpp"

namespace segpush::mailchimp {

using Clock = std::chrono::steady_clock;

struct HttpRequest {
    const char* method = "GET";  // GET, POST, PUT, PATCH
    std::string path;            // after the base URL: "/lists/abc"
    std::string body;            // sent when not empty, as JSON
};

struct HttpResult {
    CURLcode curl = CURLE_OK;
    std::string curl_error;  // curl's error buffer, or curl_easy_strerror
    long status = 0;
    std::string body;
    int attempts = 0;
    bool cancelled = false;  // never finished: the host asked to stop
};

// Whether an answer is worth the same request again: transport failures other than TLS and
// URL ones, 429, a 403 without a body (Mailchimp's answer under extreme load), and 5xx.
bool transient(const HttpResult& result);

// The wait before attempt `attempt` (1: the first retry): exponential from 500 ms, at most 16 s,
// with up to a quarter more at random so that throttled requests do not come back together.
std::chrono::milliseconds backoff_for(int attempt);

class Http {
public:
    explicit Http(const ConnectionSettings& settings);
    ~Http();
    Http(const Http&) = delete;
    Http& operator=(const Http&) = delete;

    // Sends every request and fills results (same order), at most `concurrency` in flight on
    // this connection whatever the threads; a transient answer is retried after backoff_for,
    // up to kMaxAttempts in all, then the last answer is given. Returns false when cancelled()
    // said stop: unfinished requests have `cancelled` set (they may or may not have reached
    // Mailchimp).
    static constexpr int kMaxAttempts = 6;
    bool send_all(const std::vector<HttpRequest>& requests, std::vector<HttpResult>& results,
                  const std::function<bool()>& cancelled);
    bool send(const HttpRequest& request, HttpResult& result, const std::function<bool()>& cancelled);

    const ConnectionSettings& settings() const { return settings_; }
    uint64_t requests_sent() const;
    uint64_t throttled() const;

private:
    CURL* make_handle(const HttpRequest& request, HttpResult& result, char* error_buffer);
    bool take_slot(bool wait);
    void give_slot(bool throttled = false);
    static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user);
    static void unlock(CURL*, curl_lock_data data, void* user);

    ConnectionSettings settings_;
    curl_slist* json_headers_ = nullptr;
    curl_slist* headers_ = nullptr;
    CURLSH* share_ = nullptr;
    std::mutex share_locks_[CURL_LOCK_DATA_LAST];
    mutable std::mutex slots_mutex_;
    std::condition_variable slot_free_;
    uint32_t in_flight_ = 0;
    uint32_t allowed_ = 0;       // slots now: 1..concurrency
    uint32_t calm_answers_ = 0;  // answers since the last throttling one
    uint64_t sent_ = 0;
    uint64_t throttled_ = 0;
};

}  // namespace segpush::mailchimp
