#include "http.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <thread>

namespace segpush::mailchimp {

namespace {

size_t write_body(char* data, size_t size, size_t count, void* user) {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
}

bool tls_or_url_failure(CURLcode code) {
    switch (code) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_OUT_OF_MEMORY: return true;
        default: return false;
    }
}

// One request on its way: its handle, where its answer goes, when it may be tried again.
struct Flight {
    size_t index = 0;
    CURL* handle = nullptr;
    char error_buffer[CURL_ERROR_SIZE] = {0};
};

}  // namespace

bool transient(const HttpResult& result) {
    if (result.curl != CURLE_OK) return !tls_or_url_failure(result.curl);
    const long s = result.status;
    if (s == 429 || s >= 500) return true;
    if (s == 403) {
        return std::all_of(result.body.begin(), result.body.end(),
                           [](unsigned char c) { return std::isspace(c) != 0; });
    }
    return false;
}

std::chrono::milliseconds backoff_for(int attempt) {
    const int64_t base = std::min<int64_t>(int64_t(500) << std::min(attempt - 1, 5), 16000);
    thread_local std::minstd_rand random(std::random_device{}());
    return std::chrono::milliseconds(base + static_cast<int64_t>(random() % static_cast<unsigned>(base / 4 + 1)));
}

Http::Http(const ConnectionSettings& settings) : settings_(settings), allowed_(settings.concurrency) {
    headers_ = curl_slist_append(headers_, "Accept: application/json");
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
    curl_share_cleanup(share_);
    curl_slist_free_all(headers_);
    curl_slist_free_all(json_headers_);
    std::fill(settings_.api_key.begin(), settings_.api_key.end(), '\0');
}

void Http::lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Http*>(user)->share_locks_[data].lock();
}

void Http::unlock(CURL*, curl_lock_data data, void* user) { static_cast<Http*>(user)->share_locks_[data].unlock(); }

uint64_t Http::requests_sent() const {
    std::lock_guard<std::mutex> guard(slots_mutex_);
    return sent_;
}

uint64_t Http::throttled() const {
    std::lock_guard<std::mutex> guard(slots_mutex_);
    return throttled_;
}

bool Http::take_slot(bool wait) {
    std::unique_lock<std::mutex> lock(slots_mutex_);
    if (in_flight_ >= allowed_) {
        if (!wait) return false;
        // Woken when a slot frees, or after a while to let the caller look at cancellation.
        slot_free_.wait_for(lock, std::chrono::milliseconds(100));
        if (in_flight_ >= allowed_) return false;
    }
    ++in_flight_;
    ++sent_;
    return true;
}

void Http::give_slot(bool throttled) {
    {
        std::lock_guard<std::mutex> guard(slots_mutex_);
        --in_flight_;
        if (throttled) {
            // A 429 says the key had one connection too many: one slot fewer. Halving would cost
            // far more than the 429 itself when it comes from a counting race at the limit (the
            // server has not yet counted an answered request out when the next one arrives),
            // and other tools on the key are stepped down to just as quickly, since each of
            // their refusals takes one more slot away.
            ++throttled_;
            allowed_ = std::max<uint32_t>(1, allowed_ - 1);
            calm_answers_ = 0;
        } else if (allowed_ < settings_.concurrency && ++calm_answers_ >= allowed_) {
            ++allowed_;
            calm_answers_ = 0;
        }
    }
    slot_free_.notify_all();
}

CURL* Http::make_handle(const HttpRequest& request, HttpResult& result, char* error_buffer) {
    CURL* curl = curl_easy_init();
    if (!curl) return nullptr;
    const std::string url = settings_.base_url + request.path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
#endif
    curl_easy_setopt(curl, CURLOPT_SHARE, share_);
    curl_easy_setopt(curl, CURLOPT_MAXCONNECTS, static_cast<long>(kMaxConnections));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!settings_.ca_bundle.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.ca_bundle.c_str());
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(settings_.timeout_seconds));
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "segpush-mailchimp/0.1");
    // HTTP Basic with the key as the password, as Mailchimp documents; curl copies both.
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(curl, CURLOPT_USERNAME, "segpush");
    curl_easy_setopt(curl, CURLOPT_PASSWORD, settings_.api_key.c_str());
    const bool with_body = !request.body.empty();
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, with_body ? json_headers_ : headers_);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &write_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
    if (with_body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    }
    if (std::strcmp(request.method, "GET") != 0 && std::strcmp(request.method, "POST") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method);
    } else if (!with_body && std::strcmp(request.method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    }
    return curl;
}

