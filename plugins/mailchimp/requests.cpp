#include "requests.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>

#include "md5.hpp"

namespace segpush::mailchimp {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void string(Writer& w, std::string_view text) { w.String(text.data(), static_cast<rapidjson::SizeType>(text.size())); }

// merge_fields as an object (never an array: Mailchimp refuses `[]`); `with_clears` writes
// empty values, which erase Mailchimp's.
void merge_fields(Writer& w, const Member& member, bool with_clears) {
    bool any = false;
    for (const auto& [tag, value] : member.merge_fields) {
        if (!value || (value->empty() && !with_clears)) continue;
        if (!any) {
            w.Key("merge_fields");
            w.StartObject();
            any = true;
        }
        string(w, tag);
        string(w, *value);
    }
    if (any) w.EndObject();
}

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

std::string normalise_email(std::string_view email) {
    size_t begin = 0, end = email.size();
    while (begin < end && blank(email[begin])) ++begin;
    while (end > begin && blank(email[end - 1])) --end;
    std::string out(email.substr(begin, end - begin));
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string subscriber_hash(std::string_view email) { return md5_hex(normalise_email(email)); }

std::string url_encode(std::string_view value) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    return out;
}

std::string list_path(const std::string& list_id) { return "/lists/" + url_encode(list_id); }

std::string merge_fields_path(const std::string& list_id, size_t offset, size_t count) {
    return list_path(list_id) + "/merge-fields?count=" + std::to_string(count) + "&offset=" + std::to_string(offset);
}

std::string batch_path(const std::string& list_id) {
    return list_path(list_id) + "?skip_merge_validation=false&skip_duplicate_check=false";
}

std::string member_path(const std::string& list_id, std::string_view email) {
    return list_path(list_id) + "/members/" + subscriber_hash(email);
}

std::string member_tags_path(const std::string& list_id, std::string_view email) {
    return member_path(list_id, email) + "/tags";
}

std::string batch_subscribe_body(const std::vector<const Member*>& members, const char* status,
                                 const std::vector<std::string>& tags) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    w.StartObject();
    w.Key("members");
    w.StartArray();
    for (const Member* member : members) {
        w.StartObject();
        w.Key("email_address");
        string(w, member->email);
        w.Key("status");
        w.String(status);
        merge_fields(w, *member, false);
        if (!tags.empty()) {
            w.Key("tags");
            w.StartArray();
            for (const auto& tag : tags) string(w, tag);
            w.EndArray();
        }
        w.EndObject();
    }
    w.EndArray();
    w.Key("update_existing");
    w.Bool(false);
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

namespace {

std::string member_body(const Member& member, const char* status_if_new, const char* status) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    w.StartObject();
    w.Key("email_address");
    string(w, member.email);
    w.Key("status_if_new");
    w.String(status_if_new);
    if (status) {
        w.Key("status");
        w.String(status);
    }
    merge_fields(w, member, true);
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

std::string upsert_body(const Member& member, const char* status_if_new) {
    return member_body(member, status_if_new, nullptr);
}

std::string restore_body(const Member& member) { return member_body(member, "subscribed", "subscribed"); }

std::string tags_body(const std::vector<std::string>& tags) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    w.StartObject();
    w.Key("tags");
    w.StartArray();
    for (const auto& tag : tags) {
        w.StartObject();
        w.Key("name");
        string(w, tag);
        w.Key("status");
        w.String("active");
        w.EndObject();
    }
    w.EndArray();
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace segpush::mailchimp
