// The guard against mass change end to end: the real segpush binary, the real ActiveCampaign
// plugin and the sandbox on 127.0.0.1. A run over the limits sends nothing, says why and how
// to go ahead, and exits 4; --allow-mass-change lets it through once; --dry-run shows it.
#include <catch2/catch.hpp>

#include "support/export_fixture.hpp"

using namespace segpush::test;

namespace {

constexpr int kExitGuarded = 4;

Sandbox::Options fast_sandbox() {
    Sandbox::Options options;
    options.config_json = R"({"rate_scale": 20})";
    return options;
}

size_t count_with_status(Sandbox& sandbox, const std::string& status) {
    size_t n = 0;
    for (const auto& [email, member] : sandbox.members(1)) n += member.status == status;
    return n;
}

void check_secret_never_printed(const ExportFixture& fixture) {
    for (const auto& run : fixture.history) {
        CHECK(run.out.find(fixture.sandbox.api_key()) == std::string::npos);
        CHECK(run.err.find(fixture.sandbox.api_key()) == std::string::npos);
    }
}

}  // namespace

TEST_CASE("export: a header-only segment with on_leave: unsubscribe sends nothing until confirmed") {
    ExportFixture fixture(fast_sandbox());
    const auto profiles = make_profiles(300);
    fixture.write_segment(profiles);
    fixture.write_config("    on_leave: unsubscribe\n", kPacingAtScale20);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);
    REQUIRE(count_with_status(fixture.sandbox, "subscribed") == 300);

    // An upstream job wrote only the header row.
    fixture.dir.write("vip.csv", "Email,FirstName,LastName,Phone\n");
    const long long requests_before = fixture.sandbox.total_requests();
    const Run guarded = fixture.segpush("export run vip_export");
    INFO(guarded.out << guarded.err);
    CHECK(guarded.exit_code == kExitGuarded);
    const std::string why = "guard against mass change: the segment has no members (no rows after its header), so "
                            "the run would remove all 300 delivered members (on_leave: unsubscribe); an empty segment "
                            "always needs a confirmation; nothing was sent. If this is intended, run 'segpush export "
                            "run vip_export --allow-mass-change' once to go ahead";
    CHECK_THAT(guarded.out, Catch::Contains("failed_permanently") && Catch::Contains(why));
    CHECK(fixture.sandbox.total_requests() == requests_before);  // the destination is not even contacted
    CHECK(count_with_status(fixture.sandbox, "subscribed") == 300);
    const Run show = fixture.segpush("runs show 2 --json");
    CHECK_THAT(show.out, Catch::Contains("\"status\": \"failed_permanently\"") && Catch::Contains(why));

    // The dry run says what the guard would say, and stops nothing.
    const Run dry = fixture.segpush("export run vip_export --dry-run");
    INFO(dry.out << dry.err);
    CHECK(dry.exit_code == 0);
    CHECK_THAT(dry.out, Catch::Contains("mass change   the segment has no members (no rows after its header), so "
                                        "the run would remove all 300 delivered members") &&
                            Catch::Contains("a real run stops here, sending nothing, unless given "
                                            "--allow-mass-change"));
    CHECK(fixture.sandbox.total_requests() == requests_before);

    // The option belongs to export run alone.
    CHECK(fixture.segpush("runs list --allow-mass-change").exit_code == 2);

    // Confirmed: they are unsubscribed, once.
    const Run confirmed = fixture.segpush("export run vip_export --allow-mass-change");
    INFO(confirmed.out << confirmed.err);
    CHECK(confirmed.exit_code == 0);
    CHECK_THAT(confirmed.out, Catch::Contains("removed 300") && Catch::Contains("allowed by --allow-mass-change"));
    CHECK(count_with_status(fixture.sandbox, "unsubscribed") == 300);
    CHECK(count_with_status(fixture.sandbox, "subscribed") == 0);
    // Nothing is delivered any more: the next empty run has nothing to guard.
    const Run after = fixture.segpush("export run vip_export");
    CHECK(after.exit_code == 0);
    check_secret_never_printed(fixture);
}

