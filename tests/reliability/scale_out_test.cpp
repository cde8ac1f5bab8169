// Failures of a scaled-out segpush, whose state is one PostgreSQL database: the replica running
// an export killed mid-run (another replica takes the run over from its checkpoint), and the
// database server restarted mid-run (the run waits for it and completes). Each ends with the
// list exact, and with nothing recorded as delivered that the destination does not hold.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "reliability/reliability_support.hpp"
#include "state/postgres.hpp"
#include "support/postgres_server.hpp"

using namespace segpush;
using namespace segpush::test;
using namespace segpush::test::reliability;

namespace {

const char* const kBulk = "POST /api/3/import/bulk_import";

// The configuration of the suite (reliability_support), its state in `database`.
std::string config_on_postgres(ExportFixture& fixture, const PostgresServer& postgres, const std::string& database,
                               const ConfigOptions& options) {
    std::string text = config_text(fixture, options);
    const std::string sqlite_state = "state: state/segpush.db\n";
    text.replace(text.find(sqlite_state), sqlite_state.size(), postgres.state_yaml(database, 3));
    return text;
}

bool wait_until(const std::function<bool()>& done, std::chrono::seconds watchdog) {
    const auto deadline = std::chrono::steady_clock::now() + watchdog;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
}

// Every key the delivered state holds for `export_name`, straight from the database.
std::set<std::string> delivered_keys(const PostgresServer& postgres, const std::string& database,
                                     const std::string& export_name) {
    postgres::Connection db(postgres.uri(database));
    const postgres::Result rows = db.exec("SELECT member_key FROM delivered WHERE export = $1",
                                          postgres::Params().add(export_name));
    std::set<std::string> keys;
    for (int row = 0; row < rows.rows(); ++row) keys.insert(rows.bytes(row, 0));
    return keys;
}

std::set<std::string> keys_of(const std::vector<Profile>& profiles) {
    std::set<std::string> keys;
    for (const auto& profile : profiles) {
        std::string key = profile.email;
        for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        keys.insert(key);
    }
    return keys;
}

}  // namespace

