// The Mailchimp plugin end to end: the real segpush binary and the real plugin against the
// Mailchimp sandbox (tests/sandbox/mc_sandbox.py) over HTTPS on 127.0.0.1.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "mailchimp/mc_support.hpp"

using namespace segpush::test;
using namespace segpush::test::mc;

namespace {

const std::string kList = "a1b2c3d4e5";

size_t count_status(const std::map<std::string, McMember>& members, const std::string& status) {
    return static_cast<size_t>(
        std::count_if(members.begin(), members.end(), [&](const auto& item) { return item.second.status == status; }));
}

// Members in the batch subscribe requests of the request log, and the requests of `route`.
size_t batch_members_sent(McSandbox& sandbox) {
    size_t members = 0;
    const auto log = sandbox.requests();
    for (const auto& request : log.GetArray()) {
        if (std::string(request["route"].GetString()) == "POST /3.0/lists/{list_id}" && request["body"].IsObject()) {
            members += request["body"]["members"].Size();
        }
    }
    return members;
}

// Requests on `route` in the request log (cleared by clear_request_log, unlike the stats).
size_t requests_on(McSandbox& sandbox, const std::string& route) {
    size_t n = 0;
    const auto log = sandbox.requests();
    for (const auto& request : log.GetArray()) n += std::string(request["route"].GetString()) == route;
    return n;
}

}  // namespace

TEST_CASE("first load: 5,000 members in batches of 500, duplicates by case collapsed, invalid emails reported") {
    McExport fixture;
    std::vector<Person> rows = people(5000);
    rows.push_back({"MEMBER7@Shop.Test", "Shouting", "Duplicate"});  // the same member as member7
    rows.push_back({"Member42@shop.test", "Mixed", "Duplicate"});
    rows.push_back({"fake.person@example.com", "Fake", "Person"});  // Mailchimp calls it fake
    rows.push_back({"admin@shop.test", "Role", "Address"});         // role addresses: refused in bulk
    rows.push_back({"not-an-email", "No", "Email"});                // segpush refuses it before sending
    fixture.write_segment(rows);
    fixture.write_config();
    const Run run = fixture.run_export();
    INFO(run.out << run.err);
    CHECK(run.exit_code == 3);  // succeeded_with_rejections
    CHECK_THAT(run.out, Catch::Contains("succeeded_with_rejections"));
    CHECK_THAT(run.out, Catch::Contains("2 duplicates collapsed"));
    CHECK_THAT(run.out, Catch::Contains("accepted      5000"));
    CHECK_THAT(run.out, Catch::Contains("rejected      2 by the destination"));

    // The audience is exactly the segment: every member once, subscribed, with its fields and tag.
    const auto members = fixture.sandbox.members(kList);
    CHECK(members.size() == 5000);
    CHECK(count_status(members, "subscribed") == 5000);
    for (const auto& person : people(5000)) {
        auto it = members.find(person.email);
        INFO(person.email);
        REQUIRE(it != members.end());
        CHECK(it->second.merge_fields.at("FNAME") == person.first_name);
        CHECK(it->second.merge_fields.at("LNAME") == person.last_name);
        CHECK(it->second.tags == std::vector<std::string>{"vip"});
    }
    // New members cost one request per 500: no member was written one by one.
    CHECK(fixture.sandbox.route_count("POST /3.0/lists/{list_id}") == 11);
    CHECK(batch_members_sent(fixture.sandbox) == 5002);
    CHECK(fixture.sandbox.route_count("PUT /3.0/lists/{list_id}/members/{hash}") == 0);

    const std::string report = fixture.report(run);
    CHECK_THAT(report, Catch::Contains("fake.person@example.com,rejected"));
    CHECK_THAT(report, Catch::Contains("looks fake or invalid"));
    CHECK_THAT(report, Catch::Contains("admin@shop.test,rejected"));
    CHECK_THAT(report, Catch::Contains("not-an-email"));
    fixture.check_key_never_printed();
}

