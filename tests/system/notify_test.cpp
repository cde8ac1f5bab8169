// Notifications as a user meets them: the real segpush binary runs an export to the file plugin,
// and a webhook receiver (HTTPS on 127.0.0.1 with a certificate made for the test, given to
// segpush as ca_file) checks the HMAC signature of every notice; a command hook writes what it
// got on stdin to a file.
#include <rapidjson/document.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace segpush::test;

namespace {

const std::string kSecret = "whsec-3b9f0c1e77d2a45e";
const std::string kUrlToken = "tok-8c2e4f6a1b3d5e7f";

// tests/sandbox/webhook_receiver.py for one test; every POST it got is a line of its log.
class WebhookReceiver {
public:
    explicit WebhookReceiver(int fail_first = 0) {
        const Run made = run_shell(dir_.path().string(),
                                   "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
                                   "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -days 2 -keyout key.pem "
                                   "-out cert.pem");
        REQUIRE(made.exit_code == 0);
        const std::string port_file = dir_.file("port");
        process_ = std::make_unique<BackgroundProcess>(
            std::vector<std::string>{"/usr/bin/python3",
                                     std::string(SEGPUSH_SOURCE_DIR) + "/tests/sandbox/webhook_receiver.py", "--cert",
                                     dir_.file("cert.pem"), "--key", dir_.file("key.pem"), "--port-file", port_file,
                                     "--log", dir_.file("received.jsonl"), "--secret", kSecret, "--fail-first",
                                     std::to_string(fail_first)},
            dir_.file("receiver.out"), dir_.file("receiver.err"));
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!std::filesystem::exists(port_file)) {
            INFO(read_file(dir_.file("receiver.err")));
            REQUIRE(process_->running());
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        port_ = std::stoi(read_file(port_file));
    }
    ~WebhookReceiver() {
        process_->signal(SIGTERM);
        process_->wait();
    }

    std::string url() const {
        return "https://127.0.0.1:" + std::to_string(port_) + "/hooks/segpush?token=" + kUrlToken;
    }
    std::string ca_file() const { return dir_.file("cert.pem"); }

    // The requests received so far, oldest first.
    std::vector<rapidjson::Document> received() const {
        std::vector<rapidjson::Document> requests;
        std::istringstream lines(read_file(dir_.file("received.jsonl")));
        for (std::string line; std::getline(lines, line);) {
            requests.emplace_back();
            requests.back().Parse(line.c_str());
            REQUIRE(requests.back().IsObject());
        }
        return requests;
    }

private:
    TempDir dir_;
    std::unique_ptr<BackgroundProcess> process_;
    int port_ = 0;
};

// An export of vip.csv to the file plugin, writing out/blocker/vip.csv: it fails (permanently)
// while out/blocker is a file and succeeds once it is a folder.
struct FileExport {
    TempDir dir;

    explicit FileExport(const std::string& notify_block) {
        dir.write("out/blocker", "a file where the export needs a folder\n");
        write_segment("Email,First\nann@example.com,Ann\nbob@example.com,Bob\n");
        dir.write("segpush.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR + "\nstate: state/segpush.db\n" +
                                      notify_block +
                                      "segments:\n"
                                      "  vip: { path: vip.csv }\n"
                                      "connections:\n"
                                      "  files:\n"
                                      "    plugin: file\n"
                                      "    privacy_consent: true\n"
                                      "    settings: { directory: out }\n"
                                      "exports:\n"
                                      "  vip_files:\n"
                                      "    connection: files\n"
                                      "    segments: [vip]\n"
                                      "    settings: { path: blocker/vip.csv }\n"
                                      "    mapping: { email: Email, first_name: First }\n");
    }
    void write_segment(const std::string& csv) const { dir.write("vip.csv", csv); }
    void unblock() const {
        std::filesystem::remove(dir.file("out/blocker"));
        std::filesystem::create_directories(dir.file("out/blocker"));
    }
    Run export_run() const {
        return run_shell(dir.path().string(), "env SEGPUSH_NOTIFY_SECRET=" + shell_quote(kSecret) + " " +
                                                  SEGPUSH_BINARY + " --config segpush.yaml export run vip_files");
    }
};

std::string webhook_block(const WebhookReceiver& receiver, const std::string& more = "") {
    return "notify:\n" + more +
           "  webhook:\n"
           "    url: \"" +
           receiver.url() +
           "\"\n"
           "    secret: ${env:SEGPUSH_NOTIFY_SECRET}\n"
           "    ca_file: " +
           receiver.ca_file() + "\n";
}

rapidjson::Document body_of(const rapidjson::Document& request) {
    rapidjson::Document body;
    body.Parse(request["body"].GetString());
    REQUIRE(body.IsObject());
    return body;
}

void check_secrets_kept(const Run& run) {
    for (const std::string& text : {run.out, run.err}) {
        CHECK(text.find(kSecret) == std::string::npos);
        CHECK(text.find(kUrlToken) == std::string::npos);
    }
}

}  // namespace