TEST_CASE("export: a leaving share just over max_leaving_ratio stops, one at the limit goes ahead") {
    ExportFixture fixture(fast_sandbox());
    const auto profiles = make_profiles(100);
    fixture.write_segment(profiles);
    fixture.write_config("    on_leave: unsubscribe\n    max_leaving_ratio: 0.1\n", kPacingAtScale20);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);

    // 11 of 100 leave, and 3 new members join: none of them is sent either.
    std::vector<Profile> over(profiles.begin() + 11, profiles.end());
    const auto joining = make_profiles(3, 1000);
    over.insert(over.end(), joining.begin(), joining.end());
    fixture.write_segment(over);
    const long long requests_before = fixture.sandbox.total_requests();
    const Run guarded = fixture.segpush("export run vip_export");
    INFO(guarded.out << guarded.err);
    CHECK(guarded.exit_code == kExitGuarded);
    CHECK_THAT(guarded.out,
               Catch::Contains("would remove 11 of 100 delivered members (11 %), over max_leaving_ratio 0.1; nothing "
                               "was sent. If this is intended, run 'segpush export run vip_export "
                               "--allow-mass-change' once to go ahead, or raise max_leaving_ratio (now 0.1) in the "
                               "export's configuration"));
    CHECK(fixture.sandbox.total_requests() == requests_before);
    CHECK(fixture.sandbox.members(1).size() == 100);
    CHECK(count_with_status(fixture.sandbox, "subscribed") == 100);

    // 10 of 100 is the limit itself: the run goes ahead.
    std::vector<Profile> at_limit(profiles.begin() + 10, profiles.end());
    at_limit.insert(at_limit.end(), joining.begin(), joining.end());
    fixture.write_segment(at_limit);
    const Run within = fixture.segpush("export run vip_export");
    INFO(within.out << within.err);
    CHECK(within.exit_code == 0);
    CHECK_THAT(within.out, Catch::Contains("removed 10"));
    CHECK(within.out.find("mass change") == std::string::npos);
    CHECK(count_with_status(fixture.sandbox, "unsubscribed") == 10);
    CHECK(count_with_status(fixture.sandbox, "subscribed") == 93);
    check_secret_never_printed(fixture);
}

TEST_CASE("export: max_changed_ratio stops a run that would change too many members, --full is not held") {
    ExportFixture fixture(fast_sandbox());
    auto profiles = make_profiles(100);
    fixture.write_segment(profiles);
    fixture.write_config("    max_changed_ratio: 0.2\n", kPacingAtScale20);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);

    for (size_t i = 0; i < 21; ++i) profiles[i].first_name = "Renamed" + std::to_string(i);
    fixture.write_segment(profiles);
    const long long requests_before = fixture.sandbox.total_requests();
    const Run guarded = fixture.segpush("export run vip_export");
    INFO(guarded.out << guarded.err);
    CHECK(guarded.exit_code == kExitGuarded);
    CHECK_THAT(guarded.out, Catch::Contains("would change 21 of 100 delivered members (21 %), over max_changed_ratio "
                                            "0.2; nothing was sent") &&
                                Catch::Contains("or raise max_changed_ratio (now 0.2)"));
    CHECK(fixture.sandbox.total_requests() == requests_before);
    CHECK(fixture.sandbox.members(1).at("member0@example.com").first_name == "First0");

    const Run dry = fixture.segpush("export run vip_export --dry-run");
    CHECK(dry.exit_code == 0);
    CHECK_THAT(dry.out, Catch::Contains("mass change   would change 21 of 100 delivered members (21 %)"));

    // Raising the setting lets the same run through.
    fixture.write_config("    max_changed_ratio: 0.25\n", kPacingAtScale20);
    const Run raised = fixture.segpush("export run vip_export");
    INFO(raised.out << raised.err);
    CHECK(raised.exit_code == 0);
    CHECK(fixture.sandbox.members(1).at("member0@example.com").first_name == "Renamed0");

    // --full resends everyone on purpose: the guard does not count them as changed.
    const Run full = fixture.segpush("export run vip_export --full");
    INFO(full.out << full.err);
    CHECK(full.exit_code == 0);
    CHECK_THAT(full.out, Catch::Contains("accepted      100"));
    check_secret_never_printed(fixture);
}
