// The ActiveCampaign destination: descriptor, ABI functions and the entry point.
//
// Subscriptions (subscriptions.hpp): begin_export reads who is unsubscribed from or bounced on
// the list; push_batch never sends them (SUPPRESSED), except members segpush removed itself,
// whom restore_each puts back one by one when ActiveCampaign shows nothing happened since.
//
// Records travel: push_batch builds bulk import requests (or, for a whole export of at most
// ten contacts, contact/sync + contactLists per contact), answers PENDING for queued records
// and REJECTED for contacts the server refused by position; every queued request is kept as a
// PendingBatch (ids, emails, body). Each push_batch call first polls import/info for the oldest
// batch that is due, so confirmations keep pace with submissions on the same worker threads
// (one thread polling alone falls behind as soon as latency times the bulk rate exceeds one);
// settled outcomes wait in the export until collect_outcomes hands them to the host.
// collect_outcomes and finish_export poll too (finish_export until none is left). Emails
// listed in `failure` are REJECTED, the rest ACCEPTED; a batch ending failed/interrupted is
// resubmitted once, then its records are RETRY. A PENDING outcome carries its batch id as the
// receipt, so a run that was killed is followed by one that asks import/info (resume_pending)
// instead of importing those contacts again.
#include <segpush/plugin.h>
#include <segpush/plugin_kit.hpp>

#include <curl/curl.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "http.hpp"
#include "requests.hpp"
#include "responses.hpp"
#include "settings.hpp"

struct segpush_connection {
    std::unique_ptr<segpush::activecampaign::Http> http;
};

namespace {

using namespace segpush::activecampaign;
using namespace std::chrono_literals;
namespace kit = segpush::kit;
using kit::OutcomeList;

kit::Host g_host;

// A failed call, classified; applied to segpush_error at the ABI boundary.
struct Problem {
    segpush_status status = SEGPUSH_OK;
    std::string field;
    std::string message;
    uint32_t retry_after_ms = 0;
    int32_t vendor_code = 0;

    explicit operator bool() const { return status != SEGPUSH_OK; }
    segpush_status report(segpush_error* err) const {
        return kit::fail(err, status, field, message, retry_after_ms, vendor_code);
    }
};

// ---- HTTP answers to status classes ---------------------------------------------------------

std::string who(const Http& http) { return "ActiveCampaign at " + http.settings().host; }

bool tls_failure(CURLcode code) {
    switch (code) {
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE: return true;
        default: return false;
    }
}

uint32_t retry_after_of(const HttpResult& result) {
    return parse_retry_after(result.retry_after, static_cast<int64_t>(std::time(nullptr))).value_or(0);
}

// Problems every request shares: transport failures, throttling, server errors, refused
// credentials. Returns no problem for other statuses: the caller reads those.
Problem common_problem(Http& http, const HttpResult& result, const std::string& doing, Budget budget) {
    Problem p;
    const std::string& host = http.settings().host;
    if (result.curl != CURLE_OK) {
        if (tls_failure(result.curl)) {
            const bool bad_file = result.curl == CURLE_SSL_CACERT_BADFILE && !http.settings().ca_bundle.empty();
            p.status = SEGPUSH_ERR_CONFIG;
            p.field = bad_file ? "ca_bundle" : "host";
            p.message = "cannot verify the TLS certificate of " + host + " (" + result.curl_error + ")" +
                        (bad_file
                             ? ": ca_bundle is not a readable PEM file of CA certificates"
                             : ": check host; if the server uses a private CA or a TLS-inspecting proxy, set "
                               "ca_bundle to a PEM file with its CA certificate (verification cannot be turned off)");
        } else if (result.curl == CURLE_URL_MALFORMAT) {
            p.status = SEGPUSH_ERR_CONFIG;
            p.field = "host";
            p.message = "host \"" + host + "\" does not make a valid URL (" + result.curl_error + ")";
        } else {
            p.status = SEGPUSH_RETRY;
            p.message = doing + ": could not reach " + host + " (" + result.curl_error + ")";
        }
        return p;
    }
    const long status = result.status;
    p.vendor_code = static_cast<int32_t>(status);
    if (status == 429 || status == 503) {
        p.status = SEGPUSH_RETRY;
        p.retry_after_ms = retry_after_of(result);
        p.message = doing + ": " + who(http) + " is throttling requests (HTTP " + std::to_string(status) + ")";
        if (p.retry_after_ms) {
            http.hold(budget, Clock::now() + std::chrono::milliseconds(p.retry_after_ms));
            p.message += "; it asked to wait " + std::to_string((p.retry_after_ms + 999) / 1000) + " s";
        }
    } else if (status >= 500) {
        p.status = SEGPUSH_RETRY;
        p.message = doing + ": " + who(http) + " answered HTTP " + std::to_string(status);
        const std::string text = error_text(result.body);
        if (!text.empty()) p.message += " (" + text + ")";
    } else if (status == 401 || status == 403) {
        p.status = SEGPUSH_ERR_AUTH;
        p.field = "api_key";
        const std::string text = error_text(result.body);
        if (text.empty()) {
            p.message = "ActiveCampaign refused the API key (HTTP " + std::to_string(status) +
                        "): copy the key again from Settings > Developer of the account whose API URL is " + host;
        } else {
            p.message = doing + ": ActiveCampaign refused access (HTTP " + std::to_string(status) + ": " + text +
                        "); give the key's user permission for this in ActiveCampaign, or use another user's key";
        }
    } else if (status == 402) {
        p.status = SEGPUSH_ERR_AUTH;
        p.message = "the ActiveCampaign account at " + host +
                    " is not in good standing (payment required, HTTP 402): settle billing in ActiveCampaign, "
                    "then run again";
    }
    return p;
}

Problem unexpected(const HttpResult& result, const std::string& doing, segpush_status status = SEGPUSH_ERR_INTERNAL) {
    Problem p;
    p.status = status;
    p.vendor_code = static_cast<int32_t>(result.status);
    p.message = doing + ": unexpected answer HTTP " + std::to_string(result.status);
    const std::string text = error_text(result.body);
    if (!text.empty()) p.message += " (" + text + ")";
    return p;
}

Problem cancelled_problem() { return Problem{SEGPUSH_ERR_CANCELLED, "", "cancelled", 0, 0}; }

// ---- the export -----------------------------------------------------------------------------

struct Column {
    enum Kind { email, first_name, last_name, phone, custom } kind;
    uint64_t field_id = 0;  // custom
};

struct PendingBatch {
    std::string batch_id;
    std::string body;  // kept to resubmit once if the batch fails
    std::vector<uint64_t> ids;
    // The members' emails, lower-cased, in the order of ids, end to end: a string each would
    // be an allocation and a free per contact.
    std::string emails;
    std::vector<uint32_t> email_ends;
    void add(uint64_t id, std::string_view email) {
        ids.push_back(id);
        const size_t from = emails.size();
        emails.append(email);  // then lower-cased in place: cheaper than a push_back a character
        std::transform(emails.begin() + from, emails.end(), emails.begin() + from,
                       [](char c) { return lower_ascii(c); });
        email_ends.push_back(static_cast<uint32_t>(emails.size()));
    }
    std::string_view email(size_t i) const {
        const uint32_t begin = i == 0 ? 0 : email_ends[i - 1];
        return std::string_view(emails).substr(begin, email_ends[i] - begin);
    }
    Clock::time_point queued_at;
    int resubmits = 0;
    bool polling = false;  // a thread is checking it; others leave it alone
};

}  // namespace

struct segpush_export {
    segpush_connection* conn = nullptr;
    void* token = nullptr;
    ExportSettings settings;
    std::vector<Column> columns;

