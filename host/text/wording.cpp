#include "text/wording.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <vector>

namespace segpush {

std::string plural(int64_t count, const std::string& singular, const std::string& plural_form) {
    const std::string& word = count == 1 ? singular : (plural_form.empty() ? singular + "s" : plural_form);
    return std::to_string(count) + " " + word;
}

std::string duration_text(double seconds) {
    if (!(seconds > 0)) seconds = 0;  // NaN and negative clock steps as well
    char text[64];
    // Tenths under a minute, where they still tell runs apart; 59.97 s rounds up to "1 min 0 s".
    if (std::round(seconds * 10) < 600) {
        std::snprintf(text, sizeof text, "%.1f s", seconds);
        return text;
    }
    const auto whole = static_cast<long long>(std::llround(seconds));
    const long long hours = whole / 3600, minutes = whole / 60 % 60, rest = whole % 60;
    if (hours > 0) {
        std::snprintf(text, sizeof text, "%lld h %lld min %lld s", hours, minutes, rest);
    } else {
        std::snprintf(text, sizeof text, "%lld min %lld s", minutes, rest);
    }
    return text;
}

size_t text_columns(const std::string& text) {
    size_t columns = 0;
    for (unsigned char c : text) columns += (c & 0xC0) != 0x80;  // continuation bytes take no column
    return columns;
}

namespace {

struct Paragraph {
    std::string prefix;  // the first line's indentation and marker, kept as written
    size_t hang = 0;     // where the following lines start
    bool alone = false;  // a "Usage:" line: never joined with the next
    std::vector<std::string> words;
};

void add_plain_words(const std::string& text, std::vector<std::string>& words) {
    size_t start = 0;
    while ((start = text.find_first_not_of(' ', start)) != std::string::npos) {
        const size_t end = text.find(' ', start);
        words.push_back(text.substr(start, end - start));
        start = end;
    }
}

// Splits at spaces outside square and angle brackets, so "[--limit N]" and "<state folder>/x"
// stay in one piece.
void add_words(const std::string& text, std::vector<std::string>& words) {
    std::string word;
    int depth = 0;
    for (char c : text) {
        if (c == '[' || c == '<') ++depth;
        if ((c == ']' || c == '>') && depth > 0) --depth;
        if (c == ' ' && depth == 0) {
            if (!word.empty()) words.push_back(std::move(word));
            word.clear();
        } else {
            word += c;
        }
    }
    if (depth > 0) {  // a bracket the line does not close: no group, split it as usual
        add_plain_words(word, words);
        return;
    }
    if (!word.empty()) words.push_back(std::move(word));
}

// The length of the line's indentation and marker: "- ", "1. ", "Usage: ", or an option or
// command name followed by two spaces or more (its description starts after them). Equal to the
// indentation when the line has none.
size_t marker_end(const std::string& line, size_t indent, bool& usage) {
    const std::string body = line.substr(indent);
    usage = body.rfind("Usage: ", 0) == 0;
    if (usage) return indent + 7;
    if (body.rfind("- ", 0) == 0) return indent + 2;
    size_t digits = 0;
    while (digits < body.size() && std::isdigit(static_cast<unsigned char>(body[digits]))) ++digits;
    if (digits > 0 && body.compare(digits, 2, ". ") == 0) return indent + digits + 2;
    const size_t gap = body.find("  ");
    if (gap == std::string::npos) return indent;
    const size_t text = body.find_first_not_of(' ', gap);
    return text == std::string::npos ? indent : indent + text;
}

void fill(const Paragraph& paragraph, size_t width, std::string& out) {
    std::string line = paragraph.prefix;
    size_t columns = text_columns(line);
    bool line_has_word = false;
    for (const auto& word : paragraph.words) {
        const size_t word_columns = text_columns(word);
        if (line_has_word && columns + 1 + word_columns > width) {
            out += line + "\n";
            line.assign(paragraph.hang, ' ');
            columns = paragraph.hang;
            line_has_word = false;
        }
        if (line_has_word) {
            line += ' ';
            ++columns;
        }
        line += word;
        columns += word_columns;
        line_has_word = true;
    }
    out += line + "\n";
}

}  // namespace

std::string wrap_text(const std::string& text, size_t width) {
    std::string out;
    Paragraph current;
    bool open = false;  // whether `current` holds a paragraph not written yet
    auto flush = [&] {
        if (open) fill(current, width, out);
        open = false;
    };
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        const bool ended = end != std::string::npos;
        if (!ended) end = text.size();
        std::string line = text.substr(start, end - start);
        start = end + 1;
        while (!line.empty() && line.back() == ' ') line.pop_back();
        if (line.empty()) {
            flush();
            out += "\n";
            continue;
        }
        const size_t indent = line.find_first_not_of(' ');
        bool usage = false;
        const size_t marker = marker_end(line, indent, usage);
        const bool item = usage || marker > indent;
        if (open && !current.alone && !item && indent == current.hang) {
            add_words(line.substr(indent), current.words);
        } else {
            flush();
            current = Paragraph{line.substr(0, marker), marker, usage, {}};
            add_words(line.substr(marker), current.words);
            open = true;
        }
        if (!ended) {
            // The text did not end with a newline: neither does the wrapped one.
            flush();
            if (!out.empty() && out.back() == '\n') out.pop_back();
        }
    }
    flush();
    return out;
}

}  // namespace segpush
