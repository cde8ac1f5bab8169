#include "text/suggest.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>

namespace segpush {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> previous(b.size() + 1), current(b.size() + 1);
    std::iota(previous.begin(), previous.end(), 0);
    for (size_t i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                              std::tolower(static_cast<unsigned char>(b[j - 1]));
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (same ? 0 : 1)});
        }
        std::swap(previous, current);
    }
    return previous[b.size()];
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1, best_edits = 0;
    for (const auto& candidate : candidates) {
        const size_t edits = edit_distance(word, candidate);
        size_t distance = edits;
        // "list" for "list_id": a truncated name is a near miss whatever the edit distance.
        const auto& shorter = word.size() < candidate.size() ? word : candidate;
        const auto& longer = word.size() < candidate.size() ? candidate : word;
        if (shorter.size() >= 3 && longer.compare(0, shorter.size(), shorter) == 0)
            distance = std::min<size_t>(distance, 1);
        // Between near misses, fewer edits win: "retry_rejectd_runs" is retry_rejected_runs, not retry.
        if (distance < best_distance || (distance == best_distance && !best.empty() && edits < best_edits)) {
            best_distance = distance;
            best_edits = edits;
            best = candidate;
        }
    }
    return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    const std::string match = closest_match(word, candidates);
    return match.empty() ? std::string() : " (did you mean '" + match + "'?)";
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

std::string printable(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7F) {
            static const char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

}  // namespace segpush
