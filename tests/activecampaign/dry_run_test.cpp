// `export run --dry-run --show N` and `--dry-run --json` against the real binary and the
// sandbox: the members a refresh would change, before -> after, and the requests it would
// make, which the real run that follows then makes.
#include <rapidjson/document.h>

#include "activecampaign/ac_support.hpp"

using namespace segpush::test;
using namespace segpush::test::ac;

namespace {

rapidjson::Document parsed(const std::string& text) {
    rapidjson::Document document;
    document.Parse(text.c_str());
    INFO(text);
    REQUIRE_FALSE(document.HasParseError());
    REQUIRE(document.IsObject());
    return document;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("dry run: --show 2 prints two members of each kind with before -> after, and the real run makes the "
          "requests it predicted") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("    on_leave: unsubscribe\n", kPacingAtScale20);
    // 600 members: three bulk imports of 250, 250 and 100 (more than ten: no per-contact path).
    auto profiles = make_profiles(600);
    fixture.write_segment(profiles);
    const Run first = fixture.segpush("export run vip_export");
    INFO(first.out << first.err);
    REQUIRE(first.exit_code == 0);

    // Three changed (a name, a name and a phone cleared, a last name), 30 new, 12 leaving: batches
    // of more than ten, which the plugin sends as bulk imports (ten or fewer before any bulk
    // import go contact by contact: docs/activecampaign.md).
    profiles[3].first_name = "Renamed3";
    profiles[7].first_name = "Renamed7";
    profiles[7].phone = "";
    profiles[20].last_name = "Married20";
    const auto added = make_profiles(30, 1000);
    profiles.insert(profiles.end(), added.begin(), added.end());
    for (size_t gone = 100; gone < 112; ++gone) profiles[gone].email = "";
    profiles.erase(std::remove_if(profiles.begin(), profiles.end(), [](const Profile& p) { return p.email.empty(); }),
                   profiles.end());
    fixture.write_segment(profiles);
    // The sandbox's counters add up from its start: what each run adds is compared.
    const long long requests_before = fixture.sandbox.total_requests();
    const long long bulk_before = fixture.sandbox.route_count("POST /api/3/import/bulk_import");

    const Run dry = fixture.segpush("export run vip_export --dry-run --show 2");
    INFO(dry.out << dry.err);
    REQUIRE(dry.exit_code == 0);
    CHECK(fixture.sandbox.total_requests() == requests_before);  // nothing sent, nobody contacted
    CHECK(contains(dry.out, "would request 2 batches of up to 250 records and 399999 bytes (activecampaign's "
                            "limits): 1 to add or update 33 members, 1 to remove 12 members"));
    CHECK(contains(dry.out,
                   "New members (2 of 30 shown):\n    member1000@example.com: email \"member1000@example.com\", "
                   "first_name \"First1000\""));
    CHECK(contains(dry.out, "\n    member1001@example.com: "));
    CHECK_FALSE(contains(dry.out, "member1002@example.com"));
    CHECK(contains(dry.out, "Changed members (2 of 3 shown):\n    member3@example.com: first_name \"First3\" -> "
                            "\"Renamed3\"\n    member7@example.com: first_name \"First7\" -> \"Renamed7\", phone "));
    CHECK(contains(dry.out, "-> (absent)\n"));  // member 7's cleared phone is left out, not sent blank
    CHECK_FALSE(contains(dry.out, "Married20"));
    CHECK(contains(dry.out, "Leaving members (2 of 12 shown):\n    member100@example.com: would be unsubscribed "
                            "(on_leave: unsubscribe)\n    member101@example.com: would be unsubscribed"));
    CHECK_FALSE(contains(dry.err, "Renamed3"));  // values are printed on request, never logged

    const Run json = fixture.segpush("export run vip_export --dry-run --show 2 --json");
    INFO(json.out << json.err);
    REQUIRE(json.exit_code == 0);
    CHECK(fixture.sandbox.total_requests() == requests_before);
    const auto document = parsed(json.out);
    CHECK(document["dry_run"].GetBool());
    CHECK(document["counts"]["new"].GetInt64() == 30);
    CHECK(document["counts"]["changed"].GetInt64() == 3);
    CHECK(document["counts"]["leaving"].GetInt64() == 12);
    const auto& requests = document["requests"];
    CHECK(requests["max_records_per_batch"].GetInt64() == 250);
    CHECK(requests["upsert_batches"].GetInt64() == 1);
    CHECK(requests["upsert_records"].GetInt64() == 33);
    CHECK(requests["remove_batches"].GetInt64() == 1);
    CHECK(requests["remove_records"].GetInt64() == 12);
    const auto& shown = document["shown"];
    CHECK(shown["limit"].GetInt() == 2);
    REQUIRE(shown["new"].Size() == 2);
    CHECK(std::string(shown["new"][0]["values"]["first_name"].GetString()) == "First1000");
    REQUIRE(shown["changed"].Size() == 2);
    const auto& renamed = shown["changed"][1];
    CHECK(std::string(renamed["email"].GetString()) == "member7@example.com");
    CHECK(renamed["before_recorded"].GetBool());
    REQUIRE(renamed["changes"].Size() == 2);
    CHECK(std::string(renamed["changes"][0]["field"].GetString()) == "first_name");
    CHECK(std::string(renamed["changes"][0]["before"].GetString()) == "First7");
    CHECK(std::string(renamed["changes"][0]["after"].GetString()) == "Renamed7");
    CHECK(std::string(renamed["changes"][1]["field"].GetString()) == "phone");
    CHECK(renamed["changes"][1]["after"].IsNull());
    REQUIRE(shown["leaving"].Size() == 2);
    CHECK(std::string(shown["leaving"][0]["on_leave"].GetString()) == "unsubscribe");

    // The real run makes the requests the dry run predicted: a bulk import a batch.
    fixture.clear_request_log();
    const Run real = fixture.segpush("export run vip_export");
    INFO(real.out << real.err);
    REQUIRE(real.exit_code == 0);
    CHECK(fixture.sandbox.route_count("POST /api/3/import/bulk_import") - bulk_before ==
          requests["upsert_batches"].GetInt64() + requests["remove_batches"].GetInt64());
    CHECK(fixture.records_sent() == requests["upsert_records"].GetInt64() + requests["remove_records"].GetInt64());
    const auto list = fixture.sandbox.members(1);
    CHECK(list.at("member3@example.com").first_name == "Renamed3");
    CHECK(list.at("member100@example.com").status == "unsubscribed");

    // Delivered now: the next dry run finds nothing to send.
    const Run after = fixture.segpush("export run vip_export --dry-run --json");
    const auto again = parsed(after.out);
    CHECK(again["requests"]["batches"].GetInt64() == 0);
    CHECK(again["shown"]["new"].Size() == 0);
    check_secret_never_printed(fixture);
}

TEST_CASE("dry run: --show without --dry-run is a usage error, and so is --show with another command") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("", kPacingAtScale20);
    fixture.write_segment(make_profiles(3));
    const Run alone = fixture.segpush("export run vip_export --show 2");
    CHECK(alone.exit_code == 2);
    CHECK(contains(alone.err, "--show belongs to a dry run"));
    const Run word = fixture.segpush("export run vip_export --dry-run --show lots");
    CHECK(word.exit_code == 2);
    CHECK(contains(word.err, "--show needs a whole number of members"));
    const Run other = fixture.segpush("runs list --show 2");
    CHECK(other.exit_code == 2);
    CHECK(fixture.sandbox.total_requests() == 0);
}
