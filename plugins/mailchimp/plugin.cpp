// The Mailchimp destination: descriptor, ABI functions and the entry point.
//
// Sending never changes an existing member's status:
//   1. POST /lists/{id} (the batch subscribe endpoint, 500 members a request) with
//      update_existing false creates the members who are new, with the tags; each member who
//      exists already comes back as an ERROR_CONTACT_EXISTS error and is left untouched. Other
//      per-member errors (an address Mailchimp calls invalid or fake, a merge field it refuses)
//      reject that member with Mailchimp's reason.
//   2. Each member who existed gets PUT /lists/{id}/members/{hash} with status_if_new and the
//      merge fields, never `status`: the fields change, the status stays. The answer carries
//      the member's status: unsubscribed, cleaned or archived members are SUPPRESSED.
//   3. Tags reach existing members through POST .../members/{hash}/tags (a member body's tags
//      apply only when it creates the member).
//   4. Leavers (on_leave: unsubscribe) are read (GET) and archived (DELETE) only while on the
//      audience; one who unsubscribed, bounced or was archived already is SUPPRESSED, so the host
//      never takes their own doing for a removal of segpush's. Archiving, not unsubscribing:
//      Mailchimp never lets the API subscribe an unsubscribed member again (400 Member In
//      Compliance State), so an unsubscribe could never be undone, while an archived member
//      comes back with a PUT that carries `status`. A member segpush archived who returns is
//      put back only while Mailchimp shows no change since (last_changed no later than the
//      removal); a person who unsubscribed themselves never is.
// Mailchimp answers each request synchronously, so every outcome is final when push_batch
// returns: no PENDING records, no receipts.
#include <segpush/plugin.h>
#include <segpush/plugin_kit.hpp>

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "http.hpp"
#include "requests.hpp"
#include "responses.hpp"
#include "settings.hpp"

struct segpush_connection {
    std::unique_ptr<segpush::mailchimp::Http> http;
};

namespace {

using namespace segpush::mailchimp;
namespace kit = segpush::kit;
using kit::OutcomeList;

kit::Host g_host;

// How far Mailchimp's clock and this machine's may disagree when a member's last_changed is set
// against segpush's record of its own removal.
constexpr int64_t kClockSlackSeconds = 120;
constexpr size_t kMergeFieldsPerPage = 1000;  // Mailchimp's largest page

// A failed call, classified; applied to segpush_error at the ABI boundary.
struct Problem {
    segpush_status status = SEGPUSH_OK;
    std::string field;
    std::string message;
    int32_t vendor_code = 0;

    explicit operator bool() const { return status != SEGPUSH_OK; }
};

// Mailchimp's own texts are quoted in messages; should one ever quote the key, it is cut out.
std::string without_key(std::string text, const std::string& api_key) {
    if (api_key.size() < 4) return text;
    for (size_t at; (at = text.find(api_key)) != std::string::npos;) text.replace(at, api_key.size(), "[API key]");
    return text;
}

segpush_status report(const Problem& p, const Http& http, segpush_error* err) {
    return kit::fail(err, p.status, p.field, without_key(p.message, http.settings().api_key), 0, p.vendor_code);
}

std::string quoted_problem(const HttpResult& result) {
    const std::string text = problem_text(result.body);
    return text.empty() ? std::string() : " (" + text + ")";
}

Problem cancelled_problem() { return Problem{SEGPUSH_ERR_CANCELLED, "", "cancelled", 0}; }

bool uses_server(const Http& http) {
    return http.settings().base_url.find(".api.mailchimp.com/3.0") == std::string::npos;
}

// Problems every request shares: transport failures, throttling that outlasted the retries,
// server errors, refused credentials. No problem for other answers: the caller reads those.
Problem common_problem(const Http& http, const HttpResult& result, const std::string& doing) {
    Problem p;
    const std::string& url = http.settings().base_url;
    if (result.cancelled) return cancelled_problem();
    if (result.curl != CURLE_OK) {
        switch (result.curl) {
            case CURLE_SSL_CACERT_BADFILE:
                p = {SEGPUSH_ERR_CONFIG, "ca_bundle",
                     "cannot read the CA certificates (" + result.curl_error +
                         "): ca_bundle must be a readable PEM file of CA certificates",
                     0};
                if (http.settings().ca_bundle.empty()) p.field = uses_server(http) ? "server" : "";
                return p;
            case CURLE_PEER_FAILED_VERIFICATION:
            case CURLE_SSL_CERTPROBLEM:
            case CURLE_SSL_ISSUER_ERROR:
            case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            case CURLE_SSL_INVALIDCERTSTATUS:
            case CURLE_SSL_CRL_BADFILE:
                return {SEGPUSH_ERR_CONFIG, uses_server(http) ? "server" : "ca_bundle",
                        "cannot verify the TLS certificate of " + url + " (" + result.curl_error +
                            "): if a proxy or private CA is in the way, set ca_bundle to a PEM file with its CA "
                            "certificate (verification cannot be turned off)",
                        0};
            case CURLE_COULDNT_RESOLVE_HOST:
                if (uses_server(http)) {
                    return {SEGPUSH_ERR_CONFIG, "server", "cannot resolve the host of server " + url, 0};
                }
                return {SEGPUSH_ERR_CONFIG, "api_key",
                        "cannot resolve " + url +
                            ", the server the API key's data centre names: check the part of the key after its "
                            "last '-' (such as us6)",
                        0};
            case CURLE_URL_MALFORMAT:
            case CURLE_UNSUPPORTED_PROTOCOL:
                return {SEGPUSH_ERR_CONFIG, uses_server(http) ? "server" : "api_key",
                        url + " does not make a valid https URL (" + result.curl_error + ")", 0};
            default:
                return {SEGPUSH_RETRY, "",
                        doing + ": could not reach " + url + " (" + result.curl_error + ") after " +
                            std::to_string(result.attempts) + " attempts",
                        0};
        }
    }
    const long status = result.status;
    p.vendor_code = static_cast<int32_t>(status);
    if (status == 401) {
        p.status = SEGPUSH_ERR_AUTH;
        p.field = "api_key";
        p.message = "Mailchimp refused the API key (HTTP 401" +
                    (problem_text(result.body).empty() ? std::string() : ": " + problem_text(result.body)) +
                    "): copy the key again from Profile > Extras > API keys; its data centre suffix must be the "
                    "account's";
    } else if (status == 403 && !transient(result)) {
        p.status = SEGPUSH_ERR_AUTH;
        p.field = "api_key";
        p.message = doing + ": Mailchimp refused access (HTTP 403" +
                    (problem_text(result.body).empty() ? std::string() : ": " + problem_text(result.body)) +
                    "); the key's user needs a role that may do this, or the account is disabled";
    } else if (transient(result)) {
        p.status = SEGPUSH_RETRY;
        p.message = doing + ": Mailchimp answered HTTP " + std::to_string(status) +
                    (status == 429 || status == 403 ? " (too many simultaneous connections)" : "") +
                    quoted_problem(result) + " " + std::to_string(result.attempts) + " times";
    }
    return p;
}

Problem unexpected(const HttpResult& result, const std::string& doing, segpush_status status = SEGPUSH_ERR_INTERNAL) {
    return {status, "", doing + ": unexpected answer HTTP " + std::to_string(result.status) + quoted_problem(result),
            static_cast<int32_t>(result.status)};
}

std::string kept_out_reason(const std::string& status, const std::string& list_id) {
    if (status == "cleaned") return "cleaned in audience " + list_id + " at Mailchimp (the address bounced)";
    if (status == "archived") return "archived in audience " + list_id + " at Mailchimp by an account user";
    return "unsubscribed from audience " + list_id + " at Mailchimp";
}

}  // namespace

