// The export engine end to end: the real segpush binary, the real ActiveCampaign plugin, and
// the sandbox on 127.0.0.1 standing in for ActiveCampaign.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "support/export_fixture.hpp"

using namespace segpush::test;

namespace {

// The sandbox's limits scaled up 20x (same ratios) so tests do not wait on the real 5 rps.
Sandbox::Options fast_sandbox() {
    Sandbox::Options options;
    options.config_json = R"({"rate_scale": 20})";
    return options;
}

void require_list_equals(Sandbox& sandbox, const std::vector<Profile>& profiles) {
    const auto members = sandbox.members(1);
    size_t subscribed = 0;
    for (const auto& [email, member] : members) subscribed += member.status == "subscribed";
    CHECK(subscribed == profiles.size());
    for (const auto& profile : profiles) {
        auto it = members.find(profile.email);
        REQUIRE(it != members.end());
        CHECK(it->second.status == "subscribed");
        CHECK(it->second.first_name == profile.first_name);
        CHECK(it->second.last_name == profile.last_name);
        CHECK(it->second.phone == profile.phone);
    }
}

void check_secret_never_printed(const ExportFixture& fixture) {
    for (const auto& run : fixture.history) {
        CHECK(run.out.find(fixture.sandbox.api_key()) == std::string::npos);
        CHECK(run.err.find(fixture.sandbox.api_key()) == std::string::npos);
    }
}

}  // namespace

TEST_CASE("export: a segment exported twice sends nothing the second time") {
    ExportFixture fixture(fast_sandbox());
    const auto profiles = make_profiles(600);
    fixture.write_segment(profiles);
    fixture.write_config("", kPacingAtScale20);

    const Run first = fixture.segpush("export run vip_export");
    INFO(first.out << first.err);
    REQUIRE(first.exit_code == 0);
    CHECK_THAT(first.out, Catch::Contains("600 new, 0 changed, 0 unchanged"));
    CHECK_THAT(first.out, Catch::Contains("accepted      600"));
    require_list_equals(fixture.sandbox, profiles);
    CHECK(fixture.records_sent() == 600);
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") == 3);  // ceil(600 / 250)

    fixture.clear_request_log();
    const long long requests_before = fixture.sandbox.total_requests();
    const Run second = fixture.segpush("export run vip_export");
    INFO(second.out << second.err);
    REQUIRE(second.exit_code == 0);
    CHECK_THAT(second.out, Catch::Contains("0 new, 0 changed, 600 unchanged"));
    CHECK(fixture.sandbox.total_requests() == requests_before);  // the destination is not even contacted
    check_secret_never_printed(fixture);
}

TEST_CASE("export: a first export sends while its segment is still being read") {
    ExportFixture fixture(fast_sandbox());
    const auto profiles = make_profiles(2000);
    std::string config = fixture.config_text("", kPacingAtScale20);
    const std::string segment_line = "vip: { path: vip.csv }";
    config.replace(config.find(segment_line), segment_line.size(), "vip: { path: vip.csv, fifo_timeout_seconds: 60 }");
    fixture.dir.write("segpush.yaml", config);
    // The segment is a FIFO the test writes into: the rest is written only once the
    // destination has received imports from the first rows, which the run can only have sent
    // while the file was still open. segpush reads rows in chunks of 1,024, so the first
    // 1,500 rows make one chunk (four imports of 250) and the start of the next.
    const std::string segment = fixture.dir.file("vip.csv");
    REQUIRE(mkfifo(segment.c_str(), 0600) == 0);
    BackgroundProcess run(fixture.segpush_argv("export run vip_export"), fixture.dir.file("run.out"),
                          fixture.dir.file("run.err"), fixture.env());
    std::ofstream pipe(segment);  // opens once segpush opens the other end
    pipe << to_csv({profiles.begin(), profiles.begin() + 1500}) << std::flush;
    for (int i = 0; i < 200 && fixture.sandbox.route_count("POST /api/3/import/bulk_import") < 4; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") == 4);
    const std::string rest = to_csv({profiles.begin() + 1500, profiles.end()});
    pipe << rest.substr(rest.find('\n') + 1);  // without the header
    pipe.close();
    REQUIRE(run.wait() == 0);
    const std::string out = read_file(fixture.dir.file("run.out"));
    INFO(out << read_file(fixture.dir.file("run.err")));
    CHECK_THAT(out, Catch::Contains("members       2000: 2000 new") && Catch::Contains("accepted      2000"));
    require_list_equals(fixture.sandbox, profiles);
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") == 8);
}

TEST_CASE("export: a first export without a valid member contacts nobody") {
    ExportFixture fixture(fast_sandbox());
    fixture.dir.write("vip.csv", "Email,FirstName,LastName,Phone\nnot-an-email,Ada,,\n,Bob,,\n");
    fixture.write_config("", kPacingAtScale20);
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 3);  // succeeded_with_rejections: every row refused
    CHECK_THAT(run.out, Catch::Contains("members       0: 0 new"));
    CHECK(fixture.sandbox.total_requests() == 0);
}

