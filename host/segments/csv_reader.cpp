// CSV segments (RFC 4180), streamed through a fixed-size buffer.
//
// - The first non-blank record is the header: names are trimmed of surrounding spaces and
//   tabs, must be unique (empty names excepted), and must include every wanted column. A
//   UTF-8 BOM is skipped.
// - Records end at LF, CRLF or a lone CR. Quoted fields may hold commas, doubled quotes and
//   line breaks, which are kept exactly as in the file. Blank lines are skipped.
// - Values are returned raw (not trimmed) and only for the wanted columns; only those are
//   checked for UTF-8, since the others are never used.
// - A record that cannot be read becomes a RowProblem on the line where it starts and
//   reading goes on with the next record; a quoted field still open at end of file ends it.
// - No field is kept beyond kMaxValueBytes, so memory does not grow with the input.
// - The file is refused when its header exceeds kMaxHeaderBytes or kMaxColumns, and reading
//   stops with an error at a record still going past kMaxRowBytes; every check on the header
//   is linear in its size.

#include "segments/byte_source.hpp"
#include "segments/readers.hpp"
#include "text/suggest.hpp"

#include <array>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace segpush::segments {

namespace {

using ByteTable = std::array<bool, 256>;

constexpr ByteTable make_table(const char* specials) {
    ByteTable table{};
    for (const char* s = specials; *s; ++s) table[static_cast<unsigned char>(*s)] = true;
    return table;
}

// Bytes that end a run of plain field text outside and inside quotes.
constexpr ByteTable kUnquotedStop = make_table(",\"\n\r");
constexpr ByteTable kQuotedStop = make_table("\"\n\r");

std::string trimmed(const std::string& text) {
    size_t begin = 0, end = text.size();
    while (begin < end && (text[begin] == ' ' || text[begin] == '\t')) ++begin;
    while (end > begin && (text[end - 1] == ' ' || text[end - 1] == '\t')) --end;
    return text.substr(begin, end - begin);
}

// The first names in quotes; a header of thousands of columns is summed up, not listed.
std::string quoted_list(const std::vector<std::string>& names) {
    constexpr size_t kListed = 50;
    std::vector<std::string> quoted;
    for (size_t i = 0; i < names.size() && i < kListed; ++i) quoted.push_back("\"" + names[i] + "\"");
    if (names.size() > kListed) quoted.push_back("and " + std::to_string(names.size() - kListed) + " more");
    return join(quoted);
}

class CsvReader final : public SegmentReader {
public:
    CsvReader(const std::string& path, const std::vector<std::string>& wanted, const SegmentOpenOptions& options)
        : source_(path, options) {
        if (source_.refill() && source_.e - source_.p >= 3 && std::memcmp(source_.p, "\xEF\xBB\xBF", 3) == 0) {
            source_.p += 3;
        }
        if (!parse_record(header_, true)) throw SegmentError("segment file " + path + " has no header row");
        if (finished_ || !problem_.empty()) {
            throw SegmentError("segment file " + path + ": the header row (line " + std::to_string(record_line_) +
                               ") cannot be read: " + problem_);
        }
        for (auto& name : header_) name = trimmed(name);
        check_duplicates(path);
        map_wanted(path, wanted);
        wanted_count_ = wanted.size();
    }

    Next next(SegmentRow& row, RowProblem& problem) override {
        if (finished_) return Next::end;
        row.values.resize(wanted_count_);
        if (!parse_record(row.values, false)) {
            finished_ = true;
            return Next::end;
        }
        if (!problem_.empty()) {
            problem.line = record_line_;
            problem.reason.swap(problem_);
            return Next::problem;
        }
        for (const auto& [to, from] : copies_) row.values[to] = row.values[from];
        row.line = record_line_;
        return Next::row;
    }

    // The header's named columns, in its order: the names a mapping can read.
    std::vector<std::string> present_columns() const override {
        std::vector<std::string> named;
        for (const auto& name : header_) {
            if (!name.empty()) named.push_back(name);
        }
        return named;
    }

private:
    enum class State { field_start, unquoted, quoted, after_quote };

    // Fills columns_ (name -> index) on the way, for map_wanted.
    void check_duplicates(const std::string& path) {
        columns_.reserve(header_.size());
        for (size_t j = 0; j < header_.size(); ++j) {
            if (header_[j].empty()) continue;  // unnamed columns ("a,b,,") cannot be wanted anyway
            const auto [first, inserted] = columns_.emplace(std::string_view(header_[j]), j);
            if (!inserted) {
                throw SegmentError("segment file " + path + ": the header names column \"" + header_[j] +
                                   "\" twice (fields " + std::to_string(first->second + 1) + " and " +
                                   std::to_string(j + 1) + ")");
            }
        }
    }