TEST_CASE("existing members: fields updated, unsubscribed and cleaned ones kept so and reported suppressed") {
    McExport fixture;
    // Both readings of update_existing false: existing members refused as such, or updated with
    // their status kept.
    const std::string reading = GENERATE(as<std::string>{}, "refuse", "update_fields");
    INFO("update_existing false: " << reading);
    fixture.sandbox.configure(R"({"batch_existing_without_update": ")" + reading + R"("})");
    fixture.sandbox.seed(kList, R"([
        {"email": "member0@shop.test", "status": "subscribed", "merge_fields": {"FNAME": "Old", "LNAME": "Name"}},
        {"email": "member1@shop.test", "status": "unsubscribed", "merge_fields": {"FNAME": "Old"}},
        {"email": "Member2@Shop.test", "status": "cleaned"},
        {"email": "member3@shop.test", "status": "pending"},
        {"email": "member4@shop.test", "status": "forgotten"}])");
    fixture.write_segment(people(20));
    fixture.write_config();
    const Run run = fixture.run_export();
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);  // kept out by the person's choice: no failure, but said so
    CHECK_THAT(run.out, Catch::Contains("suppressed    3 kept out by the destination"));
    CHECK_THAT(run.out, Catch::Contains("accepted      17"));

    const auto members = fixture.sandbox.members(kList);
    CHECK(members.at("member0@shop.test").status == "subscribed");
    CHECK(members.at("member0@shop.test").merge_fields.at("FNAME") == "First0");
    CHECK(members.at("member0@shop.test").tags == std::vector<std::string>{"vip"});
    CHECK(members.at("member1@shop.test").status == "unsubscribed");
    CHECK(members.at("member2@shop.test").status == "cleaned");
    CHECK(members.at("member3@shop.test").status == "pending");  // never pushed to subscribed
    CHECK(members.at("member4@shop.test").status == "forgotten");
    CHECK(count_status(members, "subscribed") == 16);

    const std::string report = fixture.report(run);
    CHECK_THAT(report, Catch::Contains("member1@shop.test,suppressed,unsubscribed from audience a1b2c3d4e5"));
    CHECK_THAT(report, Catch::Contains("member2@shop.test,suppressed,cleaned in audience a1b2c3d4e5"));
    CHECK_THAT(report, Catch::Contains("member4@shop.test,suppressed,"));
    CHECK_THAT(report, Catch::Contains("permanently deleted"));
    // No request ever carried a status for a member that existed: only new members get one.
    const auto log = fixture.sandbox.requests();
    for (const auto& request : log.GetArray()) {
        if (std::string(request["method"].GetString()) == "PUT") {
            INFO(request["path"].GetString());
            CHECK_FALSE(request["body"].HasMember("status"));
        }
    }
    // The suppressed members are not sent again while unchanged.
    fixture.sandbox.clear_request_log();
    const Run again = fixture.run_export();
    INFO(again.out << again.err);
    CHECK(again.exit_code == 0);
    CHECK(requests_on(fixture.sandbox, "PUT /3.0/lists/{list_id}/members/{hash}") == 0);
    CHECK(requests_on(fixture.sandbox, "POST /3.0/lists/{list_id}") == 0);
}

TEST_CASE("refresh: only changed members are sent, leavers archived and put back, a person's own unsubscribe kept") {
    McExport fixture;
    fixture.write_segment(people(1000));
    fixture.write_config();
    const Run first = fixture.run_export();
    INFO(first.out << first.err);
    REQUIRE(first.exit_code == 0);

    // Five change, member999 unsubscribes by themselves, an account user makes member995
    // transactional and member996 pending (not confirmed), then members 995-999 leave.
    std::vector<Person> rows = people(995);
    for (size_t i = 0; i < 5; ++i) rows[i * 100].first_name += "-changed";
    fixture.write_segment(rows);
    fixture.sandbox.seed(kList, "member999@shop.test", "unsubscribed");
    fixture.sandbox.seed(kList, "member995@shop.test", "transactional");
    fixture.sandbox.seed(kList, "member996@shop.test", "pending");
    fixture.sandbox.clear_request_log();
    const Run second = fixture.run_export();
    INFO(second.out << second.err);
    CHECK(second.exit_code == 0);
    CHECK_THAT(second.out, Catch::Contains("5 changed"));
    CHECK_THAT(second.out, Catch::Contains("removed 2"));
    CHECK(batch_members_sent(fixture.sandbox) == 5);  // the changed ones, found to exist
    CHECK(requests_on(fixture.sandbox, "PUT /3.0/lists/{list_id}/members/{hash}") == 5);
    CHECK(requests_on(fixture.sandbox, "DELETE /3.0/lists/{list_id}/members/{hash}") == 2);
    auto members = fixture.sandbox.members(kList);
    CHECK(members.at("member100@shop.test").merge_fields.at("FNAME") == "First100-changed");
    CHECK(members.at("member997@shop.test").status == "archived");
    CHECK(members.at("member998@shop.test").status == "archived");
    CHECK(members.at("member999@shop.test").status == "unsubscribed");
    // Neither receives campaigns, so neither is archived: putting them back would subscribe them.
    CHECK(members.at("member995@shop.test").status == "transactional");
    CHECK(members.at("member996@shop.test").status == "pending");
    CHECK_THAT(second.out, Catch::Contains("suppressed    3"));

    // All five come back: segpush's own removals are undone, the others keep their status.
    fixture.write_segment(people(1000));
    const Run third = fixture.run_export();
    INFO(third.out << third.err);
    CHECK(third.exit_code == 0);
    members = fixture.sandbox.members(kList);
    CHECK(members.at("member997@shop.test").status == "subscribed");
    CHECK(members.at("member998@shop.test").status == "subscribed");
    CHECK(members.at("member999@shop.test").status == "unsubscribed");
    CHECK(members.at("member995@shop.test").status == "transactional");
    CHECK(members.at("member996@shop.test").status == "pending");
    CHECK(count_status(members, "subscribed") == 997);
    CHECK_THAT(third.out, Catch::Contains("suppressed    1"));
    fixture.check_key_never_printed();
}

