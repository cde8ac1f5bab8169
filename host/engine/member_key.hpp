#pragma once

#include <segpush/plugin.h>

#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace segpush {

// When two segment rows are the same member: the one rule de-duplication, the delivered state
// (delta hashing, leavers, refusals) and `segpush forget` share. The key is the KEY field's
// value, normalised by its declared type:
//   SEGPUSH_FIELD_EMAIL  trimmed and case-folded: destinations match emails ignoring case, and
//                        valid emails are ASCII;
//   SEGPUSH_FIELD_PHONE  E.164: "+", then the country code and number, 7 to 15 digits. Spaces,
//                        dashes, dots, parentheses and a "(0)" trunk prefix are dropped; "00"
//                        is read as "+". A number without a country code is refused: whose
//                        country it is cannot be known, and a guess could merge two people;
//   any other type       trimmed, exact: ids are case-sensitive ("ABC", "abc" are two members).

// Trims ASCII whitespace and no-break spaces (U+00A0), which spreadsheets love to leave.
std::string_view trim_value(std::string_view text);

// Writes the key of `value` (already trimmed, and for an email already checked) into `key`;
// returns why the value cannot identify a member (a phone number without a country code), or
// nullopt when it can. `key` is assigned, so a caller may reuse its buffer from row to row.
std::optional<std::string> normalize_key(segpush_field_type type, std::string_view value, std::string& key);

// The key of `value` as a segment spells it (trimmed first); empty when it cannot be a key.
std::string member_key(std::string_view value, segpush_field_type type);

// The E.164 form of a phone number as people write it, or nullopt with `problem` set.
std::optional<std::string> e164_phone(std::string_view value, std::string* problem = nullptr);

// How counts, messages and reports name a member's key: "email" for an email key (the words
// users already know), else the key field's id ("the first row of each user_id wins").
std::string key_noun(segpush_field_type type, std::string_view field_id);

// The keys a person named on the command line (`segpush forget`) may be recorded under, whatever
// the type of the key of the export that recorded them: the value trimmed; case-folded too when
// it is a valid email; in E.164 too when it is a phone number with a country code. Empty when
// the value is blank.
std::set<std::string> possible_keys(std::string_view given);

}  // namespace segpush
