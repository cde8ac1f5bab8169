#include "requests.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>

namespace segpush::activecampaign {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void string_member(Writer& w, const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void optional_member(Writer& w, const char* key, const std::optional<std::string>& value) {
    if (value && !value->empty()) string_member(w, key, *value);
}

}  // namespace

std::string BulkContactWriter::json(const Contact& contact, const BulkOptions& options) {
    buffer_.Clear();
    writer_.Reset(buffer_);
    Writer& w = writer_;
    w.StartObject();
    string_member(w, "email", contact.email);
    if (options.action == ListAction::subscribe) {
        optional_member(w, "first_name", contact.first_name);
        optional_member(w, "last_name", contact.last_name);
        optional_member(w, "phone", contact.phone);
        if (!options.tags.empty()) {
            w.Key("tags");
            w.StartArray();
            for (const auto& tag : options.tags) w.String(tag.data(), static_cast<rapidjson::SizeType>(tag.size()));
            w.EndArray();
        }
        bool any_field = false;
        for (const auto& field : contact.fields) {
            if (field.second.empty()) continue;
            if (!any_field) {
                w.Key("fields");
                w.StartArray();
                any_field = true;
            }
            w.StartObject();
            w.Key("id");
            w.Uint64(field.first);
            string_member(w, "value", field.second);
            w.EndObject();
        }
        if (any_field) w.EndArray();
    }
    w.Key(options.action == ListAction::subscribe ? "subscribe" : "unsubscribe");
    w.StartArray();
    w.StartObject();
    string_member(w, "listid", std::to_string(options.list_id));
    w.EndObject();
    w.EndArray();
    if (options.exclude_automations) {
        w.Key("exclude_automations");
        w.Bool(true);
    }
    w.EndObject();
    return std::string(buffer_.GetString(), buffer_.GetSize());
}

size_t bulk_body_size(size_t sum_of_object_sizes, size_t n_objects) {
    static const size_t kFrame = sizeof("{\"contacts\":[]}") - 1;
    return kFrame + sum_of_object_sizes + (n_objects > 0 ? n_objects - 1 : 0);
}

std::string bulk_body(const std::vector<const std::string*>& contact_objects) {
    size_t sum = 0;
    for (const auto* object : contact_objects) sum += object->size();
    std::string body;
    body.reserve(bulk_body_size(sum, contact_objects.size()));
    body += "{\"contacts\":[";
    for (size_t i = 0; i < contact_objects.size(); ++i) {
        if (i) body += ',';
        body += *contact_objects[i];
    }
    body += "]}";
    return body;
}

Chunking chunk_contacts(const std::vector<size_t>& object_sizes, size_t max_contacts, size_t max_bytes) {
    Chunking out;
    std::vector<size_t> current;
    size_t sum = 0;
    for (size_t i = 0; i < object_sizes.size(); ++i) {
        const size_t size = object_sizes[i];
        if (bulk_body_size(size, 1) > max_bytes) {
            out.too_large.push_back(i);
            continue;
        }
        if (!current.empty() &&
            (current.size() >= max_contacts || bulk_body_size(sum + size, current.size() + 1) > max_bytes)) {
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
        if (field.second.empty()) continue;
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

std::string contact_list_body(uint64_t list_id, const std::string& contact_id, ListAction action) {
    rapidjson::StringBuffer buffer;
    Writer w(buffer);
    w.StartObject();
    w.Key("contactList");
    w.StartObject();
    string_member(w, "list", std::to_string(list_id));
    string_member(w, "contact", contact_id);
    string_member(w, "status", action == ListAction::subscribe ? "1" : "2");
    w.EndObject();
    w.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string url_encode(const std::string& value) {
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

std::string lower_ascii(std::string value) {
    // Not std::tolower: a library call per character, for a result that is ASCII by definition.
    for (auto& c : value) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return value;
}

}  // namespace segpush::activecampaign
