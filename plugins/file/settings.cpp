#include "settings.hpp"

#include <rapidjson/document.h>

#include <algorithm>
#include <cctype>
#include <vector>

namespace segpush::file {

const char* const kConnectionSchema = R"json({
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "directory": {
      "type": "string", "minLength": 1,
      "description": "Base directory for relative export paths. It must exist and be writable (segpush checks it before each run). A relative directory is relative to the segpush process's working directory, not to the configuration file; prefer an absolute path. Default: the working directory."
    }
  }
})json";

const char* const kExportSchema = R"json({
  "type": "object",
  "additionalProperties": false,
  "required": ["path"],
  "properties": {
    "path": {
      "type": "string", "minLength": 1,
      "description": "File the members of each run are written to, e.g. vip/{date}/members.csv. Placeholders: {date} (UTC, YYYY-MM-DD) and {time} (UTC, HHMMSS) of the run's start. Relative paths are relative to the connection's directory, else to the process's working directory. Missing parent folders are created. The file is replaced atomically at the end of a successful run."
    },
    "format": {
      "type": "string", "enum": ["csv", "jsonl"],
      "description": "csv (RFC 4180, header row of field ids) or jsonl (one JSON object per member, absent values omitted). Default: from the path's extension (.csv; .jsonl or .ndjson)."
    },
    "leavers_path": {
      "type": "string", "minLength": 1,
      "description": "File for members who left the segment (on_leave: unsubscribe), holding only their email. Same placeholders as path. Written only when a run has leavers. Default: path with .leavers before its extension, e.g. members.leavers.csv."
    }
  }
})json";

namespace {

const char* const kPlaceholders[] = {"date", "time"};

bool is_known_placeholder(const std::string& name) {
    return std::find(std::begin(kPlaceholders), std::end(kPlaceholders), name) != std::end(kPlaceholders);
}

std::string lowercase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

// "" when `templ` is a usable path template, else what is wrong with it.
std::string check_template(const std::string& templ) {
    if (templ.empty()) return "must not be empty: give a file name such as members.csv";
    for (size_t i = 0; i < templ.size(); ++i) {
        if (templ[i] == '}') {
            return "has a '}' with no '{' before it at character " + std::to_string(i + 1) +
                   "; braces are reserved for the placeholders {date} and {time}";
        }
        if (templ[i] != '{') continue;
        const size_t close = templ.find('}', i + 1);
        const size_t next_open = templ.find('{', i + 1);
        if (close == std::string::npos || (next_open != std::string::npos && next_open < close)) {
            return "has a '{' at character " + std::to_string(i + 1) +
                   " that is never closed; placeholders are {date} and {time}";
        }
        const std::string name = templ.substr(i + 1, close - i - 1);
        if (!is_known_placeholder(name)) {
            std::string hint;
            const std::string folded = lowercase(name);
            if (is_known_placeholder(folded)) hint = " (did you mean {" + folded + "}?)";
            return "has an unknown placeholder {" + name + "}" + hint +
                   "; the placeholders are {date} (UTC, YYYY-MM-DD) and {time} (UTC, HHMMSS)";
        }
        i = close;
    }
    if (templ.back() == '/') return "must name a file, not a folder: \"" + templ + "\" ends with '/'";
    const size_t slash = templ.rfind('/');
    const std::string name = slash == std::string::npos ? templ : templ.substr(slash + 1);
    if (name == "." || name == "..") return "must name a file, not \"" + name + "\"";
    if (templ.find('\0') != std::string::npos) return "must not contain a NUL character";
    return {};
}

// The extension of the last path component, with its dot, or "".
std::string extension_of(const std::string& path) {
    const size_t slash = path.rfind('/');
    const size_t dot = path.rfind('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == slash + 1 || dot == 0)
        return {};
    return path.substr(dot);
}

std::optional<Format> format_from_extension(const std::string& path) {
    const std::string ext = lowercase(extension_of(path));
    if (ext == ".csv") return Format::csv;
    if (ext == ".jsonl" || ext == ".ndjson") return Format::jsonl;
    return std::nullopt;
}

std::optional<rapidjson::Document> parse_object(const char* json, Problem& problem) {
    rapidjson::Document doc;
    doc.Parse(json ? json : "");
    if (doc.HasParseError() || !doc.IsObject()) {
        problem = {"", "settings are not a JSON object"};
        return std::nullopt;
    }
    return doc;
}

// Reads an optional string member; false (with problem set) when it is there but not a string.
bool optional_string(const rapidjson::Document& doc, const char* key, std::optional<std::string>& out,
                     Problem& problem) {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd()) return true;
    if (!it->value.IsString()) {
        problem = {key, "must be a string"};
        return false;
    }
    out = std::string(it->value.GetString(), it->value.GetStringLength());
    return true;
}

}  // namespace

