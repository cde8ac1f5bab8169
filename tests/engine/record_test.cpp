// Mapping and validation of rows into records, and the record encoding the state file keeps.
#include <catch2/catch.hpp>

#include "engine/record.hpp"

using namespace segpush;

namespace {

RecordPlan plan_for_email_name_age() {
    RecordPlan plan;
    plan.fields = {{"email", "Email", SEGPUSH_FIELD_EMAIL, true, "Email"},
                   {"first_name", "First name", SEGPUSH_FIELD_STRING, false, "First"},
                   {"age", "Age", SEGPUSH_FIELD_INTEGER, false, "Age"}};
    plan.columns = {"Email", "First", "Age"};
    plan.column_of_field = {0, 1, 2};
    plan.key_field = 0;
    return plan;
}

SegmentRow row(std::vector<std::string> values) { return SegmentRow{7, std::move(values)}; }

}  // namespace

TEST_CASE("record: values are trimmed (spaces, tabs, no-break spaces) and the key is case-folded") {
    const auto plan = plan_for_email_name_age();
    Record record;
    REQUIRE_FALSE(normalize_row(plan,
                                row({"  Ada.Lovelace@Example.COM\t",
                                     "\xC2\xA0"
                                     "Ada \xC2\xA0",
                                     " 36 "}),
                                record));
    CHECK(*record.values[0] == "Ada.Lovelace@Example.COM");
    CHECK(*record.values[1] == "Ada");
    CHECK(*record.values[2] == "36");
    CHECK(record.key == "ada.lovelace@example.com");
}

TEST_CASE("record: empty optional values are absent, never blank, an empty required value rejects the row") {
    const auto plan = plan_for_email_name_age();
    Record record;
    REQUIRE_FALSE(normalize_row(plan, row({"a@example.com", "   ", ""}), record));
    CHECK_FALSE(record.values[1].has_value());
    CHECK_FALSE(record.values[2].has_value());
    const auto reason = normalize_row(plan, row({"  ", "Ada", "1"}), record);
    REQUIRE(reason);
    CHECK(*reason == "Email (column 'Email') is empty");
}

TEST_CASE("record: typed fields are checked before sending") {
    const auto plan = plan_for_email_name_age();
    Record record;
    const auto reason = normalize_row(plan, row({"a@example.com", "Ada", "thirty"}), record);
    REQUIRE(reason);
    CHECK(*reason == "Age 'thirty' is not a whole number");
}

TEST_CASE("record: email syntax") {
    for (const char* good : {"a@example.com", "first.last+tag@sub.example.co.uk", "x_y-z@a-b.io", "A@B.CD"}) {
        INFO(good);
        CHECK(is_valid_email(good));
    }
    for (const char* bad : {"", "plain", "@example.com", "a@", "a@@example.com", "a@b@example.com", "a@example",
                            "a@example.c", "a@example.123", ".a@example.com", "a.@example.com", "a..b@example.com",
                            "o'brien@example.com", "a b@example.com", "a@-example.com", "a@example-.com",
                            "a@exa_mple.com", "caf\xC3\xA9@example.com", "a@example..com"}) {
        INFO(bad);
        CHECK_FALSE(is_valid_email(bad));
    }
    CHECK_FALSE(is_valid_email(std::string(250, 'a') + "@example.com"));
    CHECK_FALSE(is_valid_email(std::string("a\0b@example.com", 15)));
    CHECK_FALSE(is_valid_email(std::string("ab@exa\0mple.com", 15)));
    CHECK_FALSE(is_valid_email("a[b@example.com"));  // '[' and '{' differ from letters by the case bit only
    CHECK(is_valid_email("a{b}@example.com"));
    CHECK_FALSE(is_valid_email("a@ex[ample.com"));
    CHECK_FALSE(is_valid_email("a@example.c@m"));
    CHECK(is_valid_email(std::string(64, 'a') + "@example.com"));
    CHECK_FALSE(is_valid_email(std::string(65, 'a') + "@example.com"));
    CHECK(is_valid_email("a@" + std::string(63, 'b') + ".com"));
    CHECK_FALSE(is_valid_email("a@" + std::string(64, 'b') + ".com"));
    CHECK(is_valid_email("a.b.c@x-y.z-w.org"));
    CHECK(is_valid_email("!#$%&*+/=?^_`{|}~-@example.com"));
    for (const char* bad : {"a@.example.com", "a@example.com.", "a@example.-com", "a@example.co1", ".@example.com",
                            "a.@b.co", "a@b.c", "a@bc", "a\x80@example.com", "a@exa\xC3\xA9mple.com"}) {
        INFO(bad);
        CHECK_FALSE(is_valid_email(bad));
    }
}

TEST_CASE("record: encoding keeps absent apart from empty and round-trips every value") {
    Record record;
    record.values = {std::string("a@example.com"), std::nullopt, std::string("x,\"y\"\n\xF0\x9F\x98\x80")};
    std::string payload;
    encode_record(record, payload);
    segpush_value values[3];
    REQUIRE(decode_record(payload, 3, values));
    CHECK(std::string(values[0].data, values[0].size) == "a@example.com");
    CHECK(values[1].data == nullptr);
    CHECK(std::string(values[2].data, values[2].size) == *record.values[2]);
    CHECK_FALSE(decode_record(payload.substr(0, payload.size() - 1), 3, values));
    CHECK_FALSE(decode_record(payload, 2, values));
}

TEST_CASE("record: the hash changes with any value and with the mapping, so changes are resent") {
    auto plan = plan_for_email_name_age();
    Record a;
    REQUIRE_FALSE(normalize_row(plan, row({"a@example.com", "Ada", "36"}), a));
    Record same;
    REQUIRE_FALSE(normalize_row(plan, row({" a@example.com ", "Ada ", "36"}), same));
    Record other;
    REQUIRE_FALSE(normalize_row(plan, row({"a@example.com", "Ada", "37"}), other));
    Record absent;
    REQUIRE_FALSE(normalize_row(plan, row({"a@example.com", "Ada", ""}), absent));
    CHECK(record_hash(plan, a) == record_hash(plan, same));
    CHECK(record_hash(plan, a) != record_hash(plan, other));
    CHECK(record_hash(plan, a) != record_hash(plan, absent));
    auto remapped = plan;
    remapped.context_hash = plan.context_hash + 1;
    CHECK(record_hash(remapped, a) != record_hash(plan, a));
    CHECK(record_hash(plan, a) <= 0x7FFFFFFFFFFFFFFFull);
}

TEST_CASE("record: a NUL byte in a value rejects the row instead of reaching the destination") {
    const auto plan = plan_for_email_name_age();
    Record record;
    const auto reason = normalize_row(plan, row({"a@example.com", std::string("A\0da", 4), ""}), record);
    REQUIRE(reason);
    CHECK(*reason == "First name (column 'First') holds a NUL byte, which no destination keeps");
}
