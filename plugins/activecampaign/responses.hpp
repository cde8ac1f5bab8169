// Reading ActiveCampaign's responses. Pure functions, no I/O: testable and fuzzable. Every
// parser accepts any bytes (empty bodies, HTML error pages, truncated JSON).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "subscriptions.hpp"

namespace segpush::activecampaign {

// Retry-After in milliseconds: delta-seconds ("30") or an HTTP date relative to now_epoch_s.
// nullopt when absent or unreadable. Capped at one hour.
std::optional<uint32_t> parse_retry_after(const std::string& header, int64_t now_epoch_s);

// A short human sentence from an error body: "message", errors[].title/detail, or
// failureReasons strings; empty when the body says nothing readable. Capped in length.
std::string error_text(const std::string& body);

// POST /api/3/import/bulk_import answer.
struct BulkAnswer {
    enum Kind {
        queued,        // 200/201 with a batchId
        invalid,       // 400 with per-contact failureReasons: nothing was queued
        rate_limited,  // 400 "Rate limit exceeded." (or string failureReasons about limits)
        other          // anything else: decide by HTTP status
    } kind = other;
    std::string batch_id;
    struct Failure {
        int64_t index;  // as given by the server
        std::string reason;
    };
    std::vector<Failure> failures;
    std::string message;
};
BulkAnswer parse_bulk_answer(long http_status, const std::string& body);

// Which contacts of a refused bulk request (emails, in request order) the failureReasons
// name. The documentation does not say whether their "contact" numbers count from 0 or from 1,
// so a failure is placed by the email its reason names when it names one; else by the
// numbering when one index proves it (0 exists only from 0, n only from 1); else both contacts
// it could mean are suspects, to be sent again alone, where a request of one settles it.
struct FailureMatch {
    std::vector<std::pair<size_t, std::string>> refused;  // position, reason
    std::vector<size_t> suspects;                         // ascending
};
FailureMatch match_failures(const std::vector<BulkAnswer::Failure>& failures, const std::vector<std::string>& emails);

// GET /api/3/import/info answer.
struct ImportInfo {
    enum State { not_ready, completed, failed, unreadable } state = unreadable;
    std::string status;                // as sent ("false" when the status was boolean false)
    std::vector<std::string> failure;  // emails that failed
};
ImportInfo parse_import_info(const std::string& body);

// "id" inside the top-level object `key` ({"contact":{"id":"10"}}); empty when absent.
std::string nested_id(const std::string& body, const char* key);

// The id of the contact in a GET /contacts?email= answer whose email matches `email`
// (case-insensitively); empty when there is none.
std::string contact_id_with_email(const std::string& body, const std::string& email);

// One page of GET /api/3/fields.
struct FieldsPage {
    bool ok = false;
    struct Field {
        uint64_t id;
        std::string title;
        std::string perstag;
    };
    std::vector<Field> fields;
    uint64_t total = 0;  // meta.total; 0 when absent
};
FieldsPage parse_fields_page(const std::string& body);

// A timestamp as ActiveCampaign writes it, "2021-05-12T11:10:06-05:00" (the account's offset;
// "Z" and "+0200" accepted too), in seconds since 1970-01-01 UTC. nullopt without an offset:
// the account's time zone is unknown here, so such a time cannot be compared.
std::optional<int64_t> parse_ac_time(const std::string& text);

// One page of GET /api/3/contacts?listid=&status=: the contacts' ids and emails.
struct ContactsPage {
    bool ok = false;
    struct Entry {
        uint64_t id = 0;
        std::string email;
    };
    std::vector<Entry> contacts;
    std::optional<uint64_t> total;  // meta.total, when given
};
ContactsPage parse_contacts_page(const std::string& body);

// A contact's bounce and list memberships from GET /api/3/contacts/{id} ({"contact":...,
// "contactLists":[...]}) or GET /api/3/contacts/{id}/contactLists ({"contactLists":[...]}).
ContactState parse_contact_state(const std::string& body);

// Whether an error body says a list is missing ("related_missing" / list_not_exist).
bool mentions_missing_list(const std::string& body);

}  // namespace segpush::activecampaign
