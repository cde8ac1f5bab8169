// Reading ActiveCampaign's responses. Pure functions, no I/O: testable and fuzzable. Every
// parser accepts any bytes (empty bodies, HTML error pages, truncated JSON).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
        queued,          // 200/201 with a batchId
        invalid,         // 400 with per-contact failureReasons: nothing was queued
        rate_limited,    // 400 "Rate limit exceeded." (or string failureReasons about limits)
        other            // anything else: decide by HTTP status
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

// Maps the server's failureReasons "contact" numbers to positions 0..n-1 of the request.
// The documentation does not say whether they count from 0 or 1: an index equal to n proves
// 1-based, an index 0 proves 0-based; otherwise 0-based (array positions). Indices that fit
// neither are dropped.
std::vector<size_t> failure_positions(const std::vector<BulkAnswer::Failure>& failures, size_t n,
                                      std::vector<std::string>* reasons);

// GET /api/3/import/info answer.
struct ImportInfo {
    enum State { not_ready, completed, failed, unreadable } state = unreadable;
    std::string status;                 // as sent ("false" when the status was boolean false)
    std::vector<std::string> failure;   // emails that failed
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

// Whether an error body says a list is missing ("related_missing" / list_not_exist).
bool mentions_missing_list(const std::string& body);

}  // namespace segpush::activecampaign
