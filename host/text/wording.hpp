// Counts, durations and help text worded the same way in every output.
#pragma once

#include <cstdint>
#include <string>

namespace segpush {

// "1 member", "2 members", "0 members"; `plural_form` for words that do not just take an "s"
// ("1 entry", "3 entries").
std::string plural(int64_t count, const std::string& singular, const std::string& plural_form = "");

// A duration as every output writes it: "3.2 s" under a minute, else "4 min 5 s", "2 h 4 min 5 s".
std::string duration_text(double seconds);

// `text` re-wrapped to `width` columns for a terminal. A paragraph (lines that continue the one
// before at its hanging indent) is filled again; a list item ("- ", "1. "), an option or command
// line (its description starts after two spaces) and a "Usage:" line each start a paragraph, and
// continue at the column their text starts at. Bracketed groups ("[--limit N]", "<state folder>")
// are not split.
std::string wrap_text(const std::string& text, size_t width = 80);

// The columns `text` takes on a terminal (UTF-8 code points).
size_t text_columns(const std::string& text);

}  // namespace segpush
