// JSON Lines segments: one JSON object per line, streamed through a fixed-size buffer.
//
// - A wanted column is a top-level key. Strings are returned as they are, numbers as their
//   JSON text ("1.50" stays "1.50"), booleans as "true"/"false", and null or an absent key
//   as "". There is no header, so a wanted column missing from the whole file cannot be told
//   apart from one missing from a row: absent keys read as empty, and the mapping layer
//   rejects rows whose required values are empty. When a key repeats, the last value wins.
// - Each problem line (not JSON, not an object, invalid UTF-8, an object or array for a
//   wanted column, longer than kMaxValueBytes) becomes a RowProblem and reading goes on. A
//   line still going past kMaxRowBytes stops reading the file with an error.
// - Blank lines (only spaces, tabs or CR) are skipped. A UTF-8 BOM at the start is skipped.
// - A line is parsed in place in the read buffer; only a line that crosses a chunk boundary
//   is copied, and never more than kMaxValueBytes of it.

#include "segments/byte_source.hpp"
#include "segments/readers.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace segpush::segments {

namespace {

using rapidjson::SizeType;

// SAX handler: keeps the scalar values of wanted top-level keys, ignores everything else.
class RowHandler {
public:
    RowHandler(const std::unordered_map<std::string_view, size_t>& slots, const std::vector<std::string>& wanted)
        : slots_(slots), wanted_(wanted), seen_(wanted.size()) {}

    void start(std::vector<std::string>& values) {
        values_ = &values;
        depth_ = 0;
        pending_ = kNone;
        problem_.clear();
    }
    const std::string& problem() const { return problem_; }

    bool Null() { return scalar("null", nullptr, 0); }
    bool Bool(bool b) { return b ? scalar("a boolean", "true", 4) : scalar("a boolean", "false", 5); }
    // With kParseNumbersAsStringsFlag every number arrives through RawNumber; these are unused.
    bool Int(int) { return true; }
    bool Uint(unsigned) { return true; }
    bool Int64(int64_t) { return true; }
    bool Uint64(uint64_t) { return true; }
    bool Double(double) { return true; }
    bool RawNumber(const char* text, SizeType length, bool) { return scalar("a number", text, length); }
    bool String(const char* text, SizeType length, bool) { return scalar("a string", text, length); }
    bool StartObject() { return open("an object", true); }
    bool Key(const char* text, SizeType length, bool) {
        if (depth_ == 1) {
            const auto found = slots_.find(std::string_view(text, length));
            pending_ = found == slots_.end() ? kNone : found->second;
            if (pending_ != kNone) {
                seen_[pending_] = true;
            } else if (other_keys_.size() < kKeysKept) {
                other_keys_.emplace(text, length);
            }
        }
        return true;
    }
    bool EndObject(SizeType) {
        --depth_;
        return true;
    }
    bool StartArray() { return open("an array", false); }
    bool EndArray(SizeType) {
        --depth_;
        return true;
    }

    // Which wanted columns some line had, and a few of the other keys seen.
    const std::vector<bool>& seen() const { return seen_; }
    const std::set<std::string>& other_keys() const { return other_keys_; }

private:
    static constexpr size_t kNone = static_cast<size_t>(-1);
    static constexpr size_t kKeysKept = 50;

    bool scalar(const char* kind, const char* text, size_t length) {
        if (depth_ == 0) return not_an_object(kind);
        if (depth_ == 1 && pending_ != kNone) {
            if (text) (*values_)[pending_].assign(text, length);
            else (*values_)[pending_].clear();  // a repeated key set to null
        }
        pending_ = kNone;
        return true;
    }

    bool open(const char* kind, bool object) {
        if (depth_ == 0 && !object) return not_an_object(kind);
        if (depth_ == 1 && pending_ != kNone) {
            problem_ = "column \"" + wanted_[pending_] + "\" holds " + kind +
                       "; only strings, numbers, booleans and null can be read";
            return false;
        }
        ++depth_;
        pending_ = kNone;
        return true;
    }

    bool not_an_object(const char* kind) {
        problem_ = std::string("the line is not a JSON object (it holds ") + kind + ")";
        return false;
    }

    const std::unordered_map<std::string_view, size_t>& slots_;
    const std::vector<std::string>& wanted_;
    std::vector<bool> seen_;
    std::set<std::string> other_keys_;
    std::vector<std::string>* values_ = nullptr;
    int depth_ = 0;
    size_t pending_ = kNone;
    std::string problem_;
};

class JsonlReader final : public SegmentReader {
public:
    JsonlReader(const std::string& path, const std::vector<std::string>& wanted, const SegmentOpenOptions& options)
        : source_(path, options), wanted_(wanted), handler_(slots_, wanted_) {
        // The first read happens here, so an unreadable file (a folder, say) fails at open.
        if (source_.refill() && source_.e - source_.p >= 3 && std::memcmp(source_.p, "\xEF\xBB\xBF", 3) == 0) {
            source_.p += 3;
        }
        for (size_t i = 0; i < wanted_.size(); ++i) {
            const auto [found, inserted] = slots_.emplace(std::string_view(wanted_[i]), i);
            if (!inserted) copies_.emplace_back(i, found->second);  // asked for twice
        }
    }

