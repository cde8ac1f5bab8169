#include "http.hpp"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>
#include <thread>

namespace segpush::activecampaign {

namespace {

// Idle connections kept for reuse: at least one per thread that can send at once, which is
// the pushes the plugin allows in flight (24, kLimits in plugin.cpp) plus its finish pollers
// (8). Idle ones cost a socket each; servers close them after their keep-alive time.
constexpr long kConnectionsKept = 40;

// A margin over the published budgets so that network jitter does not bunch requests into a
// window the server counts as too many. Jitter is a matter of milliseconds whatever the window,
// so the margin is a slack per window, not a percentage: 50 ms on the per-second budget (5 %),
// 500 ms on the per-minute bulk budgets (0.83 %). A flat 5 % on the bulk budget would hold
// every large export 5 % below the rate ActiveCampaign's limit allows.
std::chrono::nanoseconds spacing(double per_second, double window_seconds, double slack_seconds) {
    return std::chrono::nanoseconds(static_cast<int64_t>(1e9 / per_second * (1.0 + slack_seconds / window_seconds)));
}

size_t write_body(char* data, size_t size, size_t count, void* user) {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
}

size_t read_header(char* data, size_t size, size_t count, void* user) {
    const size_t n = size * count;
    static const char kName[] = "retry-after:";
    const size_t name_len = sizeof kName - 1;
    if (n > name_len) {
        bool match = true;
        for (size_t i = 0; i < name_len && match; ++i) {
            match = std::tolower(static_cast<unsigned char>(data[i])) == kName[i];
        }
        if (match) *static_cast<std::string*>(user) = std::string(data + name_len, n - name_len);
    }
    return n;
}

}  // namespace

bool sleep_until(Clock::time_point until, const std::function<bool()>& cancelled) {
    while (true) {
        if (cancelled && cancelled()) return false;
        const auto now = Clock::now();
        if (now >= until) return true;
        std::this_thread::sleep_for(std::min<Clock::duration>(until - now, std::chrono::milliseconds(100)));
    }
}

bool host_shares_budgets(const segpush_host* host) {
    return host && host->abi_major == SEGPUSH_ABI_MAJOR && host->abi_minor >= 4 &&
           SEGPUSH_HAS_FIELD(host, segpush_host, reserve_slot) && SEGPUSH_HAS_FIELD(host, segpush_host, hold_budget) &&
           host->reserve_slot && host->hold_budget;
}

std::string budget_name(const std::string& host, const std::string& api_key, const char* limit) {
    // Hashed piece by piece: no copy of the key is made. Host names ignore case.
    uint64_t hash = 14695981039346656037ull;
    auto add = [&hash](const std::string& text, bool fold_case) {
        for (const unsigned char c : text) {
            hash ^= fold_case ? static_cast<unsigned char>(std::tolower(c)) : c;
            hash *= 1099511628211ull;
        }
    };
    add(host, true);
    add("\n", false);
    add(api_key, false);
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016" PRIx64, hash);
    return std::string("activecampaign-") + hex + "-" + limit;
}

void Pacer::share(const segpush_host* host, std::string budget) {
    if (!host_shares_budgets(host)) return;
    host_ = host;
    budget_ = std::move(budget);
}

bool Pacer::acquire(const std::function<bool()>& cancelled) {
    if (host_) {
        // The host spaces this budget's starts across every export of the account; 0: it
        // cannot share this one, so pace alone below.
        const uint64_t slot = host_->reserve_slot(host_->host_data, budget_.c_str(),
                                                  static_cast<uint64_t>(interval_.count()));
        if (slot != 0) {
            return sleep_until(Clock::time_point(
                                   std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(slot))),
                               cancelled);
        }
    }
    Clock::time_point slot;
    {
        std::lock_guard<std::mutex> guard(mutex_);
        slot = std::max(Clock::now(), next_);
        next_ = slot + interval_;
    }
    return sleep_until(slot, cancelled);
}

void Pacer::hold_until(Clock::time_point until) {
    {
        std::lock_guard<std::mutex> guard(mutex_);
        next_ = std::max(next_, until);
    }
    if (host_) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(until.time_since_epoch()).count();
        if (ns > 0) host_->hold_budget(host_->host_data, budget_.c_str(), static_cast<uint64_t>(ns));
    }
}

