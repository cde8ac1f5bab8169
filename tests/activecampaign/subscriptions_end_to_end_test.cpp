// Whom an export may put on a list, through the real binary and the real plugin against a
// sandbox that keeps ActiveCampaign's subscription rules: people who unsubscribed themselves
// (or bounced) stay off and are reported suppressed, on the per-contact path (ten contacts or
// fewer) and the bulk path alike; members segpush itself removed come back when they re-join,
// unless something happened at ActiveCampaign since.
#include <map>
#include <set>

#include "activecampaign/ac_support.hpp"

using namespace segpush::test;
using namespace segpush::test::ac;

namespace {

std::string run_json(ExportFixture& fixture, const Run& run) {
    const std::string id = run_id_of(run);
    REQUIRE_FALSE(id.empty());
    return fixture.segpush("runs show " + id + " --json").out;
}

int64_t json_count(const std::string& json, const char* key) {
    rapidjson::Document document;
    document.Parse(json.c_str());
    REQUIRE(document.IsObject());
    return document["counts"][key].GetInt64();
}

void unsubscribe_themselves(Sandbox& sandbox, const std::string& email, const std::string& via = "campaign") {
    sandbox.post("/__sandbox/unsubscribe", R"({"email": ")" + email + R"(", "list": "1", "via": ")" + via + "\"}");
}

// contactLists requests with status 1 (subscribe) and, among them, those re-subscribing.
std::pair<int, int> subscriptions_requested(Sandbox& sandbox) {
    const auto requests = sandbox.get("/__sandbox/requests");
    int subscribes = 0, resubscribes = 0;
    for (const auto& request : requests.GetArray()) {
        if (std::string(request["path"].GetString()) != "/api/3/contactLists" || !request["body"].IsObject()) continue;
        const auto& list = request["body"]["contactList"];
        if (std::string(list["status"].GetString()) != "1") continue;
        ++subscribes;
        resubscribes += list.HasMember("sourceid") && list["sourceid"].GetInt() == 4;
    }
    return {subscribes, resubscribes};
}

}  // namespace

