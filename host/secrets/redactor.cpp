#include "secrets/redactor.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>

namespace segpush {

namespace {

// As RapidJSON writes the string inside a JSON document, without the quotes.
std::string json_escaped(const std::string& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    const std::string quoted = buffer.GetString();
    return quoted.size() >= 2 ? quoted.substr(1, quoted.size() - 2) : value;
}

// RFC 3986 percent-encoding: everything but the unreserved characters, as libcurl's
// curl_easy_escape does (upper-case hex), or with lower-case hex as some servers echo it.
std::string percent_encoded(const std::string& value, bool upper_case) {
    const char* digits = upper_case ? "0123456789ABCDEF" : "0123456789abcdef";
    std::string out;
    for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 0xF];
        }
    }
    return out;
}

}  // namespace

Redactor& Redactor::instance() {
    static Redactor redactor;
    return redactor;
}

void Redactor::add_secret(const std::string& value) {
    // Very short values would scrub ordinary words; secrets that short are refused upstream.
    if (value.size() < 4) return;
    std::lock_guard<std::mutex> lock(mutex_);
    for (const std::string& form :
         {value, json_escaped(value), percent_encoded(value, true), percent_encoded(value, false)}) {
        if (std::find(forms_.begin(), forms_.end(), form) == forms_.end()) forms_.push_back(form);
    }
    std::sort(forms_.begin(), forms_.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string Redactor::scrub(std::string text) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& form : forms_) {
        for (size_t at = text.find(form); at != std::string::npos; at = text.find(form, at + 3)) {
            text.replace(at, form.size(), "***");
        }
    }
    return text;
}

}  // namespace segpush