bool Http::send(const HttpRequest& request, HttpResult& result, const std::function<bool()>& cancelled) {
    std::vector<HttpResult> results;
    const bool done = send_all({request}, results, cancelled);
    result = std::move(results.front());
    return done;
}

bool Http::send_all(const std::vector<HttpRequest>& requests, std::vector<HttpResult>& results,
                    const std::function<bool()>& cancelled) {
    results.assign(requests.size(), HttpResult{});
    std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)> multi(curl_multi_init(), &curl_multi_cleanup);
    if (!multi) throw std::bad_alloc();
    // Requests not yet started or waiting to be retried, with the earliest time they may go.
    std::vector<std::pair<size_t, Clock::time_point>> waiting;
    for (size_t i = 0; i < requests.size(); ++i) waiting.emplace_back(i, Clock::time_point{});
    std::vector<std::unique_ptr<Flight>> flying;
    bool stopped = false;
    auto land = [&](std::unique_ptr<Flight>& flight, bool throttled) {
        curl_multi_remove_handle(multi.get(), flight->handle);
        curl_easy_cleanup(flight->handle);
        give_slot(throttled);
    };
    while (!waiting.empty() || !flying.empty()) {
        if (cancelled && cancelled()) {
            stopped = true;
            break;
        }
        const auto now = Clock::now();
        // Start what may go, as far as the connection's slots allow; wait for a slot only when
        // nothing of ours is in flight (then nothing else would wake us).
        for (auto it = waiting.begin(); it != waiting.end();) {
            if (it->second > now) {
                ++it;
                continue;
            }
            if (!take_slot(flying.empty())) break;
            auto flight = std::make_unique<Flight>();
            flight->index = it->first;
            HttpResult& result = results[flight->index];
            const int attempts = result.attempts;
            result = HttpResult{};
            result.attempts = attempts + 1;
            flight->handle = make_handle(requests[flight->index], result, flight->error_buffer);
            if (!flight->handle || curl_multi_add_handle(multi.get(), flight->handle) != CURLM_OK) {
                if (flight->handle) curl_easy_cleanup(flight->handle);
                give_slot();
                throw std::bad_alloc();
            }
            curl_easy_setopt(flight->handle, CURLOPT_PRIVATE, flight.get());
            flying.push_back(std::move(flight));
            it = waiting.erase(it);
        }
        if (flying.empty()) {
            // Everything left waits for its retry time (or for a slot: take_slot waited).
            Clock::time_point next = Clock::time_point::max();
            for (const auto& [index, at] : waiting) next = std::min(next, at);
            if (next != Clock::time_point::max() && next > Clock::now()) {
                std::this_thread::sleep_for(
                    std::min<Clock::duration>(next - Clock::now(), std::chrono::milliseconds(100)));
            }
            continue;
        }
        int running = 0;
        curl_multi_perform(multi.get(), &running);
        int queued = 0;
        while (CURLMsg* message = curl_multi_info_read(multi.get(), &queued)) {
            if (message->msg != CURLMSG_DONE) continue;
            Flight* raw = nullptr;
            curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
            auto found = std::find_if(flying.begin(), flying.end(), [&](const auto& f) { return f.get() == raw; });
            if (found == flying.end()) continue;
            HttpResult& result = results[raw->index];
            result.curl = message->data.result;
            if (result.curl == CURLE_OK) {
                curl_easy_getinfo(raw->handle, CURLINFO_RESPONSE_CODE, &result.status);
            } else {
                result.curl_error = raw->error_buffer[0] ? raw->error_buffer : curl_easy_strerror(result.curl);
                while (!result.curl_error.empty() &&
                       std::isspace(static_cast<unsigned char>(result.curl_error.back()))) {
                    result.curl_error.pop_back();
                }
            }
            const bool throttled = result.curl == CURLE_OK && (result.status == 429 || result.status == 403) &&
                                   transient(result);
            if (transient(result) && result.attempts < kMaxAttempts) {
                waiting.emplace_back(raw->index, Clock::now() + backoff_for(result.attempts));
            }
            land(*found, throttled);
            flying.erase(found);
        }
        if (!flying.empty()) curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
    }
    for (auto& flight : flying) {
        results[flight->index].cancelled = true;
        land(flight, false);
    }
    for (const auto& [index, at] : waiting) {
        if (results[index].attempts == 0 || stopped) results[index].cancelled = true;
    }
    return !stopped;
}

}  // namespace segpush::mailchimp