TEST_CASE("subscriptions: people who unsubscribed or bounced stay off the list, reported suppressed, on both paths") {
    // 5 contacts go one at a time (contact/sync + contactLists), 300 by bulk import.
    const size_t n = GENERATE(5, 300);
    INFO(n << " contacts");
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("", kPacingAtScale20);
    auto profiles = make_profiles(n);
    fixture.write_segment(profiles);
    // Before the export: one unsubscribed through a campaign's link, one in the account's UI,
    // and one subscribed whose address then bounced.
    unsubscribe_themselves(fixture.sandbox, profiles[1].email);
    unsubscribe_themselves(fixture.sandbox, profiles[3].email, "admin");
    fixture.sandbox.post("/__sandbox/subscribe", R"({"email": ")" + profiles[4].email + R"(", "list": "1"})");
    fixture.sandbox.post("/__sandbox/bounce", R"({"email": ")" + profiles[4].email + R"("})");
    const std::set<std::string> kept_out = {profiles[1].email, profiles[3].email, profiles[4].email};

    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);  // suppressed members are no failure
    CHECK_THAT(run.out, Catch::Contains(": succeeded"));
    CHECK(summary_value(run.out, "accepted") == std::to_string(n - 3));
    CHECK_THAT(summary_value(run.out, "suppressed"), Catch::StartsWith("3 kept out by the destination"));
    CHECK_THAT(summary_value(run.out, "rejected"), Catch::StartsWith("0 "));
    CHECK_THAT(run.err, Catch::Contains("3 contacts unsubscribed or bounced"));
    const auto members = fixture.sandbox.members(1);
    CHECK(members.at(profiles[1].email).status == "unsubscribed");
    CHECK(members.at(profiles[3].email).status == "unsubscribed");
    CHECK(members.at(profiles[4].email).status == "bounced");
    size_t subscribed = 0;
    for (const auto& profile : profiles) {
        if (kept_out.count(profile.email)) {
            CHECK(times_sent(fixture.sandbox, profile.email) == 0);  // not even their values
        } else {
            subscribed += members.at(profile.email).status == "subscribed";
        }
    }
    CHECK(subscribed == n - 3);

    // Counted apart everywhere a run is shown.
    CHECK(json_count(run_json(fixture, run), "suppressed") == 3);
    CHECK(json_count(run_json(fixture, run), "accepted") == static_cast<int64_t>(n - 3));
    const Run list = fixture.segpush("runs list");
    CHECK_THAT(list.out, Catch::Contains("SUPPRESSED"));
    const std::string report = report_of(fixture, run);
    CHECK_THAT(report, Catch::StartsWith("source,line,email,outcome,reason\n"));
    CHECK_THAT(report, Catch::Contains(profiles[1].email + ",suppressed,unsubscribed from list 1 at ActiveCampaign\n"));
    CHECK_THAT(report, Catch::Contains(profiles[4].email + ",suppressed,bounced on list 1 at ActiveCampaign\n"));

    // Not sent again while their values stay as they were.
    fixture.clear_request_log();
    const Run again = fixture.segpush("export run vip_export");
    INFO(again.out << again.err);
    CHECK(again.exit_code == 0);
    CHECK(summary_value(again.out, "sent") == "0");
    CHECK(fixture.records_sent() == 0);

    // New values, or --full, ask again: still unsubscribed, still kept out.
    profiles[1].first_name = "Renamed";
    fixture.write_segment(profiles);
    const Run changed = fixture.segpush("export run vip_export");
    INFO(changed.out << changed.err);
    CHECK_THAT(summary_value(changed.out, "suppressed"), Catch::StartsWith("1 "));
    const Run full = fixture.segpush("export run vip_export --full");
    INFO(full.out << full.err);
    CHECK(full.exit_code == 0);
    CHECK_THAT(summary_value(full.out, "suppressed"), Catch::StartsWith("3 "));
    const auto after = fixture.sandbox.members(1);
    CHECK(after.at(profiles[1].email).status == "unsubscribed");
    CHECK(after.at(profiles[3].email).status == "unsubscribed");
    CHECK(after.at(profiles[4].email).status == "bounced");
    CHECK(subscriptions_requested(fixture.sandbox).second == 0);  // nobody re-subscribed
    check_secret_never_printed(fixture);
}