    std::mutex mutex;  // guards everything below
    // Contacts unsubscribed from (or bounced on) the list when the export began, by lower-cased
    // email: the contact's id and its ListStatus. One put back (restore_each) leaves it.
    struct KeptOut {
        uint64_t contact_id;
        int status;
    };
    using KeptOutMap = std::unordered_map<std::string, KeptOut>;
    KeptOutMap kept_out;
    // Removals come after every upsert of the export, which may take most of an hour: the
    // first REMOVE batch reads kept_out again (see refresh_kept_out), the others wait for it.
    std::mutex removal_read;
    bool read_for_removals = false;   // under removal_read
    std::list<PendingBatch> pending;  // oldest first
    // Pushes waiting for room in a full import queue (see wait_for_room): signalled when an
    // import leaves the queue, or a waiter hands on the task of waking when the next falls due.
    std::condition_variable room;
    bool room_watched = false;  // a waiter sleeps until the next import may be checked
    OutcomeList settled;        // final outcomes polled by push workers, for collect_outcomes
    Clock::time_point next_poll{};
    Clock::duration backoff = 250ms;
    uint64_t bulk_requests = 0;
    uint64_t polls = 0;
    std::atomic<bool> bulk_started{false};
    // push_batch calls running now: while any runs, they do the polling (see collect_outcomes).
    std::atomic<int> pushes_in_flight{0};

    bool cancelled() const { return g_host.is_cancelled(token); }
    std::function<bool()> cancel_check() const {
        return [this] { return cancelled(); };
    }
    Http& http() { return *conn->http; }
};

namespace {

constexpr Clock::duration kMinBackoff = 250ms;
constexpr Clock::duration kMaxBackoff = 5s;
constexpr Clock::duration kFirstPollAge = 1s;  // import/info says `false` for about a second
constexpr size_t kMaxPollsPerCollect = 3;
constexpr size_t kFinishPollers = 8;
// Queued imports waiting for confirmation, each holding its request body (up to 400 KB, about
// 60 KB for typical contacts) to resubmit it should it fail. Past this many, a push first
// confirms older ones: memory stays bounded however fast the destination takes imports
// (ActiveCampaign's pace leaves a handful queued; 128 allow 128 imports a second).
constexpr size_t kMaxQueuedImports = 128;
constexpr size_t kSmallExport = 10;
// How far ActiveCampaign's clock and this machine's may disagree when a membership's change
// time is set against segpush's record of its own removal (see decide_restore).
constexpr int64_t kClockSlackSeconds = 120;
constexpr uint64_t kContactsPerPage = 100;  // ActiveCampaign's largest page

// ---- settings and the descriptor's functions ------------------------------------------------

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
        conn->http = std::make_unique<Http>(std::get<ConnectionSettings>(parsed), g_host.get());
        *out = conn.release();
        return SEGPUSH_OK;
    });
}

segpush_status check_connection(segpush_connection* conn, segpush_error* err) {
    return kit::guard(err, "checking the connection", [&]() -> segpush_status {
        Http& http = *conn->http;
        HttpResult result;
        http.send("GET", "/api/3/users/me", nullptr, Budget::general, nullptr, result);
        const std::string doing = "checking the connection";
        if (Problem p = common_problem(http, result, doing, Budget::general)) {
            if (result.curl == CURLE_COULDNT_RESOLVE_HOST) {
                p.status = SEGPUSH_ERR_CONFIG;
                p.field = "host";
                p.message = "cannot resolve host " + http.settings().host + " (" + result.curl_error +
                            "): use the API URL's hostname from ActiveCampaign Settings > Developer, e.g. "
                            "youraccount.api-us1.com";
            }
            return p.report(err);
        }
        if (result.status == 200) {
            rapidjson::Document doc;
            doc.Parse(result.body.data(), result.body.size());
            if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("user")) {
                g_host.log(SEGPUSH_LOG_DEBUG, "connected to ActiveCampaign at " + http.settings().host);
                return SEGPUSH_OK;
            }
            Problem p = unexpected(result, doing, SEGPUSH_ERR_CONFIG);
            p.field = "host";
            p.message = http.settings().host +
                        " answered /api/3/users/me without a user: is it the account's API "
                        "host (Settings > Developer, e.g. youraccount.api-us1.com) rather than the web app?";
            return p.report(err);
        }
        if (result.status == 404) {
            Problem p = unexpected(result, doing, SEGPUSH_ERR_CONFIG);
            p.field = "host";
            p.message = http.settings().host +
                        " has no ActiveCampaign API v3 (HTTP 404 for /api/3/users/me): use "
                        "the API URL's hostname from Settings > Developer, e.g. youraccount.api-us1.com";
            return p.report(err);
        }
        // A redirect (segpush follows none: the key would go wherever it points) or a request
        // refused as malformed will be answered the same way next time: a setting to fix.
        if ((result.status >= 300 && result.status < 400) || result.status == 400) {
            Problem p = unexpected(result, doing, SEGPUSH_ERR_CONFIG);
            p.field = "host";
            const bool redirect = result.status != 400;
            p.message = http.settings().host +
                        (redirect ? " redirects /api/3/users/me elsewhere (HTTP "
                                  : " refused /api/3/users/me as a bad request (HTTP ") +
                        std::to_string(result.status) + ")" +
                        (redirect ? "; segpush does not follow redirects, so the API key never goes to another host"
                                  : "") +
                        ": use the account's API URL hostname from Settings > Developer, e.g. youraccount.api-us1.com, "
                        "not the web app's address or a proxy that rewrites requests";
            return p.report(err);
        }
        return unexpected(result, doing).report(err);
    });
}

// Resolves custom fields named "field:<id, perstag or title>" with paged GET /api/3/fields.
Problem resolve_custom_fields(segpush_export& exp, const std::vector<std::pair<size_t, std::string>>& wanted) {
    std::vector<FieldsPage::Field> all;
    Http& http = exp.http();
    for (uint64_t offset = 0, page = 0; page < 200; ++page) {
        HttpResult result;
        if (!http.send("GET", "/api/3/fields?limit=100&offset=" + std::to_string(offset), nullptr, Budget::general,
                       exp.cancel_check(), result)) {
            return cancelled_problem();
        }
        if (Problem p = common_problem(http, result, "listing custom fields", Budget::general)) return p;
        if (result.status != 200) return unexpected(result, "listing custom fields");
        FieldsPage parsed = parse_fields_page(result.body);
        if (!parsed.ok) return unexpected(result, "listing custom fields");
        all.insert(all.end(), parsed.fields.begin(), parsed.fields.end());
        offset += 100;
        if (parsed.fields.empty() || offset >= parsed.total) break;
    }
    auto bare = [](std::string tag) {
        tag = lower_ascii(tag);
        if (tag.size() >= 2 && tag.front() == '%' && tag.back() == '%') tag = tag.substr(1, tag.size() - 2);
        return tag;
    };
    for (const auto& [column, name] : wanted) {
        const FieldsPage::Field* found = nullptr;
        for (const auto& field : all) {
            if (std::to_string(field.id) == name || bare(field.perstag) == bare(name) ||
                lower_ascii(field.title) == lower_ascii(name)) {
                found = &field;
                break;
            }
        }
        if (!found) {
            std::string close;
            int shown = 0;
            const std::string needle = bare(name);
            for (const auto& field : all) {
                const std::string tag = bare(field.perstag), title = lower_ascii(field.title);
                const bool near = (!needle.empty() &&
                                   (tag.find(needle) != std::string::npos || title.find(needle) != std::string::npos ||
                                    needle.find(tag) != std::string::npos));
                if ((near || all.size() <= 10) && shown < 10) {
                    close += std::string(shown++ ? ", " : "") + "field:" + field.perstag + " (id " +
                             std::to_string(field.id) + ", \"" + field.title + "\")";
                }
            }
            Problem p;
            p.status = SEGPUSH_ERR_CONFIG;
            p.field = "mapping.field:" + name;
            p.message = "ActiveCampaign has no custom field \"" + name +
                        "\" (matched against ids, personalization tags "
                        "and titles of " +
                        std::to_string(all.size()) + " fields)" +
                        (close.empty() ? std::string() : "; close ones: " + close);
            return p;
        }
        exp.columns[column].field_id = found->id;
    }
    return {};
}

