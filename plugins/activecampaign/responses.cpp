#include "responses.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>

namespace segpush::activecampaign {

namespace {

constexpr size_t kMaxText = 300;

std::string clip(std::string text) {
    for (auto& c : text) {
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    if (text.size() > kMaxText) {
        size_t cut = kMaxText;
        while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 boundary
        text = text.substr(0, cut) + "...";
    }
    return text;
}

bool parse(rapidjson::Document& doc, const std::string& body) {
    doc.Parse(body.data(), body.size());
    return !doc.HasParseError() && doc.IsObject();
}

std::string as_text(const rapidjson::Value& value) {
    if (value.IsString()) return std::string(value.GetString(), value.GetStringLength());
    if (value.IsInt64()) return std::to_string(value.GetInt64());
    if (value.IsUint64()) return std::to_string(value.GetUint64());
    return {};
}

const rapidjson::Value* member(const rapidjson::Value& object, const char* key) {
    if (!object.IsObject()) return nullptr;
    auto it = object.FindMember(key);
    return it == object.MemberEnd() ? nullptr : &it->value;
}

std::optional<int64_t> as_int(const rapidjson::Value& value) {
    if (value.IsInt64()) return value.GetInt64();
    if (value.IsUint64()) return static_cast<int64_t>(std::min<uint64_t>(value.GetUint64(), INT64_MAX));
    if (value.IsString() && value.GetStringLength() > 0 && value.GetStringLength() < 19) {
        char* end = nullptr;
        long long n = std::strtoll(value.GetString(), &end, 10);
        if (end && *end == '\0') return n;
    }
    return std::nullopt;
}

bool contains_ci(const std::string& haystack, const std::string& needle) {
    auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char a, char b) {
        return std::tolower((unsigned char)a) == std::tolower((unsigned char)b);
    });
    return it != haystack.end();
}

}  // namespace

