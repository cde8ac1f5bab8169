#include "engine/record.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>

#include "config/model.hpp"
#include "engine/member_key.hpp"
#include "plugins/registry.hpp"

namespace segpush {

namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;
constexpr uint32_t kAbsent = 0xFFFFFFFFu;

uint64_t fnv(uint64_t hash, std::string_view bytes) {
    for (unsigned char c : bytes) {
        hash ^= c;
        hash *= kFnvPrime;
    }
    return hash;
}

uint64_t fnv_length(uint64_t hash, uint32_t length) {
    char bytes[4];
    std::memcpy(bytes, &length, 4);
    return fnv(hash, std::string_view(bytes, 4));
}

// The classes of the characters an email may hold, by byte (ASCII only, whatever the C
// library's locale). A table because the check runs on every row: std::isalnum, a search of
// the specials and a pass per rule showed in profiles of large exports.
enum EmailClass : uint8_t { kLocalChar = 1, kLabelChar = 2, kLetter = 4 };
constexpr std::array<uint8_t, 256> kEmailClasses = [] {
    std::array<uint8_t, 256> classes{};
    for (int c = 0; c < 256; ++c) {
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool digit = c >= '0' && c <= '9';
        if (letter) classes[c] |= kLetter;
        if (letter || digit || c == '-') classes[c] |= kLabelChar;
        if (letter || digit) classes[c] |= kLocalChar;
    }
    for (const char c : std::string_view("!#$%&*+/=?^_`{|}~-")) classes[static_cast<unsigned char>(c)] |= kLocalChar;
    return classes;
}();

bool is_a(char c, EmailClass wanted) { return (kEmailClasses[static_cast<unsigned char>(c)] & wanted) != 0; }

std::optional<std::string> check_typed(const MappedField& field, std::string_view value) {
    auto all = [&](auto predicate) { return std::all_of(value.begin(), value.end(), predicate); };
    switch (field.type) {
        case SEGPUSH_FIELD_INTEGER: {
            std::string_view digits = value;
            if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
            if (digits.empty() ||
                !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); })) {
                return "is not a whole number";
            }
            return std::nullopt;
        }
        case SEGPUSH_FIELD_NUMBER: {
            char* end = nullptr;
            const std::string copy(value);
            std::strtod(copy.c_str(), &end);
            if (end != copy.c_str() + copy.size()) return "is not a number";
            return std::nullopt;
        }
        case SEGPUSH_FIELD_DATE:
            if (value.size() != 10 || value[4] != '-' || value[7] != '-' ||
                !all([](unsigned char c) { return std::isdigit(c) || c == '-'; })) {
                return "is not a date (YYYY-MM-DD)";
            }
            return std::nullopt;
        case SEGPUSH_FIELD_BOOLEAN:
            if (value != "true" && value != "false" && value != "1" && value != "0") return "is not true/false";
            return std::nullopt;
        default: return std::nullopt;
    }
}

}  // namespace

bool is_valid_email(std::string_view email) {
    if (email.size() > 254) return false;
    // The local part: runs of its characters joined by single dots.
    const size_t at = email.find('@');
    if (at == std::string_view::npos || at == 0 || at > 64 || email[0] == '.' || email[at - 1] == '.') return false;
    for (size_t i = 0; i < at; ++i) {
        if (email[i] == '.' ? email[i + 1] == '.' : !is_a(email[i], kLocalChar)) return false;
    }
    // The domain: two labels or more of letters, digits and inner hyphens, up to 63 each; the
    // last of letters only, two or more. A second '@' is no label character.
    const std::string_view domain = email.substr(at + 1);
    if (domain.size() < 4) return false;
    size_t labels = 0, label_start = 0;
    bool letters_only = true;
    for (size_t i = 0; i <= domain.size(); ++i) {
        if (i < domain.size() && domain[i] != '.') {
            if (!is_a(domain[i], kLabelChar)) return false;
            letters_only = letters_only && is_a(domain[i], kLetter);
            continue;
        }
        const size_t size = i - label_start;
        if (size == 0 || size > 63 || domain[label_start] == '-' || domain[i - 1] == '-') return false;
        ++labels;
        if (i == domain.size()) return labels >= 2 && size >= 2 && letters_only;
        label_start = i + 1;
        letters_only = true;
    }
    return false;
}

const segpush_field* key_field_of(const segpush_plugin& api) {
    if (!api.fields) return nullptr;
    for (size_t i = 0; i < api.n_fields; ++i) {
        if (api.fields[i].flags & SEGPUSH_FIELD_KEY) return &api.fields[i];
    }
    for (size_t i = 0; i < api.n_fields; ++i) {
        if (api.fields[i].type == SEGPUSH_FIELD_EMAIL) return &api.fields[i];
    }
    return nullptr;
}