struct segpush_export {
    segpush_connection* conn = nullptr;
    void* token = nullptr;
    ExportSettings settings;
    // The merge field tag of each mapped column; empty for the email.
    std::vector<std::string> tags_of_columns;
    size_t email_column = 0;
    const char* new_status = "subscribed";  // "pending" when the audience asks for double opt-in

    std::mutex mutex;  // guards the counters
    uint64_t created = 0, updated = 0, suppressed = 0, rejected = 0, removed = 0, restored = 0;

    bool cancelled() const { return g_host.is_cancelled(token); }
    std::function<bool()> cancel_check() const {
        return [this] { return cancelled(); };
    }
    Http& http() { return *conn->http; }
};

namespace {

// ---- settings and the connection ------------------------------------------------------------

segpush_status validate_settings(const char* kind, const char* settings_json, segpush_error* err) {
    return kit::guard(err, "checking settings", [&]() -> segpush_status {
        if (kind && std::strcmp(kind, "connection") == 0) {
            auto parsed = parse_connection_settings(settings_json);
            if (auto* problem = std::get_if<SettingsProblem>(&parsed)) {
                return kit::fail(err, SEGPUSH_ERR_CONFIG, problem->field, problem->message);
            }
        } else if (kind && std::strcmp(kind, "export") == 0) {
            auto parsed = parse_export_settings(settings_json);
            if (auto* problem = std::get_if<SettingsProblem>(&parsed)) {
                return kit::fail(err, SEGPUSH_ERR_CONFIG, problem->field, problem->message);
            }
        }
        return SEGPUSH_OK;
    });
}

segpush_status open_connection(const char* settings_json, segpush_connection** out, segpush_error* err) {
    return kit::guard(err, "opening the connection", [&]() -> segpush_status {
        auto parsed = parse_connection_settings(settings_json);
        if (auto* problem = std::get_if<SettingsProblem>(&parsed)) {
            return kit::fail(err, SEGPUSH_ERR_CONFIG, problem->field, problem->message);
        }
        auto conn = std::make_unique<segpush_connection>();
        conn->http = std::make_unique<Http>(std::get<ConnectionSettings>(parsed));
        *out = conn.release();
        return SEGPUSH_OK;
    });
}

segpush_status check_connection(segpush_connection* conn, segpush_error* err) {
    return kit::guard(err, "checking the connection", [&]() -> segpush_status {
        Http& http = *conn->http;
        HttpResult result;
        http.send({"GET", "/ping", {}}, result, nullptr);
        const std::string doing = "checking the connection";
        if (Problem p = common_problem(http, result, doing)) return report(p, http, err);
        if (result.status == 200 && result.body.find("health_status") != std::string::npos) {
            g_host.log(SEGPUSH_LOG_DEBUG, "connected to Mailchimp at " + http.settings().base_url);
            return SEGPUSH_OK;
        }
        Problem p = unexpected(result, doing, SEGPUSH_ERR_CONFIG);
        p.field = uses_server(http) ? "server" : "api_key";
        p.message = http.settings().base_url + " did not answer /ping as Mailchimp's Marketing API does (HTTP " +
                    std::to_string(result.status) + ")" + quoted_problem(result) +
                    (uses_server(http) ? ": server must be the API's base URL, ending in /3.0" : "");
        return report(p, http, err);
    });
}

// ---- begin_export ---------------------------------------------------------------------------

std::string describe(const MergeField& field) {
    return field.tag + (field.name.empty() ? "" : " (" + field.name + ")");
}

// Checks the mapped merge fields against the audience's: each must exist, and every required
// one must be mapped (Mailchimp would refuse every new member otherwise).
Problem check_merge_fields(segpush_export& exp, const std::vector<std::string>& field_ids) {
    Http& http = exp.http();
    std::vector<MergeField> all;
    for (size_t offset = 0, page = 0; page < 20; ++page) {
        HttpResult result;
        if (!http.send({"GET", merge_fields_path(exp.settings.list_id, offset, kMergeFieldsPerPage), {}}, result,
                       exp.cancel_check())) {
            return cancelled_problem();
        }
        const std::string doing = "reading the merge fields of audience " + exp.settings.list_id;
        if (Problem p = common_problem(http, result, doing)) return p;
        if (result.status != 200) return unexpected(result, doing, SEGPUSH_RETRY);
        MergeFieldsPage parsed = parse_merge_fields(result.body);
        if (!parsed.ok) return unexpected(result, doing, SEGPUSH_RETRY);
        all.insert(all.end(), parsed.fields.begin(), parsed.fields.end());
        offset += kMergeFieldsPerPage;
        if (parsed.fields.empty() || offset >= parsed.total) break;
    }
    std::string known;
    for (const auto& field : all) known += (known.empty() ? "" : ", ") + describe(field);
    if (known.empty()) known = "none";
    for (size_t c = 0; c < exp.tags_of_columns.size(); ++c) {
        std::string& tag = exp.tags_of_columns[c];
        if (tag.empty()) continue;
        auto found = std::find_if(all.begin(), all.end(), [&](const MergeField& field) {
            return normalise_email(field.tag) == normalise_email(tag);  // ASCII case-insensitive
        });
        if (found == all.end()) {
            return {SEGPUSH_ERR_CONFIG, "mapping." + field_ids[c],
                    "audience " + exp.settings.list_id + " has no merge field with tag " + tag + " (mapped as " +
                        field_ids[c] + "); its merge fields: " + known,
                    0};
        }
        tag = found->tag;  // Mailchimp's own spelling
    }
    for (const auto& field : all) {
        if (!field.required || field.tag == "EMAIL") continue;
        if (std::find(exp.tags_of_columns.begin(), exp.tags_of_columns.end(), field.tag) == exp.tags_of_columns.end()) {
            return {SEGPUSH_ERR_CONFIG, "mapping",
                    "audience " + exp.settings.list_id + " requires merge field " + describe(field) +
                        ", which the mapping leaves out: map a column to field:" + field.tag +
                        " (Mailchimp refuses members without it)",
                    0};
        }
    }
    return {};
}

segpush_status begin_export(segpush_connection* conn, const char* settings_json, const char* const* field_ids,
                            size_t n_fields, void* export_token, segpush_export** out, segpush_error* err) {
    return kit::guard(err, "starting the export", [&]() -> segpush_status {
        auto parsed = parse_export_settings(settings_json);
        if (auto* problem = std::get_if<SettingsProblem>(&parsed)) {
            return kit::fail(err, SEGPUSH_ERR_CONFIG, problem->field, problem->message);
        }
        auto exp = std::make_unique<segpush_export>();
        exp->conn = conn;
        exp->token = export_token;
        exp->settings = std::get<ExportSettings>(parsed);
        std::vector<std::string> ids;
        bool has_email = false;
        for (size_t i = 0; i < n_fields; ++i) {
            const std::string id = field_ids[i] ? field_ids[i] : "";
            ids.push_back(id);
            std::string tag;
            if (id == "email") {
                has_email = true;
                exp->email_column = i;
            } else if (id == "first_name") {
                tag = "FNAME";
            } else if (id == "last_name") {
                tag = "LNAME";
            } else if (id == "phone") {
                tag = "PHONE";
            } else if (id.rfind("field:", 0) == 0 && id.size() > 6) {
                tag = id.substr(6);
            } else {
                return kit::fail(err, SEGPUSH_ERR_CONFIG, "mapping." + id,
                                 "Mailchimp has no field \"" + id +
                                     "\"; its fields: email, first_name (FNAME), last_name (LNAME), phone (PHONE), "
                                     "and any merge field as field:TAG");
            }
            exp->tags_of_columns.push_back(tag);
        }
        if (!has_email) {
            return kit::fail(err, SEGPUSH_ERR_CONFIG, "mapping.email", "map email: Mailchimp identifies members by it");
        }
        Http& http = *conn->http;
        HttpResult result;
        const std::string& list = exp->settings.list_id;
        if (!http.send({"GET", list_path(list), {}}, result, exp->cancel_check())) {
            return report(cancelled_problem(), http, err);
        }
        const std::string doing = "checking audience " + list;
        if (Problem p = common_problem(http, result, doing)) return report(p, http, err);
        if (result.status == 404) {
            return kit::fail(err, SEGPUSH_ERR_CONFIG, "list_id",
                             "Mailchimp has no audience with ID " + list +
                                 ": copy the audience ID from Audience > Settings > Audience name and defaults (the "
                                 "number in the web app's address is not it)",
                             0, 404);
        }
        const ListAnswer answer = parse_list(result.body);
        if (result.status != 200 || !answer.ok) return report(unexpected(result, doing, SEGPUSH_RETRY), http, err);
        exp->new_status = answer.double_optin ? "pending" : "subscribed";
        if (Problem p = check_merge_fields(*exp, ids)) return report(p, http, err);
        g_host.log(SEGPUSH_LOG_INFO,
                   "exporting to Mailchimp audience " + list + (answer.name.empty() ? "" : " (" + answer.name + ")") +
                       (answer.double_optin ? ", double opt-in: new members get a confirmation email" : "") +
                       (exp->settings.tags.empty() ? ""
                                                   : ", with " + std::to_string(exp->settings.tags.size()) + " tags"));
        *out = exp.release();
        return SEGPUSH_OK;
    });
}

// ---- push -----------------------------------------------------------------------------------

struct Row {
    uint64_t id = 0;
    Member member;
    std::string key;         // normalised email
    int64_t removed_at = 0;  // segpush's own removal of this member, to undo
};

// nullopt: absent, never sent. An empty value clears the destination's; a value of only
// blanks is absent.
std::optional<std::string_view> value_of(const segpush_value& value) {
    if (!value.data) return std::nullopt;
    if (value.size == 0) return std::string_view();
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    size_t begin = 0, end = value.size;
    while (begin < end && blank(value.data[begin])) ++begin;
    if (begin == end) return std::nullopt;
    while (blank(value.data[end - 1])) --end;
    return std::string_view(value.data + begin, end - begin);
}

std::vector<Row> rows_of(const segpush_export& exp, const segpush_batch& batch, bool with_removed_at) {
    std::vector<Row> rows(batch.n_records);
    const int64_t* removed_at = with_removed_at && SEGPUSH_HAS_FIELD(&batch, segpush_batch, removed_at)
                                    ? batch.removed_at
                                    : nullptr;
    for (size_t r = 0; r < batch.n_records; ++r) {
        Row& row = rows[r];
        row.id = batch.record_ids[r];
        row.removed_at = removed_at ? removed_at[r] : 0;
        const segpush_value* values = kit::row_of(batch, r);
        for (size_t f = 0; f < batch.n_fields; ++f) {
            auto value = value_of(values[f]);
            if (f == exp.email_column) {
                if (value) row.member.email = std::string(*value);
            } else {
                row.member.merge_fields.emplace_back(exp.tags_of_columns[f], value);
            }
        }
        row.key = normalise_email(row.member.email);
    }
    return rows;
}

// One push's outcomes, and the first problem that stops it.
struct Push {
    segpush_export& exp;
    std::vector<Row>& rows;
    OutcomeList& out;
    Problem stop;  // AUTH, CONFIG, CANCELLED: nothing more is sent

