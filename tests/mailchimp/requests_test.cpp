// Request paths and bodies of the Mailchimp plugin, read back as JSON.
#include <rapidjson/document.h>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "../../plugins/mailchimp/md5.hpp"
#include "../../plugins/mailchimp/requests.hpp"

using namespace segpush::mailchimp;

namespace {

rapidjson::Document parse(const std::string& json) {
    rapidjson::Document document;
    document.Parse(json.data(), json.size());
    INFO(json);
    REQUIRE_FALSE(document.HasParseError());
    REQUIRE(document.IsObject());
    return document;
}

std::string text(const rapidjson::Value& value) {
    REQUIRE(value.IsString());
    return std::string(value.GetString(), value.GetStringLength());
}

}  // namespace

TEST_CASE("md5: the RFC 1321 test suite") {
    CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
    CHECK(md5_hex("a") == "0cc175b9c0f1b6a831c399e269772661");
    CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
    CHECK(md5_hex("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
    CHECK(md5_hex("abcdefghijklmnopqrstuvwxyz") == "c3fcd3d76192e4007dfb496cca67e13b");
    CHECK(md5_hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
          "d174ab98d277d9f5a5611c2c9f419d9f");
    CHECK(md5_hex("12345678901234567890123456789012345678901234567890123456789012345678901234567890") ==
          "57edf4a22be3c955ac49da2e2107b67a");
    // Lengths around the 56-byte padding boundary take one or two final blocks.
    CHECK(md5_hex(std::string(55, 'x')) != md5_hex(std::string(56, 'x')));
    CHECK(md5_hex(std::string(64, 'a')) == "014842d480b571495a4a0363793f7367");
}

TEST_CASE("subscriber hash: the MD5 of the trimmed, lower-cased email") {
    CHECK(normalise_email("  Ann.Lee@Shop.TEST\t") == "ann.lee@shop.test");
    CHECK(subscriber_hash(" Ann.Lee@Shop.TEST ") == md5_hex("ann.lee@shop.test"));
    CHECK(member_path("a1b2c3d4e5", "ANN@shop.test") == "/lists/a1b2c3d4e5/members/" + md5_hex("ann@shop.test"));
    CHECK(member_tags_path("abc", "x@y.z") == "/lists/abc/members/" + md5_hex("x@y.z") + "/tags");
    CHECK(batch_path("abc") == "/lists/abc?skip_merge_validation=false&skip_duplicate_check=false");
    CHECK(merge_fields_path("abc", 1000, 1000) == "/lists/abc/merge-fields?count=1000&offset=1000");
    CHECK(list_path("a/b") == "/lists/a%2Fb");
}

TEST_CASE("batch subscribe body: new members only, values never cleared, tags by name") {
    Member ann{"Ann@Shop.test",
               {{"FNAME", std::string_view("Ann \"Quote\"")}, {"LNAME", std::nullopt}, {"PHONE", std::string_view()}}};
    Member bob{"bob@shop.test", {{"FNAME", std::nullopt}, {"LNAME", std::nullopt}, {"PHONE", std::nullopt}}};
    const auto doc = parse(batch_subscribe_body({&ann, &bob}, "pending", {"vip", "spring"}));
    CHECK(doc["update_existing"].IsFalse());
    REQUIRE(doc["members"].IsArray());
    REQUIRE(doc["members"].Size() == 2);
    const auto& first = doc["members"][0];
    CHECK(text(first["email_address"]) == "Ann@Shop.test");
    CHECK(text(first["status"]) == "pending");
    CHECK_FALSE(first.HasMember("status_if_new"));
    REQUIRE(first["merge_fields"].IsObject());
    CHECK(text(first["merge_fields"]["FNAME"]) == "Ann \"Quote\"");
    CHECK_FALSE(first["merge_fields"].HasMember("LNAME"));  // absent: not sent
    CHECK_FALSE(first["merge_fields"].HasMember("PHONE"));  // a clear means nothing to a new member
    REQUIRE(first["tags"].IsArray());
    CHECK(text(first["tags"][0]) == "vip");
    CHECK(text(first["tags"][1]) == "spring");
    CHECK_FALSE(doc["members"][1].HasMember("merge_fields"));  // never `[]` or `{}`
    const auto untagged = parse(batch_subscribe_body({&bob}, "subscribed", {}));
    CHECK_FALSE(untagged["members"][0].HasMember("tags"));
}

TEST_CASE("upsert body: status_if_new and merge fields, never status") {
    Member ann{"ann@shop.test",
               {{"FNAME", std::string_view("Ann")}, {"LNAME", std::string_view()}, {"PHONE", std::nullopt}}};
    const auto doc = parse(upsert_body(ann, "subscribed"));
    CHECK(text(doc["email_address"]) == "ann@shop.test");
    CHECK(text(doc["status_if_new"]) == "subscribed");
    CHECK_FALSE(doc.HasMember("status"));
    CHECK(text(doc["merge_fields"]["FNAME"]) == "Ann");
    CHECK(text(doc["merge_fields"]["LNAME"]).empty());  // the export asked to clear it
    CHECK_FALSE(doc["merge_fields"].HasMember("PHONE"));
    Member bare{"bare@shop.test", {}};
    CHECK_FALSE(parse(upsert_body(bare, "pending")).HasMember("merge_fields"));
}

TEST_CASE("restore body: the one write with status, for a member segpush archived itself") {
    Member ann{"ann@shop.test", {{"FNAME", std::string_view("Ann")}}};
    const auto doc = parse(restore_body(ann));
    CHECK(text(doc["status"]) == "subscribed");
    CHECK(text(doc["status_if_new"]) == "subscribed");
    CHECK(text(doc["merge_fields"]["FNAME"]) == "Ann");
}

TEST_CASE("tags body: every tag active, by name") {
    const auto tags = parse(tags_body({"vip", "spring"}));
    REQUIRE(tags["tags"].IsArray());
    REQUIRE(tags["tags"].Size() == 2);
    CHECK(text(tags["tags"][0]["name"]) == "vip");
    CHECK(text(tags["tags"][0]["status"]) == "active");
    CHECK(text(tags["tags"][1]["name"]) == "spring");
}
