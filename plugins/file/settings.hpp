// The file plugin's settings: JSON Schemas, parsing, the checks a schema cannot express, and
// the path templates ({date}, {time}).
#pragma once

#include <ctime>
#include <optional>
#include <string>

namespace segpush::file {

extern const char* const kConnectionSchema;
extern const char* const kExportSchema;

enum class Format { csv, jsonl };

// A settings problem: the dotted key at fault and a message for people.
struct Problem {
    std::string field;
    std::string message;
};

struct ConnectionSettings {
    std::string directory;  // "" = the process's working directory
};

struct ExportSettings {
    std::string path;  // template
    Format format = Format::csv;
    std::string leavers_path;  // template; defaulted from path when not given
};

// Parse and check; on failure return nullopt and fill `problem`. No I/O.
std::optional<ConnectionSettings> parse_connection(const char* json, Problem& problem);
std::optional<ExportSettings> parse_export(const char* json, Problem& problem);

// Replaces {date} (YYYY-MM-DD) and {time} (HHMMSS) with the UTC time `when`. The template
// has been checked by parse_export, so unknown placeholders cannot occur.
std::string expand_template(const std::string& templ, std::time_t when);

// `path` made absolute against `directory` (itself relative to the working directory).
std::string resolve_path(const std::string& directory, const std::string& path);

const char* format_name(Format format);

}  // namespace segpush::file