    void map_wanted(const std::string& path, const std::vector<std::string>& wanted) {
        slots_.assign(header_.size(), -1);
        std::vector<std::string> missing;
        for (size_t i = 0; i < wanted.size(); ++i) {
            const auto found = wanted[i].empty() ? columns_.end() : columns_.find(std::string_view(wanted[i]));
            const size_t column = found == columns_.end() ? header_.size() : found->second;
            if (column == header_.size()) {
                missing.push_back("\"" + wanted[i] + "\"" + did_you_mean(wanted[i], header_));
            } else if (slots_[column] < 0) {
                slots_[column] = static_cast<int>(i);
            } else {
                copies_.emplace_back(i, static_cast<size_t>(slots_[column]));  // asked for twice
            }
        }
        if (missing.empty()) return;
        throw SegmentError("segment file " + path + " has no column" + (missing.size() > 1 ? "s " : " ") +
                           join(missing) + "; its header has " + quoted_list(header_));
    }

    std::string column_name(size_t column) const {
        if (!header_mode_ && column < header_.size()) return "column \"" + header_[column] + "\"";
        return "field " + std::to_string(column + 1);
    }

    // The first problem of a record is the one reported; the rest of it is only scanned.
    void set_problem(std::string reason) {
        if (!problem_.empty()) return;
        problem_ = std::move(reason);
        target_ = nullptr;
    }

    void begin_field() {
        field_bytes_ = 0;
        if (header_mode_ && column_ >= kMaxColumns) {
            throw SegmentError("segment file " + source_.path() + ": the header row (line " +
                               std::to_string(record_line_) + ") has more than " + std::to_string(kMaxColumns) +
                               " columns, the most a segment may have");
        }
        if (!problem_.empty()) {
            target_ = nullptr;
        } else if (header_mode_) {
            if (values_->size() <= column_) values_->resize(column_ + 1);
            target_ = &(*values_)[column_];
            target_->clear();
        } else if (column_ < slots_.size() && slots_[column_] >= 0) {
            target_ = &(*values_)[slots_[column_]];
            target_->clear();
        } else {
            target_ = nullptr;
        }
    }

    void end_field() {
        if (!target_ || header_mode_) return;
        const size_t bad = find_invalid_utf8(target_->data(), target_->size());
        if (bad != static_cast<size_t>(-1)) {
            set_problem("invalid UTF-8 in " + column_name(column_) + " at byte " + std::to_string(bad + 1));
        }
    }

    void append(const char* text, size_t size) {
        field_bytes_ += size;
        if (field_bytes_ > kMaxValueBytes) {
            if (problem_.empty()) {
                set_problem(column_name(column_) + " has a value longer than 1 MiB");
            }
            return;
        }
        if (target_) target_->append(text, size);
    }

    void end_record() {
        const size_t fields = column_ + 1;
        if (header_mode_) {
            values_->resize(fields);
        } else if (fields != header_.size() && problem_.empty()) {
            set_problem("row has " + std::to_string(fields) + " field" + (fields == 1 ? "" : "s") +
                        ", the header has " + std::to_string(header_.size()));
        }
    }

    // Consumes the line break whose first byte `c` was just taken (p is past it).
    void line_break(char c, const char*& p) {
        ++line_;
        if (c == '\r') {
            if (p < source_.e) {
                if (*p == '\n') ++p;
            } else {
                skip_lf_ = true;  // the LF of this CRLF may start the next chunk
            }
        }
    }