TEST_CASE("tags: new members get the export's tags even where Mailchimp ignores them in a batch subscribe") {
    McExport fixture;
    // Whether the batch endpoint applies a member body's tags is not in every description of it.
    fixture.sandbox.configure(R"({"batch_member_tags": "ignore"})");
    fixture.write_segment(people(20));
    fixture.write_config("{ list_id: a1b2c3d4e5, tags: [vip] }");
    const Run run = fixture.run_export();
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    const auto members = fixture.sandbox.members(kList);
    REQUIRE(members.size() == 20);
    for (const auto& [email, member] : members) CHECK(member.tags == std::vector<std::string>{"vip"});
    CHECK(requests_on(fixture.sandbox, "POST /3.0/lists/{list_id}/members/{hash}/tags") == 20);

    // Where it applies them, nothing more is sent.
    McExport applied;
    applied.write_segment(people(20));
    applied.write_config("{ list_id: a1b2c3d4e5, tags: [vip] }");
    REQUIRE(applied.run_export().exit_code == 0);
    CHECK(requests_on(applied.sandbox, "POST /3.0/lists/{list_id}/members/{hash}/tags") == 0);
    CHECK(applied.sandbox.members(kList).at("member7@shop.test").tags == std::vector<std::string>{"vip"});
}

TEST_CASE("connection limit: 429s for too many simultaneous requests are retried until every member is in") {
    McSandbox::Options options;
    // Fewer connections than the plugin uses, and slow answers, so that requests overlap.
    options.config_json = R"({"max_connections": 3, "latency_ms": 30})";
    McExport fixture(options);
    // 200 existing members with old values: 200 single-member updates, up to 10 in flight at once.
    std::string seed = "[";
    for (size_t i = 0; i < 200; ++i) {
        seed += std::string(i ? "," : "") + R"({"email": "member)" + std::to_string(i) +
                R"(@shop.test", "merge_fields": {"FNAME": "Old"}})";
    }
    fixture.sandbox.seed(kList, seed + "]");
    fixture.write_segment(people(200));
    fixture.write_config("{ list_id: a1b2c3d4e5 }");
    const Run run = fixture.run_export();
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    const auto stats = fixture.sandbox.get("/__sandbox/stats");
    CHECK(stats["connection_refusals"].GetInt64() > 0);  // the limit was met, and answered 429
    CHECK(stats["by_status"]["429"].GetInt64() > 0);
    const auto members = fixture.sandbox.members(kList);
    for (const auto& person : people(200)) {
        INFO(person.email);
        CHECK(members.at(person.email).merge_fields.at("FNAME") == person.first_name);
    }
}