const char* format_name(Format format) { return format == Format::csv ? "csv" : "jsonl"; }

std::optional<ConnectionSettings> parse_connection(const char* json, Problem& problem) {
    auto doc = parse_object(json, problem);
    if (!doc) return std::nullopt;
    std::optional<std::string> directory;
    if (!optional_string(*doc, "directory", directory, problem)) return std::nullopt;
    if (directory && directory->empty()) {
        problem = {"directory", "must not be empty; leave it out to use the working directory"};
        return std::nullopt;
    }
    for (const auto& member : doc->GetObject()) {
        if (std::string(member.name.GetString()) != "directory") {
            problem = {member.name.GetString(), std::string("is not a setting of the file plugin's connection; "
                                                            "the only one is directory")};
            return std::nullopt;
        }
    }
    return ConnectionSettings{directory.value_or("")};
}

std::optional<ExportSettings> parse_export(const char* json, Problem& problem) {
    auto doc = parse_object(json, problem);
    if (!doc) return std::nullopt;
    for (const auto& member : doc->GetObject()) {
        const std::string name = member.name.GetString();
        if (name != "path" && name != "format" && name != "leavers_path") {
            problem = {name, "is not a setting of the file plugin's exports; they are path, format and leavers_path"};
            return std::nullopt;
        }
    }
    std::optional<std::string> path, format, leavers;
    if (!optional_string(*doc, "path", path, problem) || !optional_string(*doc, "format", format, problem) ||
        !optional_string(*doc, "leavers_path", leavers, problem)) {
        return std::nullopt;
    }
    if (!path) {
        problem = {"path", "missing required setting 'path': the file to write, e.g. members-{date}.csv"};
        return std::nullopt;
    }
    if (auto wrong = check_template(*path); !wrong.empty()) {
        problem = {"path", "path " + wrong};
        return std::nullopt;
    }
    ExportSettings settings;
    settings.path = *path;
    if (format) {
        if (*format == "csv") settings.format = Format::csv;
        else if (*format == "jsonl") settings.format = Format::jsonl;
        else {
            std::string hint;
            const std::string folded = lowercase(*format);
            if (folded == "csv" || folded == "jsonl") hint = " (formats are lower case)";
            else if (folded == "json" || folded == "ndjson") hint = " (JSON Lines is jsonl)";
            problem = {"format", "format must be csv or jsonl, found \"" + *format + "\"" + hint};
            return std::nullopt;
        }
    } else if (auto guessed = format_from_extension(*path)) {
        settings.format = *guessed;
    } else {
        const std::string ext = extension_of(*path);
        problem = {"path",
                   "cannot tell the format from " +
                       (ext.empty() ? std::string("a path without an extension") : "the extension \"" + ext + "\"") +
                       ": end the path with .csv or .jsonl, or set format: csv or format: jsonl"};
        return std::nullopt;
    }
    if (leavers) {
        if (auto wrong = check_template(*leavers); !wrong.empty()) {
            problem = {"leavers_path", "leavers_path " + wrong};
            return std::nullopt;
        }
        if (*leavers == *path) {
            problem = {"leavers_path", "leavers_path must differ from path, or leavers would replace the members file"};
            return std::nullopt;
        }
        settings.leavers_path = *leavers;
    } else {
        const std::string ext = extension_of(*path);
        const std::string stem = path->substr(0, path->size() - ext.size());
        settings.leavers_path = stem + ".leavers" +
                                (ext.empty() ? "." + std::string(format_name(settings.format)) : ext);
    }
    return settings;
}

std::string expand_template(const std::string& templ, std::time_t when) {
    std::tm utc{};
    gmtime_r(&when, &utc);
    char date[16], time[16];
    std::strftime(date, sizeof date, "%Y-%m-%d", &utc);
    std::strftime(time, sizeof time, "%H%M%S", &utc);
    std::string out;
    for (size_t i = 0; i < templ.size(); ++i) {
        if (templ.compare(i, 6, "{date}") == 0) {
            out += date;
            i += 5;
        } else if (templ.compare(i, 6, "{time}") == 0) {
            out += time;
            i += 5;
        } else {
            out += templ[i];
        }
    }
    return out;
}

std::string resolve_path(const std::string& directory, const std::string& path) {
    if (!path.empty() && path.front() == '/') return path;
    if (directory.empty()) return path;
    return directory.back() == '/' ? directory + path : directory + "/" + path;
}

}  // namespace segpush::file