TEST_CASE("export: changing 10 members sends exactly those 10, --full sends everyone") {
    ExportFixture fixture(fast_sandbox());
    auto profiles = make_profiles(400);
    fixture.write_segment(profiles);
    fixture.write_config("", kPacingAtScale20);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);

    for (size_t i = 0; i < 10; ++i) profiles[i * 37].last_name = "Changed" + std::to_string(i);
    fixture.write_segment(profiles);
    fixture.clear_request_log();
    const Run changed = fixture.segpush("export run vip_export");
    INFO(changed.out << changed.err);
    REQUIRE(changed.exit_code == 0);
    CHECK_THAT(changed.out, Catch::Contains("0 new, 10 changed, 390 unchanged"));
    CHECK(fixture.records_sent() == 10);
    require_list_equals(fixture.sandbox, profiles);

    fixture.clear_request_log();
    const Run full = fixture.segpush("export run vip_export --full");
    INFO(full.out << full.err);
    REQUIRE(full.exit_code == 0);
    CHECK(fixture.records_sent() == 400);
    require_list_equals(fixture.sandbox, profiles);
}

TEST_CASE("export: members who left are unsubscribed only with on_leave: unsubscribe") {
    ExportFixture fixture(fast_sandbox());
    const auto profiles = make_profiles(300);
    fixture.write_segment(profiles);
    fixture.write_config("", kPacingAtScale20);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);

    const std::vector<Profile> staying(profiles.begin(), profiles.begin() + 295);
    fixture.write_segment(staying);
    const Run kept = fixture.segpush("export run vip_export");
    INFO(kept.out << kept.err);
    REQUIRE(kept.exit_code == 0);
    CHECK_THAT(kept.out, Catch::Contains("leaving       5 (kept: on_leave is keep)"));
    for (const auto& [email, member] : fixture.sandbox.members(1)) CHECK(member.status == "subscribed");

    fixture.write_config("    on_leave: unsubscribe\n", kPacingAtScale20);
    const Run removed = fixture.segpush("export run vip_export");
    INFO(removed.out << removed.err);
    REQUIRE(removed.exit_code == 0);
    CHECK_THAT(removed.out, Catch::Contains("removed 5"));
    const auto members = fixture.sandbox.members(1);
    for (size_t i = 0; i < profiles.size(); ++i) {
        INFO(profiles[i].email);
        CHECK(members.at(profiles[i].email).status == (i < 295 ? "subscribed" : "unsubscribed"));
    }
    // Once unsubscribed they are not "leaving" again.
    const Run again = fixture.segpush("export run vip_export");
    CHECK_THAT(again.out, Catch::Contains("leaving       0"));
}

TEST_CASE("export: --dry-run counts what would be sent and contacts nobody") {
    ExportFixture fixture(fast_sandbox());
    auto profiles = make_profiles(50);
    fixture.write_segment(profiles);
    fixture.write_config("", kPacingAtScale20);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);
    profiles[3].first_name = "Renamed";
    auto more = make_profiles(7, 1000);
    profiles.insert(profiles.end(), more.begin(), more.end());
    fixture.write_segment(profiles);
    const long long requests_before = fixture.sandbox.total_requests();

    const Run dry = fixture.segpush("export run vip_export --dry-run");
    INFO(dry.out << dry.err);
    REQUIRE(dry.exit_code == 0);
    CHECK_THAT(dry.out, Catch::Contains("nothing was sent") && Catch::Contains("7 new, 1 changed, 49 unchanged") &&
                            Catch::Contains("would send    8 records"));
    CHECK(fixture.sandbox.total_requests() == requests_before);
    // A dry run changes nothing: the real run still finds the 8.
    const Run real = fixture.segpush("export run vip_export");
    CHECK_THAT(real.out, Catch::Contains("7 new, 1 changed, 49 unchanged"));
}