    // Reads one record into `values`; false when the file ends before one starts.
    bool parse_record(std::vector<std::string>& values, bool header) {
        problem_.clear();
        header_mode_ = header;
        values_ = &values;
        column_ = 0;
        record_line_ = line_;
        record_bytes_ = 0;
        begin_field();
        State state = State::field_start;
        bool started = false;   // any byte of the record seen: tells a blank line from a record
        bool after_cr = false;  // inside quotes: the last byte was a CR, so an LF is not a new line
        uint64_t quote_line = 0;

        for (;;) {
            if (source_.p == source_.e && !source_.refill()) {
                if (!started) return false;
                if (state == State::quoted) {
                    problem_.clear();
                    set_problem("quoted field opened on line " + std::to_string(quote_line) + " is never closed");
                    finished_ = true;
                    return true;
                }
                end_field();
                end_record();
                return true;
            }
            const char* p = source_.p;
            const char* const e = source_.e;
            if (skip_lf_) {
                skip_lf_ = false;
                if (*p == '\n') {
                    source_.p = p + 1;
                    continue;
                }
            }
            switch (state) {
                case State::field_start:
                    if (*p == '"') {
                        state = State::quoted;
                        started = true;
                        quote_line = line_;
                        ++p;
                        break;
                    }
                    if (!started && (*p == '\n' || *p == '\r')) {  // a blank line
                        const char c = *p++;
                        line_break(c, p);
                        record_line_ = line_;
                        record_bytes_ = 0;
                        source_.p = p;
                        continue;
                    }
                    started = true;
                    state = State::unquoted;
                    [[fallthrough]];
                case State::unquoted: {
                    const char* run = p;
                    while (p < e && !kUnquotedStop[static_cast<unsigned char>(*p)]) ++p;
                    if (p != run) append(run, p - run);
                    if (p == e) break;
                    const char c = *p++;
                    if (c == ',') {
                        end_field();
                        ++column_;
                        begin_field();
                        state = State::field_start;
                    } else if (c == '"') {
                        set_problem("a quote in the middle of unquoted " + column_name(column_) +
                                    " (a field with quotes must be quoted whole, with each inner quote doubled)");
                    } else {
                        line_break(c, p);
                        source_.p = p;
                        end_field();
                        end_record();
                        return true;
                    }
                    break;
                }
                case State::quoted: {
                    const char* run = p;
                    while (p < e && !kQuotedStop[static_cast<unsigned char>(*p)]) ++p;
                    if (p != run) {
                        append(run, p - run);
                        after_cr = false;
                    }
                    if (p == e) break;
                    const char c = *p++;
                    if (c == '"') {
                        state = State::after_quote;
                    } else if (c == '\n') {
                        if (!after_cr) ++line_;
                        after_cr = false;
                        append("\n", 1);
                    } else {
                        ++line_;
                        after_cr = true;
                        append("\r", 1);
                    }
                    break;
                }
                case State::after_quote:
                    if (*p == '"') {  // a doubled quote
                        append("\"", 1);
                        after_cr = false;
                        state = State::quoted;
                        ++p;
                        break;
                    }
                    if (*p != ',' && *p != '\n' && *p != '\r') {
                        set_problem("characters after the closing quote of " + column_name(column_) +
                                    " (a quoted field must end at its closing quote)");
                    }
                    state = State::unquoted;  // takes the separator, or the rest of the bad field
                    break;
            }
            record_bytes_ += static_cast<size_t>(p - source_.p);
            source_.p = p;
            if (record_bytes_ > (header_mode_ ? kMaxHeaderBytes : kMaxRowBytes)) too_long(state, quote_line);
        }
    }

    [[noreturn]] void too_long(State state, uint64_t quote_line) const {
        const std::string file = "segment file " + source_.path();
        if (header_mode_) {
            throw SegmentError(file + ": the header row (line " + std::to_string(record_line_) + ") is longer than " +
                               std::to_string(kMaxHeaderBytes >> 20) + " MiB, the most a header may be");
        }
        throw SegmentError(file + ": the row starting on line " + std::to_string(record_line_) +
                           (state == State::quoted ? ", where a quoted field opened on line " +
                                                         std::to_string(quote_line) + " is still open,"
                                                   : std::string()) +
                           " goes on past " + std::to_string(kMaxRowBytes >> 20) +
                           " MiB without ending, the most a row may be; the file is not read further");
    }

    ByteSource source_;
    std::vector<std::string> header_;
    std::unordered_map<std::string_view, size_t> columns_;  // named header columns -> index; views into header_
    std::vector<int> slots_;                                // per header column: index in wanted, or -1
    std::vector<std::pair<size_t, size_t>> copies_;         // wanted columns named twice: (to, from)
    size_t wanted_count_ = 0;
    uint64_t line_ = 1;  // physical line of the next unread byte
    bool skip_lf_ = false;
    bool finished_ = false;

    // The record being read.
    std::vector<std::string>* values_ = nullptr;
    std::string* target_ = nullptr;  // where the current field's text goes, if anywhere
    bool header_mode_ = false;
    size_t column_ = 0;
    size_t field_bytes_ = 0;
    size_t record_bytes_ = 0;  // of the record so far, blank lines before it excepted
    uint64_t record_line_ = 0;
    std::string problem_;
};

}  // namespace

std::unique_ptr<SegmentReader> open_csv(const std::string& path, const std::vector<std::string>& wanted_columns,
                                        const SegmentOpenOptions& options) {
    return std::make_unique<CsvReader>(path, wanted_columns, options);
}

}  // namespace segpush::segments
