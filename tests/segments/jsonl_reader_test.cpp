#include "segments/read_all.hpp"
#include "segments/segment_reader.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using segpush::test::open_error;
using segpush::test::read_all;
using segpush::test::ReadItem;
using segpush::test::require_problem;
using segpush::test::require_row;
using segpush::test::TempDir;
using Strings = std::vector<std::string>;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

std::vector<ReadItem> read_jsonl(const std::string& content, const Strings& wanted) {
    TempDir dir;
    return read_all(dir.write("segment.jsonl", content), "jsonl", wanted);
}

}  // namespace

TEST_CASE("jsonl: good rows return the wanted keys in the wanted order") {
    const auto items = read_jsonl(
        "{\"email\":\"a@x.io\",\"name\":\"Ann\",\"city\":\"Oslo\"}\n"
        "{\"name\":\"Bob\",\"email\":\"b@x.io\"}\n"
        "{\"email\":\"c\\u00e9@x.io\",\"name\":\"line\\nbreak \\\"q\\\"\",\"extra\":{\"deep\":[1,2]}}",
        {"name", "email"});
    REQUIRE(items.size() == 3);
    require_row(items[0], 1, {"Ann", "a@x.io"});
    require_row(items[1], 2, {"Bob", "b@x.io"});
    require_row(items[2], 3, {"line\nbreak \"q\"", "c\xC3\xA9@x.io"});
}

