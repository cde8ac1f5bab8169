// Issue #3 acceptance: how the ActiveCampaign plugin (through the host, and where the host
// cannot provoke a case, through its C ABI) meets refused credentials, missing lists,
// throttling, server errors, dropped connections, refused batches, the bulk rate limit, stuck
// and failed imports, and a certificate it must not trust.
#include <segpush/plugin.h>

#include <atomic>
#include <chrono>
#include <filesystem>

#include "activecampaign/ac_support.hpp"

using namespace segpush::test;
using namespace segpush::test::ac;
using Clock = std::chrono::steady_clock;

namespace {

// `runs show` of the run in `run`'s summary.
Run show(ExportFixture& fixture, const Run& run) {
    const std::string id = run_id_of(run);
    REQUIRE_FALSE(id.empty());
    return fixture.segpush("runs show " + id);
}

// Exports `n` profiles under the sandbox faults in `faults` and checks the list ends exact.
void export_through_faults(const std::string& faults, size_t n, const std::string& status_seen) {
    ExportFixture fixture(fast_sandbox(faults));
    fixture.write_config("", kPacingAtScale20);
    const auto profiles = make_profiles(n);
    fixture.write_segment(profiles);
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    const auto stats = fixture.sandbox.get("/__sandbox/stats");
    INFO("by_status: " << [&] {
        std::string text;
        for (const auto& item : stats["by_status"].GetObject()) {
            text += std::string(item.name.GetString()) + "=" + std::to_string(item.value.GetInt64()) + " ";
        }
        return text;
    }());
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Catch::Contains("succeeded") && Catch::Contains("accepted      " + std::to_string(n)));
    require_list_equals(fixture.sandbox, profiles);
    // The faults really happened.
    CHECK(stats["by_status"].HasMember(status_seen.c_str()));
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") >= static_cast<long long>((n + 249) / 250));
    check_secret_never_printed(fixture);
}

}  // namespace

// ---- credentials, account, list, TLS ---------------------------------------------------------

TEST_CASE("errors: a refused API key (403) fails the run with credentials refused and never shows the key") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_segment(make_profiles(20));
    fixture.write_config();
    const std::string wrong_key = "wrong-key-3f9a7c1e55d2";
    std::filesystem::permissions(fixture.dir.write("wrong.key", wrong_key),
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    edit_config(fixture, "${env:AC_API_KEY}", "${file:" + fixture.dir.file("wrong.key") + "}");
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.out, Catch::Contains("failed_permanently") && Catch::Contains("credentials refused") &&
                            Catch::Contains("HTTP 403") && Catch::Contains("copy the key again"));
    const Run shown = show(fixture, run);
    INFO(shown.out << shown.err);
    CHECK_THAT(shown.out, Catch::Contains("failed_permanently") && Catch::Contains("credentials refused") &&
                              Catch::Contains("copy the key again"));
    CHECK(fixture.sandbox.route_count("GET /api/3/users/me") == 1);  // not retried
    CHECK(fixture.sandbox.members(1).empty());
    for (const auto& r : fixture.history) {
        for (const auto* text : {&r.out, &r.err}) {
            CHECK(text->find(wrong_key) == std::string::npos);
            CHECK(text->find(fixture.sandbox.api_key()) == std::string::npos);
        }
    }
    // Nor in the state file or reports.
    const Run grep = run_shell(fixture.dir.path().string(), "grep -rl " + shell_quote(wrong_key) + " state || true");
    CHECK(grep.out.empty());
}

TEST_CASE("errors: a lapsed account (402) fails the run with a message about billing") {
    Sandbox::Options options = fast_sandbox();
    options.lapsed_key = "lapsed-key-77c0ab31";
    ExportFixture fixture(options);
    fixture.write_segment(make_profiles(20));
    fixture.write_config();
    std::filesystem::permissions(fixture.dir.write("lapsed.key", options.lapsed_key),
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    edit_config(fixture, "${env:AC_API_KEY}", "${file:" + fixture.dir.file("lapsed.key") + "}");
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.out, Catch::Contains("failed_permanently") && Catch::Contains("credentials refused") &&
                            Catch::Contains("HTTP 402") && Catch::Contains("settle billing"));
    const Run shown = show(fixture, run);
    CHECK_THAT(shown.out, Catch::Contains("HTTP 402"));
    CHECK(fixture.sandbox.members(1).empty());
    for (const auto& r : fixture.history) {
        CHECK(r.out.find(options.lapsed_key) == std::string::npos);
        CHECK(r.err.find(options.lapsed_key) == std::string::npos);
    }
}

TEST_CASE("errors: a list that does not exist (404) is a configuration error naming the list id") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_segment(make_profiles(20));
    fixture.write_config();
    edit_config(fixture, "list_id: 1 }", "list_id: 7 }");
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.out, Catch::Contains("failed_permanently") && Catch::Contains("configuration refused") &&
                            Catch::Contains("no list with id 7"));
    const Run shown = show(fixture, run);
    CHECK_THAT(shown.out, Catch::Contains("no list with id 7"));
    CHECK(fixture.sandbox.route_count("GET /api/3/lists/{id}") == 1);  // not retried
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") == 0);
}