// Reads who is unsubscribed from and bounced on the list into `kept_out`: a page of 100 a
// request, keyed by contact id (ActiveCampaign's advice for long lists). A page is never
// taken for the last because it is short (a server may cap pages lower); the first page's
// meta.total, or an empty page, ends the reading.
Problem read_kept_out(segpush_export& exp, segpush_export::KeptOutMap& kept_out) {
    Http& http = exp.http();
    const std::string list = std::to_string(exp.settings.list_id);
    size_t requests = 0;
    for (const int status : {unsubscribed, bounced}) {
        std::optional<uint64_t> total;
        size_t found = 0;
        for (uint64_t after = 0;;) {
            HttpResult result;
            const std::string path = "/api/3/contacts?listid=" + list + "&status=" + std::to_string(status) +
                                     "&orders%5Bid%5D=ASC&id_greater=" + std::to_string(after) +
                                     "&limit=" + std::to_string(kContactsPerPage);
            if (!http.send("GET", path, nullptr, Budget::general, exp.cancel_check(), result))
                return cancelled_problem();
            ++requests;
            const std::string doing = "reading who is unsubscribed from list " + list;
            if (Problem p = common_problem(http, result, doing, Budget::general)) return p;
            if (result.status != 200) return unexpected(result, doing);
            const ContactsPage page = parse_contacts_page(result.body);
            if (!page.ok) return unexpected(result, doing);
            if (!total) total = page.total.value_or(UINT64_MAX);
            const uint64_t before = after;
            for (const auto& contact : page.contacts) {
                kept_out[lower_ascii(contact.email)] = {contact.id, status};
                after = std::max(after, contact.id);
            }
            found += page.contacts.size();
            // No contact past the last page's: the end (or a server ignoring id_greater).
            if (after == before || found >= *total) break;
        }
    }
    g_host.log(SEGPUSH_LOG_INFO, "list " + list + " at ActiveCampaign: " + std::to_string(kept_out.size()) +
                                     " contacts unsubscribed or bounced, never subscribed by this export (" +
                                     std::to_string(requests) + " requests to read)");
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
        bool has_email = false;
        std::vector<std::pair<size_t, std::string>> custom;
        for (size_t i = 0; i < n_fields; ++i) {
            const std::string id = field_ids[i] ? field_ids[i] : "";
            Column column{Column::email, 0};
            if (id == "email") {
                has_email = true;
            } else if (id == "first_name") {
                column.kind = Column::first_name;
            } else if (id == "last_name") {
                column.kind = Column::last_name;
            } else if (id == "phone") {
                column.kind = Column::phone;
            } else if (id.rfind("field:", 0) == 0 && id.size() > 6) {
                column.kind = Column::custom;
                custom.emplace_back(i, id.substr(6));
            } else {
                return kit::fail(err, SEGPUSH_ERR_CONFIG, "mapping." + id,
                                 "ActiveCampaign has no field \"" + id +
                                     "\"; its fields: email, first_name, last_name, phone");
            }
            exp->columns.push_back(column);
        }
        if (!has_email) {
            return kit::fail(err, SEGPUSH_ERR_CONFIG, "mapping.email",
                             "map email: ActiveCampaign identifies contacts by it");
        }
        // The list must exist: a missing one would only show up as failed imports later.
        Http& http = *conn->http;
        const std::string list = std::to_string(exp->settings.list_id);
        HttpResult result;
        if (!http.send("GET", "/api/3/lists/" + list, nullptr, Budget::general, exp->cancel_check(), result)) {
            return cancelled_problem().report(err);
        }
        const std::string doing = "checking list " + list;
        if (Problem p = common_problem(http, result, doing, Budget::general)) return p.report(err);
        if (result.status == 404) {
            const std::string text = error_text(result.body);
            return kit::fail(err, SEGPUSH_ERR_CONFIG, "list_id",
                             "ActiveCampaign has no list with id " + list + (text.empty() ? "" : " (" + text + ")") +
                                 ": open the list in ActiveCampaign; its URL shows the id (listid=...)",
                             0, 404);
        }
        if (result.status != 200) return unexpected(result, doing).report(err);
        if (!custom.empty()) {
            if (Problem p = resolve_custom_fields(*exp, custom)) return p.report(err);
        }
        if (Problem p = read_kept_out(*exp, exp->kept_out)) return p.report(err);
        g_host.log(SEGPUSH_LOG_INFO,
                   "exporting to ActiveCampaign list " + list +
                       (exp->settings.tags.empty() ? ""
                                                   : " with " + std::to_string(exp->settings.tags.size()) + " tags"));
        *out = exp.release();
        return SEGPUSH_OK;
    });
}

// ---- push -----------------------------------------------------------------------------------

struct Row {
    uint64_t id;
    Contact contact;
    std::string_view json;  // bulk contact object, in the string write_objects filled
};

// nullopt: absent, never sent. An empty value (ABI 1.4) clears the destination's; a value of
// only spaces is absent (the host trims, but a plugin does not rely on it).
std::optional<std::string_view> value_of(const segpush_value& value) {
    if (!value.data) return std::nullopt;
    if (value.size == 0) return std::string_view();
    // A test a byte: find_first_not_of and find_last_not_of searched the set of four for each.
    auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    size_t begin = 0, end = value.size;
    while (begin < end && blank(value.data[begin])) ++begin;
    if (begin == end) return std::nullopt;
    while (blank(value.data[end - 1])) --end;
    return std::string_view(value.data + begin, end - begin);
}

std::vector<Row> rows_of(const segpush_export& exp, const segpush_batch& batch) {
    std::vector<Row> rows(batch.n_records);
    for (size_t r = 0; r < batch.n_records; ++r) {
        Row& row = rows[r];
        row.id = batch.record_ids[r];
        const segpush_value* values = kit::row_of(batch, r);
        for (size_t f = 0; f < batch.n_fields; ++f) {
            auto value = value_of(values[f]);
            if (!value) continue;
            switch (exp.columns[f].kind) {
                case Column::email: row.contact.email = *value; break;
                case Column::first_name: row.contact.first_name = value; break;
                case Column::last_name: row.contact.last_name = value; break;
                case Column::phone: row.contact.phone = value; break;
                case Column::custom: row.contact.fields.emplace_back(exp.columns[f].field_id, *value); break;
            }
        }
    }
    return rows;
}

BulkOptions subscribe_options(const segpush_export& exp) {
    return {exp.settings.list_id, ListAction::subscribe, exp.settings.tags, exp.settings.exclude_automations};
}

// The bulk import request for `which` rows, whose json is already built.
std::string body_of(const segpush_export& exp, const std::vector<Row>& rows, const std::vector<size_t>& which) {
    std::vector<std::string_view> objects;
    objects.reserve(which.size());
    for (size_t index : which) objects.push_back(rows[index].json);
    return bulk_body(objects, exp.settings.exclude_automations);
}

// Writes the bulk contact object of each of `which` rows into `objects` (one string for the
// batch: one allocation, where a string per contact took one each) and points the row's json
// at it.
void write_objects(const BulkContactWriter& writer, std::vector<Row>& rows, const std::vector<size_t>& which,
                   std::string& objects) {
    objects.clear();
    objects.reserve(which.size() * 256);
    std::vector<std::pair<size_t, size_t>> spans;
    spans.reserve(which.size());
    for (size_t index : which) {
        const size_t at = objects.size();
        writer.append(rows[index].contact, objects);
        spans.emplace_back(at, objects.size() - at);
    }
    for (size_t i = 0; i < which.size(); ++i) {
        rows[which[i]].json = std::string_view(objects).substr(spans[i].first, spans[i].second);
    }
}

// Marks every record of `rows` (by index) with `status` and `reason`.
void mark(OutcomeList& out, const std::vector<Row>& rows, const std::vector<size_t>& which,
          segpush_record_status status, const std::string& reason) {
    for (size_t index : which) out.add(rows[index].id, status, reason);
}

// Ends a push after a problem: with nothing reported yet the call fails as a whole (the host
// retries it); otherwise the records not yet delivered get RETRY (transient) or REJECTED
// (the destination refused the request) so no known outcome is lost.
Problem finish_rest(OutcomeList& out, const std::vector<Row>& rows, const std::vector<size_t>& rest, Problem p) {
    if (out.empty() || p.status == SEGPUSH_ERR_AUTH || p.status == SEGPUSH_ERR_CONFIG ||
        p.status == SEGPUSH_ERR_INTERNAL) {
        return p;
    }
    mark(out, rows, rest, p.status == SEGPUSH_ERR_DATA ? SEGPUSH_RECORD_REJECTED : SEGPUSH_RECORD_RETRY, p.message);
    return {};
}

