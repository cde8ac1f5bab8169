#include "segments/read_all.hpp"
#include "segments/segment_reader.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using segpush::open_segment;
using segpush::SegmentError;
using segpush::test::open_error;
using segpush::test::read_all;
using segpush::test::ReadItem;
using segpush::test::require_problem;
using segpush::test::require_row;
using segpush::test::TempDir;
using Strings = std::vector<std::string>;
using Catch::Matchers::Contains;

namespace {

std::vector<ReadItem> read_csv(const std::string& content, const Strings& wanted) {
    TempDir dir;
    return read_all(dir.write("segment.csv", content), "csv", wanted);
}

std::string csv_error(const std::string& content, const Strings& wanted) {
    TempDir dir;
    return open_error(dir.write("segment.csv", content), "csv", wanted);
}

}  // namespace

TEST_CASE("csv: a simple file reads every row with its line") {
    const auto items = read_csv("email,first_name\na@x.io,Ann\nb@x.io,Bob\n", {"email", "first_name"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {"a@x.io", "Ann"});
    require_row(items[1], 3, {"b@x.io", "Bob"});
}

TEST_CASE("csv: only the wanted columns are returned, in the wanted order") {
    const auto items = read_csv("id,first_name,email,city,zip\n1,Ann,a@x.io,Oslo,0150\n2,Bob,b@x.io,Rome,00100\n",
                                {"zip", "email", "first_name"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {"0150", "a@x.io", "Ann"});
    require_row(items[1], 3, {"00100", "b@x.io", "Bob"});
}

TEST_CASE("csv: a column wanted twice is returned twice") {
    const auto items = read_csv("email,name\na@x.io,Ann\n", {"email", "name", "email"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"a@x.io", "Ann", "a@x.io"});
}

TEST_CASE("csv: no wanted columns still counts and checks rows") {
    const auto items = read_csv("a,b\n1,2\n3\n", {});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {});
    require_problem(items[1], 3, "row has 1 field, the header has 2");
}

TEST_CASE("csv: quoted fields keep commas, doubled quotes and line breaks") {
    const auto items = read_csv("email,note\n"
                                "a@x.io,\"one, two\"\n"
                                "b@x.io,\"she said \"\"hi\"\"\"\n"
                                "c@x.io,\"first\nsecond\nthird\"\n"
                                "d@x.io,after\n"
                                "\"e@x.io\",\"\"\n",
                                {"email", "note"});
    REQUIRE(items.size() == 5);
    require_row(items[0], 2, {"a@x.io", "one, two"});
    require_row(items[1], 3, {"b@x.io", "she said \"hi\""});
    require_row(items[2], 4, {"c@x.io", "first\nsecond\nthird"});
    require_row(items[3], 7, {"d@x.io", "after"});  // lines 4-6 hold the record above
    require_row(items[4], 8, {"e@x.io", ""});
}

TEST_CASE("csv: a UTF-8 BOM before the header is skipped") {
    const auto items = read_csv("\xEF\xBB\xBF"
                                "email,name\na@x.io,Zo\xC3\xAB\n",
                                {"email", "name"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"a@x.io", "Zo\xC3\xAB"});
}

TEST_CASE("csv: CRLF line endings") {
    const auto items = read_csv("email,name\r\na@x.io,Ann\r\nb@x.io,\r\n", {"email", "name"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {"a@x.io", "Ann"});
    require_row(items[1], 3, {"b@x.io", ""});
}

TEST_CASE("csv: CRLF inside quotes is kept and counted as one line") {
    const auto items = read_csv("email,note\r\na@x.io,\"one\r\ntwo\"\r\nb@x.io,x\r\n", {"email", "note"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {"a@x.io", "one\r\ntwo"});
    require_row(items[1], 4, {"b@x.io", "x"});
}

TEST_CASE("csv: a lone CR also ends a record") {
    const auto items = read_csv("email,name\ra@x.io,Ann\rb@x.io,Bob", {"email", "name"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {"a@x.io", "Ann"});
    require_row(items[1], 3, {"b@x.io", "Bob"});
}

TEST_CASE("csv: the last record needs no line break") {
    const auto items = read_csv("email,name\na@x.io,Ann", {"name"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"Ann"});
}

TEST_CASE("csv: values are returned untrimmed, header names are trimmed") {
    const auto items = read_csv(" email ,\tname\t\n  a@x.io , Ann \n", {"email", "name"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"  a@x.io ", " Ann "});
}

TEST_CASE("csv: a missing wanted column names it, suggests, and lists the header") {
    const std::string message = csv_error("email,first_name,last_name\na@x.io,Ann,Lee\n", {"emial", "first_name"});
    CHECK_THAT(message, Contains("has no column \"emial\" (did you mean 'email'?)"));
    CHECK_THAT(message, Contains("its header has \"email\", \"first_name\", \"last_name\""));
    CHECK_THAT(message, Contains("segment.csv"));
}

TEST_CASE("csv: several missing columns are all named") {
    const std::string message = csv_error("email,name\n", {"email", "zip", "nmae"});
    CHECK_THAT(message, Contains("has no columns \"zip\", \"nmae\" (did you mean 'name'?);"));
}

TEST_CASE("csv: a duplicate header name is an error") {
    const std::string message = csv_error("email,name, email\na,b,c\n", {"email"});
    CHECK_THAT(message, Contains("the header names column \"email\" twice (fields 1 and 3)"));
}

TEST_CASE("csv: several unnamed header columns are not duplicates") {
    const auto items = read_csv("email,,name,\na@x.io,1,Ann,2\n", {"name", "email"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"Ann", "a@x.io"});
}

TEST_CASE("csv: an empty file has no header row") {
    CHECK_THAT(csv_error("", {"email"}), Contains("has no header row"));
    CHECK_THAT(csv_error("\n\r\n\n", {"email"}), Contains("has no header row"));
    CHECK_THAT(csv_error("\xEF\xBB\xBF", {"email"}), Contains("has no header row"));
}

TEST_CASE("csv: a header row that cannot be read is an error") {
    CHECK_THAT(csv_error("email,\"name\n", {"email"}),
               Contains("the header row (line 1) cannot be read: quoted field opened on line 1 is never closed"));
}

TEST_CASE("csv: a header with no rows reads nothing") {
    CHECK(read_csv("email,name\n", {"email"}).empty());
    CHECK(read_csv("email,name", {"email"}).empty());
    CHECK(read_csv("email,name\r\n\r\n", {"email"}).empty());
}

TEST_CASE("csv: a row with too few fields is reported and reading goes on") {
    const auto items = read_csv("a,b,c,d,e\n1,2,3,4,5\n1,2,3\n6,7,8,9,10\n", {"a", "e"});
    REQUIRE(items.size() == 3);
    require_row(items[0], 2, {"1", "5"});
    require_problem(items[1], 3, "row has 3 fields, the header has 5");
    require_row(items[2], 4, {"6", "10"});
}

TEST_CASE("csv: a row with too many fields is reported and reading goes on") {
    const auto items = read_csv("a,b\n1,2\n1,2,3\n3,4\n", {"b", "a"});
    REQUIRE(items.size() == 3);
    require_row(items[0], 2, {"2", "1"});
    require_problem(items[1], 3, "row has 3 fields, the header has 2");
    require_row(items[2], 4, {"4", "3"});
}

TEST_CASE("csv: invalid UTF-8 in a wanted field is reported with its byte") {
    const auto items = read_csv("email,name\na@x.io,Zo\xC3\n\"b@x.io\",\"ab\xFF\"\nc@x.io,ok\n", {"email", "name"});
    REQUIRE(items.size() == 3);
    require_problem(items[0], 2, "invalid UTF-8 in column \"name\" at byte 3");
    require_problem(items[1], 3, "invalid UTF-8 in column \"name\" at byte 3");
    require_row(items[2], 4, {"c@x.io", "ok"});
}

TEST_CASE("csv: invalid UTF-8 in a column that is not wanted is ignored") {
    const auto items = read_csv("email,junk\na@x.io,\xC0\xAF\n", {"email"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"a@x.io"});
}

TEST_CASE("csv: overlong forms and surrogates are invalid UTF-8") {
    const auto items = read_csv("v\n\xC0\xAF\n\xED\xA0\x80\n\xF4\x90\x80\x80\n\xE2\x82\xAC\xF0\x9F\x98\x80\n", {"v"});
    REQUIRE(items.size() == 4);
    require_problem(items[0], 2, "invalid UTF-8 in column \"v\" at byte 1");
    require_problem(items[1], 3, "invalid UTF-8 in column \"v\" at byte 1");
    require_problem(items[2], 4, "invalid UTF-8 in column \"v\" at byte 1");
    require_row(items[3], 5, {"\xE2\x82\xAC\xF0\x9F\x98\x80"});
}

TEST_CASE("csv: a quote inside an unquoted field is reported") {
    const auto items = read_csv("email,name\na@x.io,Ann \"Jr\" Lee\nb@x.io,Bob\n", {"email", "name"});
    REQUIRE(items.size() == 2);
    require_problem(items[0], 2,
                    "a quote in the middle of unquoted column \"name\" (a field with quotes must be quoted whole, "
                    "with each inner quote doubled)");
    require_row(items[1], 3, {"b@x.io", "Bob"});
}

TEST_CASE("csv: characters after a closing quote are reported") {
    const auto items = read_csv("email,name\n\"a@x.io\"x,Ann\nb@x.io,Bob\n", {"email", "name"});
    REQUIRE(items.size() == 2);
    require_problem(items[0], 2,
                    "characters after the closing quote of column \"email\" (a quoted field must end at its "
                    "closing quote)");
    require_row(items[1], 3, {"b@x.io", "Bob"});
}

TEST_CASE("csv: a quoted field never closed ends the file") {
    const auto items = read_csv("email,name\na@x.io,Ann\nb@x.io,\"Bob\nc@x.io,Cy\nd@x.io,Di\n", {"email", "name"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 2, {"a@x.io", "Ann"});
    require_problem(items[1], 3, "quoted field opened on line 3 is never closed");
}

TEST_CASE("csv: blank lines are skipped and lines still counted") {
    const auto items = read_csv("\nemail,name\n\na@x.io,Ann\n\r\n\nb@x.io,Bob\n\n", {"email", "name"});
    REQUIRE(items.size() == 2);
    require_row(items[0], 4, {"a@x.io", "Ann"});
    require_row(items[1], 7, {"b@x.io", "Bob"});
}

TEST_CASE("csv: a field over 1 MiB is a problem and the next row is read") {
    const std::string huge(1024 * 1024 + 1, 'x');
    const auto items = read_csv("email,note\n"
                                "a@x.io," +
                                    huge +
                                    "\n"
                                    "b@x.io,\"" +
                                    huge + "\n" + huge +
                                    "\"\n"
                                    "c@x.io,ok\n",
                                {"email", "note"});
    REQUIRE(items.size() == 3);
    require_problem(items[0], 2, "column \"note\" has a value longer than 1 MiB");
    require_problem(items[1], 3, "column \"note\" has a value longer than 1 MiB");
    require_row(items[2], 5, {"c@x.io", "ok"});
}

TEST_CASE("csv: a field of exactly 1 MiB is read") {
    const std::string big(1024 * 1024, 'y');
    const auto items = read_csv("note,email\n" + big + ",a@x.io\n", {"email", "note"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"a@x.io", big});
}

TEST_CASE("csv: line breaks, quotes and CRLF split across read chunks") {
    // Slide the interesting bytes over the 64 KiB chunk boundary one byte at a time.
    const std::string header = "email,note\r\n";
    for (size_t shift = 0; shift < 12; ++shift) {
        const size_t pad = 65536 - header.size() - 20 + shift;
        const std::string filler = "f@x.io," + std::string(pad - 9, 'p') + "\r\n";  // pad bytes long
        const std::string content = header + filler + "a@x.io,\"q\"\"r\r\ns\"\r\nb@x.io,t\r\n";
        TempDir dir;
        const auto items = read_all(dir.write("s.csv", content), "csv", {"email", "note"});
        INFO("shift " << shift);
        REQUIRE(items.size() == 3);
        require_row(items[0], 2, {"f@x.io", std::string(pad - 9, 'p')});
        require_row(items[1], 3, {"a@x.io", "q\"r\r\ns"});
        require_row(items[2], 5, {"b@x.io", "t"});
    }
}

TEST_CASE("csv: a 200,000-row file reads every row") {
    std::string content = "id,email,first_name,last_name,city\n";
    content.reserve(200000 * 48);
    for (int i = 0; i < 200000; ++i) {
        const std::string n = std::to_string(i);
        content += n + ",user" + n + "@example.com,First" + n + ",\"Last, " + n + "\",City\n";
    }
    TempDir dir;
    auto reader = open_segment(dir.write("big.csv", content), "csv", {"email", "last_name"});
    segpush::SegmentRow row;
    segpush::RowProblem problem;
    uint64_t rows = 0, problems = 0;
    bool values_match = true;
    for (;;) {
        const auto next = reader->next(row, problem);
        if (next == segpush::SegmentReader::Next::end) break;
        if (next == segpush::SegmentReader::Next::problem) {
            ++problems;
            continue;
        }
        const std::string n = std::to_string(rows);
        values_match = values_match && row.line == rows + 2 && row.values.size() == 2 &&
                       row.values[0] == "user" + n + "@example.com" && row.values[1] == "Last, " + n;
        ++rows;
    }
    CHECK(rows == 200000);
    CHECK(problems == 0);
    CHECK(values_match);
}