    Http& http() { return exp.http(); }
    void add(size_t r, segpush_record_status status, const std::string& reason = {}) {
        out.add(rows[r].id, status, without_key(reason, http().settings().api_key));
    }
    // A problem met by records `which`: transient ones leave those records to be sent again; the
    // others stop the push, and every record without an outcome yet is left undelivered.
    void fail(const std::vector<size_t>& which, const Problem& p) {
        if (p.status == SEGPUSH_RETRY || p.status == SEGPUSH_ERR_INTERNAL) {
            for (size_t r : which) add(r, SEGPUSH_RECORD_RETRY, p.message);
        } else if (!stop) {
            stop = p;
        }
    }
    void count(uint64_t segpush_export::*counter, uint64_t n = 1) {
        std::lock_guard<std::mutex> guard(exp.mutex);
        exp.*counter += n;
    }
};

// Whether `carried` holds every one of `wanted`; Mailchimp matches tag names ignoring case.
bool has_every_tag(const std::vector<std::string>& carried, const std::vector<std::string>& wanted) {
    const auto folded = [](std::string name) {
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return name;
    };
    std::set<std::string> names;
    for (const std::string& name : carried) names.insert(folded(name));
    return std::all_of(wanted.begin(), wanted.end(),
                       [&](const std::string& name) { return names.count(folded(name)) > 0; });
}

// POST .../members/{hash}/tags for `which`; the records are ACCEPTED once their tags are on.
void add_tags(Push& push, const std::vector<size_t>& which) {
    if (which.empty() || push.stop) return;
    if (push.exp.settings.tags.empty()) {
        for (size_t r : which) push.add(r, SEGPUSH_RECORD_ACCEPTED);
        return;
    }
    const std::string body = tags_body(push.exp.settings.tags);
    std::vector<HttpRequest> requests;
    for (size_t r : which) {
        requests.push_back({"POST", member_tags_path(push.exp.settings.list_id, push.rows[r].key), body});
    }
    std::vector<HttpResult> results;
    push.http().send_all(requests, results, push.exp.cancel_check());
    for (size_t i = 0; i < which.size(); ++i) {
        const HttpResult& result = results[i];
        if (Problem p = common_problem(push.http(), result, "tagging a member")) {
            push.fail({which[i]}, p);
        } else if (result.status == 204 || result.status == 200) {
            push.add(which[i], SEGPUSH_RECORD_ACCEPTED);
        } else if (result.status >= 400 && result.status < 500) {
            push.add(which[i], SEGPUSH_RECORD_REJECTED,
                     "Mailchimp refused this member's tags (HTTP " + std::to_string(result.status) + ")" +
                         quoted_problem(result));
        } else {
            push.fail({which[i]}, unexpected(result, "tagging a member", SEGPUSH_RETRY));
        }
    }
}

// PUT each of `which`: merge fields updated, status never sent (see the file comment).
void upsert_each(Push& push, const std::vector<size_t>& which) {
    if (which.empty() || push.stop) return;
    segpush_export& exp = push.exp;
    const std::string& list = exp.settings.list_id;
    std::vector<HttpRequest> requests;
    for (size_t r : which) {
        requests.push_back(
            {"PUT", member_path(list, push.rows[r].key), upsert_body(push.rows[r].member, exp.new_status)});
    }
    std::vector<HttpResult> results;
    push.http().send_all(requests, results, exp.cancel_check());
    std::vector<size_t> to_tag;
    for (size_t i = 0; i < which.size(); ++i) {
        const size_t r = which[i];
        const HttpResult& result = results[i];
        const std::string doing = "updating a member";
        if (Problem p = common_problem(push.http(), result, doing)) {
            push.fail({r}, p);
            continue;
        }
        if (result.status == 200) {
            const MemberAnswer member = parse_member(result.body);
            if (!member.ok) {
                push.fail({r}, unexpected(result, doing, SEGPUSH_RETRY));
                continue;
            }
            push.count(&segpush_export::updated);
            if (kept_out_status(member.status)) {
                push.count(&segpush_export::suppressed);
                push.add(r, SEGPUSH_RECORD_SUPPRESSED, kept_out_reason(member.status, list));
            } else {
                to_tag.push_back(r);
            }
            continue;
        }
        if (result.status == 400) {
            const auto problem = parse_problem(result.body);
            const std::string title = problem ? problem->title : std::string();
            if (title == "Member In Compliance State" || title == "Forgotten Email Not Subscribed") {
                push.count(&segpush_export::suppressed);
                push.add(r, SEGPUSH_RECORD_SUPPRESSED,
                         (title == "Member In Compliance State"
                              ? "in a compliance state in audience " + list +
                                    " at Mailchimp (unsubscribed, bounced or under compliance review)"
                              : "permanently deleted from audience " + list +
                                    " at Mailchimp; only the person can sign up again") +
                             quoted_problem(result));
            } else {
                push.count(&segpush_export::rejected);
                push.add(r, SEGPUSH_RECORD_REJECTED, "Mailchimp refused this member" + quoted_problem(result));
            }
            continue;
        }
        if (result.status == 404) {
            push.fail({r},
                      Problem{SEGPUSH_ERR_CONFIG, "list_id",
                              "Mailchimp has no audience with ID " + list + " any more" + quoted_problem(result), 404});
            continue;
        }
        push.fail({r}, unexpected(result, doing, SEGPUSH_RETRY));
    }
    add_tags(push, to_tag);
}

std::string utc_text(int64_t seconds) {
    const std::time_t when = static_cast<std::time_t>(seconds);
    std::tm utc{};
    gmtime_r(&when, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
    return text;
}

// GET each member of `which`: its status, and when that last changed.
std::vector<HttpResult> read_members(Push& push, const std::vector<size_t>& which) {
    std::vector<HttpRequest> reads;
    for (size_t r : which) {
        reads.push_back(
            {"GET", member_path(push.exp.settings.list_id, push.rows[r].key) + "?fields=status,last_changed", {}});
    }
    std::vector<HttpResult> results;
    push.http().send_all(reads, results, push.exp.cancel_check());
    return results;
}

// Members segpush archived as leavers in an earlier run, back in the segment. Each is read
// first: one still archived as segpush left it (last_changed no later than the removal) is put
// back with the one PUT that carries `status`; one whose state changed since (the person
// unsubscribed, an account user acted) goes the ordinary way and keeps its status; one gone
// from the audience stays gone.
void return_each(Push& push, const std::vector<size_t>& which, std::vector<size_t>& ordinary) {
    if (which.empty() || push.stop) return;
    segpush_export& exp = push.exp;
    const std::string& list = exp.settings.list_id;
    std::vector<HttpResult> results = read_members(push, which);
    std::vector<size_t> to_restore;
    for (size_t i = 0; i < which.size(); ++i) {
        const size_t r = which[i];
        const HttpResult& result = results[i];
        const std::string doing = "reading a returning member";
        const std::string removal = "segpush removed them at " + utc_text(push.rows[r].removed_at);
        if (Problem p = common_problem(push.http(), result, doing)) {
            push.fail({r}, p);
            continue;
        }
        if (result.status == 404) {
            push.count(&segpush_export::suppressed);
            push.add(r, SEGPUSH_RECORD_SUPPRESSED,
                     "deleted from audience " + list + " at Mailchimp since " + removal + "; not added again");
            continue;
        }
        const MemberAnswer member = parse_member(result.body);
        if (result.status != 200 || !member.ok) {
            push.fail({r}, unexpected(result, doing, SEGPUSH_RETRY));
        } else if (member.status == "archived" && member.changed_at &&
                   *member.changed_at <= push.rows[r].removed_at + kClockSlackSeconds) {
            to_restore.push_back(r);
        } else {
            if (member.status == "archived") {
                push.count(&segpush_export::suppressed);
                push.add(r, SEGPUSH_RECORD_SUPPRESSED,
                         "archived in audience " + list + " at Mailchimp, changed " +
                             (member.last_changed.empty() ? std::string("at an unknown time") : member.last_changed) +
                             " after " + removal + "; not put back");
                continue;
            }
            ordinary.push_back(r);
        }
    }
    if (to_restore.empty() || push.stop) return;
    std::vector<HttpRequest> puts;
    for (size_t r : to_restore)
        puts.push_back({"PUT", member_path(list, push.rows[r].key), restore_body(push.rows[r].member)});
    push.http().send_all(puts, results, exp.cancel_check());
    std::vector<size_t> to_tag;
    for (size_t i = 0; i < to_restore.size(); ++i) {
        const size_t r = to_restore[i];
        const HttpResult& result = results[i];
        const std::string doing = "putting back a member segpush had removed";
        const MemberAnswer member = parse_member(result.body);
        if (Problem p = common_problem(push.http(), result, doing)) {
            push.fail({r}, p);
        } else if (result.status == 200 && member.ok && !kept_out_status(member.status)) {
            push.count(&segpush_export::restored);
            to_tag.push_back(r);
        } else if (result.status == 200 && member.ok) {
            // Answered, but left as it was: the member is not back, so it is not delivered.
            push.count(&segpush_export::suppressed);
            push.add(r, SEGPUSH_RECORD_SUPPRESSED,
                     kept_out_reason(member.status, list) + "; Mailchimp did not put this member back");
        } else if (result.status == 400) {
            push.count(&segpush_export::suppressed);
            push.add(r, SEGPUSH_RECORD_SUPPRESSED,
                     "Mailchimp did not put this member back on audience " + list + quoted_problem(result));
        } else {
            push.fail({r}, unexpected(result, doing, SEGPUSH_RETRY));
        }
    }
    add_tags(push, to_tag);
}

// POST /lists/{id} with `which` (at most 500): new members are created; those who exist go to
// `existing`. A request Mailchimp refuses as a whole (HTTP 400) sends its members one by one
// instead, so one member it cannot read does not hold back the others.
void subscribe_batch(Push& push, const std::vector<size_t>& which, std::vector<size_t>& existing) {
    segpush_export& exp = push.exp;
    std::vector<const Member*> members;
    for (size_t r : which) members.push_back(&push.rows[r].member);
    HttpResult result;
    push.http().send({"POST", batch_path(exp.settings.list_id),
                      batch_subscribe_body(members, exp.new_status, exp.settings.tags)},
                     result, exp.cancel_check());
    const std::string doing = "subscribing members to audience " + exp.settings.list_id;
    if (Problem p = common_problem(push.http(), result, doing)) {
        push.fail(which, p);
        return;
    }
    if (result.status == 404) {
        push.fail(which, Problem{SEGPUSH_ERR_CONFIG, "list_id",
                                 "Mailchimp has no audience with ID " + exp.settings.list_id + " any more" +
                                     quoted_problem(result),
                                 404});
        return;
    }
    if (result.status == 400) {
        g_host.log(SEGPUSH_LOG_WARN, doing + ": Mailchimp refused the whole request" +
                                         without_key(quoted_problem(result), push.http().settings().api_key) +
                                         "; sending its " + std::to_string(which.size()) + " members one by one");
        existing.insert(existing.end(), which.begin(), which.end());
        return;
    }
    const BatchAnswer answer = parse_batch_answer(result.body);
    if (result.status != 200 || !answer.ok) {
        push.fail(which, unexpected(result, doing, SEGPUSH_RETRY));
        return;
    }
    // Mailchimp names members by address, not position; an address may stand for several rows
    // only if the host sent it twice, and then every row shares its fate.
    std::unordered_map<std::string, std::vector<size_t>> by_email;
    for (size_t r : which) by_email[push.rows[r].key].push_back(r);
    std::vector<char> settled(push.rows.size(), 0);
    auto each = [&](const std::string& email, auto&& action) {
        auto it = by_email.find(normalise_email(email));
        if (it == by_email.end()) return;
        for (size_t r : it->second) {
            if (!settled[r]) {
                settled[r] = 1;
                action(r);
            }
        }
    };
    std::vector<size_t> to_tag;
    for (const auto& entry : answer.created) {
        // Tags in a batch member's body are not in every description of this endpoint: a member
        // created without them gets them the way existing members do.
        const bool tagged = has_every_tag(entry.tags, exp.settings.tags);
        each(entry.email, [&](size_t r) {
            push.count(&segpush_export::created);
            if (tagged) push.add(r, SEGPUSH_RECORD_ACCEPTED);
            else to_tag.push_back(r);
        });
    }
    // update_existing false is read by some as "update the fields, keep the status": a member
    // reported updated is taken as it is reported.
    for (const auto& entry : answer.updated) {
        each(entry.email, [&](size_t r) {
            push.count(&segpush_export::updated);
            if (kept_out_status(entry.status)) {
                push.count(&segpush_export::suppressed);
                push.add(r, SEGPUSH_RECORD_SUPPRESSED, kept_out_reason(entry.status, exp.settings.list_id));
            } else {
                to_tag.push_back(r);
            }
        });
    }
    for (const auto& error : answer.errors) {
        each(error.email, [&](size_t r) {
            if (error.exists) {
                existing.push_back(r);
            } else if (error.kept_out) {
                push.count(&segpush_export::suppressed);
                push.add(r, SEGPUSH_RECORD_SUPPRESSED,
                         "kept out of audience " + exp.settings.list_id + " by Mailchimp: " + error.message);
            } else {
                push.count(&segpush_export::rejected);
                push.add(r, SEGPUSH_RECORD_REJECTED, "Mailchimp refused this member: " + error.message);
            }
        });
    }
    for (size_t r : which) {
        if (!settled[r]) {
            push.add(r, SEGPUSH_RECORD_RETRY, "Mailchimp's answer did not mention this member; sent again next run");
        }
    }
    add_tags(push, to_tag);
}

// Leavers: each is read, and archived only while subscribed, the one status segpush puts back
// (restore_body) should the member return. One unsubscribed, cleaned or archived already is
// SUPPRESSED, so the host never takes their own doing for a removal of segpush's (which it may
// undo later); so is one pending (not confirmed) or transactional (never asked for marketing):
// neither receives campaigns, and putting them back as subscribed would subscribe someone who
// never opted in.
void remove_each(Push& push, const std::vector<size_t>& which) {
    segpush_export& exp = push.exp;
    const std::string& list = exp.settings.list_id;
    std::vector<HttpResult> results = read_members(push, which);
    std::vector<size_t> to_archive;
    for (size_t i = 0; i < which.size(); ++i) {
        const size_t r = which[i];
        const HttpResult& result = results[i];
        const std::string doing = "reading a leaving member";
        if (Problem p = common_problem(push.http(), result, doing)) {
            push.fail({r}, p);
        } else if (result.status == 404) {
            push.add(r, SEGPUSH_RECORD_ACCEPTED);  // not on the audience: nothing to remove
        } else if (const MemberAnswer member = parse_member(result.body); result.status == 200 && member.ok) {
            if (member.status == "subscribed") {
                to_archive.push_back(r);
            } else {
                push.count(&segpush_export::suppressed);
                push.add(r, SEGPUSH_RECORD_SUPPRESSED,
                         (kept_out_status(member.status)
                              ? kept_out_reason(member.status, list)
                              : member.status + " in audience " + list + " at Mailchimp, not subscribed") +
                             "; nothing to remove");
            }
        } else {
            push.fail({r}, unexpected(result, doing, SEGPUSH_RETRY));
        }
    }
    if (to_archive.empty() || push.stop) return;
    std::vector<HttpRequest> deletes;
    for (size_t r : to_archive) deletes.push_back({"DELETE", member_path(list, push.rows[r].key), {}});
    push.http().send_all(deletes, results, exp.cancel_check());
    for (size_t i = 0; i < to_archive.size(); ++i) {
        const size_t r = to_archive[i];
        const HttpResult& result = results[i];
        const std::string doing = "archiving a leaving member";
        if (Problem p = common_problem(push.http(), result, doing)) {
            push.fail({r}, p);
        } else if (result.status == 204 || result.status == 200 || result.status == 404) {
            push.count(&segpush_export::removed);
            push.add(r, SEGPUSH_RECORD_ACCEPTED);
        } else if (result.status == 400 || result.status == 405) {
            push.count(&segpush_export::rejected);
            push.add(r, SEGPUSH_RECORD_REJECTED, "Mailchimp refused to archive this member" + quoted_problem(result));
        } else {
            push.fail({r}, unexpected(result, doing, SEGPUSH_RETRY));
        }
    }
}

segpush_status push_batch(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                          segpush_error* err) {
    return kit::guard(err, "pushing a batch", [&]() -> segpush_status {
        if (!batch || batch->n_fields != exp->tags_of_columns.size()) {
            return kit::fail(err, SEGPUSH_ERR_INTERNAL, "",
                             "batch field count differs from the fields given to begin_export");
        }
        const uint32_t action = kit::action_of(*batch);
        if (action != SEGPUSH_ACTION_UPSERT && action != SEGPUSH_ACTION_REMOVE) {
            return kit::fail(err, SEGPUSH_ERR_INTERNAL, "", "unknown batch action " + std::to_string(action));
        }
        std::vector<Row> rows = rows_of(*exp, *batch, action == SEGPUSH_ACTION_UPSERT);
        auto out = std::make_unique<OutcomeList>();
        out->reserve(rows.size());
        Push push{*exp, rows, *out, {}};
        std::vector<size_t> valid;
        for (size_t r = 0; r < rows.size(); ++r) {
            if (rows[r].key.empty()) {
                push.add(r, SEGPUSH_RECORD_REJECTED, "the record has no email; Mailchimp needs one");
            } else {
                valid.push_back(r);
            }
        }
        if (action == SEGPUSH_ACTION_REMOVE) {
            remove_each(push, valid);
        } else {
            // Members segpush removed before go one by one: their state decides what happens.
            std::vector<size_t> fresh, existing, returning;
            for (size_t r : valid) (rows[r].removed_at != 0 ? returning : fresh).push_back(r);
            return_each(push, returning, existing);
            for (size_t at = 0; at < fresh.size() && !push.stop; at += kBatchMaxMembers) {
                const std::vector<size_t> chunk(fresh.begin() + static_cast<std::ptrdiff_t>(at),
                                                fresh.begin() + static_cast<std::ptrdiff_t>(
                                                                    std::min(fresh.size(), at + kBatchMaxMembers)));
                subscribe_batch(push, chunk, existing);
            }
            upsert_each(push, existing);
        }
        // Everything was retried already; when not one record got through, the call fails as a
        // whole so that the host backs off before the next.
        bool all_retry = !rows.empty() && out->size() == rows.size();
        for (size_t i = 0; all_retry && i < out->size(); ++i) all_retry = (*out)[i].status == SEGPUSH_RECORD_RETRY;
        if (push.stop) {
            const segpush_status status = report(push.stop, exp->http(), err);
            kit::publish(std::move(out), outcomes, g_host);  // what was settled before the stop
            return status;
        }
        if (all_retry) {
            const std::string reason = (*out)[0].reason ? (*out)[0].reason : "Mailchimp did not take the batch";
            return kit::fail(err, SEGPUSH_RETRY, "", reason);
        }
        kit::publish(std::move(out), outcomes, g_host);
        return SEGPUSH_OK;
    });
}

segpush_status finish_export(segpush_export* exp, segpush_outcomes*, segpush_error* err) {
    return kit::guard(err, "finishing the export", [&]() -> segpush_status {
        std::unique_ptr<segpush_export> owned(exp);
        const Http& http = exp->http();
        g_host.log(SEGPUSH_LOG_INFO,
                   "Mailchimp audience " + exp->settings.list_id + ": " + std::to_string(exp->created) + " created, " +
                       std::to_string(exp->updated) + " updated, " + std::to_string(exp->suppressed) +
                       " kept out (unsubscribed, cleaned or archived), " + std::to_string(exp->rejected) +
                       " refused, " + std::to_string(exp->removed) + " leavers archived, " +
                       std::to_string(exp->restored) + " put back; " + std::to_string(http.requests_sent()) +
                       " requests on this connection, " + std::to_string(http.throttled()) + " throttled and retried");
        return SEGPUSH_OK;
    });
}

void abort_export(segpush_export* exp) { delete exp; }

void close_connection(segpush_connection* conn) { delete conn; }

// Balances the curl_global_init of segpush_plugin_entry (libcurl counts them).
void unload() { curl_global_cleanup(); }

// ---- descriptor -----------------------------------------------------------------------------

const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email",
     "Member email; Mailchimp matches members by it, case-insensitively."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "first_name", "First name", "The FNAME merge field."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "last_name", "Last name", "The LNAME merge field."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_PHONE, "phone", "Phone", "The PHONE merge field."},
};