Problem push_bulk(segpush_export& exp, std::vector<Row>& rows, const std::vector<size_t>& valid, ListAction action,
                  OutcomeList& out) {
    Http& http = exp.http();
    BulkOptions options = subscribe_options(exp);
    if (action != ListAction::subscribe) {
        options.action = action;
        options.tags.clear();
    }
    std::string objects;
    write_objects(BulkContactWriter(options), rows, valid, objects);
    std::vector<size_t> sizes;
    sizes.reserve(valid.size());
    for (size_t index : valid) sizes.push_back(rows[index].json.size());
    Chunking chunking = chunk_contacts(sizes, exp.settings.exclude_automations);
    for (size_t at : chunking.too_large) {
        out.add(rows[valid[at]].id, SEGPUSH_RECORD_REJECTED,
                "the contact is larger than one ActiveCampaign bulk import request may be (400,000 bytes)");
    }
    std::vector<std::vector<size_t>> chunks;  // indices into rows
    for (const auto& chunk : chunking.chunks) {
        std::vector<size_t> rows_of_chunk;
        for (size_t at : chunk) rows_of_chunk.push_back(valid[at]);
        chunks.push_back(std::move(rows_of_chunk));
    }
    const std::string doing = "bulk importing contacts";
    for (size_t c = 0; c < chunks.size(); ++c) {
        std::vector<size_t> remaining = chunks[c];
        auto unsent = [&] {
            std::vector<size_t> all = remaining;
            for (size_t later = c + 1; later < chunks.size(); ++later) {
                all.insert(all.end(), chunks[later].begin(), chunks[later].end());
            }
            return all;
        };
        for (int round = 0; !remaining.empty(); ++round) {
            if (round >= 4) {
                mark(out, rows, remaining, SEGPUSH_RECORD_RETRY,
                     "not sent: ActiveCampaign refused the bulk request four times in a row");
                break;
            }
            std::string body = body_of(exp, rows, remaining);
            const Budget budget = remaining.size() == 1 ? Budget::bulk_import_single : Budget::bulk_import;
            HttpResult result;
            if (!http.send("POST", "/api/3/import/bulk_import", &body, budget, exp.cancel_check(), result)) {
                return finish_rest(out, rows, unsent(), cancelled_problem());
            }
            {
                std::lock_guard<std::mutex> guard(exp.mutex);
                ++exp.bulk_requests;
            }
            if (Problem p = common_problem(http, result, doing, budget)) return finish_rest(out, rows, unsent(), p);
            BulkAnswer answer = parse_bulk_answer(result.status, result.body);
            if (answer.kind == BulkAnswer::queued) {
                PendingBatch batch;
                batch.batch_id = answer.batch_id;
                batch.body = std::move(body);
                batch.queued_at = Clock::now();
                for (size_t index : remaining) {
                    batch.add(rows[index].id, rows[index].contact.email);
                    out.add(rows[index].id, SEGPUSH_RECORD_PENDING, {}, answer.batch_id);
                }
                g_host.log(SEGPUSH_LOG_DEBUG, "bulk import batch " + answer.batch_id + " queued with " +
                                                  std::to_string(remaining.size()) + " contacts");
                std::lock_guard<std::mutex> guard(exp.mutex);
                exp.pending.push_back(std::move(batch));
                break;
            }
            if (answer.kind == BulkAnswer::rate_limited) {
                Problem p;
                p.status = SEGPUSH_RETRY;
                p.vendor_code = static_cast<int32_t>(result.status);
                p.retry_after_ms = std::max<uint32_t>(retry_after_of(result), 60000);
                p.message = doing + ": ActiveCampaign's bulk import rate limit was reached (" +
                            (answer.message.empty() ? std::string("Rate limit exceeded.") : answer.message) +
                            "); waiting a minute";
                http.hold(Budget::bulk_import, Clock::now() + std::chrono::milliseconds(p.retry_after_ms));
                return finish_rest(out, rows, unsent(), p);
            }
            if (answer.kind == BulkAnswer::invalid) {
                std::vector<std::string> emails;
                emails.reserve(remaining.size());
                for (size_t index : remaining) emails.emplace_back(rows[index].contact.email);
                const FailureMatch match = match_failures(answer.failures, emails);
                if (match.refused.empty() && (match.suspects.empty() || remaining.size() == 1)) {
                    Problem p = unexpected(result, doing, SEGPUSH_ERR_DATA);
                    p.message = "ActiveCampaign refused the bulk request without naming a usable contact (" +
                                (answer.message.empty() ? std::string("HTTP 400") : answer.message) + ")";
                    return finish_rest(out, rows, unsent(), p);
                }
                std::vector<bool> taken_out(remaining.size());
                for (const auto& [position, reason] : match.refused) {
                    taken_out[position] = true;
                    out.add(rows[remaining[position]].id, SEGPUSH_RECORD_REJECTED,
                            "ActiveCampaign refused this contact: " + reason);
                }
                // Each suspect goes alone, after the others: one contact's number is 0 or 1.
                for (size_t position : match.suspects) {
                    taken_out[position] = true;
                    chunks.push_back({remaining[position]});
                }
                std::vector<size_t> next;
                for (size_t i = 0; i < remaining.size(); ++i) {
                    if (!taken_out[i]) next.push_back(remaining[i]);
                }
                g_host.log(SEGPUSH_LOG_INFO,
                           "bulk import refused " + std::to_string(match.refused.size()) + " contacts" +
                               (match.suspects.empty() ? std::string()
                                                       : " and " + std::to_string(match.suspects.size()) +
                                                             " it may mean, each sent again alone") +
                               "; sending the other " + std::to_string(next.size()) + " again");
                remaining = std::move(next);
                continue;
            }
            if (result.status == 404) {
                Problem p = unexpected(result, doing, SEGPUSH_ERR_CONFIG);
                p.field = "host";
                p.message = http.settings().host + " has no bulk import API (HTTP 404 for /api/3/import/bulk_import)";
                return finish_rest(out, rows, unsent(), p);
            }
            if (result.status >= 400 && result.status < 500) {
                return finish_rest(out, rows, unsent(),
                                   unexpected(result, doing + " (the request was refused)", SEGPUSH_ERR_DATA));
            }
            // 2xx without a batch id, 3xx, anything unreadable: whether it was queued is unknown;
            // bulk import is an upsert by email, so sending again is harmless.
            return finish_rest(out, rows, unsent(), unexpected(result, doing, SEGPUSH_RETRY));
        }
    }
    return {};
}

// contact/sync of one contact: its id, or the destination's refusal of it in `refused`.
Problem sync_contact(segpush_export& exp, const Row& row, std::string& contact_id, std::string& refused) {
    Http& http = exp.http();
    contact_id.clear();
    refused.clear();
    const std::string body = sync_body(row.contact);
    HttpResult result;
    if (!http.send("POST", "/api/3/contact/sync", &body, Budget::general, exp.cancel_check(), result)) {
        return cancelled_problem();
    }
    if (Problem p = common_problem(http, result, "syncing a contact", Budget::general)) return p;
    if (result.status == 400 || result.status == 422) {
        const std::string text = error_text(result.body);
        refused = "ActiveCampaign refused this contact (HTTP " + std::to_string(result.status) + ")" +
                  (text.empty() ? "" : ": " + text);
        return {};
    }
    if (result.status != 200 && result.status != 201) return unexpected(result, "syncing a contact", SEGPUSH_RETRY);
    contact_id = nested_id(result.body, "contact");
    if (contact_id.empty()) return unexpected(result, "syncing a contact (no contact id)", SEGPUSH_RETRY);
    return {};
}

