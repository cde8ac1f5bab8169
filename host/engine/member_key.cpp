#include "engine/member_key.hpp"

#include "engine/record.hpp"

namespace segpush {

namespace {

void fold_case(std::string& key) {
    for (char& c : key) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::string_view trim_value(std::string_view text) {
    auto is_space = [](std::string_view s, size_t at, bool forward) -> size_t {
        const unsigned char c = s[at];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f') return 1;
        if (forward && c == 0xC2 && at + 1 < s.size() && static_cast<unsigned char>(s[at + 1]) == 0xA0) return 2;
        if (!forward && c == 0xA0 && at >= 1 && static_cast<unsigned char>(s[at - 1]) == 0xC2) return 2;
        return 0;
    };
    while (!text.empty()) {
        const size_t n = is_space(text, 0, true);
        if (!n) break;
        text.remove_prefix(n);
    }
    while (!text.empty()) {
        const size_t n = is_space(text, text.size() - 1, false);
        if (!n) break;
        text.remove_suffix(n);
    }
    return text;
}

std::optional<std::string> e164_phone(std::string_view value, std::string* problem) {
    auto refuse = [&](const char* why) -> std::optional<std::string> {
        if (problem) *problem = why;
        return std::nullopt;
    };
    value = trim_value(value);
    std::string digits;
    bool plus = false;
    for (size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if (is_digit(c)) {
            digits += c;
        } else if (c == '+') {
            if (plus || !digits.empty()) return refuse("is not a phone number (a '+' may only start it)");
            plus = true;
        } else if (c == '(' && value.substr(i, 3) == "(0)" && (plus ? !digits.empty() : digits.size() > 2)) {
            // "+44 (0)20 ...": the trunk prefix shown for callers inside the country, never dialled
            // after the country code.
            i += 2;
        } else if (c != ' ' && c != '-' && c != '.' && c != '(' && c != ')') {
            return refuse("is not a phone number (digits, spaces, dashes, dots, parentheses and a leading + only)");
        }
    }
    if (!plus) {
        if (digits.size() < 2 || digits[0] != '0' || digits[1] != '0') {
            return refuse("has no country code, so whose number it is cannot be known: write it in international form "
                          "(+ or 00, then the country code)");
        }
        digits.erase(0, 2);
    }
    if (digits.empty() || digits[0] == '0') return refuse("has no country code after its + or 00");
    if (digits.size() < 7 || digits.size() > 15) {
        return refuse("is not an international phone number (E.164: 7 to 15 digits with the country code)");
    }
    return "+" + digits;
}

std::optional<std::string> normalize_key(segpush_field_type type, std::string_view value, std::string& key) {
    switch (type) {
        case SEGPUSH_FIELD_EMAIL:
            key.assign(value);
            fold_case(key);
            return std::nullopt;
        case SEGPUSH_FIELD_PHONE: {
            std::string problem;
            auto phone = e164_phone(value, &problem);
            if (!phone) return problem;
            key.assign(*phone);
            return std::nullopt;
        }
        default: key.assign(value); return std::nullopt;
    }
}

std::string member_key(std::string_view value, segpush_field_type type) {
    std::string key;
    if (normalize_key(type, trim_value(value), key)) key.clear();
    return key;
}

std::string key_noun(segpush_field_type type, std::string_view field_id) {
    return type == SEGPUSH_FIELD_EMAIL ? std::string("email") : std::string(field_id);
}

std::set<std::string> possible_keys(std::string_view given) {
    const std::string_view value = trim_value(given);
    std::set<std::string> keys;
    if (value.empty()) return keys;
    keys.emplace(value);
    if (is_valid_email(value)) keys.insert(member_key(value, SEGPUSH_FIELD_EMAIL));
    if (auto phone = e164_phone(value)) keys.insert(*phone);
    return keys;
}

}  // namespace segpush
