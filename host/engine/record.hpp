#pragma once

#include <segpush/plugin.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "segments/segment_reader.hpp"

namespace segpush {

struct ExportConfig;
struct LoadedPlugin;

// One destination field of an export and the segment column it comes from.
struct MappedField {
    std::string id;
    std::string label;
    segpush_field_type type = SEGPUSH_FIELD_STRING;
    bool required = false;
    std::string column;
};

// How segment rows become plugin records for one export.
struct RecordPlan {
    std::vector<MappedField> fields;      // in the order values reach the plugin
    size_t key_field = 0;                 // the field that identifies a member (its KEY field)
    std::vector<std::string> columns;     // the distinct columns to read, for open_segment
    std::vector<size_t> column_of_field;  // fields[i] reads columns[column_of_field[i]]
    uint64_t context_hash = 0;            // mapping + export settings: a change resends everyone
    // A blank optional value is sent as empty, to clear the destination's value (the export's
    // clear_blank_values); otherwise it is absent. Either way the hash tells the two apart,
    // so switching the setting resends exactly the members with a blank value.
    bool clear_blank_values = false;

    static RecordPlan build(const ExportConfig& export_config, const LoadedPlugin& plugin);
};

// A member ready to send: values trimmed; blank optional values absent (nullopt), so they are
// never sent as blanks that would erase data at the destination, unless the export asks to
// clear them (then they are present and empty).
struct Record {
    std::vector<std::optional<std::string>> values;
    std::string key;  // by the key field's type (member_key.hpp): members are the same when equal
};

// The field that identifies a plugin's members: the one declared SEGPUSH_FIELD_KEY (the loader
// refuses more than one), else the first email field; nullptr when there is neither.
const segpush_field* key_field_of(const segpush_plugin& api);

// Fills `record` from `row`; returns the reason when the row must be rejected.
std::optional<std::string> normalize_row(const RecordPlan& plan, const SegmentRow& row, Record& record);

// Syntax accepted by the destinations we know: one '@', a dot-atom local part (no quotes,
// no apostrophes, which ActiveCampaign refuses), a domain of LDH labels with a dot and an
// alphabetic top-level label, ASCII only, at most 254 characters.
bool is_valid_email(std::string_view email);

// Values as stored in the state file and decoded for push_batch; appended to `out`.
void encode_record(const Record& record, std::string& out);
// Points `out` into `payload` (which must outlive it); false if the payload is corrupt.
bool decode_record(std::string_view payload, size_t n_fields, segpush_value* out);

// The values a member was last sent with, as the delivered state keeps them: the plan's
// context hash (8 bytes, little endian), then the encoded record. Values sent under another
// mapping or other settings are then told apart from the fields of the current one.
void encode_sent_values(uint64_t context_hash, std::string_view payload, std::string& out);
// The encoded record in `sent_values` when it was sent under `context_hash`; nullopt when none
// was recorded or it was sent under another context.
std::optional<std::string_view> sent_payload(std::string_view sent_values, uint64_t context_hash);

// Stable 64-bit FNV-1a over the plan's context and the values: equal hashes mean the
// destination already has these values.
uint64_t record_hash(const RecordPlan& plan, const Record& record);

}  // namespace segpush
