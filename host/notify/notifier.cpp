#include "notify/notifier.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string_view>

#include "config/model.hpp"
#include "log/log.hpp"
#include "secrets/redactor.hpp"
#include "state/run_history.hpp"

extern char** environ;

namespace segpush {

namespace {

// The environment a command hook runs with: what a program needs to find its tools and speak
// the locale, never the rest of segpush's, which holds the secrets ${env:} references read
// (API keys, the webhook's secret) and a hook has no use for: it gets the notice on stdin.
std::vector<std::string> hook_environment() {
    std::vector<std::string> kept;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string_view text(*entry);
        const std::string_view name = text.substr(0, text.find('='));
        const bool wanted = name == "PATH" || name == "HOME" || name == "USER" || name == "LOGNAME" || name == "LANG" ||
                            name == "LANGUAGE" || name == "TZ" || name == "TMPDIR" || name.rfind("LC_", 0) == 0;
        if (wanted) kept.emplace_back(text);
    }
    return kept;
}

std::string this_hostname() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "";
    return name;
}

size_t discard_body(char*, size_t size, size_t count, void*) { return size * count; }

int stop_when_abandoned(void* abandon, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<std::atomic<bool>*>(abandon)->load() ? 1 : 0;
}

struct PostResult {
    CURLcode code = CURLE_OK;
    long http_status = 0;
    std::string error;
};

// Errors where another try cannot help: the receiver's certificate or the URL is wrong.
bool worth_retrying(CURLcode code) {
    switch (code) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_ABORTED_BY_CALLBACK: return false;
        default: return true;
    }
}

PostResult post_once(const Webhook& hook, const std::string& body, NotifyEvent event, std::atomic<bool>& abandon) {
    PostResult result;
    CURL* curl = curl_easy_init();
    if (!curl) {
        result.code = CURLE_FAILED_INIT;
        result.error = "libcurl could not start a request";
        return result;
    }
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "User-Agent: segpush/" SEGPUSH_VERSION);
    headers = curl_slist_append(headers, ("X-Segpush-Event: " + to_string(event)).c_str());
    if (!hook.secret.empty()) {
        headers = curl_slist_append(headers,
                                    ("X-Segpush-Signature: " + signature_header_value(hook.secret, body)).c_str());
    }
    char error[CURL_ERROR_SIZE] = {};
    const long timeout_ms = static_cast<long>(std::chrono::milliseconds(hook.timeout).count());
    curl_easy_setopt(curl, CURLOPT_URL, hook.url.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms, 10000L));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    // A redirect could take the signed body elsewhere, and over plain HTTP.
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
#else
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!hook.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, hook.ca_file.c_str());
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, stop_when_abandoned);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &abandon);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    result.code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.http_status);
    if (result.code != CURLE_OK) result.error = error[0] ? error : curl_easy_strerror(result.code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return result;
}

std::string exit_text(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "was ended by signal " + std::to_string(WTERMSIG(status));
    return "ended with wait status " + std::to_string(status);
}

}  // namespace

Notifier& Notifier::process() {
    static Notifier notifier;
    return notifier;
}

Notifier::~Notifier() { finish(std::chrono::milliseconds(0)); }

void Notifier::submit(const NotifyPolicy& policy, NotifyEvent event, const RunRecord& run) {
    static const std::string hostname = this_hostname();
    // Scrubbed before it is signed: what leaves the process never holds a known secret.
    const std::string body = Redactor::instance().scrub(notice_json(event, run, hostname));
    std::lock_guard<std::mutex> lock(mutex_);
    if (!worker_.joinable()) {
        stop_ = false;
        abandon_ = false;
        worker_ = std::thread([this] { work(); });
    }
    if (policy.command) queue_.push_back({Delivery::Channel::command, policy, event, run, body});
    if (policy.webhook) queue_.push_back({Delivery::Channel::webhook, policy, event, run, body});
    while (queue_.size() > kMaxQueued) {
        const Delivery& dropped = queue_.front();
        log_line(LogLevel::warn, "notify: too many notices waiting; dropped the " + to_string(dropped.event) +
                                     " notice of export " + dropped.run.export_name + " run #" +
                                     std::to_string(dropped.run.id));
        queue_.pop_front();
    }
    changed_.notify_all();
}

