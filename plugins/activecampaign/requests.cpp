#include "requests.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <cstdint>
#include <cstring>

namespace segpush::activecampaign {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// ActiveCampaign's reference puts exclude_automations in each contact, one client library at
// the top of the request; which one the server reads is not documented, so both carry it.
constexpr char kTopLevelExclusion[] = "],\"exclude_automations\":true}";

void string_member(Writer& w, const char* key, std::string_view value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

// An absent value is left out (ActiveCampaign keeps what it has); an empty one clears it.
void optional_member(Writer& w, const char* key, const std::optional<std::string_view>& value) {
    if (value) string_member(w, key, *value);
}

// True when one of the eight bytes must be escaped in a JSON string: a control character, '"'
// or '\\'. (x - n * ones) & ~x & highs is non-zero exactly when a byte of x is below n (n <= 128).
bool any_needs_escape(uint64_t eight) {
    constexpr uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    auto any_below = [&](uint64_t x, uint64_t n) { return (x - n * ones) & ~x & highs; };
    return any_below(eight, 0x20) | any_below(eight ^ ('"' * ones), 1) | any_below(eight ^ ('\\' * ones), 1);
}

// Whether any byte of `text` must be escaped, read eight bytes at a time (the last few padded
// with spaces, which need none).
bool any_needs_escape(std::string_view text) {
    size_t at = 0;
    for (; at + 8 <= text.size(); at += 8) {
        uint64_t eight;
        std::memcpy(&eight, text.data() + at, 8);
        if (any_needs_escape(eight)) return true;
    }
    if (at == text.size()) return false;
    uint64_t rest = 0x2020202020202020ull;
    std::memcpy(&rest, text.data() + at, text.size() - at);
    return any_needs_escape(rest);
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
    static const char kHex[] = "0123456789abcdef";
    out.push_back('"');
    // Most text needs no escape: found so eight bytes at a time, and copied whole (a byte at a
    // time showed in profiles of large exports).
    if (!any_needs_escape(text)) {
        out.append(text);
        out.push_back('"');
        return;
    }
    size_t copied = 0;
    for (size_t at = 0; at < text.size(); ++at) {
        const auto c = static_cast<unsigned char>(text[at]);
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out.append(text.data() + copied, at - copied);
        copied = at + 1;
        out.push_back('\\');
        switch (c) {
            case '"': out.push_back('"'); break;
            case '\\': out.push_back('\\'); break;
            case '\n': out.push_back('n'); break;
            case '\r': out.push_back('r'); break;
            case '\t': out.push_back('t'); break;
            case '\b': out.push_back('b'); break;
            case '\f': out.push_back('f'); break;
            default:
                out.append("u00");
                out.push_back(kHex[c >> 4]);
                out.push_back(kHex[c & 15]);
        }
    }
    out.append(text.data() + copied, text.size() - copied);
    out.push_back('"');
}

BulkContactWriter::BulkContactWriter(const BulkOptions& options) : upsert_(options.action == ListAction::subscribe) {
    std::string& tail = shared_members_;
    if (upsert_ && !options.tags.empty()) {
        tail += ",\"tags\":[";
        for (size_t i = 0; i < options.tags.size(); ++i) {
            if (i) tail.push_back(',');
            append_json_string(tail, options.tags[i]);
        }
        tail.push_back(']');
    }
    tail += upsert_ ? ",\"subscribe\":[{\"listid\":" : ",\"unsubscribe\":[{\"listid\":";
    append_json_string(tail, std::to_string(options.list_id));
    tail += "}]";
    if (options.exclude_automations) tail += ",\"exclude_automations\":true";
    tail.push_back('}');
}

void BulkContactWriter::append(const Contact& contact, std::string& out) const {
    out += "{\"email\":";
    append_json_string(out, contact.email);
    if (upsert_) {
        auto optional_member = [&](const char* key_and_colon, const std::optional<std::string_view>& value) {
            if (!value) return;
            out += key_and_colon;
            append_json_string(out, *value);
        };
        optional_member(",\"first_name\":", contact.first_name);
        optional_member(",\"last_name\":", contact.last_name);
        optional_member(",\"phone\":", contact.phone);
        bool any_field = false;
        for (const auto& [id, value] : contact.fields) {
            out += any_field ? ",{\"id\":" : ",\"fields\":[{\"id\":";
            any_field = true;
            out += std::to_string(id);
            out += ",\"value\":";
            append_json_string(out, value);
            out.push_back('}');
        }
        if (any_field) out.push_back(']');
    }
    out += shared_members_;
}

size_t bulk_body_size(size_t sum_of_object_sizes, size_t n_objects, bool exclude_automations) {
    const size_t frame = sizeof("{\"contacts\":[") - 1 + (exclude_automations ? sizeof(kTopLevelExclusion) - 1 : 2);
    return frame + sum_of_object_sizes + (n_objects > 0 ? n_objects - 1 : 0);
}

std::string bulk_body(const std::vector<std::string_view>& contact_objects, bool exclude_automations) {
    size_t sum = 0;
    for (const auto object : contact_objects) sum += object.size();
    std::string body;
    body.reserve(bulk_body_size(sum, contact_objects.size(), exclude_automations));
    body += "{\"contacts\":[";
    for (size_t i = 0; i < contact_objects.size(); ++i) {
        if (i) body += ',';
        body += contact_objects[i];
    }
    body += exclude_automations ? std::string_view(kTopLevelExclusion) : std::string_view("]}");
    return body;
}

Chunking chunk_contacts(const std::vector<size_t>& object_sizes, bool exclude_automations, size_t max_contacts,
                        size_t max_bytes) {
    Chunking out;
    std::vector<size_t> current;
    size_t sum = 0;
    for (size_t i = 0; i < object_sizes.size(); ++i) {
        const size_t size = object_sizes[i];
        if (bulk_body_size(size, 1, exclude_automations) > max_bytes) {
            out.too_large.push_back(i);
            continue;
        }
        if (!current.empty() && (current.size() >= max_contacts ||
                                 bulk_body_size(sum + size, current.size() + 1, exclude_automations) > max_bytes)) {
            out.chunks.push_back(std::move(current));
            current.clear();
            sum = 0;
        }
        current.push_back(i);
        sum += size;
    }
    if (!current.empty()) out.chunks.push_back(std::move(current));
    return out;
}

std::string sync_body(const Contact& contact) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    w.StartObject();
    w.Key("contact");
    w.StartObject();
    string_member(w, "email", contact.email);
    optional_member(w, "firstName", contact.first_name);
    optional_member(w, "lastName", contact.last_name);
    optional_member(w, "phone", contact.phone);
    bool any_field = false;
    for (const auto& field : contact.fields) {
        if (!any_field) {
            w.Key("fieldValues");
            w.StartArray();
            any_field = true;
        }
        w.StartObject();
        string_member(w, "field", std::to_string(field.first));
        string_member(w, "value", field.second);
        w.EndObject();
    }
    if (any_field) w.EndArray();
    w.EndObject();
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string contact_list_body(uint64_t list_id, const std::string& contact_id, ListAction action, bool resubscribe) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    w.StartObject();
    w.Key("contactList");
    w.StartObject();
    string_member(w, "list", std::to_string(list_id));
    string_member(w, "contact", contact_id);
    string_member(w, "status", action == ListAction::subscribe ? "1" : "2");
    if (resubscribe) {
        w.Key("sourceid");
        w.Int(4);  // the documented source of a re-subscription
    }
    w.EndObject();
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string url_encode(std::string_view value) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

// Not std::tolower: a library call per character, for a result that is ASCII by definition.
std::string lower_ascii(std::string value) {
    for (auto& c : value) c = lower_ascii(c);
    return value;
}

}  // namespace segpush::activecampaign