TEST_CASE("scale out: kill -9 of the replica running a 50,000-profile export, and another replica finishes it") {
    PostgresServer& postgres = PostgresServer::shared();
    const std::string database = postgres.create_database();
    ExportFixture fixture(fast_sandbox(false, R"("latency_ms": 20)"));
    Segment segment = make_segment(50000);
    mark_destination_rejected(segment, kRefusedEmails);
    fixture.dir.write("vip.csv", to_csv(segment.rows));
    ConfigOptions options;
    options.export_extra = "    schedule: on_change\n    settle_seconds: 1\n";
    // Paced to 1,200 bulk imports a minute so the kill lands mid-run.
    std::string text = config_on_postgres(fixture, postgres, database, options) + "serve:\n  listen: 127.0.0.1:0\n";
    text.replace(text.find("bulk_requests_per_minute: 4000"), 30, "bulk_requests_per_minute: 1200");
    fixture.dir.write("segpush.yaml", text);

    std::vector<std::unique_ptr<BackgroundProcess>> replicas;
    for (int r = 0; r < 2; ++r) {
        const std::string name = "replica" + std::to_string(r);
        replicas.push_back(std::make_unique<BackgroundProcess>(fixture.segpush_argv("serve"),
                                                               fixture.dir.file(name + ".out"),
                                                               fixture.dir.file(name + ".err"), fixture.env()));
    }
    auto logs = [&] {
        return "--- replica0\n" + read_file(fixture.dir.file("replica0.err")) + "--- replica1\n" +
               read_file(fixture.dir.file("replica1.err"));
    };
    REQUIRE(wait_until(
        [&] {
            return read_file(fixture.dir.file("replica0.err")).find("runs when its segment files change") !=
                       std::string::npos &&
                   read_file(fixture.dir.file("replica1.err")).find("runs when its segment files change") !=
                       std::string::npos;
        },
        std::chrono::seconds(30)));

    // Published: both replicas see it; one claims the run.
    fixture.dir.write("vip.csv.tmp", to_csv(segment.rows));
    std::filesystem::rename(fixture.dir.file("vip.csv.tmp"), fixture.dir.file("vip.csv"));
    INFO(logs());
    REQUIRE(wait_until([&] { return fixture.sandbox.route_count(kBulk) >= 30; }, std::chrono::seconds(60)));
    const rapidjson::Document running = latest_run(fixture);
    REQUIRE(status_of(running) == "running");
    const int64_t first_run = running["id"].GetInt64();
    const long long holder_pid = running["pid"].GetInt64();

    // A manual run of the same export is refused, naming who holds it.
    const Run manual = fixture.segpush("export run vip_export");
    CHECK(manual.exit_code == 1);
    CHECK_THAT(manual.err, Catch::Contains("already running as run #" + std::to_string(first_run) + " (pid " +
                                           std::to_string(holder_pid) + " on "));

    BackgroundProcess* holder = nullptr;
    BackgroundProcess* survivor = nullptr;
    for (auto& replica : replicas) (replica->pid() == holder_pid ? holder : survivor) = replica.get();
    REQUIRE(holder);
    REQUIRE(survivor);
    const long long sent_before_kill = fixture.records_sent();
    holder->signal(SIGKILL);
    CHECK(holder->wait() == -SIGKILL);
    std::cout << "scale out: killed replica pid " << holder_pid << " after " << sent_before_kill << " records were sent"
              << std::endl;

    // The survivor takes the run over once the lease (3 s) has run out, and finishes it.
    REQUIRE(wait_until(
        [&] {
            const rapidjson::Document latest = latest_run(fixture);
            return latest["id"].GetInt64() != first_run && status_of(latest) != "running";
        },
        std::chrono::seconds(180)));
    const rapidjson::Document finished = latest_run(fixture);
    CHECK(status_of(finished) == "succeeded_with_rejections");  // the segment's refused rows
    CHECK(finished["pid"].GetInt64() == survivor->pid());
    CHECK_THAT(logs(), Catch::Contains("stopped renewing its lease; taking it over from its checkpoint"));
    const Run first = fixture.segpush("runs show " + std::to_string(first_run) + " --json");
    CHECK_THAT(first.out, Catch::Contains("failed_will_retry"));

    require_list_exact(fixture.sandbox, segment.valid);
    // Only what was in flight at the kill is sent twice: the destination's answer to those
    // requests never reached the state. The plugin keeps at most a few bulk imports of up to
    // 250 contacts in flight; 2,000 records is a generous bound on them.
    const long long sent = fixture.records_sent();
    const long long members = static_cast<long long>(segment.valid.size() + segment.dest_invalid.size());
    std::cout << "scale out: " << sent << " records sent for " << members << " members" << std::endl;
    CHECK(sent >= members);
    CHECK(sent - members <= 2000);
    // Nothing recorded as delivered that the destination does not hold.
    CHECK(delivered_keys(postgres, database, "vip_export") == keys_of(segment.valid));

    survivor->signal(SIGTERM);
    CHECK(survivor->wait() == 0);
    check_no_secret_anywhere(fixture, {PostgresServer::password()});
}

TEST_CASE("scale out: the PostgreSQL server restarted mid-run, and the run waits for it and completes") {
    PostgresServer postgres;  // its own: this test restarts it
    const std::string database = postgres.create_database();
    ExportFixture fixture(fast_sandbox(false, R"("latency_ms": 20)"));
    Segment segment = make_segment(20000);
    mark_destination_rejected(segment, kRefusedEmails);
    fixture.dir.write("vip.csv", to_csv(segment.rows));
    std::string text = config_on_postgres(fixture, postgres, database, ConfigOptions{});
    text.replace(text.find("bulk_requests_per_minute: 4000"), 30, "bulk_requests_per_minute: 1200");
    fixture.dir.write("segpush.yaml", text);

    const Run run = run_with_fault(fixture, 10, [&] {
        postgres.stop();
        std::this_thread::sleep_for(std::chrono::seconds(3));
        postgres.start();
    });
    INFO(run.out << run.err);
    CHECK(run.exit_code == 3);  // succeeded_with_rejections: the segment's refused rows
    CHECK_THAT(run.err, Catch::Contains("state database unreachable"));
    require_list_exact(fixture.sandbox, segment.valid);
    check_accounting(fixture, segment);
    CHECK(delivered_keys(postgres, database, "vip_export") == keys_of(segment.valid));
    // Nothing is left to send: the next run finds every member delivered.
    fixture.clear_request_log();
    const Run again = fixture.segpush("export run vip_export");
    CHECK(again.exit_code == 3);
    CHECK(fixture.records_sent() == static_cast<long long>(segment.dest_invalid.size()));  // refused ones retried
    check_no_secret_anywhere(fixture, {PostgresServer::password()});
}
