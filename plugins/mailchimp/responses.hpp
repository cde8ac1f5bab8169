// Reading Mailchimp's answers. Pure functions, no I/O; every parser accepts any bytes (a proxy's
// HTML page, an empty body) and says when it could not read them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace segpush::mailchimp {

// Mailchimp's problem document (application/problem+json): title, detail and, for
// validation failures, errors[] of {field, message}.
struct ProblemDoc {
    std::string title;
    std::string detail;
    std::vector<std::pair<std::string, std::string>> errors;
};
std::optional<ProblemDoc> parse_problem(const std::string& body);
// "title: detail (field: message; ...)" for people, cut to a sensible length; "" when the body
// is no problem document.
std::string problem_text(const std::string& body);

// A member's status that keeps them out: the person unsubscribed, the address bounced
// (cleaned), or an account user archived them.
bool kept_out_status(const std::string& status);

// The answer of POST /lists/{id}.
struct BatchAnswer {
    bool ok = false;
    struct Entry {
        std::string email;
        std::string status;
        std::vector<std::string> tags;  // the names the member carries, as echoed
    };
    struct Error {
        std::string email;
        std::string message;  // error, plus field and field_message when given
        bool exists = false;  // ERROR_CONTACT_EXISTS
        // The member is kept out by Mailchimp's compliance rules: "... is in a compliance
        // state ..." or "... was permanently deleted ..." (these errors have no code of their own).
        bool kept_out = false;
    };
    std::vector<Entry> created;
    std::vector<Entry> updated;
    std::vector<Error> errors;
};
BatchAnswer parse_batch_answer(const std::string& body);

// A member object (PUT, PATCH, GET of /lists/{id}/members/{hash}).
struct MemberAnswer {
    bool ok = false;
    std::string status;
    std::string last_changed;           // as written
    std::optional<int64_t> changed_at;  // last_changed in seconds UTC, when it carries an offset
};
MemberAnswer parse_member(const std::string& body);

// GET /lists/{id}.
struct ListAnswer {
    bool ok = false;
    std::string name;
    bool double_optin = false;
};
ListAnswer parse_list(const std::string& body);

// GET /lists/{id}/merge-fields.
struct MergeField {
    std::string tag;
    std::string name;
    std::string type;
    bool required = false;
};
struct MergeFieldsPage {
    bool ok = false;
    std::vector<MergeField> fields;
    uint64_t total = 0;
};
MergeFieldsPage parse_merge_fields(const std::string& body);

// An ISO 8601 time with a UTC offset ("2025-01-02T03:04:05+00:00", "...Z") in seconds since
// 1970 UTC; nullopt for anything else.
std::optional<int64_t> parse_time(const std::string& text);

}  // namespace segpush::mailchimp