// What ActiveCampaign holds now about the contact's subscriptions: GET /contacts/{id} (with
// its bounce state) or, enough for the list's status alone, GET /contacts/{id}/contactLists.
// A contact that no longer exists reads as `gone`. An answer that may leave out the list's
// membership (a full page of them without it: the endpoint pages) is a problem, never taken
// for "not on the list".
Problem read_contact_state(segpush_export& exp, const std::string& contact_id, bool with_bounce, ContactState& state,
                           bool& gone) {
    Http& http = exp.http();
    HttpResult result;
    const std::string path = "/api/3/contacts/" + url_encode(contact_id) +
                             (with_bounce ? "" : "/contactLists?limit=" + std::to_string(kContactsPerPage));
    if (!http.send("GET", path, nullptr, Budget::general, exp.cancel_check(), result)) return cancelled_problem();
    const std::string doing = "reading a contact's subscriptions";
    if (Problem p = common_problem(http, result, doing, Budget::general)) return p;
    gone = result.status == 404;
    if (gone) return {};
    if (result.status != 200) return unexpected(result, doing, SEGPUSH_RETRY);
    state = parse_contact_state(result.body);
    if (!state.ok) return unexpected(result, doing, SEGPUSH_RETRY);
    const bool maybe_more = state.memberships.size() >= kContactsPerPage ||
                            (state.total && *state.total > state.memberships.size());
    if (maybe_more && !state.on(exp.settings.list_id)) {
        Problem p = unexpected(result, doing, SEGPUSH_RETRY);
        p.message = doing + ": the contact is on more lists than one answer shows, and list " +
                    std::to_string(exp.settings.list_id) + " is not among them; not changed";
        return p;
    }
    return {};
}

// POST /contactLists for one contact: done, or the destination's refusal in `refused`.
// `resubscribe` marks the undoing of segpush's own unsubscribe.
Problem change_list_status(segpush_export& exp, const std::string& contact_id, ListAction action, bool resubscribe,
                           std::string& refused) {
    Http& http = exp.http();
    refused.clear();
    const std::string list = std::to_string(exp.settings.list_id);
    const std::string body = contact_list_body(exp.settings.list_id, contact_id, action, resubscribe);
    HttpResult result;
    if (!http.send("POST", "/api/3/contactLists", &body, Budget::general, exp.cancel_check(), result)) {
        return cancelled_problem();
    }
    const std::string doing = action == ListAction::subscribe ? "subscribing a contact to list " + list
                                                              : "unsubscribing a contact from list " + list;
    if (Problem p = common_problem(http, result, doing, Budget::general)) return p;
    if (result.status == 200 || result.status == 201) return {};
    if (mentions_missing_list(result.body) || result.status == 404) {
        Problem p = unexpected(result, doing, SEGPUSH_ERR_CONFIG);
        p.field = "list_id";
        p.message = "ActiveCampaign has no list with id " + list + " any more (" + doing + ")";
        return p;
    }
    if (result.status == 400 || result.status == 422) {
        const std::string text = error_text(result.body);
        refused = "ActiveCampaign refused the list change (HTTP " + std::to_string(result.status) + ")" +
                  (text.empty() ? "" : ": " + text);
        return {};
    }
    return unexpected(result, doing, SEGPUSH_RETRY);
}

// One contact at a time: for exports of at most ten contacts. The contact's status on the list
// is read right before it is changed: an upsert is contact/sync, the read, then contactLists
// status 1 only if the contact is neither subscribed already nor unsubscribed or bounced
// (someone unsubscribing since the export began); a removal finds the contact by email, reads,
// then sets status 2 only on a subscription, so that a person's own unsubscribe is never taken
// for one of segpush's.
Problem push_each(segpush_export& exp, const std::vector<Row>& rows, const std::vector<size_t>& valid,
                  ListAction action, OutcomeList& out) {
    Http& http = exp.http();
    const uint64_t list_id = exp.settings.list_id;
    for (size_t v = 0; v < valid.size(); ++v) {
        const Row& row = rows[valid[v]];
        const std::vector<size_t> rest(valid.begin() + static_cast<std::ptrdiff_t>(v), valid.end());
        std::string contact_id, refused;
        if (action == ListAction::subscribe) {
            if (Problem p = sync_contact(exp, row, contact_id, refused)) return finish_rest(out, rows, rest, p);
            if (!refused.empty()) {
                out.add(row.id, SEGPUSH_RECORD_REJECTED, refused);
                continue;
            }
        } else {
            HttpResult result;
            if (!http.send("GET", "/api/3/contacts?email=" + url_encode(row.contact.email), nullptr, Budget::general,
                           exp.cancel_check(), result)) {
                return finish_rest(out, rows, rest, cancelled_problem());
            }
            if (Problem p = common_problem(http, result, "finding a contact", Budget::general)) {
                return finish_rest(out, rows, rest, p);
            }
            if (result.status != 200)
                return finish_rest(out, rows, rest, unexpected(result, "finding a contact", SEGPUSH_RETRY));
            contact_id = contact_id_with_email(result.body, std::string(row.contact.email));
            if (contact_id.empty()) {  // not a contact: not on the list either
                out.add(row.id, SEGPUSH_RECORD_ACCEPTED);
                continue;
            }
        }
        ContactState state;
        bool gone = false;
        if (Problem p = read_contact_state(exp, contact_id, false, state, gone)) return finish_rest(out, rows, rest, p);
        const Membership* membership = gone ? nullptr : state.on(list_id);
        const int status = membership ? membership->status : -1;
        if (status == unsubscribed || status == bounced) {
            out.add(row.id, SEGPUSH_RECORD_SUPPRESSED,
                    kept_out_reason(status, list_id) +
                        (action == ListAction::unsubscribe ? "; nothing to remove" : ""));
            continue;
        }
        // Already as asked: subscribed for an upsert, or not on the list for a removal.
        const bool done = action == ListAction::subscribe ? status == active
                                                          : (status != active && status != unconfirmed);
        if (!done) {
            if (Problem p = change_list_status(exp, contact_id, action, false, refused))
                return finish_rest(out, rows, rest, p);
        }
        out.add(row.id, refused.empty() ? SEGPUSH_RECORD_ACCEPTED : SEGPUSH_RECORD_REJECTED, refused);
    }
    return {};
}

// Members segpush removed in an earlier run who are unsubscribed now. Each is subscribed again
// (contactLists status 1, sourceid 4: bulk import never subscribes an unsubscribed contact) only
// when decide_restore finds ActiveCampaign unchanged since (GET /contacts/{id}); otherwise it is
// SUPPRESSED and nothing is sent. Those put back join `then_send`, for their values and tags to
// go with the others'. On a problem, `done` says how many of `which` were handled.
Problem restore_each(segpush_export& exp, const std::vector<size_t>& which, const std::vector<Row>& rows,
                     const int64_t* removed_at, OutcomeList& out, std::vector<size_t>& then_send, size_t& done) {
    const uint64_t list_id = exp.settings.list_id;
    for (done = 0; done < which.size(); ++done) {
        const Row& row = rows[which[done]];
        const std::string email = lower_ascii(std::string(row.contact.email));
        std::string contact_id;
        {
            std::lock_guard<std::mutex> guard(exp.mutex);
            contact_id = std::to_string(exp.kept_out.at(email).contact_id);
        }
        ContactState state;
        bool gone = false;
        if (Problem p = read_contact_state(exp, contact_id, true, state, gone)) return p;
        if (gone) {
            out.add(row.id, SEGPUSH_RECORD_SUPPRESSED,
                    "the contact was deleted at ActiveCampaign since segpush removed it from list " +
                        std::to_string(list_id) + "; not created again");
            continue;
        }
        const RestoreDecision decision = decide_restore(state, list_id, removed_at[which[done]], kClockSlackSeconds);
        if (decision.kind == RestoreDecision::keep_out) {
            out.add(row.id, SEGPUSH_RECORD_SUPPRESSED, decision.reason);
            continue;
        }
        if (decision.kind == RestoreDecision::restore) {
            std::string refused;
            if (Problem p = change_list_status(exp, contact_id, ListAction::subscribe, true, refused)) return p;
            if (!refused.empty()) {
                out.add(row.id, SEGPUSH_RECORD_REJECTED, refused);
                continue;
            }
            g_host.log(SEGPUSH_LOG_INFO, "put a contact segpush had removed back on list " + std::to_string(list_id));
        }
        {
            std::lock_guard<std::mutex> guard(exp.mutex);
            exp.kept_out.erase(email);
        }
        then_send.push_back(which[done]);
    }
    return {};
}