RecordPlan RecordPlan::build(const ExportConfig& export_config, const LoadedPlugin& plugin) {
    RecordPlan plan;
    std::vector<std::string> declared;
    for (size_t i = 0; i < plugin.api.n_fields; ++i) declared.push_back(plugin.api.fields[i].id);
    bool have_key = false;
    // Fields in the plugin's declared order, so the key field's position is predictable.
    for (size_t i = 0; i < plugin.api.n_fields; ++i) {
        const segpush_field& field = plugin.api.fields[i];
        auto mapped = std::find_if(export_config.mapping.begin(), export_config.mapping.end(),
                                   [&](const auto& pair) { return pair.first == field.id; });
        if (mapped == export_config.mapping.end()) continue;
        if ((field.flags & SEGPUSH_FIELD_KEY) && !have_key) {
            plan.key_field = plan.fields.size();
            have_key = true;
        }
        plan.fields.push_back(
            {field.id, field.label, field.type, (field.flags & SEGPUSH_FIELD_REQUIRED) != 0, mapped->second});
    }
    if (plugin.api.capabilities & SEGPUSH_CAP_EXTRA_FIELDS) {
        // Custom fields follow the declared ones, in mapping order, as optional text.
        for (const auto& [field_id, column] : export_config.mapping) {
            if (is_extra_field(field_id))
                plan.fields.push_back({field_id, field_id, SEGPUSH_FIELD_STRING, false, column});
        }
    }
    if (!have_key) {
        // A plugin without a declared key: the first email-typed field identifies members.
        for (size_t i = 0; i < plan.fields.size(); ++i) {
            if (plan.fields[i].type == SEGPUSH_FIELD_EMAIL) {
                plan.key_field = i;
                break;
            }
        }
    }
    uint64_t context = fnv(kFnvOffset, export_config.settings.resolved_json);
    for (const auto& field : plan.fields) {
        auto at = std::find(plan.columns.begin(), plan.columns.end(), field.column);
        if (at == plan.columns.end()) at = plan.columns.insert(plan.columns.end(), field.column);
        plan.column_of_field.push_back(static_cast<size_t>(at - plan.columns.begin()));
        context = fnv(fnv(context, field.id), "=");
        context = fnv(fnv(context, field.column), ";");
    }
    plan.context_hash = context;
    plan.clear_blank_values = export_config.clear_blank_values;
    return plan;
}

std::optional<std::string> normalize_row(const RecordPlan& plan, const SegmentRow& row, Record& record) {
    record.values.resize(plan.fields.size());
    for (size_t i = 0; i < plan.fields.size(); ++i) {
        const MappedField& field = plan.fields[i];
        const std::string_view value = trim_value(row.values[plan.column_of_field[i]]);
        if (value.empty()) {
            if (field.required) return field.label + " (column '" + field.column + "') is empty";
            if (plan.clear_blank_values && i != plan.key_field) {
                record.values[i].emplace();
            } else {
                record.values[i].reset();
            }
            continue;
        }
        if (value.find('\0') != std::string_view::npos) {
            return field.label + " (column '" + field.column + "') holds a NUL byte, which no destination keeps";
        }
        if (field.type == SEGPUSH_FIELD_EMAIL && !is_valid_email(value)) {
            return field.label + " '" + std::string(value) + "' is not a valid email address";
        }
        if (auto problem = check_typed(field, value)) {
            return field.label + " '" + std::string(value) + "' " + *problem;
        }
        // The reader reuses one Record: assigning keeps each value's buffer from the last row.
        if (record.values[i]) {
            record.values[i]->assign(value);
        } else {
            record.values[i].emplace(value);
        }
    }
    const auto& key = record.values[plan.key_field];
    if (!key) {
        record.key.clear();
        return std::nullopt;
    }
    const MappedField& key_field = plan.fields[plan.key_field];
    if (auto problem = normalize_key(key_field.type, *key, record.key)) {
        return key_field.label + " '" + *key + "' (column '" + key_field.column + "') " + *problem;
    }
    return std::nullopt;
}

void encode_record(const Record& record, std::string& out) {
    // Grown once a record: an append per length and per value showed in profiles of large exports.
    size_t size = 0;
    for (const auto& value : record.values) size += 4 + (value ? value->size() : 0);
    const size_t at = out.size();
    out.resize(at + size);
    char* to = out.data() + at;
    for (const auto& value : record.values) {
        const uint32_t length = value ? static_cast<uint32_t>(value->size()) : kAbsent;
        std::memcpy(to, &length, 4);
        to += 4;
        if (value && !value->empty()) {
            std::memcpy(to, value->data(), value->size());
            to += value->size();
        }
    }
}

bool decode_record(std::string_view payload, size_t n_fields, segpush_value* out) {
    for (size_t i = 0; i < n_fields; ++i) {
        uint32_t length = 0;
        if (payload.size() < 4) return false;
        std::memcpy(&length, payload.data(), 4);
        payload.remove_prefix(4);
        if (length == kAbsent) {
            out[i] = {nullptr, 0};
            continue;
        }
        if (payload.size() < length) return false;
        out[i] = {payload.data(), length};
        payload.remove_prefix(length);
    }
    return payload.empty();
}

void encode_sent_values(uint64_t context_hash, std::string_view payload, std::string& out) {
    out.clear();
    for (int byte = 0; byte < 8; ++byte) out.push_back(static_cast<char>(context_hash >> (8 * byte)));
    out.append(payload);
}

std::optional<std::string_view> sent_payload(std::string_view sent_values, uint64_t context_hash) {
    if (sent_values.size() < 8) return std::nullopt;
    uint64_t context = 0;
    for (int byte = 0; byte < 8; ++byte)
        context |= uint64_t{static_cast<unsigned char>(sent_values[byte])} << (8 * byte);
    if (context != context_hash) return std::nullopt;
    return sent_values.substr(8);
}

uint64_t record_hash(const RecordPlan& plan, const Record& record) {
    uint64_t hash = plan.context_hash;
    for (const auto& value : record.values) {
        hash = fnv_length(hash, value ? static_cast<uint32_t>(value->size()) : kAbsent);
        if (value) hash = fnv(hash, *value);
    }
    // SQLite integers are signed 64-bit; keep the top bit clear so round trips are exact.
    return hash & 0x7FFFFFFFFFFFFFFFull;
}

}  // namespace segpush