// 500 members per batch subscribe request, and as many pushes in flight as Mailchimp allows
// connections: a first load is one request a push, so fewer pushes would leave connections
// idle. Every request of a
// connection shares its `concurrency` slots whatever the pushes in flight. The price is paid
// only by a host killed mid-export: it loses the outcomes of at most 5,000 members, whom the next
// run sends again (and, being created already, one request each).
const segpush_limits kLimits = {sizeof(segpush_limits), static_cast<uint32_t>(kBatchMaxMembers), 0, 0, 0,
                                kMaxConnections};

const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    "mailchimp",
    "Mailchimp",
    "0.1.0",
    "Subscribes segment members to a Mailchimp audience; never changes an existing member's status.",
    kConnectionSchema,
    kExportSchema,
    kFields,
    sizeof kFields / sizeof kFields[0],
    &kLimits,
    validate_settings,
    open_connection,
    check_connection,
    begin_export,
    push_batch,
    finish_export,
    abort_export,
    close_connection,
    SEGPUSH_CAP_REMOVE | SEGPUSH_CAP_EXTRA_FIELDS,
    nullptr,  // collect_outcomes: every outcome is final when push_batch returns
    nullptr,  // resume_pending: nothing is ever left pending
    unload,
};

}  // namespace

extern "C" SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    if (!g_host.attach(host)) return nullptr;  // another ABI major; attach said so
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        g_host.log(SEGPUSH_LOG_ERROR, "the Mailchimp plugin cannot initialise libcurl");
        return nullptr;
    }
    return &kPlugin;
}
