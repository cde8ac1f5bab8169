#include "secrets/redactor.hpp"

#include <algorithm>

namespace segpush {

Redactor& Redactor::instance() {
    static Redactor redactor;
    return redactor;
}

void Redactor::add_secret(const std::string& value) {
    // Very short values would scrub ordinary words; secrets that short are refused upstream.
    if (value.size() < 4) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::find(secrets_.begin(), secrets_.end(), value) == secrets_.end()) {
        secrets_.push_back(value);
        // Longest first, so a secret containing another is scrubbed whole.
        std::sort(secrets_.begin(), secrets_.end(),
                  [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    }
}

std::string Redactor::scrub(std::string text) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& secret : secrets_) {
        for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 3)) {
            text.replace(at, secret.size(), "***");
        }
    }
    return text;
}

}  // namespace segpush