TEST_CASE("export: bad rows are reported with file, line and reason, duplicates collapse, the first wins") {
    ExportFixture fixture(fast_sandbox());
    fixture.dir.write("vip.csv", "Email,FirstName,LastName,Phone\n"
                                 "ada@example.com,Ada,Lovelace,\n"
                                 "not-an-email,Bad,Row,\n"
                                 "ADA@Example.com,Second,Ada,\n"
                                 "\"grace@example.com\",\"Grace \",\" Hopper\",+1-555-0100\n"
                                 "short,row\n"
                                 ",Nobody,,\n");
    fixture.write_config("", kPacingAtScale20);
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 3);  // succeeded_with_rejections
    CHECK_THAT(run.out, Catch::Contains("rows read     6 (3 invalid, refused before sending; 1 duplicate collapsed"));
    const auto members = fixture.sandbox.members(1);
    REQUIRE(members.size() == 2);
    CHECK(members.at("ada@example.com").first_name == "Ada");
    CHECK(members.at("grace@example.com").first_name == "Grace");  // trimmed
    CHECK(members.at("grace@example.com").last_name == "Hopper");
    // The report names each bad row.
    const auto report_at = run.out.find("report        ");
    REQUIRE(report_at != std::string::npos);
    const std::string report_path = run.out.substr(report_at + 14, run.out.find(' ', report_at + 14) - report_at - 14);
    // Relative paths in the output are relative to where segpush ran: the fixture's folder.
    const std::string report = read_file(fixture.dir.file(report_path));
    CHECK_THAT(report, Catch::Contains("vip.csv,3,not-an-email,") && Catch::Contains("vip.csv,6,") &&
                           Catch::Contains("vip.csv,7,"));
}

TEST_CASE("export: max_profiles refuses to start with a clear message") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_segment(make_profiles(30));
    fixture.write_config("    max_profiles: 20\n", kPacingAtScale20);
    const Run run = fixture.segpush("export run vip_export");
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.out,
               Catch::Contains("the segment has 30 members, more than max_profiles 20 allows; nothing was sent"));
    CHECK(fixture.sandbox.members(1).empty());
}

TEST_CASE("export: refused rows make succeeded_with_rejections (exit 3), over max_rejected_ratio a failure") {
    ExportFixture fixture(fast_sandbox());
    // One row of four has no valid email: 25% of the rows read refused.
    fixture.dir.write("vip.csv", "Email,FirstName,LastName,Phone\nann@example.com,Ann,,\nnot-an-email,Nobody,,\n"
                                 "bob@example.com,Bob,,\ncy@example.com,Cy,,\n");
    fixture.write_config("    max_rejected_ratio: 0.3\n", kPacingAtScale20);
    const Run within = fixture.segpush("export run vip_export");
    INFO(within.out << within.err);
    CHECK(within.exit_code == 3);
    CHECK_THAT(within.out, Catch::Contains("run #1: succeeded_with_rejections in ") &&
                               Catch::Contains("rows read     4 (1 invalid, refused before sending;"));
    CHECK(fixture.sandbox.members(1).size() == 3);

    fixture.dir.write("vip.csv", "Email,FirstName,LastName,Phone\nann@example.com,Ann,,\nnot-an-email,Nobody,,\n"
                                 "bob@example.com,Bob,,\ncy@example.com,Cyrus,,\n");
    fixture.write_config("    max_rejected_ratio: 0.2\n", kPacingAtScale20);
    const Run over = fixture.segpush("export run vip_export");
    INFO(over.out << over.err);
    CHECK(over.exit_code == 1);
    CHECK_THAT(over.out, Catch::Contains("run #2: failed_permanently in ") &&
                             Catch::Contains("25.0% of the 4 rows read were refused (1 invalid, 0 rejected by the "
                                             "destination, 0 held after earlier refusals), more than "
                                             "max_rejected_ratio 0.2 allows"));
    // What the destination took is recorded: the changed member is not sent again.
    CHECK(fixture.sandbox.members(1).at("cy@example.com").first_name == "Cyrus");
    const Run again = fixture.segpush("export run vip_export --dry-run");
    CHECK_THAT(again.out, Catch::Contains("0 new, 0 changed, 3 unchanged"));
}