TEST_CASE("notify: a failing export sends a signed failure notice, and its first success a recovery notice",
          "[notify]") {
    WebhookReceiver receiver;
    FileExport exp(webhook_block(receiver));

    const Run failed = exp.export_run();
    INFO(failed.out << failed.err);
    CHECK(failed.exit_code == 1);
    check_secrets_kept(failed);
    auto received = receiver.received();
    REQUIRE(received.size() == 1);  // `export run` waited for the delivery before it exited
    CHECK(received[0]["signature_ok"].GetBool());
    CHECK(std::string(received[0]["path"].GetString()) == "/hooks/segpush?token=" + kUrlToken);
    CHECK(std::string(received[0]["headers"]["x-segpush-event"].GetString()) == "failure");
    CHECK(std::string(received[0]["headers"]["content-type"].GetString()) == "application/json");
    const auto failure = body_of(received[0]);
    CHECK(std::string(failure["event"].GetString()) == "failure");
    CHECK(std::string(failure["export"].GetString()) == "vip_files");
    CHECK(std::string(failure["status"].GetString()) == "failed_permanently");
    CHECK(failure["run_id"].GetInt64() == 1);
    CHECK(std::string(failure["error"].GetString()).find("Not a directory") != std::string::npos);
    CHECK(failure["counts"]["rows_read"].GetInt64() == 2);
    CHECK(std::string(failure["text"].GetString()).find("vip_files") != std::string::npos);
    CHECK(std::string(received[0]["body"].GetString()).find(kSecret) == std::string::npos);
    CHECK(failed.err.find("notify: sent the failure notice of run #1 to webhook https://127.0.0.1:") !=
          std::string::npos);

    exp.unblock();
    const Run recovered = exp.export_run();
    INFO(recovered.out << recovered.err);
    CHECK(recovered.exit_code == 0);
    check_secrets_kept(recovered);
    received = receiver.received();
    REQUIRE(received.size() == 2);
    CHECK(received[1]["signature_ok"].GetBool());
    const auto recovery = body_of(received[1]);
    CHECK(std::string(recovery["event"].GetString()) == "recovery");
    CHECK(std::string(recovery["status"].GetString()) == "succeeded");
    CHECK(recovery["run_id"].GetInt64() == 2);
    CHECK(recovery["counts"]["accepted"].GetInt64() == 2);

    // A success after a success is nothing to tell.
    exp.write_segment("Email,First\nann@example.com,Ann\nbob@example.com,Robert\n");
    const Run again = exp.export_run();
    CHECK(again.exit_code == 0);
    CHECK(receiver.received().size() == 2);
}

