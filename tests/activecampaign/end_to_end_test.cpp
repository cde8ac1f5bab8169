// Issue #3 acceptance: a realistic segment exported end to end through the host into the
// sandbox, and the number of requests it takes.
#include <cmath>
#include <map>
#include <set>

#include "activecampaign/ac_support.hpp"

using namespace segpush::test;
using namespace segpush::test::ac;

namespace {

std::string lower(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

std::string upper(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
}

// No contact object in any logged upsert carries a blank value.
void check_no_blank_values_sent(Sandbox& sandbox) {
    const auto requests = sandbox.get("/__sandbox/requests");
    long long contacts = 0;
    for (const auto& request : requests.GetArray()) {
        const auto& body = request["body"];
        if (!body.IsObject()) continue;
        std::vector<const rapidjson::Value*> objects;
        if (body.HasMember("contacts") && body["contacts"].IsArray()) {
            for (const auto& contact : body["contacts"].GetArray()) objects.push_back(&contact);
        }
        if (body.HasMember("contact") && body["contact"].IsObject()) objects.push_back(&body["contact"]);
        for (const auto* object : objects) {
            ++contacts;
            for (const auto& member : object->GetObject()) {
                if (!member.value.IsString()) continue;
                INFO(request["path"].GetString() << " " << member.name.GetString());
                CHECK(member.value.GetStringLength() > 0);
            }
        }
    }
    CHECK(contacts > 0);
}

}  // namespace

TEST_CASE(
    "end to end: 5000 rows with invalid emails, case duplicates and empty fields give exactly the valid members") {
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("", kPacingAtScale20);

    // Rows: 5,000 in all. Every 250th (from 17) has an invalid email; every 100th (from 3) is
    // followed later by a copy whose email differs only in case (the later one must lose); every
    // 100th (from 5) is written in mixed case first and lower case later (the first casing and
    // fields win); some optional fields are empty.
    std::vector<Profile> rows;
    std::vector<Profile> duplicates;
    std::set<std::string> invalid;
    for (size_t i = 0; rows.size() + duplicates.size() < 5000; ++i) {
        const std::string n = std::to_string(i);
        Profile p{"member" + n + "@example.com", i % 7 == 0 ? "" : "First" + n, i % 13 == 0 ? "" : "Last" + n,
                  i % 11 == 0 ? "" : "+1-555-" + n};
        if (i % 250 == 17) {
            p.email = i % 500 == 17 ? "member" + n + ".example.com" : "member" + n + "@example";
            invalid.insert(p.email);
        }
        if (i % 100 == 3) duplicates.push_back({upper(p.email), "Dup" + n, "DupLast" + n, "+1-555-0000"});
        if (i % 100 == 5) {
            duplicates.push_back({p.email, "Dup" + n, "", ""});
            p.email = "Member" + n + "@Example.COM";
        }
        rows.push_back(p);
    }
    std::vector<Profile> segment = rows;
    segment.insert(segment.end(), duplicates.begin(), duplicates.end());
    REQUIRE(segment.size() == 5000);

    // Before the export, the first 40 members already exist with every field filled: an empty
    // value in the segment must leave theirs alone.
    std::vector<Profile> earlier;
    for (size_t i = 0; i < 40; ++i) {
        const std::string n = std::to_string(i);
        earlier.push_back({rows[i].email, "Old" + n, "OldLast" + n, "+1-555-9" + n});
    }
    fixture.write_segment(earlier);
    const Run first = fixture.segpush("export run vip_export");
    INFO(first.out << first.err);
    REQUIRE(first.exit_code == 3);  // succeeded_with_rejections: some of the 40 are invalid

    fixture.write_segment(segment);
    fixture.clear_request_log();
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    // Rows refused before sending: everyone valid got in, not everyone in the segment.
    REQUIRE(run.exit_code == 3);
    CHECK_THAT(run.out, Catch::Contains(": succeeded_with_rejections in "));
    const size_t valid = rows.size() - invalid.size();
    CHECK_THAT(run.out, Catch::Contains("rows read     5000 (" + std::to_string(invalid.size()) +
                                        " invalid, refused before sending; " + std::to_string(duplicates.size()) +
                                        " duplicates collapsed"));
    CHECK_THAT(run.out, Catch::Contains("accepted      " + std::to_string(valid)));
    CHECK_THAT(run.out, Catch::Contains("rejected      0 by the destination"));

    // The list: exactly the valid, de-duplicated members, first row's casing and fields.
    std::vector<Profile> expected;
    for (size_t i = 0; i < rows.size(); ++i) {
        if (invalid.count(rows[i].email)) continue;
        Profile p = rows[i];
        if (i < earlier.size()) {  // empty in the segment: the earlier value stays
            if (p.first_name.empty()) p.first_name = earlier[i].first_name;
            if (p.last_name.empty()) p.last_name = earlier[i].last_name;
            if (p.phone.empty()) p.phone = earlier[i].phone;
        }
        expected.push_back(p);
    }
    REQUIRE(expected.size() == valid);
    require_list_equals(fixture.sandbox, expected);
    const auto members = fixture.sandbox.members(1);
    CHECK(members.size() == valid);
    for (const auto& p : expected) {
        if (p.email != lower(p.email)) CHECK(members.at(lower(p.email)).email == p.email);  // first casing kept
    }
    // Spot checks of what the loops above cover.
    CHECK(members.at("member0@example.com").first_name == "Old0");  // empty in the segment, kept
    CHECK(members.at("member13@example.com").last_name == "OldLast13");
    CHECK(members.at("member70@example.com").first_name.empty());         // empty and new: absent
    CHECK(members.at("member103@example.com").first_name == "First103");  // the upper-case copy lost
    CHECK(members.at("member105@example.com").email == "Member105@Example.COM");

    // Empty values were never sent as blanks.
    CHECK(stat(fixture.sandbox, "blank_overwrites") == 0);
    check_no_blank_values_sent(fixture.sandbox);
    for (const auto& email : invalid) CHECK(times_sent(fixture.sandbox, email) == 0);

    // The invalid rows are in the rejected-records report with the reason.
    const std::string report = report_of(fixture, run);
    CHECK_THAT(report, Catch::StartsWith("source,line,email,outcome,reason\n"));
    for (size_t i = 0; i < rows.size(); ++i) {
        if (!invalid.count(rows[i].email)) continue;
        INFO(report);
        // CSV line = row index + 2 (header is line 1).
        CHECK_THAT(report, Catch::Contains("vip.csv," + std::to_string(i + 2) + "," + rows[i].email + ",") &&
                               Catch::Contains(rows[i].email + "' is not a valid email address"));
    }
    size_t report_lines = 0;
    for (char c : report) report_lines += c == '\n';
    CHECK(report_lines == invalid.size() + 1);
    check_secret_never_printed(fixture);
}

TEST_CASE("end to end: N valid profiles take ceil(N/250) bulk imports plus a bounded number of checks and polls") {
    const size_t n = GENERATE(1000, 2600);
    ExportFixture fixture(fast_sandbox());
    fixture.write_config("", kPacingAtScale20);
    const auto profiles = make_profiles(n);
    fixture.write_segment(profiles);
    const Run run = fixture.segpush("export run vip_export");
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    require_list_equals(fixture.sandbox, profiles);

    const long long batches = static_cast<long long>((n + 249) / 250);
    const long long bulk = fixture.sandbox.route_count("POST /api/3/import/bulk_import");
    const long long me = fixture.sandbox.route_count("GET /api/3/users/me");
    const long long list = fixture.sandbox.route_count("GET /api/3/lists/{id}");
    const long long info = fixture.sandbox.route_count("GET /api/3/import/info");
    // Who is unsubscribed from or bounced on the list: one page each, empty here.
    const long long kept_out_reads = fixture.sandbox.route_count("GET /api/3/contacts");
    const long long total = fixture.sandbox.total_requests();
    INFO("N " << n << ": bulk_import " << bulk << ", users/me " << me << ", lists/{id} " << list << ", import/info "
              << info << ", contacts " << kept_out_reads << ", total " << total);
    WARN("N " << n << ": bulk_import " << bulk << " (ceil(N/250) = " << batches << "), users/me " << me
              << ", lists/{id} " << list << ", import/info " << info << ", total " << total);
    CHECK(bulk == batches);
    CHECK(me == 1);
    CHECK(list == 1);
    CHECK(info >= batches);      // every batch is confirmed
    CHECK(info <= batches + 5);  // and polled about once: imports here finish within a second
    CHECK(kept_out_reads == 2);
    CHECK(total == bulk + me + list + info + kept_out_reads);  // nothing else
    CHECK(fixture.records_sent() == static_cast<long long>(n));
}

namespace {

// The counts of run `id` as `runs show ID --json` gives them.
std::map<std::string, int64_t> counts_of_run(ExportFixture& fixture, const std::string& id) {
    const Run show = fixture.segpush("runs show " + id + " --json");
    INFO(show.out << show.err);
    REQUIRE(show.exit_code == 0);
    rapidjson::Document run;
    run.Parse(show.out.c_str());
    REQUIRE(run.IsObject());
    std::map<std::string, int64_t> counts;
    for (const auto& count : run["counts"].GetObject()) counts[count.name.GetString()] = count.value.GetInt64();
    return counts;
}

}  // namespace

TEST_CASE("end to end: members the destination refuses are sent again by the next retry_rejected_runs runs, then "
          "only when they change or with --retry-rejected or --full") {
    ExportFixture fixture(fast_sandbox(R"("fail_emails": ["member3@example.com", "member7@example.com"])"));
    fixture.write_config("    retry_rejected_runs: 2\n", kPacingAtScale20);
    // With tags every run imports in bulk, where fail_emails refuses, however few it sends.
    edit_config(fixture, "settings: { list_id: 1 }", "settings: { list_id: 1, tags: [vip] }");
    std::vector<Profile> profiles = make_profiles(10);
    fixture.write_segment(profiles);
    // Each run: what the sandbox received of the two refused members, and the run's counts.
    struct Sent {
        long long member3 = 0, member7 = 0, records = 0;
    };
    auto run = [&](const std::string& args, Sent& sent) {
        fixture.clear_request_log();
        const Run done = fixture.segpush("export run vip_export" + args);
        INFO(done.out << done.err);
        CHECK(done.exit_code != 2);
        sent = {times_sent(fixture.sandbox, "member3@example.com"), times_sent(fixture.sandbox, "member7@example.com"),
                fixture.records_sent()};
        const std::string id = run_id_of(done);
        REQUIRE_FALSE(id.empty());
        return std::make_pair(done, counts_of_run(fixture, id));
    };
    Sent sent;

    auto [first, first_counts] = run("", sent);
    CHECK(sent.records == 10);
    CHECK(first_counts.at("accepted") == 8);
    CHECK(first_counts.at("rejected") == 2);
    CHECK(first_counts.at("rejected_retried") == 0);
    CHECK(first_counts.at("rejected_held") == 0);

    // The next two runs send the refused members again, and only them.
    for (int retry = 1; retry <= 2; ++retry) {
        INFO("retry " << retry);
        auto [again, counts] = run("", sent);
        CHECK(sent.member3 == 1);
        CHECK(sent.member7 == 1);
        CHECK(sent.records == 2);
        CHECK(counts.at("sent") == 2);
        CHECK(counts.at("rejected") == 2);
        CHECK(counts.at("unchanged") == 8);
        CHECK(counts.at("rejected_retried") == 2);
        CHECK(counts.at("rejected_held") == 0);
        CHECK(summary_value(again.out, "retried") == "2 refused before with the same values, sent again");
    }

    // Then they are held: with nothing to send, the destination is not even contacted.
    auto [held, held_counts] = run("", sent);
    CHECK(sent.records == 0);
    CHECK(fixture.sandbox.get("/__sandbox/requests").GetArray().Size() == 0);
    CHECK(held_counts.at("sent") == 0);
    CHECK(held_counts.at("rejected") == 0);
    CHECK(held_counts.at("rejected_retried") == 0);
    CHECK(held_counts.at("rejected_held") == 2);
    CHECK_THAT(summary_value(held.out, "held"), Catch::StartsWith("2 refused before with the same values, not sent"));
    const Run dry = fixture.segpush("export run vip_export --dry-run");
    CHECK(summary_value(dry.out, "would send") == "0 records");
    CHECK_THAT(summary_value(dry.out, "held"), Catch::StartsWith("2 refused before with the same values"));
    const std::string report = report_of(fixture, held);
    CHECK_THAT(report, Catch::Contains("vip.csv,5,member3@example.com,held,refused by the destination on 3 runs") &&
                           Catch::Contains("vip.csv,9,member7@example.com,held,"));
    const Run show = fixture.segpush("runs show " + run_id_of(held));
    CHECK_THAT(show.out, Catch::Contains("held          2 refused before with the same values, not sent"));

    // member3's values change: it is sent (and refused) again; member7 stays held.
    profiles[3].first_name = "Renamed";
    fixture.write_segment(profiles);
    auto [changed, changed_counts] = run("", sent);
    CHECK(sent.member3 == 1);
    CHECK(sent.member7 == 0);
    CHECK(changed_counts.at("rejected") == 1);
    CHECK(changed_counts.at("rejected_retried") == 0);
    CHECK(changed_counts.at("rejected_held") == 1);

    // --retry-rejected sends both; member7 is now taken, so it is held no longer, nor sent again.
    fixture.sandbox.configure(R"({"fail_emails": ["member3@example.com"]})");
    auto [retried, retried_counts] = run(" --retry-rejected", sent);
    CHECK(sent.member3 == 1);
    CHECK(sent.member7 == 1);
    CHECK(retried_counts.at("rejected_retried") == 2);
    CHECK(retried_counts.at("accepted") == 1);
    CHECK(fixture.sandbox.members(1).count("member7@example.com") == 1);
    auto [after, after_counts] = run("", sent);
    CHECK(sent.member7 == 0);
    CHECK(after_counts.at("unchanged") == 9);
    CHECK(after_counts.at("rejected_retried") == 1);  // member3, refused once with its new values

    // --full sends everyone, the refused member included.
    auto [full, full_counts] = run(" --full", sent);
    CHECK(sent.records == 10);
    CHECK(sent.member3 == 1);
    CHECK(full_counts.at("rejected_retried") == 1);
    check_secret_never_printed(fixture);
}
