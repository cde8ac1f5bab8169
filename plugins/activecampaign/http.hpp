// HTTPS to one ActiveCampaign account: a pool of curl easy handles (one per concurrent
// caller) sharing connections, TLS sessions and DNS through a CURLSH, and the pacing that
// keeps every thread of a connection within the account's request budgets. The budgets are
// the account's: when the host shares budgets (ABI 1.4 reserve_slot), every export to the
// account, in this process or another, paces through the host; otherwise each connection
// paces alone.
#pragma once

#include <curl/curl.h>
#include <segpush/plugin.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "settings.hpp"

namespace segpush::activecampaign {

using Clock = std::chrono::steady_clock;

// Spaces requests evenly: at most one start per interval, shared by all threads. No burst:
// ActiveCampaign documents none.
class Pacer {
public:
    explicit Pacer(std::chrono::nanoseconds interval) : interval_(interval) {}
    // Paces through the host's shared budget `budget` from now on, when `host` offers shared
    // budgets (see host_shares_budgets); the local pacing stays for when it declines a slot.
    // Call before any other thread uses the pacer.
    void share(const segpush_host* host, std::string budget);
    // Reserves the next slot; returns when it comes, or false when cancelled() said stop first.
    bool acquire(const std::function<bool()>& cancelled);
    // Nobody starts before `until` (after a 429 or a rate-limit answer), in the shared budget too.
    void hold_until(Clock::time_point until);

private:
    std::mutex mutex_;
    Clock::time_point next_{};
    std::chrono::nanoseconds interval_;
    const segpush_host* host_ = nullptr;  // non-null only when it offers reserve_slot and hold_budget
    std::string budget_;
};

// Whether `host` (may be NULL) offers reserve_slot and hold_budget: ABI 1.4 or later, with both.
bool host_shares_budgets(const segpush_host* host);

// The host budget name of one limit ("general", "bulk", "bulk-single") of the account at
// `host` with `api_key`: "activecampaign-" + 16 hex digits of FNV-1a 64 over the host (in
// lower case) + "\n" + api_key, + "-" + limit. The key itself never appears in it.
std::string budget_name(const std::string& host, const std::string& api_key, const char* limit);

// Sleeps until `until`, checking cancelled() every 100 ms; false when cancelled.
bool sleep_until(Clock::time_point until, const std::function<bool()>& cancelled);

struct HttpResult {
    CURLcode curl = CURLE_OK;
    std::string curl_error;  // curl's error buffer, or curl_easy_strerror
    long status = 0;
    std::string body;
    std::string retry_after;  // raw Retry-After header value, if any
};

enum class Budget { general, bulk_import, bulk_import_single };

class Http {
public:
    // `host`: the host services (g_host), or NULL (a test, say): then this connection paces
    // alone, as does one whose host predates shared budgets.
    explicit Http(const ConnectionSettings& settings, const segpush_host* host = nullptr);
    ~Http();
    Http(const Http&) = delete;
    Http& operator=(const Http&) = delete;

    // method "GET" or "POST"; path starts with "/api/3/". Waits for pacing first; returns
    // false (and sends nothing) when cancelled while waiting.
    bool send(const char* method, const std::string& path, const std::string* body, Budget budget,
              const std::function<bool()>& cancelled, HttpResult& out);

    // After a rate-limit answer: hold every request of this budget until `until`.
    void hold(Budget budget, Clock::time_point until);

    const ConnectionSettings& settings() const { return settings_; }

private:
    CURL* take_handle();
    void give_back(CURL* handle);
    static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user);
    static void unlock(CURL*, curl_lock_data data, void* user);

    ConnectionSettings settings_;
    std::string base_url_;
    curl_slist* headers_ = nullptr;
    curl_slist* json_headers_ = nullptr;
    CURLSH* share_ = nullptr;
    std::mutex share_locks_[CURL_LOCK_DATA_LAST];
    std::mutex pool_mutex_;
    std::vector<CURL*> pool_;
    Pacer requests_;
    Pacer bulk_;
    Pacer bulk_single_;
};

}  // namespace segpush::activecampaign
