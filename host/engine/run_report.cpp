#include "engine/run_report.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>

#include "config/model.hpp"
#include "engine/member_key.hpp"
#include "state/private_files.hpp"

namespace segpush {

namespace fs = std::filesystem;

namespace {

// The key's column is named by key_noun: "email" for an email key, else the key field's id.
std::string header(const std::string& key_name) { return "source,line," + key_name + ",outcome,reason\n"; }

bool is_report_name(const std::string& name) {
    static const std::regex pattern(R"(.+-run-[0-9]+-report\.csv)");
    return std::regex_match(name, pattern);
}

// The reports in `directory`, or none when it does not exist yet.
std::vector<fs::path> reports_in(const std::string& directory) {
    std::vector<fs::path> reports;
    std::error_code error;
    for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
        if (it->is_regular_file(error) && is_report_name(it->path().filename().string())) reports.push_back(it->path());
    }
    return reports;
}

// The cell's content without the report's escaping undone: enough to compare with
// report_cell of a known value. Splits one report line into its cells.
std::vector<std::string> split_cells(const std::string& line) {
    std::vector<std::string> cells(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                cells.back() += '"';
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                cells.back() += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            cells.emplace_back();
        } else {
            cells.back() += c;
        }
    }
    return cells;
}

void write_all(int fd, const std::string& text, const std::string& path) {
    for (size_t done = 0; done < text.size();) {
        const ssize_t wrote = ::write(fd, text.data() + done, text.size() - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
        done += static_cast<size_t>(wrote);
    }
}

// Replaces `path` with `text`, private to the user; a crash leaves the old file or the new
// one, never half of one.
void replace_file(const std::string& path, const std::string& text) {
    const std::string temporary = path + ".tmp";
    const int fd = create_private_file(temporary);
    try {
        write_all(fd, text, temporary);
        if (::fsync(fd) != 0) throw std::runtime_error("cannot write " + temporary + ": " + std::strerror(errno));
    } catch (...) {
        ::close(fd);
        ::unlink(temporary.c_str());
        throw;
    }
    ::close(fd);
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        const int error = errno;
        ::unlink(temporary.c_str());
        throw std::runtime_error("cannot replace " + path + ": " + std::strerror(error));
    }
}

std::string escaped(const std::string& value) {
    static const char* const digits = "0123456789ABCDEF";
    std::string out;
    out.reserve(value.size() + 1);
    // OWASP's CSV injection guidance: these first characters make a spreadsheet evaluate the cell.
    if (!value.empty() && std::strchr("=+-@\t\r", value.front()) != nullptr) out += '\'';
    for (const char c : value) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7F) {
            out += "\\x";
            out += digits[byte >> 4];
            out += digits[byte & 0xF];
        } else if (c == '\\') {
            out += "\\\\";
        } else {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::string report_path_for(const Config& config, const std::string& export_name, int64_t run_id) {
    return (fs::path(config.reports_dir) / (export_name + "-run-" + std::to_string(run_id) + "-report.csv")).string();
}

std::string report_cell(const std::string& value) {
    std::string cell = escaped(value);
    const bool needs_quotes = cell.find_first_of(",\"") != std::string::npos ||
                              (!cell.empty() && (cell.front() == ' ' || cell.back() == ' '));
    if (!needs_quotes) return cell;
    std::string out = "\"";
    for (const char c : cell) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

void write_report(const std::string& path, const std::vector<ReportedMember>& members, const std::string& key_name) {
    create_private_directories(fs::path(path).parent_path().string());
    std::string text = header(key_name);
    for (const auto& item : members) {
        text += report_cell(item.source) + "," + std::to_string(item.line) + "," + report_cell(item.key) + "," +
                report_cell(item.outcome) + "," + report_cell(item.reason) + "\n";
    }
    replace_file(path, text);
}

std::vector<std::string> prune_reports(const std::string& directory, std::chrono::hours keep) {
    const auto cutoff = fs::file_time_type::clock::now() - keep;
    std::vector<std::string> removed;
    for (const auto& report : reports_in(directory)) {
        std::error_code error;
        const auto written = fs::last_write_time(report, error);
        if (!error && written < cutoff && fs::remove(report, error)) removed.push_back(report.string());
    }
    return removed;
}

std::vector<std::pair<std::string, int64_t>> forget_in_reports(const std::string& directory,
                                                               const std::set<std::string>& people) {
    // A report holds the key as the segment spelled it, escaped: compared with each person
    // written the same way, by the rule of the report's key (its header names it: "email", or
    // the key field's id). An email is compared case-folded; any other key as written, or as
    // the same phone number in E.164 (the cell without the apostrophe that escaped its '+').
    std::set<std::string> emails, exact, phones;
    for (const auto& person : people) {
        emails.insert(member_key(escaped(person), SEGPUSH_FIELD_EMAIL));
        exact.insert(std::string(trim_value(escaped(person))));
        if (auto phone = e164_phone(person)) phones.insert(*phone);
    }
    auto names_person = [&](bool email_report, const std::string& cell) {
        if (email_report) return emails.count(member_key(cell, SEGPUSH_FIELD_EMAIL)) > 0;
        if (exact.count(std::string(trim_value(cell)))) return true;
        const bool escaped_formula = cell.size() > 1 && cell[0] == '\'' && std::strchr("=+-@", cell[1]) != nullptr;
        const auto phone = e164_phone(escaped_formula ? std::string_view(cell).substr(1) : std::string_view(cell));
        return phone && phones.count(*phone) > 0;
    };
    std::vector<std::pair<std::string, int64_t>> changed;
    for (const auto& report : reports_in(directory)) {
        std::ifstream in(report);
        std::string line, kept;
        int64_t removed = 0;
        bool email_report = true;
        for (bool first = true; std::getline(in, line); first = false) {
            const auto row = split_cells(line);
            if (first && row.size() >= 3 && row[0] == "source") {
                email_report = row[2] == "email";
                kept += line + "\n";
            } else if (row.size() >= 3 && names_person(email_report, row[2])) {
                ++removed;
            } else {
                kept += line + "\n";
            }
        }
        if (in.bad()) throw std::runtime_error("cannot read " + report.string());
        if (removed == 0) continue;
        replace_file(report.string(), kept);
        changed.emplace_back(report.string(), removed);
    }
    return changed;
}

}  // namespace segpush