// Reads kept_out again before the export's first removal (see segpush_export::removal_read).
Problem refresh_kept_out(segpush_export& exp) {
    std::lock_guard<std::mutex> once(exp.removal_read);
    if (exp.read_for_removals) return {};
    segpush_export::KeptOutMap fresh;
    if (Problem p = read_kept_out(exp, fresh)) return p;
    {
        std::lock_guard<std::mutex> guard(exp.mutex);
        exp.kept_out.swap(fresh);
    }
    exp.read_for_removals = true;
    return {};
}

bool poll_due(segpush_export& exp, size_t max_polls, Problem& problem);
void wait_for_room(segpush_export& exp);

segpush_status push_batch(segpush_export* exp, const segpush_batch* batch, segpush_outcomes* outcomes,
                          segpush_error* err) {
    return kit::guard(err, "pushing a batch", [&]() -> segpush_status {
        struct InFlight {
            std::atomic<int>& count;
            explicit InFlight(std::atomic<int>& c) : count(c) { ++count; }
            ~InFlight() { --count; }
        } in_flight(exp->pushes_in_flight);
        {
            // One older batch checked per push keeps confirmations in step with submissions;
            // a problem here (say, a 429) is met again by collect_outcomes or finish_export.
            Problem ignored;
            poll_due(*exp, 1, ignored);
            wait_for_room(*exp);
        }
        if (!batch || batch->n_fields != exp->columns.size()) {
            return kit::fail(err, SEGPUSH_ERR_INTERNAL, "",
                             "batch field count differs from the fields given to begin_export");
        }
        const uint32_t action_code = kit::action_of(*batch);
        if (action_code != SEGPUSH_ACTION_UPSERT && action_code != SEGPUSH_ACTION_REMOVE) {
            return kit::fail(err, SEGPUSH_ERR_INTERNAL, "", "unknown batch action " + std::to_string(action_code));
        }
        const ListAction action = action_code == SEGPUSH_ACTION_REMOVE ? ListAction::unsubscribe
                                                                       : ListAction::subscribe;
        auto out = std::make_unique<OutcomeList>();
        out->reserve(batch->n_records);
        std::vector<Row> rows = rows_of(*exp, *batch);
        const int64_t* removed_at = SEGPUSH_HAS_FIELD(batch, segpush_batch, removed_at) &&
                                            action == ListAction::subscribe
                                        ? batch->removed_at
                                        : nullptr;
        // ActiveCampaign asks for the per-contact API when there are ten contacts or fewer. The
        // plugin cannot see the export's size; a batch of at most ten before any bulk import
        // means the host had no more to send (it fills batches to the declared limit).
        const auto with_email = static_cast<size_t>(
            std::count_if(rows.begin(), rows.end(), [](const Row& row) { return !row.contact.email.empty(); }));
        const bool small = with_email <= kSmallExport && !exp->bulk_started.load() && exp->settings.tags.empty() &&
                           !exp->settings.exclude_automations;
        // The per-contact path reads each leaver's status itself; bulk removals need the list again.
        if (action == ListAction::unsubscribe && !small) {
            if (Problem p = refresh_kept_out(*exp)) return p.report(err);
        }
        std::vector<size_t> valid;      // sent by bulk import, or per contact when few
        std::vector<size_t> restoring;  // removed by segpush before, unsubscribed now: see restore_each
        {
            std::lock_guard<std::mutex> guard(exp->mutex);
            for (size_t r = 0; r < rows.size(); ++r) {
                if (rows[r].contact.email.empty()) {
                    out->add(rows[r].id, SEGPUSH_RECORD_REJECTED, "the record has no email; ActiveCampaign needs one");
                    continue;
                }
                const auto kept = exp->kept_out.empty()
                                      ? exp->kept_out.end()
                                      : exp->kept_out.find(lower_ascii(std::string(rows[r].contact.email)));
                if (kept == exp->kept_out.end()) {
                    valid.push_back(r);
                } else if (action == ListAction::unsubscribe) {
                    // Off the list already, by their doing: not a removal segpush made.
                    out->add(rows[r].id, SEGPUSH_RECORD_SUPPRESSED,
                             kept_out_reason(kept->second.status, exp->settings.list_id) + "; nothing to remove");
                } else if (removed_at && removed_at[r] != 0) {
                    restoring.push_back(r);
                } else {
                    out->add(rows[r].id, SEGPUSH_RECORD_SUPPRESSED,
                             kept_out_reason(kept->second.status, exp->settings.list_id));
                }
            }
        }
        Problem problem;
        if (!restoring.empty()) {
            size_t done = 0;
            if (Problem p = restore_each(*exp, restoring, rows, removed_at, *out, valid, done)) {
                std::vector<size_t> rest(restoring.begin() + static_cast<std::ptrdiff_t>(done), restoring.end());
                rest.insert(rest.end(), valid.begin(), valid.end());
                problem = finish_rest(*out, rows, rest, p);
                if (!problem) valid.clear();  // given their outcomes (RETRY) above
            }
        }
        if (!problem && !valid.empty()) {
            if (!small) exp->bulk_started = true;
            problem = small ? push_each(*exp, rows, valid, action, *out) : push_bulk(*exp, rows, valid, action, *out);
        }
        if (problem) return problem.report(err);
        kit::publish(std::move(out), outcomes, g_host);
        return SEGPUSH_OK;
    });
}

// ---- settling pending batches ---------------------------------------------------------------

enum class Poll { settled, not_ready, fatal };

void settle_all(const PendingBatch& batch, OutcomeList& out, segpush_record_status status, const std::string& reason) {
    for (uint64_t id : batch.ids) out.add(id, status, reason);
}

// Resubmits a failed batch once; true when it was queued again under a new id.
bool resubmit(segpush_export& exp, PendingBatch& batch) {
    HttpResult result;
    const Budget budget = batch.ids.size() == 1 ? Budget::bulk_import_single : Budget::bulk_import;
    if (!exp.http().send("POST", "/api/3/import/bulk_import", &batch.body, budget, exp.cancel_check(), result))
        return false;
    {
        std::lock_guard<std::mutex> guard(exp.mutex);
        ++exp.bulk_requests;
    }
    common_problem(exp.http(), result, "resubmitting a bulk import", budget);  // holds pacing on 429
    BulkAnswer answer = parse_bulk_answer(result.status, result.body);
    if (answer.kind != BulkAnswer::queued) return false;
    g_host.log(SEGPUSH_LOG_INFO,
               "bulk import batch " + batch.batch_id + " failed at ActiveCampaign; resubmitted as " + answer.batch_id);
    batch.batch_id = answer.batch_id;
    batch.queued_at = Clock::now();
    batch.resubmits++;
    return true;
}

