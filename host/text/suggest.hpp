#pragma once

#include <string>
#include <vector>

namespace segpush {

// The candidate closest to `word` by edit distance, or "" when none is close enough to be
// a plausible typo (so "did you mean" never suggests something unrelated).
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" — appended to unknown-name errors.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// `text` safe to show on a terminal: control characters other than newline and tab (say, from
// a binary file named as a segment) become \xNN, so they cannot move the cursor or recolour.
std::string printable(const std::string& text);

// "a, b, c" for messages that list what is allowed.
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");

}  // namespace segpush