void Notifier::finish(std::chrono::milliseconds bound) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!worker_.joinable()) return;
    const bool done = changed_.wait_for(lock, bound, [this] { return queue_.empty() && !busy_; });
    if (!done) {
        const size_t left = queue_.size() + (busy_ ? 1 : 0);
        log_line(LogLevel::warn, "notify: " + std::to_string(left) + " notice deliver" + (left == 1 ? "y" : "ies") +
                                     " not finished after " + std::to_string(bound.count() / 1000) +
                                     " s; given up so that segpush can exit");
        queue_.clear();
        abandon_ = true;
    }
    stop_ = true;
    changed_.notify_all();
    lock.unlock();
    worker_.join();
    lock.lock();
    worker_ = std::thread();
    abandon_ = false;
    stop_ = false;
}

void Notifier::work() {
    // A command hook that exits without reading its stdin makes the write fail with EPIPE;
    // the signal that comes with it is kept off this thread (the process must not die of it).
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
        changed_.wait(lock, [this] { return !queue_.empty() || stop_; });
        if (queue_.empty()) return;
        Delivery delivery = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        lock.unlock();
        deliver(delivery);
        lock.lock();
        busy_ = false;
        changed_.notify_all();
    }
}

void Notifier::deliver(const Delivery& delivery) {
    const LogRunScope scope(LogRunScope::Context{delivery.run.export_name, delivery.run.id});
    try {
        if (delivery.channel == Delivery::Channel::command) {
            run_command(delivery);
        } else {
            post_webhook(delivery);
        }
    } catch (const std::exception& error) {
        log_line(LogLevel::error,
                 "notify: delivering the " + to_string(delivery.event) + " notice failed: " + error.what());
    }
}

bool Notifier::pause(std::chrono::milliseconds duration) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, duration, [this] { return abandon_.load(); });
    return !abandon_;
}

void Notifier::post_webhook(const Delivery& delivery) {
    const Webhook& hook = *delivery.policy.webhook;
    const std::string what = to_string(delivery.event) + " notice of run #" + std::to_string(delivery.run.id) +
                             " to webhook " + hook.shown_url;
    for (int attempt = 1;; ++attempt) {
        const PostResult result = post_once(hook, delivery.body, delivery.event, abandon_);
        if (result.code == CURLE_OK && result.http_status >= 200 && result.http_status < 300) {
            log_line(LogLevel::info, "notify: sent the " + what + " (HTTP " + std::to_string(result.http_status) + ")");
            return;
        }
        if (abandon_) return;  // finish() has logged it
        const std::string problem = result.code != CURLE_OK ? result.error
                                                            : "HTTP " + std::to_string(result.http_status);
        const bool retry = result.code != CURLE_OK ? worth_retrying(result.code)
                                                   : result.http_status == 429 || result.http_status >= 500;
        if (!retry || attempt >= hook.max_attempts) {
            log_line(LogLevel::error, "notify: could not send the " + what + ": " + problem + " (after " +
                                          std::to_string(attempt) + " attempt" + (attempt == 1 ? "" : "s") + ")");
            return;
        }
        const auto wait = std::chrono::milliseconds(std::min(1000LL << (attempt - 1), 30000LL));
        log_line(LogLevel::warn, "notify: the " + what + " failed: " + problem + "; trying again in " +
                                     std::to_string(wait.count() / 1000) + " s");
        if (!pause(wait)) return;
    }
}