TEST_CASE("export: a second run of the same export is refused while one runs, Ctrl-C stops cleanly") {
    // Slow responses keep the first run busy long enough to try a second one.
    Sandbox::Options options = fast_sandbox();
    options.config_json = R"({"rate_scale": 20, "latency_ms": 400})";
    ExportFixture fixture(options);
    const auto profiles = make_profiles(5000);
    fixture.write_segment(profiles);
    fixture.write_config();  // paced at ActiveCampaign's real 100 bulk imports a minute: 12 s

    BackgroundProcess first(fixture.segpush_argv("export run vip_export"), fixture.dir.file("first.out"),
                            fixture.dir.file("first.err"), fixture.env());
    // Wait until it is pushing.
    for (int i = 0; i < 200 && fixture.sandbox.route_count("POST /api/3/import/bulk_import") == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(fixture.sandbox.route_count("POST /api/3/import/bulk_import") > 0);
    const Run second = fixture.segpush("export run vip_export");
    CHECK(second.exit_code == 1);
    CHECK_THAT(second.err, Catch::Contains("vip_export") && Catch::Contains("already running") &&
                               Catch::Contains("pid " + std::to_string(first.pid())));

    first.signal(SIGINT);
    CHECK(first.wait() == 1);
    const std::string out = read_file(fixture.dir.file("first.out"));
    INFO(out << read_file(fixture.dir.file("first.err")));
    CHECK_THAT(out, Catch::Contains("cancelled"));
    const Run history = fixture.segpush("runs list vip_export");
    CHECK_THAT(history.out, Catch::Contains("cancelled"));

    // The next run finishes the job: the list is exactly the segment.
    fixture.sandbox.configure(R"({"latency_ms": 0})");
    const Run rest = fixture.segpush("export run vip_export");
    INFO(rest.out << rest.err);
    REQUIRE(rest.exit_code == 0);
    require_list_equals(fixture.sandbox, profiles);
    check_secret_never_printed(fixture);

    // The two runs' counts add up to the members, each sent once: "sent" is what reached the
    // destination, what was in flight at the stop is pending, and the next run learns it.
    rapidjson::Document runs;
    runs.Parse(fixture.segpush("runs list vip_export --json").out.c_str());
    REQUIRE(runs.IsArray());
    REQUIRE(runs.Size() == 2);
    const auto& stopped = runs[1]["counts"];
    const auto& resumed = runs[0]["counts"];
    auto n = [](const rapidjson::Value& counts, const char* name) { return counts[name].GetInt64(); };
    INFO("stopped run: sent " << n(stopped, "sent") << ", accepted " << n(stopped, "accepted") << ", pending "
                              << n(stopped, "pending") << "; next run: sent " << n(resumed, "sent") << ", resumed "
                              << n(resumed, "resumed") << ", accepted " << n(resumed, "accepted"));
    CHECK(n(stopped, "sent") > 0);
    CHECK(n(stopped, "sent") < 5000);
    CHECK(n(stopped, "sent") == n(stopped, "accepted") + n(stopped, "pending"));
    CHECK(n(resumed, "resumed") == n(stopped, "pending"));
    CHECK(n(resumed, "sent") + n(resumed, "resumed") == n(resumed, "accepted"));
    CHECK(n(resumed, "pending") == 0);
    CHECK(n(stopped, "sent") + n(resumed, "sent") == 5000);
    CHECK(n(stopped, "accepted") + n(resumed, "accepted") == 5000);
    CHECK(fixture.records_sent() == 5000);  // what the destination received, all runs together
}

TEST_CASE("export: killed with SIGKILL at several points, the next runs leave the list exact") {
    Sandbox::Options options;
    options.config_json = R"({"rate_scale": 20, "latency_ms": 30})";
    ExportFixture fixture(options);
    const auto profiles = make_profiles(50000);
    fixture.write_segment(profiles);
    // Paced at ActiveCampaign's real 100 bulk imports a minute (about 2 minutes for 200
    // batches): what a kill costs depends on how many batches are in flight and awaiting the
    // import's confirmation, so it is measured at the pace production runs at.
    fixture.write_config();
    const long long batches = (50000 + 249) / 250;

    int kills = 0;
    for (long long kill_after : {20LL, 70LL, 130LL}) {
        BackgroundProcess run(fixture.segpush_argv("export run vip_export"), fixture.dir.file("run.out"),
                              fixture.dir.file("run.err"), fixture.env());
        for (int i = 0;
             i < 1200 && run.running() && fixture.sandbox.route_count("POST /api/3/import/bulk_import") < kill_after;
             ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        REQUIRE(run.running());
        run.signal(SIGKILL);
        CHECK(run.wait() == -SIGKILL);
        ++kills;
    }
    const Run last = fixture.segpush("export run vip_export");
    INFO(last.out << last.err);
    REQUIRE(last.exit_code == 0);
    require_list_equals(fixture.sandbox, profiles);

    // A kill costs at most the batch whose request was on the wire: batches the destination
    // had taken but not yet confirmed are confirmed by their receipts, not sent again.
    const long long bulk = fixture.sandbox.route_count("POST /api/3/import/bulk_import");
    INFO("bulk requests: " << bulk << " for " << batches << " batches and " << kills << " kills");
    std::cout << "crash test: " << bulk << " bulk requests for " << batches << " batches with " << kills << " kills ("
              << bulk - batches << " resent)" << std::endl;
    CHECK(bulk <= batches + kills);
    const Run history = fixture.segpush("runs list vip_export");
    CHECK_THAT(history.out, Catch::Contains("interrupted"));
}

TEST_CASE("export: custom fields mapped as field:PERSTAG reach ActiveCampaign, an unknown one stops the run") {
    ExportFixture fixture(fast_sandbox());
    fixture.sandbox.post("/__sandbox/fields", R"({"id": 7, "title": "Loyalty tier", "perstag": "LOYALTY_TIER"})");
    fixture.dir.write("vip.csv", "Email,FirstName,Tier\nada@example.com,Ada,gold\nbob@example.com,Bob,\n"
                                 "cy@example.com,Cy,silver\n");
    fixture.dir.write("segpush.yaml", fixture.config_yaml(R"(  vip: { path: vip.csv }
)",
                                                          R"(  vip_export:
    connection: ac
    segments: [vip]
    settings: { list_id: 1 }
    mapping: { email: Email, first_name: FirstName, "field:LOYALTY_TIER": Tier }
  typo_export:
    connection: ac
    segments: [vip]
    settings: { list_id: 1 }
    mapping: { email: Email, "field:LOYALTY_TEIR": Tier }
)"));
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    const auto members = fixture.sandbox.get("/__sandbox/lists/1/members");
    std::map<std::string, std::string> tiers;
    for (const auto& member : members.GetArray()) {
        const auto& fields = member["fields"];
        auto tier = fields.FindMember("7");
        tiers[member["email"].GetString()] = tier != fields.MemberEnd() && tier->value.IsString()
                                                 ? tier->value.GetString()
                                                 : "";
    }
    CHECK(tiers == std::map<std::string, std::string>{
                       {"ada@example.com", "gold"}, {"bob@example.com", ""}, {"cy@example.com", "silver"}});

    const Run typo = fixture.segpush("export run typo_export");
    CHECK(typo.exit_code == 1);
    CHECK_THAT(typo.out, Catch::Contains("LOYALTY_TEIR") && Catch::Contains("LOYALTY_TIER"));
}

TEST_CASE(
    "export: a CSV and a JSON Lines segment combine, members de-duplicated across them, and runs show tells all") {
    ExportFixture fixture(fast_sandbox());
    fixture.dir.write("a.csv", "Email,FirstName\nada@example.com,Ada\nbob@example.com,Bob\n");
    fixture.dir.write("b.jsonl", "{\"email\": \"BOB@example.com\", \"first\": \"Robert\"}\n"
                                 "{\"email\": \"cy@example.com\", \"first\": \"Cy\"}\n"
                                 "{\"email\": 42}\n"
                                 "not json\n");
    fixture.dir.write("segpush.yaml", fixture.config_yaml(R"(  a: { path: a.csv }
  b: { path: b.jsonl, source: jsonl }
)",
                                                          R"(  both:
    connection: ac
    segments: [a, b]
    settings: { list_id: 1 }
    mapping: { email: Email, first_name: FirstName }
)"));
    // The JSONL file names its columns differently: the configuration check refuses the
    // export before a run starts (a run finds it too: segment_intake_test).
    Run run = fixture.segpush("export run both");
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err, Catch::Contains("exports.both.mapping.email: none of the first 4 records of segment 'b'") &&
                            Catch::Contains("b.jsonl) has the key 'Email' (did you mean 'email'?)"));
    CHECK(fixture.sandbox.total_requests() == 0);

    fixture.dir.write("b.jsonl", "{\"Email\": \"BOB@example.com\", \"FirstName\": \"Robert\"}\n"
                                 "{\"Email\": \"cy@example.com\", \"FirstName\": \"Cy\"}\n"
                                 "{\"Email\": 42}\n"
                                 "not json\n");
    run = fixture.segpush("export run both");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 3);  // succeeded_with_rejections: two broken JSON lines
    const auto members = fixture.sandbox.members(1);
    REQUIRE(members.size() == 3);
    CHECK(members.at("bob@example.com").first_name == "Bob");  // a.csv comes first: its row wins
    CHECK(members.at("cy@example.com").first_name == "Cy");
    CHECK_THAT(run.out, Catch::Contains("rows read     6 (2 invalid, refused before sending; 1 duplicate collapsed"));

    const Run show = fixture.segpush("runs show 1");
    INFO(show.out << show.err);
    CHECK(show.exit_code == 0);
    CHECK_THAT(show.out, Catch::Contains("Run #1 of export both") && Catch::Contains("succeeded_with_rejections") &&
                             Catch::Contains("members       3: 3 new") && Catch::Contains("accepted      3\n") &&
                             Catch::Contains("-report.csv"));
    const Run json = fixture.segpush("runs show 1 --json");
    CHECK_THAT(json.out,
               Catch::Contains("\"status\": \"succeeded_with_rejections\"") && Catch::Contains("\"accepted\": 3"));
    const Run missing = fixture.segpush("runs show 99");
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.err, Catch::Contains("no run #99"));
    const Run bad = fixture.segpush("runs show latest");
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("run id must be a number"));
    check_secret_never_printed(fixture);
}

