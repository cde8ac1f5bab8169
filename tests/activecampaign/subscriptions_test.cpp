// The ActiveCampaign plugin's subscription rules and the answers they read (subscriptions.cpp,
// responses.cpp): who may be put back on a list, ActiveCampaign's timestamps, and which
// contacts a refused bulk request names under either reading of its numbering.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "../../plugins/activecampaign/requests.hpp"
#include "../../plugins/activecampaign/responses.hpp"

using namespace segpush::activecampaign;

namespace {

// 2026-12-05 12:00:00 UTC.
constexpr int64_t kRemovedAt = 1796472000;
constexpr int64_t kSlack = 120;

// A contact's answer with its memberships, each {list, status, udate}, none marked as the
// person's own doing.
struct Row {
    int list;
    int status;
    std::string udate;
};
std::string contact_answer(const std::vector<Row>& rows, const std::string& bounced_hard = "0") {
    std::string lists;
    for (const auto& row : rows) {
        if (!lists.empty()) lists += ",";
        lists += "{\"contact\":\"7\",\"list\":\"" + std::to_string(row.list) + "\",\"status\":\"" +
                 std::to_string(row.status) + "\",\"udate\":\"" + row.udate +
                 "\",\"campaign\":null,\"message\":null,\"unsubreason\":null,\"unsubscribeAutomation\":null,"
                 "\"automation\":null}";
    }
    return "{\"contact\":{\"id\":\"7\",\"email\":\"a@example.com\",\"bounced_hard\":\"" + bounced_hard +
           "\"},\"contactLists\":[" + lists + "]}";
}

RestoreDecision decide(const std::string& answer) {
    return decide_restore(parse_contact_state(answer), 3, kRemovedAt, kSlack);
}

}  // namespace

TEST_CASE("activecampaign times: offsets, Z and fractions read as UTC, a time without an offset is not guessed") {
    CHECK(parse_ac_time("2026-12-05T12:00:00Z") == kRemovedAt);
    CHECK(parse_ac_time("2026-12-05T07:00:00-05:00") == kRemovedAt);
    CHECK(parse_ac_time("2026-12-05T13:30:00+0130") == kRemovedAt);
    CHECK(parse_ac_time("2026-12-05T12:00:00.250Z") == kRemovedAt);
    CHECK_FALSE(parse_ac_time("2026-12-05 12:00:00"));  // created_timestamp's form: the account's zone
    CHECK_FALSE(parse_ac_time(""));
    CHECK_FALSE(parse_ac_time("2026-13-05T12:00:00Z"));
    CHECK_FALSE(parse_ac_time("2026-12-05T12:00:00-05:00 and more"));
}

TEST_CASE("restore: a membership still as segpush left it is put back") {
    // segpush's removal reached ActiveCampaign a minute before it was recorded.
    const auto decision = decide(contact_answer({{3, 2, "2026-12-05T06:59:00-05:00"}}));
    CHECK(decision.kind == RestoreDecision::restore);
    // Within the clocks' slack, after it too.
    CHECK(decide(contact_answer({{3, 2, "2026-12-05T07:01:30-05:00"}})).kind == RestoreDecision::restore);
}