TEST_CASE("configuration errors: audience, merge fields and a key without a data centre, never echoing the key") {
    McExport fixture;
    fixture.write_segment(people(3));
    fixture.write_config("{ list_id: nosuchlist }");
    Run run = fixture.run_export();
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.out + run.err, Catch::Contains("no audience with ID nosuchlist"));

    fixture.write_config("{ list_id: a1b2c3d4e5 }", "",
                         R"({ email: Email, first_name: FirstName, "field:LOYALTY": LastName })");
    run = fixture.run_export();
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.out + run.err, Catch::Contains("no merge field with tag LOYALTY"));
    CHECK_THAT(run.out + run.err, Catch::Contains("FNAME (First Name)"));

    fixture.sandbox.add_merge_field(kList, R"({"tag": "REGION", "name": "Region", "type": "text", "required": true})");
    fixture.write_config("{ list_id: a1b2c3d4e5 }", "");
    run = fixture.run_export();
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.out + run.err, Catch::Contains("requires merge field REGION (Region)"));

    // A key the account does not know: refused, and said so without the key.
    const std::string wrong_key = "ffffffffffffffffffffffffffffffff-us7";
    run = run_shell(fixture.dir.path().string(), "env MC_API_KEY=" + wrong_key + " " + std::string(SEGPUSH_BINARY) +
                                                     " --config segpush.yaml export run news_export");
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.out + run.err, Catch::Contains("Mailchimp refused the API key (HTTP 401"));
    CHECK((run.out + run.err).find(wrong_key) == std::string::npos);

    // Without `server`, the key must name its data centre.
    const std::string config = read_file(fixture.dir.file("segpush.yaml"));
    std::string without_server = config;
    without_server.erase(without_server.find("      server:"),
                         without_server.find('\n', without_server.find("      server:")) -
                             without_server.find("      server:") + 1);
    fixture.dir.write("segpush.yaml", without_server);
    run = run_shell(fixture.dir.path().string(), "env MC_API_KEY=0123456789abcdef0123456789abcdef " +
                                                     std::string(SEGPUSH_BINARY) +
                                                     " --config segpush.yaml export run news_export");
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.out + run.err, Catch::Contains("does not end in a data centre"));
    CHECK((run.out + run.err).find("0123456789abcdef0123456789abcdef") == std::string::npos);
    fixture.check_key_never_printed();
}

TEST_CASE("kill -9 mid-export: the next run finishes the load, members already sent are not created twice") {
    McSandbox::Options options;
    options.config_json = R"({"latency_ms": 150})";  // slow answers: the kill lands mid-export
    McExport fixture(options);
    // More members than the pushes in flight hold at once (10 of 500), so the kill lands mid-export.
    const size_t total = 15000;
    fixture.write_segment(people(total));
    fixture.write_config("{ list_id: a1b2c3d4e5, tags: [vip] }", "    on_leave: unsubscribe\n");
    {
        BackgroundProcess run({SEGPUSH_BINARY, "--config", fixture.dir.file("segpush.yaml"), "export", "run",
                               "news_export"},
                              fixture.dir.file("killed.out"), fixture.dir.file("killed.err"),
                              {"MC_API_KEY=" + fixture.sandbox.api_key()});
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (fixture.sandbox.get("/__sandbox/stats")["members_total"].GetInt64() == 0 &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        run.signal(SIGKILL);
        CHECK(run.wait() == -SIGKILL);
    }
    // Requests the killed run had on the wire still finish at the sandbox, as they would at
    // Mailchimp: the audience is counted once it has stopped changing.
    auto partial = fixture.sandbox.members(kList).size();
    for (size_t settled = 0; settled != partial;) {
        settled = partial;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        partial = fixture.sandbox.members(kList).size();
    }
    INFO("members after the kill: " << partial);
    CHECK(partial > 0);
    CHECK(partial < total);
    // Someone unsubscribes from among those already sent: the resumed run must not undo it.
    fixture.sandbox.seed(kList, "member0@shop.test", "unsubscribed");
    fixture.sandbox.configure(R"({"latency_ms": 0})");
    fixture.sandbox.clear_request_log();

    const Run resumed = fixture.run_export();
    INFO(resumed.out << resumed.err);
    CHECK(resumed.exit_code == 0);
    const auto members = fixture.sandbox.members(kList);
    CHECK(members.size() == total);
    CHECK(count_status(members, "subscribed") == total - 1);
    CHECK(members.at("member0@shop.test").status == "unsubscribed");
    CHECK(members.at("member" + std::to_string(total - 1) + "@shop.test").tags == std::vector<std::string>{"vip"});
    // Only members whose outcome the killed run never recorded were sent again, and only those
    // already created went one by one.
    CHECK(requests_on(fixture.sandbox, "PUT /3.0/lists/{list_id}/members/{hash}") <= partial);
    fixture.check_key_never_printed();
}