Http::Http(const ConnectionSettings& settings, const segpush_host* host)
    : settings_(settings),
      base_url_("https://" + settings.host),
      requests_(spacing(settings.requests_per_second, 1.0, 0.05)),
      bulk_(spacing(settings.bulk_requests_per_minute / 60.0, 60.0, 0.5)),
      bulk_single_(spacing(20 / 60.0, 60.0, 0.5)) {  // ActiveCampaign: 20 single-contact imports per minute
    // The budgets are the account's, so every connection to it, in any export, shares them.
    if (host_shares_budgets(host)) {
        requests_.share(host, budget_name(settings.host, settings.api_key, "general"));
        bulk_.share(host, budget_name(settings.host, settings.api_key, "bulk"));
        bulk_single_.share(host, budget_name(settings.host, settings.api_key, "bulk-single"));
    }
    const std::string token = "Api-Token: " + settings.api_key;
    headers_ = curl_slist_append(headers_, token.c_str());
    headers_ = curl_slist_append(headers_, "Accept: application/json");
    json_headers_ = curl_slist_append(json_headers_, token.c_str());
    json_headers_ = curl_slist_append(json_headers_, "Accept: application/json");
    json_headers_ = curl_slist_append(json_headers_, "Content-Type: application/json");
    share_ = curl_share_init();
    if (!headers_ || !json_headers_ || !share_) {
        curl_slist_free_all(headers_);
        curl_slist_free_all(json_headers_);
        if (share_) curl_share_cleanup(share_);
        throw std::bad_alloc();  // libcurl returns NULL here only when it cannot allocate
    }
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &Http::lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &Http::unlock);
    curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
}

Http::~Http() {
    for (CURL* handle : pool_) curl_easy_cleanup(handle);
    curl_share_cleanup(share_);
    // The key is in these lists: wipe it before the memory goes back.
    for (curl_slist* list : {headers_, json_headers_}) {
        for (curl_slist* item = list; item; item = item->next) {
            std::memset(item->data, 0, std::strlen(item->data));
        }
        curl_slist_free_all(list);
    }
    std::fill(settings_.api_key.begin(), settings_.api_key.end(), '\0');
}

void Http::lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Http*>(user)->share_locks_[data].lock();
}

void Http::unlock(CURL*, curl_lock_data data, void* user) { static_cast<Http*>(user)->share_locks_[data].unlock(); }

CURL* Http::take_handle() {
    {
        std::lock_guard<std::mutex> guard(pool_mutex_);
        if (!pool_.empty()) {
            CURL* handle = pool_.back();
            pool_.pop_back();
            return handle;
        }
    }
    return curl_easy_init();
}

void Http::give_back(CURL* handle) {
    std::lock_guard<std::mutex> guard(pool_mutex_);
    pool_.push_back(handle);
}

void Http::hold(Budget budget, Clock::time_point until) {
    requests_.hold_until(until);
    if (budget != Budget::general) {
        bulk_.hold_until(until);
        bulk_single_.hold_until(until);
    }
}

bool Http::send(const char* method, const std::string& path, const std::string* body, Budget budget,
                const std::function<bool()>& cancelled, HttpResult& out) {
    out = HttpResult{};
    if (budget == Budget::bulk_import_single && !bulk_single_.acquire(cancelled)) return false;
    if (budget != Budget::general && !bulk_.acquire(cancelled)) return false;
    if (!requests_.acquire(cancelled)) return false;

    CURL* curl = take_handle();
    if (!curl) {
        out.curl = CURLE_OUT_OF_MEMORY;
        out.curl_error = "out of memory";
        return true;
    }
    curl_easy_reset(curl);
    char error_buffer[CURL_ERROR_SIZE] = {0};
    const std::string url = base_url_ + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
#endif
    curl_easy_setopt(curl, CURLOPT_SHARE, share_);
    // The shared cache keeps only MAXCONNECTS idle connections (curl's default: 5) and closes
    // the rest as requests end; with two dozen threads sending, most requests would then pay a
    // new connection: TCP, TLS, and OpenSSL loading the CA file again. One kept per thread that
    // can send at once.
    curl_easy_setopt(curl, CURLOPT_MAXCONNECTS, kConnectionsKept);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!settings_.ca_bundle.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.ca_bundle.c_str());
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(settings_.timeout_seconds));
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "segpush-activecampaign/0.1");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, body ? json_headers_ : headers_);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &write_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &read_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out.retry_after);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    } else if (std::strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    out.curl = curl_easy_perform(curl);
    if (out.curl != CURLE_OK) {
        out.curl_error = error_buffer[0] ? error_buffer : curl_easy_strerror(out.curl);
        while (!out.curl_error.empty() && std::isspace(static_cast<unsigned char>(out.curl_error.back()))) {
            out.curl_error.pop_back();
        }
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
    }
    // Headers and the error buffer live on this stack frame: detach them before pooling.
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
    give_back(curl);
    return true;
}

}  // namespace segpush::activecampaign
