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

// Two `serve` replicas of the suite's export (on_change, settle 1 s) over `database`, lease 3 s,
// paced to 1,200 bulk imports a minute so a fault lands mid-run.
struct TwoReplicas {
    ExportFixture& fixture;
    std::vector<std::unique_ptr<BackgroundProcess>> replicas;

    TwoReplicas(ExportFixture& fixture, const PostgresServer& postgres, const std::string& database)
        : fixture(fixture) {
        ConfigOptions options;
        options.export_extra = "    schedule: on_change\n    settle_seconds: 1\n";
        std::string text = config_on_postgres(fixture, postgres, database, options) + "serve:\n  listen: 127.0.0.1:0\n";
        text.replace(text.find("bulk_requests_per_minute: 4000"), 30, "bulk_requests_per_minute: 1200");
        fixture.dir.write("segpush.yaml", text);
        fixture.dir.write("vip.csv", to_csv(make_segment(10).rows));  // what the replicas find at start
        for (int r = 0; r < 2; ++r) {
            const std::string name = "replica" + std::to_string(r);
            replicas.push_back(std::make_unique<BackgroundProcess>(fixture.segpush_argv("serve"),
                                                                   fixture.dir.file(name + ".out"),
                                                                   fixture.dir.file(name + ".err"), fixture.env()));
        }
        REQUIRE(wait_until(
            [&] {
                return log(0).find("runs when its segment files change") != std::string::npos &&
                       log(1).find("runs when its segment files change") != std::string::npos;
            },
            std::chrono::seconds(30)));
    }
    std::string log(int r) const { return read_file(fixture.dir.file("replica" + std::to_string(r) + ".err")); }
    std::string logs() const { return "--- replica0\n" + log(0) + "--- replica1\n" + log(1); }
    // Publishes `rows` (both replicas see it; one claims the run) and returns the running run
    // once 30 bulk imports were sent.
    rapidjson::Document publish_and_wait_mid_run(const std::vector<Profile>& rows) {
        fixture.dir.write("vip.csv.tmp", to_csv(rows));
        std::filesystem::rename(fixture.dir.file("vip.csv.tmp"), fixture.dir.file("vip.csv"));
        INFO(logs());
        REQUIRE(wait_until([&] { return fixture.sandbox.route_count(kBulk) >= 30; }, std::chrono::seconds(60)));
        rapidjson::Document running = latest_run(fixture);
        REQUIRE(status_of(running) == "running");
        return running;
    }
    BackgroundProcess& with_pid(long long pid) {
        for (auto& replica : replicas) {
            if (replica->pid() == pid) return *replica;
        }
        FAIL("no replica has pid " << pid);
        return *replicas.front();
    }
    BackgroundProcess& other_than(long long pid) { return replicas[0]->pid() == pid ? *replicas[1] : *replicas[0]; }
    // Waits for a run other than `first_run` to end, and returns it.
    rapidjson::Document wait_for_run_after(int64_t first_run) {
        INFO(logs());
        REQUIRE(wait_until(
            [&] {
                const rapidjson::Document latest = latest_run(fixture);
                return latest["id"].GetInt64() != first_run && status_of(latest) != "running";
            },
            std::chrono::seconds(180)));
        return latest_run(fixture);
    }
};

// A 50,000-profile segment (500 invalid rows, 3 refused by the destination) published to two
// replicas, and the run one of them claimed, caught mid-way.
struct MidRun {
    static Segment segment_of_50000() {
        Segment segment = make_segment(50000);
        mark_destination_rejected(segment, kRefusedEmails);
        return segment;
    }

    PostgresServer& postgres = PostgresServer::shared();
    const std::string database = postgres.create_database();
    ExportFixture fixture{fast_sandbox(false, R"("latency_ms": 20)")};
    const Segment segment = segment_of_50000();
    TwoReplicas replicas{fixture, postgres, database};
    const rapidjson::Document running = replicas.publish_and_wait_mid_run(segment.rows);
    const int64_t first_run = running["id"].GetInt64();
    const long long holder_pid = running["pid"].GetInt64();
    BackgroundProcess& holder = replicas.with_pid(holder_pid);
    BackgroundProcess& survivor = replicas.other_than(holder_pid);
};