std::optional<uint32_t> parse_retry_after(const std::string& header, int64_t now_epoch_s) {
    size_t begin = header.find_first_not_of(" \t");
    if (begin == std::string::npos) return std::nullopt;
    size_t end = header.find_last_not_of(" \t\r\n");
    const std::string value = header.substr(begin, end - begin + 1);
    constexpr uint64_t kCapSeconds = 3600;
    if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
        uint64_t seconds = 0;
        for (char c : value) {
            seconds = seconds * 10 + uint64_t(c - '0');
            if (seconds > kCapSeconds) {
                seconds = kCapSeconds;
                break;
            }
        }
        return static_cast<uint32_t>(seconds * 1000);
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    std::tm tm{};
    char month[4] = {0};
    int day = 0, year = 0, hour = 0, minute = 0, second = 0;
    if (std::sscanf(value.c_str(), "%*3s, %2d %3s %4d %2d:%2d:%2d GMT", &day, month, &year, &hour, &minute, &second) !=
        6) {
        return std::nullopt;
    }
    static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int mon = -1;
    for (int i = 0; i < 12; ++i) {
        if (std::string(month) == kMonths[i]) mon = i;
    }
    if (mon < 0 || day < 1 || day > 31 || year < 1970 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    const int64_t when = static_cast<int64_t>(timegm(&tm));
    const int64_t delta = when - now_epoch_s;
    if (delta <= 0) return 0u;
    return static_cast<uint32_t>(std::min<int64_t>(delta, kCapSeconds) * 1000);
}

std::string error_text(const std::string& body) {
    rapidjson::Document doc;
    if (!parse(doc, body)) return {};
    std::string text;
    if (auto* message = member(doc, "message"); message && message->IsString()) text = as_text(*message);
    if (auto* errors = member(doc, "errors"); errors && errors->IsArray()) {
        for (const auto& error : errors->GetArray()) {
            std::string one;
            if (auto* title = member(error, "title"); title && title->IsString()) one = as_text(*title);
            if (auto* detail = member(error, "detail"); detail && detail->IsString() && detail->GetStringLength()) {
                one += (one.empty() ? "" : ": ") + as_text(*detail);
            }
            if (!one.empty()) text += (text.empty() ? "" : "; ") + one;
        }
    }
    if (auto* reasons = member(doc, "failureReasons"); reasons && reasons->IsArray()) {
        for (const auto& reason : reasons->GetArray()) {
            if (reason.IsString()) text += (text.empty() ? "" : " ") + as_text(reason);
        }
    }
    return clip(text);
}

BulkAnswer parse_bulk_answer(long http_status, const std::string& body) {
    BulkAnswer out;
    rapidjson::Document doc;
    const bool json = parse(doc, body);
    if (json) {
        if (auto* message = member(doc, "message"); message && message->IsString())
            out.message = clip(as_text(*message));
    }
    if (http_status >= 200 && http_status < 300) {
        if (json) {
            if (auto* id = member(doc, "batchId")) out.batch_id = as_text(*id);
        }
        if (!out.batch_id.empty()) out.kind = BulkAnswer::queued;
        return out;
    }
    if (!json) return out;
    bool string_reasons = false;
    if (auto* reasons = member(doc, "failureReasons"); reasons && reasons->IsArray()) {
        for (const auto& reason : reasons->GetArray()) {
            if (reason.IsString()) {
                string_reasons = true;
                continue;
            }
            auto* contact = member(reason, "contact");
            if (!contact) continue;
            auto index = as_int(*contact);
            if (!index) continue;
            std::string text;
            if (auto* why = member(reason, "failureReason"); why && why->IsString()) text = clip(as_text(*why));
            out.failures.push_back({*index, text.empty() ? "refused by ActiveCampaign's bulk import" : text});
        }
    }
    const bool rate_words = contains_ci(out.message, "rate limit") ||
                            (string_reasons && contains_ci(error_text(body), "per minute"));
    if (http_status == 400 && rate_words) {
        out.kind = BulkAnswer::rate_limited;
    } else if (http_status == 400 && !out.failures.empty()) {
        out.kind = BulkAnswer::invalid;
    }
    return out;
}

FailureMatch match_failures(const std::vector<BulkAnswer::Failure>& failures, const std::vector<std::string>& emails) {
    const size_t n = emails.size();
    FailureMatch out;
    std::vector<bool> refused(n), suspect(n);
    auto refuse = [&](size_t position, const std::string& reason) {
        if (refused[position]) return;
        refused[position] = true;
        out.refused.emplace_back(position, reason);
    };
    // A reason naming a contact of the request settles it, whatever the numbering: the longest
    // address it holds whole (not the tail of a longer one: "ann@x.io" in "joann@x.io").
    auto names = [](const std::string& reason, const std::string& email) {
        if (email.empty()) return false;
        for (size_t from = 0; from + email.size() <= reason.size(); ++from) {
            const auto at = std::search(reason.begin() + static_cast<std::ptrdiff_t>(from), reason.end(), email.begin(),
                                        email.end(), [](char a, char b) {
                                            return std::tolower(static_cast<unsigned char>(a)) ==
                                                   std::tolower(static_cast<unsigned char>(b));
                                        });
            if (at == reason.end()) return false;
            const auto before = at == reason.begin() ? ' ' : static_cast<unsigned char>(*(at - 1));
            if (!std::isalnum(before) &&
                std::string_view("!#$%&'*+/=?^_`{|}~.-").find(before) == std::string_view::npos) {
                return true;
            }
            from = static_cast<size_t>(at - reason.begin());
        }
        return false;
    };
    std::vector<const BulkAnswer::Failure*> unnamed;
    for (const auto& failure : failures) {
        size_t named = n;
        for (size_t i = 0; i < n; ++i) {
            if ((named == n || emails[i].size() > emails[named].size()) && names(failure.reason, emails[i])) named = i;
        }
        if (named != n) {
            refuse(named, failure.reason);
        } else {
            unnamed.push_back(&failure);
        }
    }
    // Index 0 exists only counting from 0, index n only counting from 1.
    bool zero_based = false, one_based = false;
    for (const auto* failure : unnamed) {
        zero_based = zero_based || failure->index == 0;
        one_based = one_based || failure->index == static_cast<int64_t>(n);
    }
    for (const auto* failure : unnamed) {
        if (failure->index < 0) continue;  // never a position; and INT64_MIN - 1 would overflow
        const auto index = static_cast<uint64_t>(failure->index);
        if (zero_based != one_based) {
            const uint64_t position = index - (one_based ? 1 : 0);
            if (position < n) refuse(static_cast<size_t>(position), failure->reason);
            continue;
        }
        // Either numbering fits: both candidates are suspects, the rest of the request is not.
        if (index < n) suspect[index] = true;
        if (index >= 1 && index - 1 < n) suspect[index - 1] = true;
    }
    for (size_t position = 0; position < n; ++position) {
        if (suspect[position] && !refused[position]) out.suspects.push_back(position);
    }
    return out;
}

ImportInfo parse_import_info(const std::string& body) {
    ImportInfo out;
    rapidjson::Document doc;
    if (!parse(doc, body)) return out;
    auto* status = member(doc, "status");
    if (!status) return out;
    if (status->IsBool() || status->IsNull()) {
        out.status = status->IsBool() && status->GetBool() ? "true" : "false";
        out.state = ImportInfo::not_ready;
        return out;
    }
    if (!status->IsString()) return out;
    out.status = as_text(*status);
    const std::string s = out.status;
    if (s == "completed") {
        out.state = ImportInfo::completed;
    } else if (s == "failed" || s == "interrupted") {
        out.state = ImportInfo::failed;
    } else {
        out.state = ImportInfo::not_ready;  // waiting, claimed, active, or a state added later
    }
    if (auto* failure = member(doc, "failure"); failure && failure->IsArray()) {
        for (const auto& email : failure->GetArray()) {
            if (email.IsString()) out.failure.push_back(as_text(email));
        }
    }
    return out;
}

std::string nested_id(const std::string& body, const char* key) {
    rapidjson::Document doc;
    if (!parse(doc, body)) return {};
    auto* object = member(doc, key);
    if (!object) return {};
    auto* id = member(*object, "id");
    return id ? as_text(*id) : std::string();
}

std::string contact_id_with_email(const std::string& body, const std::string& email) {
    rapidjson::Document doc;
    if (!parse(doc, body)) return {};
    auto* contacts = member(doc, "contacts");
    if (!contacts || !contacts->IsArray()) return {};
    // Only a contact whose email really matches: a server that ignored the filter must never
    // make us unsubscribe someone else.
    for (const auto& contact : contacts->GetArray()) {
        auto* id = member(contact, "id");
        auto* address = member(contact, "email");
        if (!id || !address || !address->IsString()) continue;
        const std::string found = address->GetString();
        if (found.size() == email.size() &&
            std::equal(found.begin(), found.end(), email.begin(),
                       [](unsigned char a, unsigned char b) { return std::tolower(a) == std::tolower(b); })) {
            return as_text(*id);
        }
    }
    return {};
}

FieldsPage parse_fields_page(const std::string& body) {
    FieldsPage out;
    rapidjson::Document doc;
    if (!parse(doc, body)) return out;
    auto* fields = member(doc, "fields");
    if (!fields || !fields->IsArray()) return out;
    out.ok = true;
    for (const auto& field : fields->GetArray()) {
        auto* id = member(field, "id");
        auto number = id ? as_int(*id) : std::nullopt;
        if (!number || *number <= 0) continue;
        FieldsPage::Field item{static_cast<uint64_t>(*number), {}, {}};
        if (auto* title = member(field, "title"); title && title->IsString()) item.title = as_text(*title);
        if (auto* tag = member(field, "perstag"); tag && tag->IsString()) item.perstag = as_text(*tag);
        out.fields.push_back(std::move(item));
    }
    if (auto* meta = member(doc, "meta")) {
        if (auto* total = member(*meta, "total")) {
            if (auto n = as_int(*total); n && *n > 0) out.total = static_cast<uint64_t>(*n);
        }
    }
    return out;
}

bool mentions_missing_list(const std::string& body) {
    return body.find("list_not_exist") != std::string::npos ||
           (body.find("related_missing") != std::string::npos &&
            body.find("/data/attributes/list") != std::string::npos);
}

std::optional<int64_t> parse_ac_time(const std::string& text) {
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, used = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second,
                    &used) != 6) {
        return std::nullopt;
    }
    size_t at = static_cast<size_t>(used);
    if (at < text.size() && text[at] == '.') {  // fractions of a second: not needed
        ++at;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at]))) ++at;
    }
    // The offset: "Z", "+HH:MM" or "+HHMM"; anything else (none at all included) is unusable.
    std::string zone = text.substr(at);
    if (zone.size() == 6 && zone[3] == ':') zone.erase(3, 1);
    int64_t offset = 0;
    if (zone != "Z") {
        if (zone.size() != 5 || (zone[0] != '+' && zone[0] != '-') ||
            !std::all_of(zone.begin() + 1, zone.end(), [](unsigned char c) { return std::isdigit(c); })) {
            return std::nullopt;
        }
        offset = ((zone[1] - '0') * 10 + (zone[2] - '0')) * 3600 + ((zone[3] - '0') * 10 + (zone[4] - '0')) * 60;
        if (zone[0] == '-') offset = -offset;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
    std::tm utc{};
    utc.tm_year = year - 1900;
    utc.tm_mon = month - 1;
    utc.tm_mday = day;
    utc.tm_hour = hour;
    utc.tm_min = minute;
    utc.tm_sec = second;
    return static_cast<int64_t>(timegm(&utc)) - offset;
}