// One import/info request for `batch`. settled: its outcomes are in `out`.
Poll poll_batch(segpush_export& exp, PendingBatch& batch, OutcomeList& out, Problem& problem) {
    Http& http = exp.http();
    HttpResult result;
    if (!http.send("GET", "/api/3/import/info?batchId=" + url_encode(batch.batch_id), nullptr, Budget::general,
                   exp.cancel_check(), result)) {
        problem = cancelled_problem();
        return Poll::not_ready;
    }
    {
        std::lock_guard<std::mutex> guard(exp.mutex);
        ++exp.polls;
    }
    if (Problem p = common_problem(http, result, "checking a bulk import", Budget::general)) {
        problem = p;
        return p.status == SEGPUSH_RETRY ? Poll::not_ready : Poll::fatal;
    }
    if (result.status == 400 || result.status == 404) {
        settle_all(batch, out, SEGPUSH_RECORD_RETRY,
                   "ActiveCampaign no longer knows bulk import batch " + batch.batch_id +
                       "; the next run sends it again");
        return Poll::settled;
    }
    if (result.status != 200) return Poll::not_ready;
    ImportInfo info = parse_import_info(result.body);
    if (info.state == ImportInfo::completed) {
        std::set<std::string, std::less<>> failed;
        for (const auto& email : info.failure) failed.insert(lower_ascii(email));
        size_t rejected = 0;
        for (size_t i = 0; i < batch.ids.size(); ++i) {
            if (failed.count(batch.email(i))) {
                ++rejected;
                out.add(batch.ids[i], SEGPUSH_RECORD_REJECTED,
                        "ActiveCampaign's bulk import did not take this contact (listed as failed, without a reason; "
                        "often an invalid address, one on the account's exclusion list, or a contact who unsubscribed "
                        "from the list while the export ran)");
            } else {
                out.add(batch.ids[i], SEGPUSH_RECORD_ACCEPTED);
            }
        }
        g_host.log(SEGPUSH_LOG_DEBUG, "bulk import batch " + batch.batch_id +
                                          " completed: " + std::to_string(batch.ids.size() - rejected) + " accepted, " +
                                          std::to_string(rejected) + " failed");
        return Poll::settled;
    }
    if (info.state == ImportInfo::failed) {
        if (batch.resubmits == 0) {
            if (resubmit(exp, batch)) {
                // The records now wait on another import: the host keeps its id as their
                // receipt, so a run killed from here confirms that one, not the failed one.
                for (uint64_t id : batch.ids) out.add(id, SEGPUSH_RECORD_PENDING, {}, batch.batch_id);
                return Poll::not_ready;
            }
            // Not queued again: try again at the next poll (the old id still says failed).
            return Poll::not_ready;
        }
        settle_all(batch, out, SEGPUSH_RECORD_RETRY,
                   "ActiveCampaign's bulk import ended '" + info.status +
                       "' twice for these contacts; the next run sends them again");
        return Poll::settled;
    }
    return Poll::not_ready;
}

void grow_backoff(segpush_export& exp, uint32_t retry_after_ms) {
    std::lock_guard<std::mutex> guard(exp.mutex);
    exp.next_poll = Clock::now() + std::max<Clock::duration>(exp.backoff, std::chrono::milliseconds(retry_after_ms));
    exp.backoff = std::min<Clock::duration>(exp.backoff * 2, kMaxBackoff);
}

// Polls up to `max_polls` batches that are due (old enough, not being polled by another
// thread), oldest first, and keeps their outcomes in exp.settled. Stops at the first batch
// that is not ready: the ones behind it are younger. True when it asked about any.
// The oldest batch no thread is polling, and when it may be polled (after the backoff, and
// once import/info can know it). pending.end() when every batch is being polled. Caller holds
// exp.mutex.
std::pair<std::list<PendingBatch>::iterator, Clock::time_point> next_unpolled(segpush_export& exp) {
    auto it = std::find_if(exp.pending.begin(), exp.pending.end(), [](const PendingBatch& b) { return !b.polling; });
    if (it == exp.pending.end()) return {it, Clock::time_point::max()};
    return {it, std::max(exp.next_poll, it->queued_at + kFirstPollAge)};
}

bool poll_due(segpush_export& exp, size_t max_polls, Problem& problem) {
    for (size_t polled = 0; polled < max_polls; ++polled) {
        std::list<PendingBatch>::iterator it;
        {
            std::lock_guard<std::mutex> guard(exp.mutex);
            Clock::time_point due;
            std::tie(it, due) = next_unpolled(exp);
            if (it == exp.pending.end() || Clock::now() < due) return polled > 0;
            it->polling = true;
        }
        OutcomeList found;
        const Poll poll = poll_batch(exp, *it, found, problem);
        if (poll == Poll::not_ready) grow_backoff(exp, problem.retry_after_ms);
        std::lock_guard<std::mutex> guard(exp.mutex);
        it->polling = false;
        exp.settled.append(found);
        if (poll != Poll::settled) return true;
        exp.pending.erase(it);
        exp.room.notify_one();
        exp.backoff = std::max<Clock::duration>(exp.backoff / 2, kMinBackoff);
    }
    return max_polls > 0;
}

// True while kMaxQueuedImports imports await confirmation, leaving out those queued longer than
// finish_export would wait for them: imports stuck at ActiveCampaign must not hold up the rest
// of the export. Caller holds exp.mutex.
bool import_queue_full(segpush_export& exp) {
    if (exp.pending.size() < kMaxQueuedImports) return false;
    const auto overdue = Clock::now() - std::chrono::seconds(exp.http().settings().import_poll_budget_seconds);
    return static_cast<size_t>(std::count_if(exp.pending.begin(), exp.pending.end(), [&](const PendingBatch& batch) {
               return batch.queued_at > overdue;
           })) >= kMaxQueuedImports;
}

// Returns once the import queue has room (or the host cancels), checking older imports in the
// meantime. One waiter at a time sleeps until the next import may be checked; the rest sleep
// until an import leaves the queue: the push threads neither nap in short slices nor all wake
// as each import falls due, either of which costs context switches.
void wait_for_room(segpush_export& exp) {
    std::unique_lock<std::mutex> lock(exp.mutex);
    if (!import_queue_full(exp)) return;
    do {
        lock.unlock();
        const bool cancelled = exp.cancelled();
        lock.lock();
        if (cancelled) return;
        const auto [next, due] = next_unpolled(exp);
        const bool watcher = !exp.room_watched && next != exp.pending.end();
        if (next != exp.pending.end() && Clock::now() >= due) {
            lock.unlock();
            Problem again;
            poll_due(exp, 1, again);
            lock.lock();
        } else if (watcher) {
            exp.room_watched = true;
            // Woken at least every 100 ms: to see a cancel, and imports queued past the poll
            // budget stop counting.
            exp.room.wait_until(lock, std::min(due, Clock::now() + 100ms));
            exp.room_watched = false;
            exp.room.notify_one();  // another waiter watches in its place
        } else {
            exp.room.wait_for(lock, 100ms);
        }
    } while (import_queue_full(exp));
    // Room for this push may be room for the next waiter's too.
    exp.room.notify_one();
}

// Moves what the push workers settled into `out`.
void take_settled(segpush_export& exp, OutcomeList& out) {
    std::lock_guard<std::mutex> guard(exp.mutex);
    out.append(exp.settled);
    exp.settled = OutcomeList{};
}

segpush_status collect_outcomes(segpush_export* exp, segpush_outcomes* outcomes, segpush_error* err) {
    return kit::guard(err, "collecting outcomes", [&]() -> segpush_status {
        Problem problem;
        // The host calls this from the thread that feeds push_batch: while pushes run, they
        // poll, and a poll here (a round trip each) would only hold up the next batches and
        // keep the export below its bulk import rate.
        if (exp->pushes_in_flight.load() == 0) poll_due(*exp, kMaxPollsPerCollect, problem);
        auto out = std::make_unique<OutcomeList>();
        take_settled(*exp, *out);
        kit::publish(std::move(out), outcomes, g_host);
        if (problem && problem.status != SEGPUSH_RETRY && problem.status != SEGPUSH_ERR_CANCELLED)
            return problem.report(err);
        return SEGPUSH_OK;
    });
}