void Notifier::run_command(const Delivery& delivery) {
    const CommandHook& hook = *delivery.policy.command;
    const std::string what = "command hook " + hook.argv.front() + " for the " + to_string(delivery.event) +
                             " notice of run #" + std::to_string(delivery.run.id);
    int stdin_pipe[2];
    if (pipe2(stdin_pipe, O_CLOEXEC) != 0) {
        log_line(LogLevel::error, "notify: " + what + " not started: pipe: " + std::strerror(errno));
        return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, stdin_pipe[0], STDIN_FILENO);
    // Its output would interleave with segpush's log lines (and break JSON logs).
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    // Nothing else of segpush's: its sockets (the metrics endpoint's listener) would stay open
    // in whatever the hook leaves running, and hold the port past a restart.
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // Its own process group, so a timeout ends whatever it started too; default signal
    // handling and an empty mask whatever segpush (or this thread) has set.
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t signals;
    sigemptyset(&signals);
    posix_spawnattr_setsigmask(&attributes, &signals);
    for (int number : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&signals, number);
    posix_spawnattr_setsigdefault(&attributes, &signals);
    std::vector<char*> argv;
    for (const auto& word : hook.argv) argv.push_back(const_cast<char*>(word.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const std::vector<std::string> environment = hook_environment();
    std::vector<char*> envp;
    for (const auto& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
    const int spawned = posix_spawnp(&pid, argv[0], &actions, &attributes, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    close(stdin_pipe[0]);
    if (spawned != 0) {
        close(stdin_pipe[1]);
        log_line(LogLevel::error, "notify: " + what + " could not start: " + std::strerror(spawned));
        return;
    }
    const auto deadline = std::chrono::steady_clock::now() + hook.timeout;
    auto out_of_time = [&] { return abandon_ || std::chrono::steady_clock::now() >= deadline; };
    // Written without blocking, so a hook that never reads still meets its timeout.
    fcntl(stdin_pipe[1], F_SETFL, fcntl(stdin_pipe[1], F_GETFL) | O_NONBLOCK);
    const std::string& body = delivery.body;
    size_t written = 0;
    while (written < body.size() && !out_of_time()) {
        const ssize_t n = write(stdin_pipe[1], body.data() + written, body.size() - written);
        if (n > 0) {
            written += static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            pollfd ready{stdin_pipe[1], POLLOUT, 0};
            poll(&ready, 1, 50);
        } else {
            break;  // EPIPE: it does not read its input, which is its choice
        }
    }
    close(stdin_pipe[1]);
    int status = 0;
    bool killed = false;
    for (;;) {
        const pid_t ended = waitpid(pid, &status, WNOHANG);
        if (ended == pid || (ended < 0 && errno != EINTR)) break;
        if (out_of_time()) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            killed = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (killed) {
        log_line(LogLevel::error, "notify: " + what + " was killed: still running after " +
                                      std::to_string(hook.timeout.count()) + " s (notify.command.timeout_seconds)");
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        log_line(LogLevel::info, "notify: " + what + " " + exit_text(status));
    } else {
        log_line(LogLevel::error, "notify: " + what + " " + exit_text(status));
    }
}

void notify_run_finished(const ExportConfig& export_config, RunHistory& history, int64_t run_id) noexcept {
    try {
        if (!export_config.notify.has_channel() || run_id <= 0) return;
        const auto run = history.get_run(run_id);
        if (!run) return;
        std::optional<RunRecord> previous;
        for (auto& earlier : history.list_runs(export_config.name, 50)) {
            if (earlier.id >= run_id || earlier.dry_run || earlier.status == RunStatus::running ||
                earlier.status == RunStatus::cancelled) {
                continue;
            }
            previous = std::move(earlier);
            break;
        }
        if (const auto event = notice_for(export_config.notify, *run, previous)) {
            Notifier::process().submit(export_config.notify, *event, *run);
        }
    } catch (const std::exception& error) {
        log_line(LogLevel::error, "notify: export " + export_config.name + ": no notice for run #" +
                                      std::to_string(run_id) + ": " + error.what());
    }
}

}  // namespace segpush
