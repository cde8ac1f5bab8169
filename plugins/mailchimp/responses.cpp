#include "responses.hpp"

#include <rapidjson/document.h>

#include <cstdio>

namespace segpush::mailchimp {

namespace {

std::string string_of(const rapidjson::Value& object, const char* key) {
    if (!object.IsObject()) return {};
    auto it = object.FindMember(key);
    if (it == object.MemberEnd() || !it->value.IsString()) return {};
    return std::string(it->value.GetString(), it->value.GetStringLength());
}

bool parse(rapidjson::Document& doc, const std::string& body) {
    doc.Parse(body.data(), body.size());
    return !doc.HasParseError() && doc.IsObject();
}

std::vector<BatchAnswer::Entry> entries(const rapidjson::Document& doc, const char* key) {
    std::vector<BatchAnswer::Entry> out;
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd() || !it->value.IsArray()) return out;
    for (const auto& item : it->value.GetArray()) {
        BatchAnswer::Entry entry{string_of(item, "email_address"), string_of(item, "status"), {}};
        // A member object's tags are {id, name}; a body's are plain names: either is read.
        auto tags = item.IsObject() ? item.FindMember("tags") : item.MemberEnd();
        if (item.IsObject() && tags != item.MemberEnd() && tags->value.IsArray()) {
            for (const auto& tag : tags->value.GetArray()) {
                if (tag.IsString()) entry.tags.emplace_back(tag.GetString(), tag.GetStringLength());
                else if (tag.IsObject()) entry.tags.push_back(string_of(tag, "name"));
            }
        }
        if (!entry.email.empty()) out.push_back(std::move(entry));
    }
    return out;
}

}  // namespace

std::optional<ProblemDoc> parse_problem(const std::string& body) {
    rapidjson::Document doc;
    if (!parse(doc, body)) return std::nullopt;
    ProblemDoc out{string_of(doc, "title"), string_of(doc, "detail"), {}};
    auto errors = doc.FindMember("errors");
    if (errors != doc.MemberEnd() && errors->value.IsArray()) {
        for (const auto& item : errors->value.GetArray()) {
            out.errors.emplace_back(string_of(item, "field"), string_of(item, "message"));
        }
    }
    if (out.title.empty() && out.detail.empty()) return std::nullopt;
    return out;
}

std::string problem_text(const std::string& body) {
    const auto problem = parse_problem(body);
    if (!problem) return {};
    std::string text = problem->title;
    if (!problem->detail.empty()) text += (text.empty() ? "" : ": ") + problem->detail;
    std::string details;
    for (const auto& [field, message] : problem->errors) {
        if (message.empty()) continue;
        details += (details.empty() ? "" : "; ") + (field.empty() ? message : field + ": " + message);
    }
    if (!details.empty()) text += " (" + details + ")";
    if (text.size() > 600) text = text.substr(0, 600) + "...";
    return text;
}

bool kept_out_status(const std::string& status) {
    return status == "unsubscribed" || status == "cleaned" || status == "archived";
}

BatchAnswer parse_batch_answer(const std::string& body) {
    BatchAnswer out;
    rapidjson::Document doc;
    if (!parse(doc, body)) return out;
    auto created = doc.FindMember("new_members");
    auto errors = doc.FindMember("errors");
    if (created == doc.MemberEnd() || !created->value.IsArray() || errors == doc.MemberEnd() ||
        !errors->value.IsArray()) {
        return out;
    }
    out.created = entries(doc, "new_members");
    out.updated = entries(doc, "updated_members");
    for (const auto& item : errors->value.GetArray()) {
        BatchAnswer::Error error;
        error.email = string_of(item, "email_address");
        error.message = string_of(item, "error");
        const std::string code = string_of(item, "error_code");
        error.exists = code == "ERROR_CONTACT_EXISTS";
        error.kept_out = !error.exists && (error.message.find("compliance state") != std::string::npos ||
                                           error.message.find("permanently deleted") != std::string::npos);
        const std::string field = string_of(item, "field"), field_message = string_of(item, "field_message");
        // field_message often repeats error word for word.
        if (!field_message.empty() && field_message != error.message) {
            error.message += " (" + (field.empty() ? field_message : field + ": " + field_message) + ")";
        }
        if (error.message.empty()) error.message = code.empty() ? "no reason given" : code;
        out.errors.push_back(std::move(error));
    }
    out.ok = true;
    return out;
}

MemberAnswer parse_member(const std::string& body) {
    MemberAnswer out;
    rapidjson::Document doc;
    if (!parse(doc, body)) return out;
    out.status = string_of(doc, "status");
    if (out.status.empty()) return out;
    out.last_changed = string_of(doc, "last_changed");
    out.changed_at = parse_time(out.last_changed);
    out.ok = true;
    return out;
}

ListAnswer parse_list(const std::string& body) {
    ListAnswer out;
    rapidjson::Document doc;
    if (!parse(doc, body) || string_of(doc, "id").empty()) return out;
    out.name = string_of(doc, "name");
    auto optin = doc.FindMember("double_optin");
    out.double_optin = optin != doc.MemberEnd() && optin->value.IsBool() && optin->value.GetBool();
    out.ok = true;
    return out;
}

MergeFieldsPage parse_merge_fields(const std::string& body) {
    MergeFieldsPage out;
    rapidjson::Document doc;
    if (!parse(doc, body)) return out;
    auto fields = doc.FindMember("merge_fields");
    if (fields == doc.MemberEnd() || !fields->value.IsArray()) return out;
    for (const auto& item : fields->value.GetArray()) {
        MergeField field{string_of(item, "tag"), string_of(item, "name"), string_of(item, "type"), false};
        auto required = item.IsObject() ? item.FindMember("required") : item.MemberEnd();
        field.required = item.IsObject() && required != item.MemberEnd() && required->value.IsBool() &&
                         required->value.GetBool();
        if (!field.tag.empty()) out.fields.push_back(std::move(field));
    }
    auto total = doc.FindMember("total_items");
    out.total = total != doc.MemberEnd() && total->value.IsUint64() ? total->value.GetUint64() : out.fields.size();
    out.ok = true;
    return out;
}

std::optional<int64_t> parse_time(const std::string& text) {
    int year, month, day, hour, minute, second, consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second,
                    &consumed) != 6) {
        return std::nullopt;
    }
    size_t at = static_cast<size_t>(consumed);
    if (at < text.size() && text[at] == '.') {
        ++at;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    }
    int64_t offset = 0;
    if (at < text.size() && (text[at] == 'Z' || text[at] == 'z') && at + 1 == text.size()) {
        offset = 0;
    } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
        int oh = 0, om = 0;
        if (std::sscanf(text.c_str() + at + 1, "%2d:%2d", &oh, &om) != 2 || text.size() != at + 6) return std::nullopt;
        offset = (text[at] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    } else {
        return std::nullopt;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
    // Days from civil (Howard Hinnant's algorithm): no time zone database needed.
    const int y = year - (month <= 2);
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * static_cast<unsigned>(month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    const int64_t days = int64_t(era) * 146097 + int64_t(doe) - 719468;
    return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

}  // namespace segpush::mailchimp