// Polls the export's pending batches until none is left, the budget runs out, the host
// cancels or a poll meets a problem that is not transient; returns that problem. Several
// threads poll at once (each batch by one), so the confirmations left after the last push
// take round trips in parallel, not one after another (which adds seconds at high latency).
Problem poll_until_settled(segpush_export& exp, Clock::time_point deadline) {
    const auto cancel = exp.cancel_check();
    std::mutex mutex;
    Problem stop;
    auto stopped = [&] {
        std::lock_guard<std::mutex> guard(mutex);
        return static_cast<bool>(stop);
    };
    auto poll_loop = [&] {
        while (!stopped()) {
            Clock::time_point due;
            {
                std::lock_guard<std::mutex> guard(exp.mutex);
                if (exp.pending.empty()) return;
                const auto [next, at] = next_unpolled(exp);
                due = next == exp.pending.end() ? exp.next_poll : at;
            }
            // A short nap when every batch is being polled by another thread.
            due = std::max(due, Clock::now() + 5ms);
            if (!sleep_until(std::min(due, deadline), cancel)) {
                std::lock_guard<std::mutex> guard(mutex);
                stop = cancelled_problem();
                return;
            }
            if (Clock::now() >= deadline) return;
            Problem step;
            poll_due(exp, 1, step);
            if (step && step.status != SEGPUSH_RETRY) {
                std::lock_guard<std::mutex> guard(mutex);
                if (!stop) stop = step;
                return;
            }
        }
    };
    // An exception must not leave a poller thread (it would end the host process): the first
    // is kept here, in a struct that needs no allocation, and reported once the pollers are done.
    segpush_error thrown{};
    thrown.struct_size = sizeof thrown;
    auto poller = [&]() noexcept {
        try {
            poll_loop();
        } catch (...) {
            std::lock_guard<std::mutex> guard(mutex);
            if (!stop && thrown.status == SEGPUSH_OK) kit::fail_current_exception(&thrown, "confirming imports");
        }
    };
    size_t threads = 0;
    {
        std::lock_guard<std::mutex> guard(exp.mutex);
        threads = std::min(exp.pending.size(), kFinishPollers);
    }
    std::vector<std::thread> pollers;
    pollers.reserve(threads);
    for (size_t i = 1; i < threads; ++i) {
        try {
            pollers.emplace_back(poller);
        } catch (const std::system_error&) {
            break;  // fewer threads, same work
        }
    }
    if (threads > 0) poller();
    for (auto& thread : pollers) thread.join();
    if (!stop && thrown.status != SEGPUSH_OK) stop = Problem{thrown.status, "", thrown.message, 0, 0};
    return stop;
}

segpush_status finish_export(segpush_export* exp, segpush_outcomes* outcomes, segpush_error* err) {
    return kit::guard(err, "finishing the export", [&]() -> segpush_status {
        std::unique_ptr<segpush_export> owned(exp);  // gone after this call however it ends: never RETRY
        const auto budget = std::chrono::seconds(exp->http().settings().import_poll_budget_seconds);
        Problem problem = poll_until_settled(*exp, Clock::now() + budget);
        auto out = std::make_unique<OutcomeList>();
        take_settled(*exp, *out);  // no push runs now: the export is ours alone
        if (!problem && !exp->pending.empty()) {
            size_t stuck = 0;
            for (const auto& left : exp->pending) {
                stuck += left.ids.size();
                settle_all(left, *out, SEGPUSH_RECORD_RETRY,
                           "ActiveCampaign was still processing the bulk import after " +
                               std::to_string(budget.count()) +
                               " s (import_poll_budget_seconds); the next run sends it again");
            }
            g_host.log(SEGPUSH_LOG_WARN, std::to_string(stuck) +
                                             " contacts were still being imported by ActiveCampaign when the wait ran "
                                             "out; they are sent again by the next run");
            exp->pending.clear();
        }
        g_host.log(SEGPUSH_LOG_DEBUG, "ActiveCampaign export done: " + std::to_string(exp->bulk_requests) +
                                          " bulk import requests, " + std::to_string(exp->polls) + " status checks");
        owned.reset();
        kit::publish(std::move(out), outcomes, g_host);
        if (problem) return problem.report(err);
        return SEGPUSH_OK;
    });
}

// Records an earlier run left PENDING: each receipt is a bulk import's batch id. One
// import/info request per batch says how it ended; a batch still being imported joins this
// export's pending ones (with its request rebuilt from the values, to resubmit if it fails).
segpush_status resume_pending(segpush_export* exp, const segpush_batch* batch, const char* const* receipts,
                              segpush_outcomes* outcomes, segpush_error* err) {
    return kit::guard(err, "confirming the last run's imports", [&]() -> segpush_status {
        if (!batch || !receipts || batch->n_fields != exp->columns.size()) {
            return kit::fail(err, SEGPUSH_ERR_INTERNAL, "",
                             "resume_pending was given a batch unlike the export's fields");
        }
        std::vector<Row> rows = rows_of(*exp, *batch);
        std::map<std::string, std::vector<size_t>> by_receipt;
        auto out = std::make_unique<OutcomeList>();
        for (size_t r = 0; r < rows.size(); ++r) {
            if (rows[r].contact.email.empty() || !receipts[r] || !*receipts[r]) {
                out->add(rows[r].id, SEGPUSH_RECORD_RETRY, "no bulk import to confirm it by");
            } else {
                by_receipt[receipts[r]].push_back(r);
            }
        }
        std::list<PendingBatch> adopted;  // joins exp->pending only if the whole call succeeds
        const BulkContactWriter writer(subscribe_options(*exp));
        std::string objects;
        for (const auto& [receipt, members] : by_receipt) {
            PendingBatch pending;
            pending.batch_id = receipt;
            pending.queued_at = Clock::now() - kFirstPollAge;
            for (size_t r : members) pending.add(rows[r].id, rows[r].contact.email);
            write_objects(writer, rows, members, objects);
            pending.body = body_of(*exp, rows, members);
            Problem problem;
            if (poll_batch(*exp, pending, *out, problem) == Poll::settled) continue;
            if (problem.status == SEGPUSH_ERR_CANCELLED || problem.status == SEGPUSH_ERR_AUTH ||
                problem.status == SEGPUSH_ERR_CONFIG) {
                return problem.report(err);
            }
            // Still importing, or the check itself met a passing fault: polled from now on like
            // the batches this export sends.
            for (uint64_t id : pending.ids) out->add(id, SEGPUSH_RECORD_PENDING, {}, pending.batch_id);
            adopted.push_back(std::move(pending));
        }
        {
            std::lock_guard<std::mutex> guard(exp->mutex);
            exp->pending.splice(exp->pending.end(), adopted);
        }
        kit::publish(std::move(out), outcomes, g_host);
        return SEGPUSH_OK;
    });
}

void abort_export(segpush_export* exp) { delete exp; }

void close_connection(segpush_connection* conn) { delete conn; }

// Balances the curl_global_init of segpush_plugin_entry (libcurl counts them). The plugin
// runs no thread of its own past a call, so there is none to stop.
void unload() { curl_global_cleanup(); }

// ---- descriptor -----------------------------------------------------------------------------

const segpush_field kFields[] = {
    {sizeof(segpush_field), SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY, SEGPUSH_FIELD_EMAIL, "email", "Email",
     "Contact email; ActiveCampaign matches contacts by it, case-insensitively."},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "first_name", "First name", nullptr},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_STRING, "last_name", "Last name", nullptr},
    {sizeof(segpush_field), 0, SEGPUSH_FIELD_PHONE, "phone", "Phone", nullptr},
};

// Bulk import: 250 contacts and < 400,000 bytes per request, 100 requests/minute, and the
// account-wide 5 requests/second. The pacers, not the number of pushes in flight, keep us
// within those. Each push also confirms an older import, so a worker's cycle is two round
// trips (about 0.55 s at 200 ms latency); 24 in flight keep the pipe full up to about 40 bulk
// imports a second, for accounts with raised limits (bulk_requests_per_minute).
const segpush_limits kLimits = {sizeof(segpush_limits), 250, 399999, 5, 100, 24};

const segpush_plugin kPlugin = {
    sizeof(segpush_plugin),
    SEGPUSH_ABI_MAJOR,
    SEGPUSH_ABI_MINOR,
    "activecampaign",
    "ActiveCampaign",
    "0.1.0",
    "Subscribes segment members to an ActiveCampaign list through bulk import.",
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
    collect_outcomes,
    resume_pending,
    unload,
};

}  // namespace

extern "C" SEGPUSH_EXPORT const segpush_plugin* segpush_plugin_entry(const segpush_host* host) {
    if (!g_host.attach(host)) return nullptr;  // another ABI major; attach said so
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        g_host.log(SEGPUSH_LOG_ERROR, "the ActiveCampaign plugin cannot initialise libcurl");
        return nullptr;
    }
    return &kPlugin;
}
