// Several `segpush serve` replicas over one PostgreSQL state: every scheduled run happens once,
// on one replica, whichever replicas see its time or change.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "support/postgres_server.hpp"
#include "system/serve_support.hpp"

using namespace segpush::test;

namespace {

constexpr int kExports = 10;
constexpr int kReplicas = 3;

// Every run recorded, from `runs list --json`: export -> how many runs, and the set of pids that ran them.
struct RunsSeen {
    std::map<std::string, int> runs;
    std::map<std::string, int> succeeded;
    std::set<long long> pids;
    int total = 0;
};

RunsSeen runs_seen(ExportFixture& fixture) {
    const Run list = fixture.segpush("runs list --limit 1000 --json");
    rapidjson::Document runs;
    runs.Parse(list.out.c_str());
    RunsSeen seen;
    if (!runs.IsArray()) return seen;
    for (const auto& run : runs.GetArray()) {
        const std::string name = run["export"].GetString();
        ++seen.runs[name];
        ++seen.total;
        if (std::string(run["status"].GetString()) == "succeeded") ++seen.succeeded[name];
        seen.pids.insert(run["pid"].GetInt64());
    }
    return seen;
}

}  // namespace

TEST_CASE("serve replicas: three replicas, ten exports on schedules, every scheduled run happens exactly once") {
    PostgresServer& postgres = PostgresServer::shared();
    const std::string database = postgres.create_database();
    ExportFixture fixture;
    std::filesystem::create_directories(fixture.dir.file("out"));
    // Half the exports run when their segment is published, half every minute (cron).
    std::string segments, exports;
    for (int i = 0; i < kExports; ++i) {
        const std::string n = std::to_string(i);
        fixture.dir.write("seg" + n + ".csv", to_csv(make_profiles(5 + i)));
        segments += "  seg" + n + ": { path: seg" + n + ".csv }\n";
        exports += "  e" + n + ":\n    connection: files\n    segments: [seg" + n + "]\n    settings: { path: \"e" + n +
                   ".csv\" }\n    mapping: { email: Email }\n" +
                   (i % 2 == 0 ? "    schedule: on_change\n    settle_seconds: 1\n" : "    schedule: \"* * * * *\"\n");
    }
    std::string yaml = fixture.config_yaml(segments, exports, "",
                                           "  files:\n    plugin: file\n    privacy_consent: true\n    "
                                           "settings: { directory: \"" +
                                               fixture.dir.file("out") + "\" }\n") +
                       "serve:\n  listen: 127.0.0.1:0\n";
    yaml.replace(yaml.find("state: state/segpush.db\n"), std::string("state: state/segpush.db\n").size(),
                 postgres.state_yaml(database, 3));
    fixture.dir.write("segpush.yaml", yaml);
    const Run check = fixture.segpush("config check");
    INFO(check.out << check.err);
    REQUIRE(check.exit_code == 0);

    std::vector<std::unique_ptr<BackgroundProcess>> replicas;
    for (int r = 0; r < kReplicas; ++r) {
        const std::string name = "replica" + std::to_string(r);
        replicas.push_back(std::make_unique<BackgroundProcess>(fixture.segpush_argv("serve"),
                                                               fixture.dir.file(name + ".out"),
                                                               fixture.dir.file(name + ".err"), fixture.env()));
    }
    auto logs = [&] {
        std::string all;
        for (int r = 0; r < kReplicas; ++r) {
            all += "--- replica" + std::to_string(r) + "\n" +
                   read_file(fixture.dir.file("replica" + std::to_string(r) + ".err"));
        }
        return all;
    };
    auto require_eventually = [&](const char* what, const std::function<bool()>& done, int seconds) {
        if (!eventually(done, std::chrono::seconds(seconds))) FAIL(what << "\n" << logs());
    };
    require_eventually(
        "every replica serves",
        [&] {
            for (int r = 0; r < kReplicas; ++r) {
                if (read_file(fixture.dir.file("replica" + std::to_string(r) + ".err"))
                        .find("serve: export e9 runs on") == std::string::npos) {
                    return false;
                }
            }
            return true;
        },
        30);

    // Each on_change segment published once, the documented way (written beside it, renamed in).
    for (int i = 0; i < kExports; i += 2) {
        const std::string n = std::to_string(i);
        fixture.dir.write("seg" + n + ".csv.tmp", to_csv(make_profiles(20 + i)));
        std::filesystem::rename(fixture.dir.file("seg" + n + ".csv.tmp"), fixture.dir.file("seg" + n + ".csv"));
    }
    // Every export runs: the on_change ones once settled, the cron ones at the next minute.
    require_eventually(
        "every export runs",
        [&] {
            const RunsSeen seen = runs_seen(fixture);
            for (int i = 0; i < kExports; ++i) {
                if (!seen.succeeded.count("e" + std::to_string(i))) return false;
            }
            return true;
        },
        90);
    // Stop the replicas before the cron exports' next minute, so each export had exactly one occasion.
    for (auto& replica : replicas) replica->signal(SIGTERM);
    for (auto& replica : replicas) CHECK(replica->wait() == 0);

    RunsSeen seen = runs_seen(fixture);
    INFO(logs());
    for (int i = 0; i < kExports; ++i) {
        const std::string name = "e" + std::to_string(i);
        INFO(name);
        CHECK(seen.runs[name] == 1);
        CHECK(seen.succeeded[name] == 1);
    }
    CHECK(seen.total == kExports);
    std::cout << "serve replicas: " << seen.total << " runs, by " << seen.pids.size() << " of " << kReplicas
              << " replicas" << std::endl;
    // The runs another replica claimed are logged as such, never run twice.
    const std::string all = logs();
    size_t taken_elsewhere = 0;
    for (size_t at = all.find("another replica took this run"); at != std::string::npos;
         at = all.find("another replica took this run", at + 1)) {
        ++taken_elsewhere;
    }
    CHECK(taken_elsewhere == static_cast<size_t>(kExports * (kReplicas - 1)));
    CHECK(all.find(PostgresServer::password()) == std::string::npos);
}