TEST_CASE("jsonl: numbers keep their JSON text, booleans and null read as text or empty") {
    const auto items = read_jsonl(
        "{\"id\":42,\"score\":1.50,\"big\":12345678901234567890123,\"neg\":-3e2,\"ok\":true,\"no\":false,"
        "\"gone\":null}\n",
        {"id", "score", "big", "neg", "ok", "no", "gone", "absent"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 1, {"42", "1.50", "12345678901234567890123", "-3e2", "true", "false", "", ""});
}

TEST_CASE("jsonl: absent keys read as empty, a repeated key keeps its last value") {
    const auto items = read_jsonl("{\"email\":\"a@x.io\"}\n{\"email\":\"x\",\"email\":\"b@x.io\"}\n{}\n",
                                  {"email", "name", "email"});
    REQUIRE(items.size() == 3);
    require_row(items[0], 1, {"a@x.io", "", "a@x.io"});
    require_row(items[1], 2, {"b@x.io", "", "b@x.io"});
    require_row(items[2], 3, {"", "", ""});
}

TEST_CASE("jsonl: a line that is not valid JSON is reported with its offset") {
    const auto items = read_jsonl("{\"email\":\"a@x.io\"}\n{\"email\" \"b@x.io\"}\n{\"email\":\"c@x.io\"\n"
                                  "{\"email\":\"d@x.io\"} trailing\n{\"email\":\"e@x.io\"}\n",
                                  {"email"});
    REQUIRE(items.size() == 5);
    require_row(items[0], 1, {"a@x.io"});
    require_problem(items[1], 2, "not valid JSON at byte 10: Missing a colon after a name of object member.");
    require_problem(items[2], 3,
                    "not valid JSON at the end of the line: Missing a comma or '}' after an object member.");
    require_problem(items[3], 4, "not valid JSON at byte 20: The document root must not be followed by other values.");
    require_row(items[4], 5, {"e@x.io"});
}

TEST_CASE("jsonl: a line that is not an object is reported") {
    const auto items = read_jsonl("[1,2]\n\"text\"\n42\nnull\n{\"email\":\"a@x.io\"}\n", {"email"});
    REQUIRE(items.size() == 5);
    require_problem(items[0], 1, "the line is not a JSON object (it holds an array)");
    require_problem(items[1], 2, "the line is not a JSON object (it holds a string)");
    require_problem(items[2], 3, "the line is not a JSON object (it holds a number)");
    require_problem(items[3], 4, "the line is not a JSON object (it holds null)");
    require_row(items[4], 5, {"a@x.io"});
}

TEST_CASE("jsonl: an object or array for a wanted column is reported") {
    const auto items = read_jsonl(
        "{\"email\":{\"home\":\"a@x.io\"}}\n{\"tags\":[\"x\"],\"email\":\"b@x.io\"}\n"
        "{\"email\":\"c@x.io\",\"tags\":[]}\n{\"other\":{\"email\":[1]},\"email\":\"d@x.io\"}\n",
        {"email", "tags"});
    REQUIRE(items.size() == 4);
    require_problem(items[0], 1,
                    "column \"email\" holds an object; only strings, numbers, booleans and null can be read");
    require_problem(items[1], 2,
                    "column \"tags\" holds an array; only strings, numbers, booleans and null can be read");
    require_problem(items[2], 3,
                    "column \"tags\" holds an array; only strings, numbers, booleans and null can be read");
    require_row(items[3], 4, {"d@x.io", ""});  // nested keys of the same name are not columns
}

TEST_CASE("jsonl: invalid UTF-8 is reported and the next line read") {
    const auto items = read_jsonl("{\"email\":\"a\xFF@x.io\"}\n{\"email\":\"b@x.io\"}\n", {"email"});
    REQUIRE(items.size() == 2);
    require_problem(items[0], 1, "invalid UTF-8 at byte 12 of the line");
    require_row(items[1], 2, {"b@x.io"});
}

TEST_CASE("jsonl: blank lines are skipped, CRLF and a BOM are accepted") {
    const auto items = read_jsonl("\xEF\xBB\xBF\n{\"email\":\"a@x.io\"}\r\n  \t\r\n\n{\"email\":\"b@x.io\"}",
                                  {"email"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {"a@x.io"});
    require_row(items[1], 5, {"b@x.io"});
}

TEST_CASE("jsonl: an empty file reads nothing") {
    CHECK(read_jsonl("", {"email"}).empty());
    CHECK(read_jsonl("\n\n", {"email"}).empty());
}

TEST_CASE("jsonl: a line over 1 MiB is a problem and the next line is read") {
    const std::string huge(1024 * 1024 + 10, 'x');
    const auto items = read_jsonl("{\"email\":\"a@x.io\"}\n{\"email\":\"" + huge + "\"}\n{\"email\":\"b@x.io\"}\n",
                                  {"email"});
    REQUIRE(items.size() == 3);
    require_row(items[0], 1, {"a@x.io"});
    require_problem(items[1], 2, "the line is longer than 1 MiB");
    require_row(items[2], 3, {"b@x.io"});
}

TEST_CASE("jsonl: lines crossing read chunks are read whole") {
    std::string content;
    uint64_t lines = 0;
    while (content.size() < 300000) {
        content += "{\"email\":\"user" + std::to_string(lines) + "@x.io\",\"pad\":\"" + std::string(lines % 5000, 'p') +
                   "\"}\n";
        ++lines;
    }
    const auto items = read_jsonl(content, {"email"});
    REQUIRE(items.size() == lines);
    bool all_match = true;
    for (uint64_t i = 0; i < lines; ++i) {
        all_match = all_match && !items[i].problem && items[i].line == i + 1 &&
                    items[i].values == Strings{"user" + std::to_string(i) + "@x.io"};
    }
    CHECK(all_match);
}

TEST_CASE("segments: an unknown source kind is an error") {
    TempDir dir;
    const std::string path = dir.write("segment.xml", "<x/>");
    CHECK_THAT(open_error(path, "xml", {"email"}), Contains("unknown source \"xml\" (expected csv or jsonl)"));
}

TEST_CASE("segments: an unreadable path names the path and the reason") {
    TempDir dir;
    const std::string missing = dir.file("nope.csv");
    CHECK(open_error(missing, "csv", {"email"}) ==
          "cannot open segment file " + missing + ": No such file or directory");
    CHECK(open_error(missing, "jsonl", {"email"}) ==
          "cannot open segment file " + missing + ": No such file or directory");
    const std::string folder = dir.path().string();
    CHECK_THAT(open_error(folder, "csv", {"email"}),
               Catch::Matchers::StartsWith("segment file " + folder + " is a directory, not a regular file"));
    CHECK_THAT(open_error(folder, "jsonl", {"email"}),
               Catch::Matchers::StartsWith("segment file " + folder + " is a directory, not a regular file"));
}

TEST_CASE("jsonl: once read, the reader tells which wanted keys no line had, and which keys there were") {
    segpush::test::TempDir dir;
    const std::string path = dir.write("s.jsonl",
                                       "{\"email\": \"a@x.io\", \"first\": \"A\"}\n{\"email\": \"b@x.io\"}\n");
    auto reader = segpush::open_segment(path, "jsonl", {"email", "Phone", "first", "email"});
    read_all(*reader);
    CHECK(reader->absent_columns() == std::vector<std::string>{"Phone"});
    const auto present = reader->present_columns();
    CHECK(std::find(present.begin(), present.end(), "first") != present.end());
    CHECK(std::find(present.begin(), present.end(), "email") != present.end());
    // A CSV file's columns are checked against its header when it is opened.
    const std::string csv = dir.write("s.csv", "email\na@x.io\n");
    auto csv_reader = segpush::open_segment(csv, "csv", {"email"});
    read_all(*csv_reader);
    CHECK(csv_reader->absent_columns().empty());
}

TEST_CASE("peek: a segment's columns from the CSV header or the first JSON Lines records, read only so far") {
    segpush::test::TempDir dir;
    const std::string csv = dir.write("s.csv", "\xEF\xBB\xBF Email ,\"First, Name\",,Phone\na@x.io,A,,1\n");
    const auto header = segpush::peek_segment_columns(csv, "csv", {"Email", "First, Name", "phone"});
    CHECK(header.present == Strings{"Email", "First, Name", "Phone"});
    CHECK(header.absent == Strings{"phone"});

    // A key only after the first kPeekRecords records is not seen.
    std::string records;
    for (uint64_t i = 0; i < segpush::kPeekRecords; ++i) records += "{\"email\":\"a@x.io\"}\n";
    const std::string late = dir.write("late.jsonl", records + "{\"email\":\"b@x.io\",\"late\":1}\n");
    const auto first = segpush::peek_segment_columns(late, "jsonl", {"email", "late"});
    CHECK(first.records_read == segpush::kPeekRecords);
    CHECK(first.absent == Strings{"late"});
    // Nor one past kPeekBytes: a first record of 2 MiB is all that is read.
    const std::string big = dir.write("big.jsonl", "{\"email\":\"" + std::string(2u << 20, 'x') +
                                                       "\"}\n{\"email\":\"b@x.io\",\"late\":1}\n");
    const auto bounded = segpush::peek_segment_columns(big, "jsonl", {"email", "late"});
    CHECK(bounded.records_read == 1);
    CHECK(bounded.absent == Strings{"late"});  // the cut record's key came before the cut

    CHECK_THROWS_WITH(segpush::peek_segment_columns(dir.file("none.csv"), "csv", {"Email"}),
                      Contains("none.csv does not exist yet"));
    CHECK_THROWS_WITH(segpush::peek_segment_columns(dir.write("empty.jsonl", "\n\n"), "jsonl", {"email"}),
                      Contains("has no records yet"));
}
