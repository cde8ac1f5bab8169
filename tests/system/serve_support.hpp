#pragma once
// What the serve tests read from a running serve: each export's newest run, and waiting for a
// condition with a watchdog.
#include <rapidjson/document.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "support/export_fixture.hpp"

namespace segpush::test {

struct RunSeen {
    std::string status;
    long long rows_read = 0;
};

// Each export's newest run, from `runs list --json`.
inline std::map<std::string, RunSeen> newest_runs(ExportFixture& fixture) {
    const Run list = fixture.segpush("runs list --json");
    rapidjson::Document runs;
    runs.Parse(list.out.c_str());
    std::map<std::string, RunSeen> newest;
    if (!runs.IsArray()) return newest;
    for (const auto& run : runs.GetArray()) {
        const std::string name = run["export"].GetString();
        if (!newest.count(name)) newest[name] = {run["status"].GetString(), run["counts"]["rows_read"].GetInt64()};
    }
    return newest;
}

// Whether `done` became true before `watchdog` ran out (a bound proving it happens at all, not a
// speed requirement).
inline bool eventually(const std::function<bool()>& done, std::chrono::seconds watchdog) {
    const auto deadline = std::chrono::steady_clock::now() + watchdog;
    while (std::chrono::steady_clock::now() < deadline) {
        if (done()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return done();
}

}  // namespace segpush::test