TEST_CASE("restore: anything the person, the account or the mail did since keeps them out") {
    SECTION("unsubscribed again after segpush's removal") {
        const auto decision = decide(contact_answer({{3, 2, "2026-12-05T08:00:00-05:00"}}));
        CHECK(decision.kind == RestoreDecision::keep_out);
        CHECK_THAT(decision.reason, Catch::Contains("after segpush removed them at 2026-12-05 12:00:00 UTC"));
    }
    SECTION("unsubscribed through a campaign, an automation or with a reason, whenever") {
        for (const std::string extra : {",\"campaign\":\"4\",\"message\":\"9\"", ",\"unsubscribeAutomation\":\"2\"",
                                        ",\"unsubreason\":\"too many emails\""}) {
            const std::string answer =
                "{\"contact\":{\"bounced_hard\":\"0\"},\"contactLists\":[{\"list\":\"3\",\"status\":\"2\",\"udate\":"
                "\"2026-12-05T06:00:00-05:00\"" +
                extra + "}]}";
            INFO(extra);
            const auto decision = decide(answer);
            CHECK(decision.kind == RestoreDecision::keep_out);
            CHECK_THAT(decision.reason, Catch::Contains("unsubscribed themselves"));
        }
    }
    SECTION("bounced") {
        CHECK(decide(contact_answer({{3, 2, "2026-12-05T06:59:00-05:00"}}, "1")).kind == RestoreDecision::keep_out);
        const auto decision = decide(contact_answer({{3, 3, "2026-12-05T06:59:00-05:00"}}));
        CHECK(decision.kind == RestoreDecision::keep_out);
        CHECK_THAT(decision.reason, Catch::Contains("bounced on list 3"));
    }
    SECTION("a change time that cannot be compared") {
        CHECK(decide(contact_answer({{3, 2, "2026-12-05 06:59:00"}})).kind == RestoreDecision::keep_out);
        CHECK(decide("{\"contactLists\":[{\"list\":\"3\",\"status\":\"2\"}]}").kind == RestoreDecision::keep_out);
    }
    SECTION("another list shows an unsubscribe after the removal (from all lists, perhaps)") {
        const auto decision = decide(
            contact_answer({{3, 2, "2026-12-05T06:59:00-05:00"}, {5, 2, "2026-12-06T09:00:00-05:00"}}));
        CHECK(decision.kind == RestoreDecision::keep_out);
        CHECK_THAT(decision.reason, Catch::Contains("from list 5"));
    }
    SECTION("no membership of the list any more, or one the person has yet to confirm") {
        CHECK_THAT(decide(contact_answer({})).reason, Catch::Contains("no longer on list 3"));
        CHECK_THAT(decide(contact_answer({{3, 0, "2026-12-06T06:59:00-05:00"}})).reason,
                   Catch::Contains("has not confirmed"));
    }
    SECTION("an answer that cannot be read, in whole or in part") {
        CHECK(decide("<html>").kind == RestoreDecision::keep_out);
        // A membership without its list might be this list's.
        CHECK(decide("{\"contactLists\":[{\"list\":\"3\",\"status\":\"2\",\"udate\":\"2026-12-05T06:59:00-05:00\"},"
                     "{\"status\":\"1\"}]}")
                  .kind == RestoreDecision::keep_out);
    }
}

TEST_CASE("restore: other lists' old unsubscribes, or segpush's own removal from them at the same time, do not count") {
    CHECK(decide(contact_answer({{3, 2, "2026-12-05T06:59:00-05:00"}, {5, 2, "2026-01-01T09:00:00-05:00"}})).kind ==
          RestoreDecision::restore);
    CHECK(decide(contact_answer({{3, 2, "2026-12-05T06:59:00-05:00"}, {5, 2, "2026-12-05T07:00:30-05:00"}})).kind ==
          RestoreDecision::restore);
    CHECK(decide(contact_answer({{3, 2, "2026-12-05T06:59:00-05:00"}, {5, 1, "2026-12-06T09:00:00-05:00"}})).kind ==
          RestoreDecision::restore);
}

TEST_CASE("restore: someone put them back already") {
    CHECK(decide(contact_answer({{3, 1, "2026-12-06T09:00:00-05:00"}})).kind == RestoreDecision::already_subscribed);
}

TEST_CASE("contacts pages: ids and emails, and the total when given") {
    const auto page = parse_contacts_page(
        "{\"contacts\":[{\"id\":\"12\",\"email\":\"A@example.com\"},{\"id\":\"x\",\"email\":\"b@example.com\"},"
        "{\"id\":\"14\"}],\"meta\":{\"total\":\"250\"}}");
    REQUIRE(page.ok);
    REQUIRE(page.contacts.size() == 1);
    CHECK(page.contacts[0].id == 12);
    CHECK(page.contacts[0].email == "A@example.com");
    CHECK(page.total == 250u);
    CHECK_FALSE(parse_contacts_page("{\"contacts\":[]}").total);
    CHECK_FALSE(parse_contacts_page("[]").ok);
}