TEST_CASE("export: records given back while their push is still busy are sent again, never taken as delivered") {
    TempDir dir;
    std::string rows = "Email\n";
    for (int i = 0; i < 150; ++i) rows += "m" + std::to_string(i) + "@example.com\n";
    dir.write("vip.csv", rows);
    dir.write("segpush.yaml", "plugin_dir: " SEGPUSH_LATE_PENDING_PLUGIN_DIR "\n"
                              "state: " +
                                  dir.file("state.db") +
                                  "\n"
                                  "segments:\n"
                                  "  vip: { source: csv, path: vip.csv }\n"
                                  "connections:\n"
                                  "  late:\n"
                                  "    plugin: late-pending\n"
                                  "    display_name: Late\n"
                                  "    privacy_consent: true\n"
                                  "    settings: {}\n"
                                  "exports:\n"
                                  "  vip_late:\n"
                                  "    connection: late\n"
                                  "    segments: [vip]\n"
                                  "    settings: {}\n"
                                  "    mapping: { email: Email }\n");
    // The plugin's first push (100 records) ends PENDING after collect_outcomes gave those
    // records back; the second (50) is accepted.
    for (int run = 1; run <= 2; ++run) {
        const Run export_run = run_shell(dir.path().string(),
                                         std::string(SEGPUSH_BINARY) + " --config segpush.yaml export run vip_late");
        INFO("run " << run << ": " << export_run.out << export_run.err);
        CHECK(export_run.exit_code == 1);
        CHECK_THAT(export_run.out, Catch::Contains("failed_will_retry") &&
                                       Catch::Contains("100 records were not confirmed by the destination"));
        // The first run sends everyone; the next sends the 100 again, the 50 delivered not.
        CHECK_THAT(export_run.out, Catch::Contains(run == 1 ? "sent          150" : "sent          100"));
        CHECK_THAT(export_run.out, Catch::Contains(run == 1 ? "accepted      50" : "accepted      0"));
    }
}