TEST_CASE("notify: a run over rejected_ratio_above is notified, to the webhook and on the command hook's stdin",
          "[notify]") {
    WebhookReceiver receiver;
    TempDir hook_dir;
    const std::string hook = hook_dir.write("hook.sh", "#!/bin/sh\ncat > \"$1\"\nenv > \"$1.env\"\n");
    std::filesystem::permissions(hook, std::filesystem::perms::owner_all);
    FileExport exp(webhook_block(receiver, "  rejected_ratio_above: 0.05\n  command:\n    argv: [" + hook + ", " +
                                               hook_dir.file("stdin.json") + "]\n"));
    exp.unblock();
    // One row of four has no valid email: 25% refused.
    exp.write_segment("Email,First\nann@example.com,Ann\nnot-an-email,Nobody\nbob@example.com,Bob\n"
                      "cy@example.com,Cy\n");
    const Run run = exp.export_run();
    INFO(run.out << run.err);
    CHECK(run.exit_code == 3);  // succeeded_with_rejections
    check_secrets_kept(run);
    const auto received = receiver.received();
    REQUIRE(received.size() == 1);
    CHECK(received[0]["signature_ok"].GetBool());
    const auto notice = body_of(received[0]);
    CHECK(std::string(notice["event"].GetString()) == "threshold");
    CHECK(notice["rejected_ratio"].GetDouble() == Approx(0.25));
    CHECK(notice["counts"]["invalid"].GetInt64() == 1);

    rapidjson::Document on_stdin;
    on_stdin.Parse(read_file(hook_dir.file("stdin.json")).c_str());
    REQUIRE(on_stdin.IsObject());
    CHECK(std::string(on_stdin["event"].GetString()) == "threshold");
    CHECK(std::string(on_stdin["export"].GetString()) == "vip_files");
    CHECK(on_stdin["run_id"].GetInt64() == 1);
    // The very notice the webhook got.
    CHECK(read_file(hook_dir.file("stdin.json")) == received[0]["body"].GetString());
    CHECK(run.err.find("notify: command hook " + hook + " for the threshold notice of run #1 exited with status 0") !=
          std::string::npos);
    // The hook's environment holds what a program needs, not the secrets segpush read from its own.
    const std::string environment = read_file(hook_dir.file("stdin.json.env"));
    CHECK(environment.find("PATH=") != std::string::npos);
    CHECK(environment.find("SEGPUSH_NOTIFY_SECRET") == std::string::npos);
    CHECK(environment.find(kSecret) == std::string::npos);
}

TEST_CASE("notify: a webhook answering 503 is tried again until it takes the notice", "[notify]") {
    WebhookReceiver receiver(2);
    FileExport exp(webhook_block(receiver));
    const Run failed = exp.export_run();
    INFO(failed.out << failed.err);
    CHECK(failed.exit_code == 1);
    check_secrets_kept(failed);
    const auto received = receiver.received();
    REQUIRE(received.size() == 3);
    CHECK(received[0]["answered"].GetInt() == 503);
    CHECK(received[1]["answered"].GetInt() == 503);
    CHECK(received[2]["answered"].GetInt() == 200);
    for (const auto& request : received) CHECK(request["signature_ok"].GetBool());
    CHECK(failed.err.find("HTTP 503; trying again in 1 s") != std::string::npos);
    CHECK(failed.err.find("notify: sent the failure notice of run #1") != std::string::npos);
}

TEST_CASE("notify: a hook that hangs is killed at its timeout and a receiver that is down is given up on", "[notify]") {
    TempDir hook_dir;
    // A port nothing listens on: bind one, note it, close it.
    const Run port = run_shell(hook_dir.path().string(),
                               "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); "
                               "print(s.getsockname()[1])'");
    REQUIRE(port.exit_code == 0);
    FileExport exp("notify:\n  command: { argv: [/bin/sleep, '60'], timeout_seconds: 1 }\n  webhook:\n"
                   "    url: \"https://127.0.0.1:" +
                   port.out.substr(0, port.out.find('\n')) + "/hook?token=" + kUrlToken + "\"\n    max_attempts: 2\n");
    const auto started = std::chrono::steady_clock::now();
    const Run failed = exp.export_run();
    INFO(failed.out << failed.err);
    CHECK(failed.exit_code == 1);  // the run's own outcome, whatever became of its notices
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(25));  // watchdog: it ends
    CHECK(failed.err.find("notify: command hook /bin/sleep for the failure notice of run #1 was killed: still running "
                          "after 1 s") != std::string::npos);
    CHECK(failed.err.find("notify: could not send the failure notice of run #1 to webhook https://127.0.0.1:") !=
          std::string::npos);
    CHECK(failed.err.find("(after 2 attempts)") != std::string::npos);
    check_secrets_kept(failed);
}