TEST_CASE("subscriptions: members segpush unsubscribed come back when they re-join, those who acted since do not") {
    // With 6 members every run goes one contact at a time; with 300, by bulk import.
    const size_t n = GENERATE(6, 300);
    const size_t leaving = n == 6 ? 4 : 15;
    INFO(n << " members, " << leaving << " leave and come back");
    ExportFixture fixture(fast_sandbox());
    // 4 of 6 leaving is over the guard's default share: allowed here, the guard has tests of its own.
    fixture.write_config("    on_leave: unsubscribe\n    max_leaving_ratio: 1\n", kPacingAtScale20);
    const auto profiles = make_profiles(n);
    fixture.write_segment(profiles);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);

    // The first `leaving` members leave the segment: segpush unsubscribes them.
    fixture.write_segment(
        std::vector<Profile>(profiles.begin() + static_cast<std::ptrdiff_t>(leaving), profiles.end()));
    const Run left = fixture.segpush("export run vip_export");
    INFO(left.out << left.err);
    REQUIRE(left.exit_code == 0);
    CHECK_THAT(summary_value(left.out, "accepted"), Catch::EndsWith("removed " + std::to_string(leaving)));
    for (size_t i = 0; i < leaving; ++i)
        CHECK(fixture.sandbox.members(1).at(profiles[i].email).status == "unsubscribed");

    // An hour later (the sandbox's clock), three of them do something of their own: one is
    // put back on the list by a colleague and unsubscribes again through an email's link, one
    // is unsubscribed by an account user, one bounces.
    fixture.sandbox.configure(R"({"clock_offset_seconds": 3600})");
    fixture.sandbox.post("/__sandbox/subscribe", R"({"email": ")" + profiles[0].email + R"(", "list": "1"})");
    unsubscribe_themselves(fixture.sandbox, profiles[0].email);
    unsubscribe_themselves(fixture.sandbox, profiles[1].email, "admin");
    fixture.sandbox.post("/__sandbox/bounce", R"({"email": ")" + profiles[2].email + R"("})");

    // Everyone re-joins.
    fixture.write_segment(profiles);
    fixture.clear_request_log();
    const Run back = fixture.segpush("export run vip_export");
    INFO(back.out << back.err);
    REQUIRE(back.exit_code == 0);
    const size_t restored = leaving - 3;
    CHECK(summary_value(back.out, "accepted") == std::to_string(restored) + ", removed 0");
    CHECK_THAT(summary_value(back.out, "suppressed"), Catch::StartsWith("3 "));
    const auto members = fixture.sandbox.members(1);
    CHECK(members.at(profiles[0].email).status == "unsubscribed");
    CHECK(members.at(profiles[1].email).status == "unsubscribed");
    CHECK(members.at(profiles[2].email).status == "bounced");
    for (size_t i = 3; i < n; ++i) {
        INFO(profiles[i].email);
        CHECK(members.at(profiles[i].email).status == "subscribed");
    }
    CHECK(subscriptions_requested(fixture.sandbox) ==
          std::make_pair(static_cast<int>(restored), static_cast<int>(restored)));
    const std::string report = report_of(fixture, back);
    CHECK_THAT(report, Catch::Contains(profiles[0].email + ",suppressed,"));
    CHECK_THAT(report, Catch::Contains("after segpush removed them at"));

    // Nothing more to do: those put back are delivered, the others stay suppressed.
    const Run settled = fixture.segpush("export run vip_export");
    INFO(settled.out << settled.err);
    CHECK(summary_value(settled.out, "sent") == "0");
}

TEST_CASE("subscriptions: someone who unsubscribed before segpush removed them is not taken for one it removed") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("    on_leave: unsubscribe\n", kPacingAtScale20);
    const auto profiles = make_profiles(3);
    fixture.write_segment(profiles);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);
    // member0 unsubscribes, then leaves the segment: nothing to remove, and not segpush's doing.
    unsubscribe_themselves(fixture.sandbox, profiles[0].email, "admin");
    fixture.write_segment({profiles[1], profiles[2]});
    const Run left = fixture.segpush("export run vip_export");
    INFO(left.out << left.err);
    REQUIRE(left.exit_code == 0);
    CHECK_THAT(summary_value(left.out, "accepted"), Catch::EndsWith("removed 0"));
    CHECK_THAT(summary_value(left.out, "suppressed"), Catch::StartsWith("1 "));
    CHECK_THAT(report_of(fixture, left),
               Catch::Contains("unsubscribed from list 1 at ActiveCampaign; nothing to remove"));
    // Back in the segment at once: still theirs, so still off the list.
    fixture.write_segment(profiles);
    const Run back = fixture.segpush("export run vip_export");
    INFO(back.out << back.err);
    REQUIRE(back.exit_code == 0);
    CHECK_THAT(summary_value(back.out, "suppressed"), Catch::StartsWith("1 "));
    CHECK(fixture.sandbox.members(1).at(profiles[0].email).status == "unsubscribed");
    CHECK(subscriptions_requested(fixture.sandbox).second == 0);
}

