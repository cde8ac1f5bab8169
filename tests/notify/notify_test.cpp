// Notifications: which runs are notified, the notice's JSON, its signature, and how the
// `notify:` blocks are read and merged (with file:line:column for every mistake).
#include <catch2/catch.hpp>

#include <rapidjson/document.h>
#include <stdlib.h>

#include "config/loader.hpp"
#include "notify/notice.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

RunRecord run_of(RunStatus status, int64_t rows_read = 100, int64_t invalid = 0, int64_t rejected = 0) {
    RunRecord run;
    run.id = 7;
    run.export_name = "vip_export";
    run.status = status;
    run.started_at = "2026-01-31T12:00:00Z";
    run.finished_at = "2026-01-31T12:00:09Z";
    run.counts.rows_read = rows_read;
    run.counts.invalid = invalid;
    run.counts.rejected = rejected;
    run.counts.sent = rows_read - invalid;
    run.counts.accepted = rows_read - invalid - rejected;
    return run;
}

NotifyPolicy with_threshold(double ratio) {
    NotifyPolicy policy;
    policy.rejected_ratio_above = ratio;
    return policy;
}

struct Loaded {
    std::optional<Config> config;
    std::string errors;
    std::string warnings;
};

Loaded load(const std::string& yaml) {
    test::TempDir dir;
    dir.write("ca.pem", "not checked while loading\n");
    const std::string path = dir.write("segpush.yaml", yaml);
    Diagnostics diagnostics;
    Loaded loaded;
    loaded.config = load_config(path, diagnostics);
    for (const auto& item : diagnostics.items()) {
        std::string line = item.format();
        const auto at = line.find(dir.path().string());
        if (at != std::string::npos) line.replace(at, dir.path().string().size() + 1, "");
        (item.severity == Diagnostic::Severity::error ? loaded.errors : loaded.warnings) += line + "\n";
    }
    return loaded;
}

const std::string kExports = R"(segments:
  vip: { path: vip.csv }
exports:
  quiet:
    connection: ac
    segments: [vip]
    mapping: { email: Email }
  loud:
    connection: ac
    segments: [vip]
    mapping: { email: Email }
    notify:
      on_retryable_failure: true
      rejected_ratio_above: 0.2
      command: { argv: [/usr/bin/logger, -t, segpush], timeout_seconds: 5 }
  silent:
    connection: ac
    segments: [vip]
    mapping: { email: Email }
    notify: { enabled: false }
  no_webhook:
    connection: ac
    segments: [vip]
    mapping: { email: Email }
    notify: { webhook: null }
)";

}  // namespace

