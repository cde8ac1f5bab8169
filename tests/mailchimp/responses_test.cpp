// Reading Mailchimp's answers: batch subscribe results, member objects, problem documents,
// merge fields, times; and which HTTP answers are worth sending again.
#include <catch2/catch.hpp>

#include <string>

#include "../../plugins/mailchimp/http.hpp"
#include "../../plugins/mailchimp/responses.hpp"

using namespace segpush::mailchimp;

TEST_CASE("batch answer: created, updated and per-member errors by address") {
    const BatchAnswer answer = parse_batch_answer(R"j({
      "new_members":[{"id":"x","email_address":"ann@shop.test","status":"subscribed",
                      "tags":[{"id":7,"name":"VIP"},"plain"]}],
      "updated_members":[{"email_address":"gone@shop.test","status":"unsubscribed"}],
      "errors":[{"email_address":"Bob@Shop.test","error":"Bob@Shop.test is already a list member.",
                 "error_code":"ERROR_CONTACT_EXISTS","field":"","field_message":""},
                {"email_address":"fake@example.com","error":"fake@example.com looks fake or invalid",
                 "error_code":"ERROR_GENERIC","field":"email_address",
                 "field_message":"fake@example.com looks fake or invalid"},
                {"email_address":"gone@shop.test","error":"gone@shop.test was permanently deleted and cannot be re-imported.",
                 "error_code":"ERROR_GENERIC"},
                {"email_address":"m@shop.test","error":"Your merge fields were invalid.","error_code":"ERROR_GENERIC",
                 "field":"BIRTHDAY","field_message":"Please enter a month (01-12) and a day (01-31)"}],
      "total_created":1,"total_updated":1,"error_count":3})j");
    REQUIRE(answer.ok);
    REQUIRE(answer.created.size() == 1);
    CHECK(answer.created[0].email == "ann@shop.test");
    CHECK(answer.created[0].tags == std::vector<std::string>{"VIP", "plain"});  // objects or names
    REQUIRE(answer.updated.size() == 1);
    CHECK(answer.updated[0].status == "unsubscribed");
    REQUIRE(answer.errors.size() == 4);
    CHECK(answer.errors[0].exists);
    CHECK(answer.errors[0].email == "Bob@Shop.test");
    CHECK_FALSE(answer.errors[1].exists);
    CHECK(answer.errors[1].message == "fake@example.com looks fake or invalid");  // not said twice
    CHECK(answer.errors[2].kept_out);
    CHECK_FALSE(answer.errors[1].kept_out);
    CHECK(answer.errors[3].message ==
          "Your merge fields were invalid. (BIRTHDAY: Please enter a month (01-12) and a day (01-31))");
    CHECK_FALSE(parse_batch_answer("<html>bad gateway</html>").ok);
    CHECK_FALSE(parse_batch_answer(R"({"errors":[]})").ok);
}

TEST_CASE("problem documents: title, detail and field errors") {
    const std::string body = R"({"type":"https://mailchimp.com/developer/marketing/docs/errors/",
      "title":"Invalid Resource","status":400,"detail":"Your merge fields were invalid.","instance":"",
      "errors":[{"field":"MMERGE3","message":"Please enter a value"}]})";
    CHECK(problem_text(body) == "Invalid Resource: Your merge fields were invalid. (MMERGE3: Please enter a value)");
    REQUIRE(parse_problem(body));
    CHECK(parse_problem(body)->title == "Invalid Resource");
    CHECK(problem_text("").empty());
    CHECK(problem_text("not json").empty());
    CHECK(problem_text(R"({"status":429})").empty());
}

TEST_CASE("member answers: status and when it last changed") {
    const MemberAnswer member = parse_member(
        R"({"id":"h","email_address":"a@b.c","status":"unsubscribed","last_changed":"2026-01-02T03:04:05+00:00"})");
    REQUIRE(member.ok);
    CHECK(member.status == "unsubscribed");
    REQUIRE(member.changed_at);
    CHECK(*member.changed_at == 1767323045);
    CHECK_FALSE(parse_member(R"({"email_address":"a@b.c"})").ok);
    CHECK(kept_out_status("unsubscribed"));
    CHECK(kept_out_status("cleaned"));
    CHECK(kept_out_status("archived"));
    CHECK_FALSE(kept_out_status("subscribed"));
    CHECK_FALSE(kept_out_status("pending"));
}

TEST_CASE("times: ISO 8601 with an offset, nothing else") {
    CHECK(parse_time("1970-01-01T00:00:00+00:00") == int64_t(0));
    CHECK(parse_time("1970-01-01T00:00:00Z") == int64_t(0));
    CHECK(parse_time("1970-01-01T01:00:00+01:00") == int64_t(0));
    CHECK(parse_time("2024-02-29T12:00:00.250-02:30") == int64_t(1709217000));
    CHECK_FALSE(parse_time("2024-02-29 12:00:00"));
    CHECK_FALSE(parse_time("2024-02-29T12:00:00"));
    CHECK_FALSE(parse_time(""));
}

TEST_CASE("list and merge fields") {
    const ListAnswer list = parse_list(R"({"id":"a1b2c3d4e5","name":"Newsletter","double_optin":true})");
    REQUIRE(list.ok);
    CHECK(list.double_optin);
    CHECK(list.name == "Newsletter");
    CHECK_FALSE(parse_list(R"({"title":"Resource Not Found"})").ok);
    const MergeFieldsPage page = parse_merge_fields(R"({"merge_fields":[
        {"merge_id":1,"tag":"FNAME","name":"First Name","type":"text","required":false},
        {"merge_id":5,"tag":"MMERGE5","name":"Region","type":"dropdown","required":true}],"total_items":7})");
    REQUIRE(page.ok);
    REQUIRE(page.fields.size() == 2);
    CHECK(page.fields[1].tag == "MMERGE5");
    CHECK(page.fields[1].required);
    CHECK_FALSE(page.fields[0].required);
    CHECK(page.total == 7);
}

TEST_CASE("transient answers: throttling, bodyless 403, server errors and network failures") {
    auto answer = [](long status, std::string body = {}) {
        HttpResult result;
        result.status = status;
        result.body = std::move(body);
        return result;
    };
    CHECK(transient(answer(429, R"({"title":"Too Many Requests"})")));
    CHECK(transient(answer(403)));
    CHECK_FALSE(transient(answer(403, R"({"title":"Forbidden","detail":"not permitted"})")));
    CHECK(transient(answer(500)));
    CHECK(transient(answer(503)));
    CHECK_FALSE(transient(answer(400)));
    CHECK_FALSE(transient(answer(401)));
    CHECK_FALSE(transient(answer(404)));
    HttpResult timeout;
    timeout.curl = CURLE_OPERATION_TIMEDOUT;
    CHECK(transient(timeout));
    HttpResult tls;
    tls.curl = CURLE_PEER_FAILED_VERIFICATION;
    CHECK_FALSE(transient(tls));
    CHECK(backoff_for(1) >= std::chrono::milliseconds(500));
    CHECK(backoff_for(3) >= std::chrono::milliseconds(2000));
    CHECK(backoff_for(20) <= std::chrono::milliseconds(20000));
}