TEST_CASE("subscriptions: clear_blank_values clears a value the segment left blank, without it the value stays") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("", kPacingAtScale20);
    auto profiles = make_profiles(20);
    fixture.write_segment(profiles);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);
    profiles[3].first_name = "";
    fixture.write_segment(profiles);
    // Left alone by default: the member is sent without a first name.
    const Run kept = fixture.segpush("export run vip_export");
    INFO(kept.out << kept.err);
    CHECK(kept.exit_code == 0);
    CHECK(fixture.sandbox.members(1).at(profiles[3].email).first_name == "First3");
    // Asked to clear: the member with a blank is sent again (its hash says which choice made
    // the last delivery), the others are not.
    fixture.write_config("    clear_blank_values: true\n", kPacingAtScale20);
    fixture.clear_request_log();
    const Run cleared = fixture.segpush("export run vip_export");
    INFO(cleared.out << cleared.err);
    CHECK(cleared.exit_code == 0);
    CHECK(summary_value(cleared.out, "sent") == "1");
    CHECK(fixture.sandbox.members(1).at(profiles[3].email).first_name == "");
    CHECK(fixture.sandbox.members(1).at(profiles[4].email).first_name == "First4");
    const Run again = fixture.segpush("export run vip_export");
    CHECK(summary_value(again.out, "sent") == "0");
}

TEST_CASE("subscriptions: exclude_automations is sent where either reading of the documentation finds it") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("", kPacingAtScale20);
    edit_config(fixture, "settings: { list_id: 1 }", "settings: { list_id: 1, exclude_automations: true }");
    fixture.write_segment(make_profiles(300));
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    const auto imports = fixture.sandbox.get("/__sandbox/imports");
    REQUIRE(imports.Size() == 2);
    for (const auto& import : imports.GetArray()) CHECK(import["automations_excluded"].GetBool());
    const auto requests = fixture.sandbox.get("/__sandbox/requests");
    for (const auto& request : requests.GetArray()) {
        if (std::string(request["path"].GetString()) != "/api/3/import/bulk_import") continue;
        CHECK(request["body"]["exclude_automations"].GetBool());
        CHECK(request["body"]["contacts"][0]["exclude_automations"].GetBool());
    }
}

TEST_CASE("connection check: a redirect or a 400 is a setting to fix, not retried as if passing") {
    const std::string status = GENERATE(std::string("301"), std::string("400"));
    INFO("HTTP " << status);
    ExportFixture fixture(fast_sandbox(R"("override_routes": {"GET /api/3/users/me": {"status": )" + status +
                                       R"(, "headers": {"Location": "https://elsewhere.example/"}, "body": null}})"));
    fixture.write_config("", kPacingAtScale20);
    fixture.write_segment(make_profiles(3));
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.out, Catch::Contains("failed_permanently"));
    CHECK_THAT(run.out, Catch::Contains("Settings > Developer"));
    CHECK(fixture.sandbox.route_count("GET /api/3/users/me") == 1);
    CHECK(fixture.records_sent() == 0);
}

TEST_CASE("subscriptions: a member put back gets the export's values and tags like every other member") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("    on_leave: unsubscribe\n", kPacingAtScale20);
    auto profiles = make_profiles(20);
    fixture.write_segment(profiles);
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);
    fixture.write_segment(std::vector<Profile>(profiles.begin() + 2, profiles.end()));
    REQUIRE(fixture.segpush("export run vip_export").exit_code == 0);
    // Back, one of them under a new name, in an export that now tags everyone (so everyone is
    // sent again).
    edit_config(fixture, "settings: { list_id: 1 }", "settings: { list_id: 1, tags: [returning] }");
    profiles[0].first_name = "Back";
    fixture.write_segment(profiles);
    const Run back = fixture.segpush("export run vip_export");
    INFO(back.out << back.err);
    REQUIRE(back.exit_code == 0);
    CHECK(summary_value(back.out, "accepted") == "20, removed 0");
    CHECK(subscriptions_requested(fixture.sandbox).second == 2);
    const auto members = fixture.sandbox.get("/__sandbox/lists/1/members");
    for (const auto& member : members.GetArray()) {
        const std::string email = member["email"].GetString();
        if (email != profiles[0].email && email != profiles[1].email) continue;
        INFO(email);
        CHECK(std::string(member["status"].GetString()) == "subscribed");
        REQUIRE(member["tags"].Size() == 1);
        CHECK(std::string(member["tags"][0].GetString()) == "returning");
        if (email == profiles[0].email) CHECK(std::string(member["first_name"].GetString()) == "Back");
    }
}