    Next next(SegmentRow& row, RowProblem& problem) override {
        const char* text;
        size_t length;
        bool too_long;
        while (read_line(text, length, too_long)) {
            ++line_;
            if (too_long) return report(problem, "the line is longer than 1 MiB");
            if (is_blank(text, length)) continue;
            const size_t bad = find_invalid_utf8(text, length);
            if (bad != static_cast<size_t>(-1)) {
                return report(problem, "invalid UTF-8 at byte " + std::to_string(bad + 1) + " of the line");
            }
            row.values.resize(wanted_.size());
            for (auto& value : row.values) value.clear();
            handler_.start(row.values);
            rapidjson::MemoryStream stream(text, length);
            const rapidjson::ParseResult result = reader_.Parse<rapidjson::kParseNumbersAsStringsFlag>(stream,
                                                                                                       handler_);
            if (result.IsError()) {
                if (!handler_.problem().empty()) return report(problem, handler_.problem());
                const size_t offset = result.Offset();
                return report(problem, "not valid JSON " +
                                           (offset < length ? "at byte " + std::to_string(offset + 1)
                                                            : std::string("at the end of the line")) +
                                           ": " + rapidjson::GetParseError_En(result.Code()));
            }
            for (const auto& [to, from] : copies_) row.values[to] = row.values[from];
            row.line = line_;
            return Next::row;
        }
        return Next::end;
    }

    bool columns_checked_when_opened() const override { return false; }
    std::vector<std::string> absent_columns() const override {
        std::vector<std::string> absent;
        for (size_t i = 0; i < wanted_.size(); ++i) {
            const size_t slot = slots_.at(std::string_view(wanted_[i]));
            if (!handler_.seen()[slot] && std::find(absent.begin(), absent.end(), wanted_[i]) == absent.end()) {
                absent.push_back(wanted_[i]);
            }
        }
        return absent;
    }
    std::vector<std::string> present_columns() const override {
        std::vector<std::string> present(handler_.other_keys().begin(), handler_.other_keys().end());
        for (size_t i = 0; i < wanted_.size(); ++i) {
            if (handler_.seen()[slots_.at(std::string_view(wanted_[i]))]) present.push_back(wanted_[i]);
        }
        return present;
    }

private:
    Next report(RowProblem& problem, std::string reason) {
        problem.line = line_;
        problem.reason = std::move(reason);
        return Next::problem;
    }

    static bool is_blank(const char* text, size_t length) {
        for (size_t i = 0; i < length; ++i) {
            if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r') return false;
        }
        return true;
    }

    // The next line without its LF: in the read buffer when it lies inside one chunk, else
    // gathered in spill_. A line over the limit is skipped to its end and flagged too_long.
    bool read_line(const char*& text, size_t& length, bool& too_long) {
        too_long = false;
        bool spilled = false;
        size_t line_bytes = 0;
        spill_.clear();
        for (;;) {
            if (source_.p == source_.e && !source_.refill()) {
                if (!spilled) return false;
                break;
            }
            const char* start = source_.p;
            const auto* newline = static_cast<const char*>(std::memchr(start, '\n', source_.e - start));
            const char* end = newline ? newline : source_.e;
            source_.p = newline ? newline + 1 : source_.e;
            if (!spilled && newline) {
                text = start;
                length = static_cast<size_t>(end - start);
                return true;
            }
            spilled = true;
            line_bytes += static_cast<size_t>(end - start);
            if (line_bytes > kMaxRowBytes) {
                throw SegmentError("segment file " + source_.path() + ": line " + std::to_string(line_ + 1) +
                                   " goes on past " + std::to_string(kMaxRowBytes >> 20) +
                                   " MiB without ending, the most a line may be; the file is not read further");
            }
            if (!too_long) {
                if (spill_.size() + static_cast<size_t>(end - start) > kMaxValueBytes) {
                    too_long = true;
                    spill_.clear();
                } else {
                    spill_.append(start, end);
                }
            }
            if (newline) break;
        }
        text = spill_.data();
        length = spill_.size();
        return true;
    }

    ByteSource source_;
    std::vector<std::string> wanted_;
    std::unordered_map<std::string_view, size_t> slots_;  // views into wanted_
    std::vector<std::pair<size_t, size_t>> copies_;       // wanted columns named twice: (to, from)
    RowHandler handler_;
    rapidjson::Reader reader_;
    std::string spill_;
    uint64_t line_ = 0;  // the line last read
};

}  // namespace

std::unique_ptr<SegmentReader> open_jsonl(const std::string& path, const std::vector<std::string>& wanted_columns,
                                          const SegmentOpenOptions& options) {
    return std::make_unique<JsonlReader>(path, wanted_columns, options);
}

}  // namespace segpush::segments