TEST_CASE("refused bulk requests: failures are placed under either numbering, or by the email they name") {
    const std::vector<std::string> emails = {"a@example.com", "b@example.com", "c@example.com", "d@example.com"};
    auto failure = [](int64_t index, std::string reason = "Field‘ email’ incorrect format") {
        return BulkAnswer::Failure{index, std::move(reason)};
    };
    SECTION("an index 0 proves counting from 0") {
        const auto match = match_failures({failure(0), failure(2)}, emails);
        REQUIRE(match.refused.size() == 2);
        CHECK(match.refused[0].first == 0);
        CHECK(match.refused[1].first == 2);
        CHECK(match.suspects.empty());
    }
    SECTION("an index n proves counting from 1") {
        const auto match = match_failures({failure(4), failure(2)}, emails);
        REQUIRE(match.refused.size() == 2);
        CHECK(match.refused[0].first == 3);
        CHECK(match.refused[1].first == 1);
        CHECK(match.suspects.empty());
    }
    SECTION("an index either numbering explains makes both contacts suspects, nobody refused") {
        const auto match = match_failures({failure(2)}, emails);
        CHECK(match.refused.empty());
        CHECK(match.suspects == std::vector<size_t>{1, 2});
    }
    SECTION("a reason naming an address places the contact with exactly that address") {
        const std::vector<std::string> tails = {"ann@example.com", "joann@example.com", "b@example.com"};
        const auto match = match_failures({failure(1, "joann@example.com is on the exclusion list")}, tails);
        REQUIRE(match.refused.size() == 1);
        CHECK(match.refused[0].first == 1);
        CHECK(match_failures({failure(1, "Contact ann@example.com is invalid.")}, tails).refused[0].first == 0);
    }
    SECTION("a reason naming a contact places it, whatever its number") {
        const auto match = match_failures({failure(2, "Contact C@Example.com is on the exclusion list")}, emails);
        REQUIRE(match.refused.size() == 1);
        CHECK(match.refused[0].first == 2);
        CHECK(match.suspects.empty());
    }
    SECTION("a request of one contact is never ambiguous") {
        const std::vector<std::string> one = {"a@example.com"};
        CHECK(match_failures({failure(0)}, one).refused.size() == 1);
        CHECK(match_failures({failure(1)}, one).refused.size() == 1);
        CHECK(match_failures({failure(7)}, one).refused.empty());
        CHECK(match_failures({failure(-3)}, one).suspects.empty());
    }
}

TEST_CASE("request bodies: exclude_automations at the top of the request too, empty values clear, absent ones do not") {
    Contact contact;
    contact.email = "a@example.com";
    contact.first_name = std::string_view();  // clear it
    contact.fields.emplace_back(4, std::string_view());
    std::string object;
    BulkContactWriter(BulkOptions{3, ListAction::subscribe, {}, true}).append(contact, object);
    const std::string body = bulk_body({object}, true);
    CHECK(body.size() == bulk_body_size(object.size(), 1, true));
    CHECK_THAT(body, Catch::Contains("\"first_name\":\"\""));
    CHECK_THAT(body, Catch::Contains("{\"id\":4,\"value\":\"\"}"));
    CHECK_THAT(body, Catch::Contains("\"exclude_automations\":true}],\"exclude_automations\":true}"));
    CHECK_THAT(body, !Catch::Contains("last_name"));
    CHECK_THAT(sync_body(contact), Catch::Contains("\"firstName\":\"\""));
    CHECK_THAT(contact_list_body(3, "7", ListAction::subscribe, true), Catch::Contains("\"sourceid\":4"));
    CHECK_THAT(contact_list_body(3, "7", ListAction::subscribe), !Catch::Contains("sourceid"));
}
