// Request bodies the plugin sends to ActiveCampaign. Pure functions, no I/O: testable and
// fuzzable on their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segpush::activecampaign {

// One contact as mapped from a batch row. Absent optional values stay absent: they are never
// sent, so they never erase what ActiveCampaign already holds; an empty one is sent empty, to
// clear it (the export's clear_blank_values). The values are views of the batch (borrowed for
// the push_batch call that reads it): a copy of each would be an allocation and a free per value.
struct Contact {
    std::string_view email;
    std::optional<std::string_view> first_name;
    std::optional<std::string_view> last_name;
    std::optional<std::string_view> phone;
    std::vector<std::pair<uint64_t, std::string_view>> fields;  // custom field id, value (empty: clear)
};

enum class ListAction { subscribe, unsubscribe };

// Bulk import body limits: 250 contacts and fewer than 400,000 bytes per request.
constexpr size_t kBulkMaxContacts = 250;
constexpr size_t kBulkMaxBytes = 399999;

// What every contact of a bulk import carries besides its own values.
struct BulkOptions {
    uint64_t list_id = 0;
    ListAction action = ListAction::subscribe;
    std::vector<std::string> tags;     // upserts only
    bool exclude_automations = false;  // sent only when true
};

// Writes the JSON object of one contact inside "contacts" (no trailing comma). The members
// every contact of a batch shares (tags, the list, exclude_automations) are written once, at
// construction. Not RapidJSON's Writer: it escapes a character at a time through its stream,
// which showed in profiles of large exports; append_json_string copies the runs that need no
// escape whole (see its test against RapidJSON's reader).
class BulkContactWriter {
public:
    explicit BulkContactWriter(const BulkOptions& options);
    // Appends the contact's object to `out` (a batch's objects share one string).
    void append(const Contact& contact, std::string& out) const;

private:
    bool upsert_;
    std::string shared_members_;  // ,"tags":[..],"subscribe":[..] ... }
};

// Appends `text` as a JSON string, quotes included. `text` is UTF-8 (segpush checks segment
// files); '"', '\\' and control characters are escaped, everything else is copied.
void append_json_string(std::string& out, std::string_view text);

// The full request body from contact objects made by BulkContactWriter; with
// exclude_automations, the request says so at its top level too.
std::string bulk_body(const std::vector<std::string_view>& contact_objects, bool exclude_automations = false);
// The size of bulk_body's answer for objects of that total size.
size_t bulk_body_size(size_t sum_of_object_sizes, size_t n_objects, bool exclude_automations = false);

// Splits contact objects (by index) into requests of at most max_contacts and max_bytes.
// Objects too large for any request on their own are returned in `too_large`.
struct Chunking {
    std::vector<std::vector<size_t>> chunks;
    std::vector<size_t> too_large;
};
Chunking chunk_contacts(const std::vector<size_t>& object_sizes, bool exclude_automations = false,
                        size_t max_contacts = kBulkMaxContacts, size_t max_bytes = kBulkMaxBytes);

// POST /api/3/contact/sync body (camelCase names, custom fields as fieldValues).
std::string sync_body(const Contact& contact);
// POST /api/3/contactLists body; status 1 subscribes, 2 unsubscribes. `resubscribe` marks a
// subscription that undoes an unsubscribe (sourceid 4, as documented).
std::string contact_list_body(uint64_t list_id, const std::string& contact_id, ListAction action,
                              bool resubscribe = false);

// Percent-encodes a query-string value.
std::string url_encode(std::string_view value);

// ASCII lower-case, for comparing emails the way ActiveCampaign does.
inline char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
std::string lower_ascii(std::string value);

}  // namespace segpush::activecampaign