// Only what was in flight when a replica stopped is sent twice: the destination's answers to
// those requests never reached the state. The plugin keeps at most a few bulk imports of up to
// 250 contacts in flight; 2,000 records is a generous bound on them.
void check_sent_at_most_in_flight_twice(ExportFixture& fixture, const Segment& segment) {
    const long long sent = fixture.records_sent();
    const long long members = static_cast<long long>(segment.valid.size() + segment.dest_invalid.size());
    std::cout << "scale out: " << sent << " records sent for " << members << " members" << std::endl;
    CHECK(sent >= members);
    CHECK(sent - members <= 2000);
}

TEST_CASE_METHOD(MidRun, "scale out: kill -9 of the replica running a 50,000-profile export, and another replica "
                         "finishes it") {
    // A manual run of the same export is refused, naming who holds it.
    const Run manual = fixture.segpush("export run vip_export");
    CHECK(manual.exit_code == 1);
    CHECK_THAT(manual.err, Catch::Contains("already running as run #" + std::to_string(first_run) + " (pid " +
                                           std::to_string(holder_pid) + " on "));

    holder.signal(SIGKILL);
    CHECK(holder.wait() == -SIGKILL);
    // Both replicas are on this host: the survivor sees the holder's process gone at its next look
    // (every third of the 3 s lease), without waiting for the lease.
    const rapidjson::Document finished = replicas.wait_for_run_after(first_run);
    INFO(replicas.logs());
    CHECK(status_of(finished) == "succeeded_with_rejections");  // the segment's refused rows
    CHECK(finished["pid"].GetInt64() == survivor.pid());
    CHECK_THAT(replicas.logs(), Catch::Contains("taking it over from its checkpoint"));
    const Run first = fixture.segpush("runs show " + std::to_string(first_run) + " --json");
    CHECK_THAT(first.out, Catch::Contains("failed_will_retry") && Catch::Contains("stopped without finishing"));

    require_list_exact(fixture.sandbox, segment.valid);
    check_sent_at_most_in_flight_twice(fixture, segment);
    // Nothing recorded as delivered that the destination does not hold.
    CHECK(delivered_keys(postgres, database, "vip_export") == keys_of(segment.valid));
    survivor.signal(SIGTERM);
    CHECK(survivor.wait() == 0);
    check_no_secret_anywhere(fixture, {PostgresServer::password()});
}

TEST_CASE_METHOD(MidRun, "scale out: a replica stalled past its lease is taken over, and records nothing once it "
                         "wakes") {
    // Stopped, not dead: its process is alive, so only its lease (3 s) can tell it is gone.
    holder.signal(SIGSTOP);
    const rapidjson::Document finished = replicas.wait_for_run_after(first_run);
    INFO(replicas.logs());
    CHECK(status_of(finished) == "succeeded_with_rejections");
    CHECK(finished["pid"].GetInt64() == survivor.pid());
    const Run first = fixture.segpush("runs show " + std::to_string(first_run) + " --json");
    CHECK_THAT(first.out, Catch::Contains("failed_will_retry") && Catch::Contains("ran out"));

    // Woken, it finds its run taken over at its next batch: it records nothing more, and its
    // run keeps the takeover's record.
    holder.signal(SIGCONT);
    REQUIRE(wait_until(
        [&] {
            return replicas.log(holder.pid() == replicas.replicas[0]->pid() ? 0 : 1).find("no longer this process's") !=
                   std::string::npos;
        },
        std::chrono::seconds(60)));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const Run after = fixture.segpush("runs show " + std::to_string(first_run) + " --json");
    CHECK_THAT(after.out, Catch::Contains("failed_will_retry") && Catch::Contains("ran out"));
    require_list_exact(fixture.sandbox, segment.valid);
    check_sent_at_most_in_flight_twice(fixture, segment);
    CHECK(delivered_keys(postgres, database, "vip_export") == keys_of(segment.valid));
    for (auto& replica : replicas.replicas) replica->signal(SIGTERM);
    for (auto& replica : replicas.replicas) CHECK(replica->wait() == 0);
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