TEST_CASE("notify: HMAC-SHA256 of the body, as RFC 4231 gives it") {
    // RFC 4231, test case 2.
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(signature_header_value("Jefe", "what do ya want for nothing?") ==
          "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing!") !=
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("notify: the notice's JSON has every documented field") {
    RunRecord run = run_of(RunStatus::failed_permanent, 40, 2, 8);
    run.error = "starting the export: the API key was refused (HTTP 403)";
    run.report_path = "reports/vip_export-run-7-report.csv";
    const std::string json = notice_json(NotifyEvent::failure, run, "worker-1");
    rapidjson::Document notice;
    notice.Parse(json.c_str());
    REQUIRE(notice.IsObject());
    CHECK(notice["notice_version"].GetInt() == 1);
    CHECK(std::string(notice["event"].GetString()) == "failure");
    CHECK(std::string(notice["export"].GetString()) == "vip_export");
    CHECK(notice["run_id"].GetInt64() == 7);
    CHECK(std::string(notice["status"].GetString()) == "failed_permanently");
    CHECK(std::string(notice["started_at"].GetString()) == "2026-01-31T12:00:00Z");
    CHECK(std::string(notice["finished_at"].GetString()) == "2026-01-31T12:00:09Z");
    CHECK(notice["full"].GetBool() == false);
    const auto& counts = notice["counts"];
    for (const char* name :
         {"rows_read", "invalid", "duplicates", "members", "new", "changed", "unchanged", "leaving", "sent", "resumed",
          "accepted", "rejected", "removed", "suppressed", "pending", "rejected_retried", "rejected_held"}) {
        INFO(name);
        CHECK(counts.HasMember(name));
    }
    CHECK(counts.MemberCount() == 17);
    CHECK(counts["rows_read"].GetInt64() == 40);
    CHECK(counts["rejected"].GetInt64() == 8);
    CHECK(notice["rejected_ratio"].GetDouble() == Approx(0.25));
    CHECK(std::string(notice["error"].GetString()) == run.error);
    CHECK(std::string(notice["report"].GetString()) == run.report_path);
    CHECK(std::string(notice["host"].GetString()) == "worker-1");
    const std::string text = notice["text"].GetString();
    CHECK(text.find("export vip_export, run #7: failed_permanently") != std::string::npos);
    CHECK(text.find("HTTP 403") != std::string::npos);
    CHECK(notice.MemberCount() == 14);
}

TEST_CASE("notify: which runs are notified") {
    const NotifyPolicy defaults;
    const std::optional<RunRecord> none;
    SECTION("a permanent failure always, a retryable one only when asked") {
        CHECK(notice_for(defaults, run_of(RunStatus::failed_permanent), none) == NotifyEvent::failure);
        CHECK_FALSE(notice_for(defaults, run_of(RunStatus::failed_retryable), none));
        NotifyPolicy retryable;
        retryable.on_retryable_failure = true;
        CHECK(notice_for(retryable, run_of(RunStatus::failed_retryable), none) == NotifyEvent::failure);
    }
    SECTION("cancelled and dry runs are not") {
        CHECK_FALSE(notice_for(defaults, run_of(RunStatus::cancelled), run_of(RunStatus::failed_permanent)));
        RunRecord dry = run_of(RunStatus::failed_permanent);
        dry.dry_run = true;
        CHECK_FALSE(notice_for(defaults, dry, none));
        NotifyPolicy off;
        off.enabled = false;
        CHECK_FALSE(notice_for(off, run_of(RunStatus::failed_permanent), none));
    }
    SECTION("the threshold is (rejected + invalid) / rows read, strictly above") {
        CHECK(rejected_ratio(run_of(RunStatus::succeeded, 100, 3, 2).counts) == Approx(0.05));
        CHECK(rejected_ratio(run_of(RunStatus::succeeded, 0).counts) == 0);
        CHECK_FALSE(notice_for(with_threshold(0.05), run_of(RunStatus::succeeded, 100, 3, 2), none));
        CHECK(notice_for(with_threshold(0.05), run_of(RunStatus::succeeded, 100, 3, 3), none) ==
              NotifyEvent::threshold);
        CHECK_FALSE(notice_for(defaults, run_of(RunStatus::succeeded, 100, 50, 50), none));
    }
    SECTION("a recovery is the first fine run after a notified one") {
        const auto failed = run_of(RunStatus::failed_permanent);
        CHECK(notice_for(defaults, run_of(RunStatus::succeeded), failed) == NotifyEvent::recovery);
        CHECK(notice_for(with_threshold(0.05), run_of(RunStatus::succeeded),
                         run_of(RunStatus::succeeded, 100, 10, 0)) == NotifyEvent::recovery);
        CHECK_FALSE(notice_for(defaults, run_of(RunStatus::succeeded), run_of(RunStatus::succeeded)));
        CHECK_FALSE(notice_for(defaults, run_of(RunStatus::succeeded), none));
        // A retryable failure that was not notified needs no recovery notice.
        CHECK_FALSE(notice_for(defaults, run_of(RunStatus::succeeded), run_of(RunStatus::failed_retryable)));
        // Still over the threshold: not recovered yet.
        CHECK(notice_for(with_threshold(0.05), run_of(RunStatus::succeeded, 100, 10, 0), failed) ==
              NotifyEvent::threshold);
        NotifyPolicy no_recovery;
        no_recovery.on_recovery = false;
        CHECK_FALSE(notice_for(no_recovery, run_of(RunStatus::succeeded), failed));
    }
}

TEST_CASE("notify: an export's notify: replaces the keys it gives of the top-level one") {
    setenv("SEGPUSH_TEST_NOTIFY_SECRET", "notify-secret-51c0", 1);
    const Loaded loaded = load(R"(plugin_dir: plugins
notify:
  rejected_ratio_above: 0.05
  webhook:
    url: https://hooks.example.com/segpush
    secret: ${env:SEGPUSH_TEST_NOTIFY_SECRET}
    ca_file: ca.pem
    max_attempts: 3
)" + kExports);
    INFO(loaded.errors);
    REQUIRE(loaded.errors.empty());
    const Config& config = *loaded.config;
    const NotifyPolicy& quiet = config.find_export("quiet")->notify;
    CHECK(quiet.enabled);
    CHECK_FALSE(quiet.on_retryable_failure);
    CHECK(quiet.on_recovery);
    CHECK(*quiet.rejected_ratio_above == Approx(0.05));
    CHECK_FALSE(quiet.command);
    REQUIRE(quiet.webhook);
    CHECK(quiet.webhook->url == "https://hooks.example.com/segpush");
    CHECK(quiet.webhook->shown_url == "https://hooks.example.com");
    CHECK(quiet.webhook->secret == "notify-secret-51c0");
    CHECK(quiet.webhook->max_attempts == 3);
    CHECK(quiet.webhook->timeout == std::chrono::seconds(10));
    CHECK(quiet.webhook->ca_file.find("ca.pem") != std::string::npos);

    const NotifyPolicy& loud = config.find_export("loud")->notify;
    CHECK(loud.on_retryable_failure);
    CHECK(*loud.rejected_ratio_above == Approx(0.2));
    REQUIRE(loud.command);
    CHECK(loud.command->argv == std::vector<std::string>{"/usr/bin/logger", "-t", "segpush"});
    CHECK(loud.command->timeout == std::chrono::seconds(5));
    CHECK(loud.webhook);  // inherited

    CHECK_FALSE(config.find_export("silent")->notify.has_channel());
    CHECK_FALSE(config.find_export("no_webhook")->notify.webhook);
    CHECK_FALSE(config.find_export("no_webhook")->notify.has_channel());
    unsetenv("SEGPUSH_TEST_NOTIFY_SECRET");
}

TEST_CASE("notify: mistakes in notify: are reported with file, line and column") {
    SECTION("a plain-http URL") {
        const Loaded loaded = load("plugin_dir: plugins\nnotify:\n  webhook:\n    url: http://hooks.example.com/x\n");
        CHECK(loaded.errors ==
              "segpush.yaml:4:10: error: notify.webhook.url: must be an https:// URL (notices carry run summaries and "
              "are signed; plain http is refused)\n");
    }
    SECTION("a secret written inline is refused and not echoed") {
        const Loaded loaded = load("plugin_dir: plugins\nnotify:\n  webhook:\n    url: https://h.example.com/\n"
                                   "    secret: inline-secret-77aa\n");
        CHECK(
            loaded.errors.find("segpush.yaml:5:13: error: notify.webhook.secret: is a secret: give it by reference") !=
            std::string::npos);
        CHECK(loaded.errors.find("inline-secret-77aa") == std::string::npos);
    }
    SECTION("an unset secret variable, a bad ratio, an empty argv and an unknown key") {
        unsetenv("SEGPUSH_TEST_NOTIFY_UNSET");
        const Loaded loaded = load("plugin_dir: plugins\nnotify:\n  rejected_ratio_above: 5%\n  command:\n"
                                   "    argv: []\n  webhook:\n    url: https://h.example.com/\n"
                                   "    secret: ${env:SEGPUSH_TEST_NOTIFY_UNSET}\n    retries: 3\n");
        INFO(loaded.errors);
        CHECK(loaded.errors.find("segpush.yaml:3:25: error: notify.rejected_ratio_above: expected a fraction") !=
              std::string::npos);
        CHECK(loaded.errors.find("segpush.yaml:5:11: error: notify.command.argv: expected a non-empty list") !=
              std::string::npos);
        CHECK(loaded.errors.find("segpush.yaml:8:13: error: notify.webhook.secret:") != std::string::npos);
        CHECK(loaded.errors.find("SEGPUSH_TEST_NOTIFY_UNSET") != std::string::npos);
        CHECK(loaded.errors.find("segpush.yaml:9:5: error: notify.webhook.retries:") != std::string::npos);
    }
    SECTION("a missing CA file") {
        const Loaded loaded = load("plugin_dir: plugins\nnotify:\n  webhook:\n    url: https://h.example.com/\n"
                                   "    ca_file: missing.pem\n");
        CHECK(loaded.errors.find("segpush.yaml:5:14: error: notify.webhook.ca_file: CA file") != std::string::npos);
    }
    SECTION("a contributor file may not add a channel") {
        test::TempDir dir;
        dir.write("team.yaml", "exports:\n  team:\n    connection: ac\n    segments: [vip]\n"
                               "    mapping: { email: Email }\n    notify:\n      on_recovery: false\n"
                               "      command: { argv: [/bin/sh, -c, 'id'] }\n");
        const std::string path = dir.write("segpush.yaml", "plugin_dir: plugins\ninclude:\n  - { path: team.yaml, "
                                                           "editable_by: contributors }\n");
        Diagnostics diagnostics;
        const auto config = load_config(path, diagnostics);
        REQUIRE(diagnostics.items().size() == 1);
        const std::string error = diagnostics.items()[0].format();
        CHECK(error.find("team.yaml:8:16: error: exports.team.notify.command: only admins may set a notification "
                         "command") != std::string::npos);
        REQUIRE(config);
        CHECK_FALSE(config->find_export("team")->notify.on_recovery);
        CHECK_FALSE(config->find_export("team")->notify.command);
    }
}
