// ActiveCampaign's request budgets belong to the account: two exports to one account, in two
// `segpush export run` processes started together or in one `serve`, pace as one and meet no
// refusal. (How close together they come to the account's ceiling is bench/run.py
// shared-account's figure, not asserted here.)
#include <signal.h>

#include <chrono>
#include <thread>

#include "activecampaign/ac_support.hpp"

using namespace segpush::test;
using namespace segpush::test::ac;

namespace {

constexpr size_t kProfilesEach = 20000;

// The sandbox at ten times ActiveCampaign's limits (50 requests/s, 1,000 bulk imports/min),
// with lists 1 and 2 of one account, and the plugin told those limits.
Sandbox::Options account_at_scale_10() {
    Sandbox::Options options;
    options.lists = {"1:First list", "2:Second list"};
    options.config_json = R"({"rate_scale": 10})";
    return options;
}
const std::string kPacingAtScale10 = "      requests_per_second: 50\n      bulk_requests_per_minute: 1000\n";

// Exports "one" (list 1) and "two" (list 2), each of its own 20,000 profiles.
std::pair<std::vector<Profile>, std::vector<Profile>> write_two_exports(ExportFixture& fixture,
                                                                        const std::string& schedule) {
    const auto first = make_profiles(kProfilesEach);
    const auto second = make_profiles(kProfilesEach, kProfilesEach);
    fixture.dir.write("one.csv", to_csv(first));
    fixture.dir.write("two.csv", to_csv(second));
    const std::string extra = schedule.empty() ? "" : "    schedule: \"" + schedule + "\"\n";
    fixture.dir.write("segpush.yaml",
                      fixture.config_yaml("  one: { path: one.csv }\n  two: { path: two.csv }\n",
                                          "  one:\n    connection: ac\n    segments: [one]\n"
                                          "    settings: { list_id: 1 }\n    mapping: { email: Email }\n" +
                                              extra +
                                              "  two:\n    connection: ac\n    segments: [two]\n"
                                              "    settings: { list_id: 2 }\n    mapping: { email: Email }\n" +
                                              extra,
                                          kPacingAtScale10));
    return {first, second};
}

void require_subscribed(Sandbox& sandbox, int list, const std::vector<Profile>& profiles) {
    const auto members = sandbox.members(list);
    size_t subscribed = 0;
    for (const auto& [email, member] : members) subscribed += member.status == "subscribed";
    CHECK(subscribed == profiles.size());
    CHECK(members.size() == profiles.size());
    CHECK(members.count(profiles.front().email) == 1);
    CHECK(members.count(profiles.back().email) == 1);
}

void require_no_refusal(Sandbox& sandbox) {
    const auto stats = sandbox.get("/__sandbox/stats");
    CHECK(stats["rps_refusals"].GetInt64() == 0);
    CHECK(stats["bulk_rate_refusals"].GetInt64() == 0);
    CHECK_FALSE(stats["by_status"].HasMember("429"));
    CHECK(sandbox.route_count("POST /api/3/import/bulk_import") == 2 * static_cast<long long>(kProfilesEach / 250));
}

}  // namespace

TEST_CASE("shared budget: two export runs to one account started together meet no refusal and fill both lists") {
    ExportFixture fixture(account_at_scale_10());
    const auto [first, second] = write_two_exports(fixture, "");
    BackgroundProcess one(fixture.segpush_argv("export run one"), fixture.dir.file("one.out"),
                          fixture.dir.file("one.err"), fixture.env());
    BackgroundProcess two(fixture.segpush_argv("export run two"), fixture.dir.file("two.out"),
                          fixture.dir.file("two.err"), fixture.env());
    const int one_exit = one.wait();
    const int two_exit = two.wait();
    INFO(read_file(fixture.dir.file("one.out"))
         << read_file(fixture.dir.file("one.err")) << read_file(fixture.dir.file("two.out"))
         << read_file(fixture.dir.file("two.err")));
    CHECK(one_exit == 0);
    CHECK(two_exit == 0);
    require_no_refusal(fixture.sandbox);
    require_subscribed(fixture.sandbox, 1, first);
    require_subscribed(fixture.sandbox, 2, second);
    // They shared the account's budget through files beside the state, named without the key.
    const auto budgets = std::filesystem::directory_iterator(fixture.dir.file("state/budgets"));
    size_t files = 0;
    for (const auto& entry : budgets) {
        ++files;
        CHECK(entry.path().filename().string().find(fixture.sandbox.api_key()) == std::string::npos);
        CHECK(read_file(entry.path().string()).find(fixture.sandbox.api_key()) == std::string::npos);
    }
    CHECK(files >= 2);  // the general budget and the bulk imports'
}

TEST_CASE("shared budget: serve running two exports to one account at once meets no refusal and fills both lists") {
    ExportFixture fixture(account_at_scale_10());
    const auto [first, second] = write_two_exports(fixture, "* * * * *");
    BackgroundProcess serve(fixture.segpush_argv("serve"), fixture.dir.file("serve.out"), fixture.dir.file("serve.err"),
                            fixture.env());
    // Both run at the next whole minute, together.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(150);
    auto succeeded = [&] {
        const Run list = fixture.segpush("runs list --json");
        rapidjson::Document runs;
        runs.Parse(list.out.c_str());
        int done = 0;
        if (runs.IsArray()) {
            for (const auto& run : runs.GetArray()) done += std::string(run["status"].GetString()) == "succeeded";
        }
        return done;
    };
    while (std::chrono::steady_clock::now() < deadline && serve.running() && succeeded() < 2) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    serve.signal(SIGTERM);
    CHECK(serve.wait() == 0);
    INFO(read_file(fixture.dir.file("serve.err")));
    REQUIRE(succeeded() >= 2);
    require_no_refusal(fixture.sandbox);
    require_subscribed(fixture.sandbox, 1, first);
    require_subscribed(fixture.sandbox, 2, second);
}
