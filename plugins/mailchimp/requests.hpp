// Requests the plugin sends to Mailchimp's Marketing API: paths and JSON bodies. Pure
// functions, no I/O.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace segpush::mailchimp {

// POST /lists/{id} takes at most 500 members.
constexpr size_t kBatchMaxMembers = 500;

// One member as mapped from a batch row. An absent merge value is never sent, so it never
// erases what Mailchimp holds; an empty one clears it (the export's clear_blank_values), which
// only an update can do: a new member simply has no value.
struct Member {
    std::string email;  // trimmed, as the segment wrote it
    std::vector<std::pair<std::string, std::optional<std::string_view>>> merge_fields;  // tag, value
};

// The email as Mailchimp identifies it: trimmed and lower-cased (ASCII).
std::string normalise_email(std::string_view email);
// A member's id in URLs: the MD5 of its normalised email.
std::string subscriber_hash(std::string_view email);

// Percent-encodes a path segment (audience ids are alphanumeric, but nothing is assumed).
std::string url_encode(std::string_view value);

std::string list_path(const std::string& list_id);
std::string merge_fields_path(const std::string& list_id, size_t offset, size_t count);
// The batch subscribe endpoint, merge fields validated, duplicates within a request refused.
std::string batch_path(const std::string& list_id);
std::string member_path(const std::string& list_id, std::string_view email);
std::string member_tags_path(const std::string& list_id, std::string_view email);

// POST /lists/{id}: creates the members that are new with `status` ("subscribed" or, for an
// audience with double opt-in, "pending") and the tags; update_existing false, so a member
// that exists is reported as an error and left exactly as it is.
std::string batch_subscribe_body(const std::vector<const Member*>& members, const char* status,
                                 const std::vector<std::string>& tags);
// PUT /lists/{id}/members/{hash}: creates the member with status_if_new, or updates its merge
// fields; it never carries `status`, so an existing member's status never changes.
std::string upsert_body(const Member& member, const char* status_if_new);
// PUT /lists/{id}/members/{hash} for a member segpush archived itself and puts back: the one
// write that carries `status` (subscribed), which takes the member out of the archive.
std::string restore_body(const Member& member);
// POST /lists/{id}/members/{hash}/tags: every tag active.
std::string tags_body(const std::vector<std::string>& tags);

}  // namespace segpush::mailchimp
