// The bulk import body as ActiveCampaign's JSON parser reads it: segpush writes contact
// objects itself (requests.cpp), so every escape is checked here against RapidJSON's reader.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "../../plugins/activecampaign/requests.hpp"

using namespace segpush::activecampaign;

namespace {

rapidjson::Document parse(const std::string& json) {
    rapidjson::Document document;
    document.Parse(json.data(), json.size());
    INFO(json);
    REQUIRE_FALSE(document.HasParseError());
    return document;
}

std::string string_of(const rapidjson::Value& value) {
    REQUIRE(value.IsString());
    return std::string(value.GetString(), value.GetStringLength());
}

// What a JSON reader makes of `text` once append_json_string has written it.
std::string round_trip(const std::string& text) {
    std::string json = "[";
    append_json_string(json, text);
    json += "]";
    const rapidjson::Document document = parse(json);
    REQUIRE(document.IsArray());
    REQUIRE(document.Size() == 1);
    return string_of(document[0]);
}

}  // namespace

TEST_CASE("append_json_string: every ASCII byte, quotes, backslashes and UTF-8 read back unchanged") {
    std::string every_ascii;
    for (int c = 0; c < 0x80; ++c) every_ascii.push_back(static_cast<char>(c));
    CHECK(round_trip(every_ascii) == every_ascii);
    for (const std::string& text :
         std::vector<std::string>{"", "\"", "\\", "a\"b\\c\"", "Zoë Ångström 😀 名前", "line\nbreak\r\ttab",
                                  std::string("nul\0inside", 10), "ends with \\"}) {
        CHECK(round_trip(text) == text);
    }
    std::mt19937 random(7);
    for (int trial = 0; trial < 2000; ++trial) {
        std::string text;
        const int length = static_cast<int>(random() % 40);
        for (int i = 0; i < length; ++i) text.push_back(static_cast<char>(random() % 0x80));
        REQUIRE(round_trip(text) == text);
    }
    // Text is scanned eight bytes at a time while no byte needs escaping: one byte that does,
    // at every place in and around those blocks, among letters and UTF-8 bytes (0x80 and up).
    const std::string specials("\"\\\x00\x01\x1f\n", 6);
    const std::string plain = "aZ~ !#\x7f\xc3\xa9\xe5\x90\x8d\xf0\x9f\x98\x80";
    for (int trial = 0; trial < 2000; ++trial) {
        std::string text;
        const int length = static_cast<int>(random() % 70);
        for (int i = 0; i < length; ++i) text.push_back(plain[random() % plain.size()]);
        for (int escapes = static_cast<int>(random() % 3); escapes > 0 && length > 0; --escapes) {
            text[random() % length] = specials[random() % specials.size()];
        }
        REQUIRE(round_trip(text) == text);  // the reader refuses a raw control character
    }
}

TEST_CASE("append_json_string: control characters are escaped, the rest is copied as it is") {
    std::string out;
    append_json_string(out, std::string("a\x01\x1f\"\\/é", 8));
    CHECK(out == "\"a\\u0001\\u001f\\\"\\\\/é\"");
}

TEST_CASE("BulkContactWriter: an upsert carries the values, custom fields, tags, the list and the automation switch") {
    BulkOptions options;
    options.list_id = 12;
    options.tags = {"vip \"gold\"", "2026"};
    options.exclude_automations = true;
    const BulkContactWriter writer(options);
    Contact contact;
    contact.email = "Ann@Example.com";
    contact.first_name = "Ann \"Nan\"";
    // last_name absent: never sent, so never erases what ActiveCampaign holds.
    contact.phone = "+1 555\t0100";
    contact.fields = {{7, "a||b"}, {9, ""}, {11, "x\\y"}};  // 9 empty: the export clears it
    std::string json;
    writer.append(contact, json);
    const rapidjson::Document object = parse(json);
    CHECK(object.MemberCount() == 7);
    CHECK(string_of(object["email"]) == "Ann@Example.com");
    CHECK(string_of(object["first_name"]) == "Ann \"Nan\"");
    CHECK_FALSE(object.HasMember("last_name"));
    CHECK(string_of(object["phone"]) == "+1 555\t0100");
    REQUIRE(object["fields"].Size() == 3);
    CHECK(object["fields"][0]["id"].GetUint64() == 7);
    CHECK(string_of(object["fields"][0]["value"]) == "a||b");
    CHECK(object["fields"][1]["id"].GetUint64() == 9);
    CHECK(string_of(object["fields"][1]["value"]).empty());
    CHECK(object["fields"][2]["id"].GetUint64() == 11);
    CHECK(string_of(object["fields"][2]["value"]) == "x\\y");
    REQUIRE(object["tags"].Size() == 2);
    CHECK(string_of(object["tags"][0]) == "vip \"gold\"");
    CHECK(string_of(object["subscribe"][0]["listid"]) == "12");
    CHECK(object["exclude_automations"].GetBool());

    // Appended after the first: the batch's objects share one string.
    Contact plain;
    plain.email = "bo@example.com";
    const size_t first_size = json.size();
    writer.append(plain, json);
    CHECK(parse(json.substr(0, first_size)).MemberCount() == 7);
    const rapidjson::Document second = parse(json.substr(first_size));
    CHECK(second.MemberCount() == 4);  // email, tags, subscribe, exclude_automations
    CHECK_FALSE(second.HasMember("fields"));
}

TEST_CASE("BulkContactWriter: an unsubscribe sends the email and the list only") {
    BulkOptions options;
    options.list_id = 3;
    options.action = ListAction::unsubscribe;
    options.tags = {"ignored"};
    const BulkContactWriter writer(options);
    Contact contact;
    contact.email = "leaver@example.com";
    contact.first_name = "Lee";
    contact.fields = {{7, "value"}};
    std::string json;
    writer.append(contact, json);
    const rapidjson::Document object = parse(json);
    CHECK(object.MemberCount() == 2);
    CHECK(string_of(object["email"]) == "leaver@example.com");
    CHECK(string_of(object["unsubscribe"][0]["listid"]) == "3");
    const std::vector<std::string_view> objects{json, json};
    const rapidjson::Document body = parse(bulk_body(objects));
    CHECK(body["contacts"].Size() == 2);
    CHECK(bulk_body(objects).size() == bulk_body_size(2 * json.size(), 2));
}
