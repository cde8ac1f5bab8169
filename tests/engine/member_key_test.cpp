// When two rows are the same member: the key normalised by the key field's declared type.
#include <catch2/catch.hpp>

#include "engine/member_key.hpp"
#include "engine/record.hpp"

using namespace segpush;

TEST_CASE("member key: an email is trimmed and case-folded") {
    CHECK(member_key("  Ada.Lovelace@Example.COM\t", SEGPUSH_FIELD_EMAIL) == "ada.lovelace@example.com");
    CHECK(member_key("\xC2\xA0"
                     "ann@example.com",
                     SEGPUSH_FIELD_EMAIL) == "ann@example.com");
    CHECK(key_noun(SEGPUSH_FIELD_EMAIL, "email_address") == "email");
}

TEST_CASE("member key: a string key is trimmed and exact, so ids differing by case are different members") {
    CHECK(member_key("ABC", SEGPUSH_FIELD_STRING) == "ABC");
    CHECK(member_key("abc", SEGPUSH_FIELD_STRING) == "abc");
    CHECK(member_key("Abc", SEGPUSH_FIELD_STRING) == "Abc");
    CHECK(member_key("abc \t", SEGPUSH_FIELD_STRING) == "abc");
    CHECK(member_key(" Ann@Example.com ", SEGPUSH_FIELD_STRING) == "Ann@Example.com");
    // Any other type declared as a key is compared the same way.
    CHECK(member_key(" 0042 ", SEGPUSH_FIELD_INTEGER) == "0042");
    CHECK(key_noun(SEGPUSH_FIELD_STRING, "user_id") == "user_id");
}

TEST_CASE("member key: a phone number becomes E.164 when its country code is written") {
    CHECK(member_key("+49 151 2345-6789", SEGPUSH_FIELD_PHONE) == "+4915123456789");
    CHECK(member_key("0049 (151) 23.45.67.89", SEGPUSH_FIELD_PHONE) == "+4915123456789");
    CHECK(member_key(" +1 (415) 555-0100 ", SEGPUSH_FIELD_PHONE) == "+14155550100");
    // "(0)" after the country code is the trunk prefix for callers in the country: dropped.
    CHECK(member_key("+44 (0)20 7946 0958", SEGPUSH_FIELD_PHONE) == "+442079460958");
    CHECK(member_key("0044 (0) 20 7946 0958", SEGPUSH_FIELD_PHONE) == "+442079460958");
    CHECK(member_key("+123456789012345", SEGPUSH_FIELD_PHONE) == "+123456789012345");  // 15 digits, the most
    CHECK(member_key("+290 1234", SEGPUSH_FIELD_PHONE) == "+2901234");  // 7 digits: Saint Helena's numbers
}

TEST_CASE("member key: a phone number that is no unambiguous international number is refused with why") {
    std::string key = "untouched";
    auto refused = [&](const char* value) {
        const auto problem = normalize_key(SEGPUSH_FIELD_PHONE, value, key);
        return problem ? *problem : std::string();
    };
    CHECK_THAT(refused("0151 23456789"), Catch::StartsWith("has no country code"));
    CHECK_THAT(refused("(415) 555-0100"), Catch::StartsWith("has no country code"));
    CHECK_THAT(refused("+0151 2345678"), Catch::StartsWith("has no country code after"));
    CHECK_THAT(refused("+49 151"), Catch::Contains("7 to 15 digits"));
    CHECK_THAT(refused("+1234567890123456"), Catch::Contains("7 to 15 digits"));
    CHECK_THAT(refused("+49 151 ext. 12"), Catch::StartsWith("is not a phone number"));
    CHECK_THAT(refused("49+151234567"), Catch::StartsWith("is not a phone number"));
    CHECK(key == "untouched");
    CHECK(member_key("0151 23456789", SEGPUSH_FIELD_PHONE).empty());
    CHECK_FALSE(e164_phone("+"));
}

TEST_CASE("member key: forget looks for a person under every key an export may have recorded them by") {
    CHECK(possible_keys("  ") == std::set<std::string>{});
    CHECK(possible_keys(" abc ") == std::set<std::string>{"abc"});
    CHECK(possible_keys("Ann@Example.com") == std::set<std::string>{"Ann@Example.com", "ann@example.com"});
    CHECK(possible_keys("+49 151 23456789") == std::set<std::string>{"+49 151 23456789", "+4915123456789"});
    // Not an email: never case-folded, so forgetting "ABC" leaves "abc" alone.
    CHECK(possible_keys("ABC") == std::set<std::string>{"ABC"});
}

TEST_CASE("member key: a record's key follows its key field's type") {
    RecordPlan plan;
    plan.fields = {{"user_id", "User id", SEGPUSH_FIELD_STRING, true, "Id"},
                   {"phone", "Phone", SEGPUSH_FIELD_PHONE, false, "Phone"}};
    plan.columns = {"Id", "Phone"};
    plan.column_of_field = {0, 1};
    Record record;
    REQUIRE_FALSE(normalize_row(plan, SegmentRow{3, {" Abc ", "0151 2345678"}}, record));
    CHECK(record.key == "Abc");
    CHECK(*record.values[0] == "Abc");
    CHECK(*record.values[1] == "0151 2345678");  // not the key: sent as written, unchecked

    plan.key_field = 1;
    plan.fields[1].required = true;
    REQUIRE_FALSE(normalize_row(plan, SegmentRow{4, {"x", "+49 151 2345678"}}, record));
    CHECK(record.key == "+491512345678");
    CHECK(*record.values[1] == "+49 151 2345678");  // the value itself goes as written
    const auto reason = normalize_row(plan, SegmentRow{5, {"x", "0151 2345678"}}, record);
    REQUIRE(reason);
    CHECK_THAT(*reason, Catch::StartsWith("Phone '0151 2345678' (column 'Phone') has no country code"));
}