TEST_CASE("errors: a certificate from an untrusted CA is a clear TLS error naming the host and ca_bundle") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_segment(make_profiles(20));
    fixture.write_config();
    // Another self-signed certificate, for the same names: right names, wrong issuer.
    const Run made = run_shell(fixture.dir.path().string(),
                               "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
                               "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -days 2 -keyout other-key.pem "
                               "-out other-ca.pem 2>&1");
    REQUIRE(made.exit_code == 0);
    edit_config(fixture, fixture.sandbox.ca_file(), fixture.dir.file("other-ca.pem"));
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    CHECK((run.exit_code == 1 || run.exit_code == 2));
    const std::string all = run.out + run.err;
    CHECK_THAT(all, Catch::Contains("cannot verify the TLS certificate of " + fixture.sandbox.host()) &&
                        Catch::Contains("ca_bundle"));
    CHECK(fixture.sandbox.total_requests() == 0);  // no request got past the handshake
}

// ---- throttling, server errors, dropped connections ------------------------------------------

TEST_CASE("errors: a 429 storm with Retry-After is waited out and the list ends exact") {
    // A short storm: it lands on the first requests (the connection check), where the host's own
    // backoff grows with every refusal, so a long one only makes the test slow.
    ExportFixture fixture(fast_sandbox(R"("storm_429": 3, "retry_after_seconds": 2)"));
    fixture.write_config("", kPacingAtScale20);
    const auto profiles = make_profiles(600);
    fixture.write_segment(profiles);
    const auto started = Clock::now();
    const Run run = fixture.segpush("export run vip_export");
    const auto seconds = std::chrono::duration<double>(Clock::now() - started).count();
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    require_list_equals(fixture.sandbox, profiles);
    const auto stats = fixture.sandbox.get("/__sandbox/stats");
    CHECK(stats["by_status"]["429"].GetInt64() == 3);
    // The first 429 says "Retry-After: 2": nothing succeeds before those 2 seconds have passed.
    CHECK(seconds >= 2.0);
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") == 3);  // no batch sent twice
}

TEST_CASE("errors: 503 answers with Retry-After are retried and the list ends exact") {
    export_through_faults(R"("error_rates": {"503": 0.25}, "retry_after_seconds": 1, "seed": 11)", 1000, "503");
}

TEST_CASE("errors: bursts of 500, 502 and 504 are retried and the list ends exact") {
    export_through_faults(R"("error_rates": {"500": 0.1, "502": 0.1, "504": 0.05}, "seed": 5)", 1000, "500");
}

TEST_CASE("errors: dropped connections are retried and the list ends exact") {
    export_through_faults(R"("drop_rate": 0.15, "seed": 3)", 1000, "0");
}

// ---- imports that do not finish ---------------------------------------------------------------

TEST_CASE(
    "errors: a stuck import is left to the next run after import_poll_budget_seconds, which makes the list exact") {
    ExportFixture fixture(fast_sandbox(R"("stuck_imports": true)"));
    fixture.write_config("", kPacingAtScale20 + "      import_poll_budget_seconds: 2\n");
    const auto profiles = make_profiles(600);
    fixture.write_segment(profiles);
    const auto started = Clock::now();
    const Run stuck = fixture.segpush("export run vip_export");
    const auto seconds = std::chrono::duration<double>(Clock::now() - started).count();
    INFO(stuck.out << stuck.err);
    // Nothing is confirmed: the 600 stay to be sent again, and the run says so.
    CHECK(stuck.exit_code == 1);
    CHECK_THAT(stuck.out, Catch::Contains("failed_will_retry") && Catch::Contains("sent          600") &&
                              Catch::Contains("accepted      0") &&
                              Catch::Contains("600 records were not confirmed by the destination; the next run sends "
                                              "them again"));
    CHECK_THAT(stuck.err, Catch::Contains("600 contacts were still being imported by ActiveCampaign when the wait ran "
                                          "out; they are sent again by the next run"));
    CHECK(seconds < 20);                        // the 2 s poll budget bounds the wait
    CHECK(fixture.sandbox.members(1).empty());  // nothing applied yet

    fixture.sandbox.configure(R"({"stuck_imports": false})");
    const Run again = fixture.segpush("export run vip_export");
    INFO(again.out << again.err);
    REQUIRE(again.exit_code == 0);
    CHECK_THAT(again.out,
               Catch::Contains("succeeded") && Catch::Contains("600 new") && Catch::Contains("accepted      600"));
    require_list_equals(fixture.sandbox, profiles);
}

TEST_CASE("errors: a failed import is resubmitted once and the list ends exact") {
    ExportFixture fixture(fast_sandbox(R"("fail_next_imports": 1)"));
    fixture.write_config("", kPacingAtScale20);
    const auto profiles = make_profiles(600);
    fixture.write_segment(profiles);
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Catch::Contains("accepted      600") && Catch::Contains("rejected      0"));
    require_list_equals(fixture.sandbox, profiles);
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") == 3 + 1);  // one resubmission
    const auto imports = fixture.sandbox.get("/__sandbox/imports");
    int failed = 0, completed = 0;
    for (const auto& item : imports.GetArray()) {
        const std::string status = item["status"].GetString();
        failed += status == "failed";
        completed += status == "completed";
    }
    CHECK(failed == 1);
    CHECK(completed == 3);
}