ContactsPage parse_contacts_page(const std::string& body) {
    ContactsPage out;
    rapidjson::Document doc;
    if (!parse(doc, body)) return out;
    auto* contacts = member(doc, "contacts");
    if (!contacts || !contacts->IsArray()) return out;
    out.ok = true;
    for (const auto& contact : contacts->GetArray()) {
        auto* id = member(contact, "id");
        auto* email = member(contact, "email");
        auto number = id ? as_int(*id) : std::nullopt;
        if (!number || *number <= 0 || !email || !email->IsString()) continue;
        out.contacts.push_back({static_cast<uint64_t>(*number), as_text(*email)});
    }
    if (auto* meta = member(doc, "meta")) {
        if (auto* total = member(*meta, "total")) {
            if (auto n = as_int(*total); n && *n >= 0) out.total = static_cast<uint64_t>(*n);
        }
    }
    return out;
}

ContactState parse_contact_state(const std::string& body) {
    ContactState out;
    rapidjson::Document doc;
    if (!parse(doc, body)) return out;
    auto* lists = member(doc, "contactLists");
    if (!lists || !lists->IsArray()) return out;
    out.ok = true;
    if (auto* contact = member(doc, "contact")) {
        if (auto* bounced = member(*contact, "bounced_hard")) {
            const auto hard = as_int(*bounced);
            out.bounced = hard.value_or(0) != 0;
        }
    }
    // A field that names who made the change: set when it is a non-empty text other than "0".
    auto named = [](const rapidjson::Value& item, const char* key) {
        auto* value = member(item, key);
        if (!value || value->IsNull()) return false;
        const std::string text = as_text(*value);
        return !text.empty() && text != "0";
    };
    for (const auto& item : lists->GetArray()) {
        auto* list = member(item, "list");
        auto* status = member(item, "status");
        auto list_id = list ? as_int(*list) : std::nullopt;
        auto status_value = status ? as_int(*status) : std::nullopt;
        if (!list_id || *list_id <= 0 || !status_value) {
            out.ok = false;  // it might be the list that matters
            return out;
        }
        Membership membership;
        membership.list_id = static_cast<uint64_t>(*list_id);
        membership.status = static_cast<int>(*status_value);
        if (auto* udate = member(item, "udate"); udate && udate->IsString()) {
            membership.udate = as_text(*udate);
            membership.changed_at = parse_ac_time(membership.udate);
        }
        // ("automation" names the automation that subscribed them, not an unsubscribe.)
        membership.self_made = named(item, "campaign") || named(item, "message") ||
                               named(item, "unsubscribeAutomation") || named(item, "unsubreason");
        out.memberships.push_back(std::move(membership));
    }
    if (auto* meta = member(doc, "meta")) {
        if (auto* total = member(*meta, "total")) {
            if (auto n = as_int(*total); n && *n >= 0) out.total = static_cast<uint64_t>(*n);
        }
    }
    return out;
}

}  // namespace segpush::activecampaign
