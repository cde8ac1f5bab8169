// Segments that would never end, or cost without bound: headers past their caps, rows without
// end, files that are not regular files, and FIFOs with and without fifo_timeout. Every test
// here must end: the CTest TIMEOUT on this executable is the watchdog, no speed is asserted.
#include "segments/read_all.hpp"
#include "segments/segment_reader.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using segpush::open_segment;
using segpush::SegmentCancelled;
using segpush::SegmentError;
using segpush::SegmentOpenOptions;
using segpush::test::open_error;
using segpush::test::read_all;
using segpush::test::require_row;
using segpush::test::TempDir;

namespace {

// "c1,c2,...,cN" without a line end.
std::string numbered_header(size_t columns) {
    std::string header;
    for (size_t i = 1; i <= columns; ++i) header += (i > 1 ? ",c" : "c") + std::to_string(i);
    return header;
}

// Writes `size` copies of `byte` after `prefix`, a megabyte at a time.
std::string write_long_file(const TempDir& dir, const std::string& name, const std::string& prefix, size_t size,
                            char byte) {
    const std::string path = dir.file(name);
    std::ofstream out(path, std::ios::binary);
    out << prefix;
    const std::string block(1 << 20, byte);
    for (size_t written = 0; written < size; written += block.size()) {
        out.write(block.data(), static_cast<std::streamsize>(std::min(block.size(), size - written)));
    }
    return path;
}

std::string make_fifo(const TempDir& dir, const std::string& name) {
    const std::string path = dir.file(name);
    REQUIRE(mkfifo(path.c_str(), 0600) == 0);
    return path;
}

SegmentOpenOptions fifo_options(int seconds) {
    SegmentOpenOptions options;
    options.fifo_timeout = std::chrono::seconds(seconds);
    return options;
}

std::string open_error_with(const std::string& path, const std::string& source, const SegmentOpenOptions& options) {
    try {
        auto reader = open_segment(path, source, {"email"}, options);
        read_all(*reader);
    } catch (const SegmentError& error) {
        return error.what();
    }
    return "";
}

// Opens `path` for writing (waiting for the reader, as a FIFO's writer does) on a thread of
// its own, writes `parts` with a pause between them, and closes it.
class FifoWriter {
public:
    FifoWriter(const std::string& path, std::vector<std::string> parts, std::chrono::milliseconds pause)
        : thread_([path, parts = std::move(parts), pause] {
              const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
              if (fd < 0) return;
              for (const auto& part : parts) {
                  std::this_thread::sleep_for(pause);
                  if (::write(fd, part.data(), part.size()) != static_cast<ssize_t>(part.size())) break;
              }
              ::close(fd);
          }) {}
    ~FifoWriter() { thread_.join(); }

private:
    std::thread thread_;
};

}  // namespace

TEST_CASE("hostile csv: a header of a million columns is refused at the column cap, naming file and line") {
    TempDir dir;
    const std::string path = dir.write("wide.csv", numbered_header(1000000) + "\nx\n");
    const std::string error = open_error(path, "csv", {"c1"});
    CHECK(error == "segment file " + path +
                       ": the header row (line 1) has more than 10000 columns, the most a "
                       "segment may have");
    // Unnamed columns count the same.
    const std::string commas = dir.write("commas.csv", std::string(1000000, ',') + "\n");
    CHECK_THAT(open_error(commas, "csv", {"c1"}), Contains("has more than 10000 columns"));
}

TEST_CASE("hostile csv: a header of exactly 10000 columns is read, its duplicates found by field") {
    TempDir dir;
    const std::string header = numbered_header(10000);
    const auto items = read_all(dir.write("full.csv", header + "\n" + header + "\n"), "csv", {"c10000", "c1"});
    REQUIRE(items.size() == 1);
    require_row(items[0], 2, {"c10000", "c1"});

    std::string duplicated = numbered_header(9999) + ",c5000";
    CHECK(open_error(dir.write("dup.csv", duplicated + "\n"), "csv", {"c1"}) ==
          "segment file " + dir.file("dup.csv") + ": the header names column \"c5000\" twice (fields 5000 and 10000)");
}

TEST_CASE("hostile csv: a missing column in a wide header lists only the first names") {
    TempDir dir;
    const std::string error = open_error(dir.write("wide.csv", numbered_header(10000) + "\n"), "csv", {"email"});
    CHECK_THAT(error, Contains("has no column \"email\"; its header has \"c1\", \"c2\""));
    CHECK_THAT(error, Contains("\"c50\", and 9950 more"));
    CHECK(error.find("c51") == std::string::npos);
}

TEST_CASE("hostile csv: a header longer than 1 MiB is refused, so is one of NUL bytes without a line end") {
    TempDir dir;
    const std::string long_name = write_long_file(dir, "long.csv", "email,", 2 << 20, 'n');
    CHECK(open_error(long_name, "csv", {"email"}) ==
          "segment file " + long_name + ": the header row (line 1) is longer than 1 MiB, the most a header may be");
    // What /dev/zero would give if it came through a FIFO: the cap ends it.
    const std::string zeros = write_long_file(dir, "zeros.csv", "\n\n", 3 << 20, '\0');
    CHECK(open_error(zeros, "csv", {"email"}) ==
          "segment file " + zeros + ": the header row (line 3) is longer than 1 MiB, the most a header may be");
}

TEST_CASE("hostile csv: a row going past 64 MiB stops reading with an error naming its line") {
    TempDir dir;
    const std::string path = write_long_file(dir, "endless.csv", "email,name\na@x.io,Ann\nb@x.io,", 65 << 20, 'x');
    auto reader = open_segment(path, "csv", {"email"});
    segpush::SegmentRow row;
    segpush::RowProblem problem;
    REQUIRE(reader->next(row, problem) == segpush::SegmentReader::Next::row);
    CHECK(row.values == std::vector<std::string>{"a@x.io"});
    try {
        reader->next(row, problem);
        FAIL("the endless row was read");
    } catch (const SegmentError& error) {
        CHECK(std::string(error.what()) ==
              "segment file " + path +
                  ": the row starting on line 3 goes on past 64 MiB without ending, the most a "
                  "row may be; the file is not read further");
    }
}

TEST_CASE("hostile csv: an unclosed quote swallowing 64 MiB names where it opened") {
    TempDir dir;
    const std::string path = write_long_file(dir, "open.csv", "email\n\"a@x.io\n", 65 << 20, 'y');
    auto reader = open_segment(path, "csv", {"email"});
    segpush::SegmentRow row;
    segpush::RowProblem problem;
    CHECK_THROWS_WITH(reader->next(row, problem),
                      Contains("the row starting on line 2, where a quoted field opened on line 2 is still open,"));
}

TEST_CASE("hostile jsonl: a line going past 64 MiB stops reading with an error naming it") {
    TempDir dir;
    const std::string path = write_long_file(dir, "endless.jsonl", "{\"email\":\"a@x.io\"}\n", 65 << 20, ' ');
    auto reader = open_segment(path, "jsonl", {"email"});
    segpush::SegmentRow row;
    segpush::RowProblem problem;
    REQUIRE(reader->next(row, problem) == segpush::SegmentReader::Next::row);
    CHECK_THROWS_WITH(reader->next(row, problem),
                      "segment file " + path +
                          ": line 2 goes on past 64 MiB without ending, the most a line may "
                          "be; the file is not read further");
}

TEST_CASE("hostile segments: /dev/zero is refused as a character device") {
    for (const char* source : {"csv", "jsonl"}) {
        CHECK(open_error("/dev/zero", source, {"email"}) ==
              "segment file /dev/zero is a character device, not a regular file; a segment must be a regular file "
              "(or a FIFO with fifo_timeout_seconds)");
    }
}

TEST_CASE("hostile segments: a directory and a socket are refused by what they are") {
    TempDir dir;
    const std::string folder = dir.path().string();
    CHECK_THAT(open_error(folder, "csv", {"email"}),
               StartsWith("segment file " + folder + " is a directory, not a regular file"));

    const std::string socket_path = dir.file("s.csv");
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(socket_path.size() < sizeof address.sun_path);
    std::strcpy(address.sun_path, socket_path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    CHECK_THAT(open_error(socket_path, "csv", {"email"}),
               StartsWith("segment file " + socket_path + " is a socket, not a regular file"));
    ::close(fd);
}

TEST_CASE("hostile segments: a FIFO is refused without fifo_timeout, without waiting for a writer") {
    TempDir dir;
    const std::string path = make_fifo(dir, "pipe.csv");
    CHECK(open_error(path, "csv", {"email"}) ==
          "segment file " + path +
              " is a FIFO (named pipe), not a regular file; to read from a FIFO, set "
              "fifo_timeout_seconds in its segment's configuration (how long to wait for the "
              "writer)");
    CHECK_THAT(open_error(path, "jsonl", {"email"}), Contains("is a FIFO (named pipe)"));
}

TEST_CASE("hostile segments: a FIFO nobody writes to gives up after its timeout") {
    TempDir dir;
    const std::string path = make_fifo(dir, "pipe.csv");
    CHECK(open_error_with(path, "csv", fifo_options(1)) ==
          "FIFO segment file " + path + ": no writer sent anything within 1 s (fifo_timeout_seconds)");
}

TEST_CASE("hostile segments: a FIFO whose writer falls silent without closing gives up after its timeout") {
    TempDir dir;
    const std::string path = make_fifo(dir, "pipe.jsonl");
    std::atomic<bool> done{false};
    std::thread writer([&] {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) return;
        const std::string line = "{\"email\":\"a@x.io\"}\n";
        (void)!::write(fd, line.data(), line.size());
        while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ::close(fd);
    });
    const std::string error = open_error_with(path, "jsonl", fifo_options(1));
    done = true;
    writer.join();
    CHECK(error == "FIFO segment file " + path +
                       ": the writer sent nothing more for 1 s (fifo_timeout_seconds) and "
                       "did not close it");
}

TEST_CASE("hostile segments: a FIFO with fifo_timeout is read as its writer writes") {
    TempDir dir;
    SECTION("csv") {
        const std::string path = make_fifo(dir, "pipe.csv");
        FifoWriter writer(path, {"email,na", "me\na@x.io,Ann\n", "b@x.io,Bob\n"}, std::chrono::milliseconds(150));
        auto reader = open_segment(path, "csv", {"email", "name"}, fifo_options(5));
        const auto items = read_all(*reader);
        REQUIRE(items.size() == 2);
        require_row(items[0], 2, {"a@x.io", "Ann"});
        require_row(items[1], 3, {"b@x.io", "Bob"});
    }
    SECTION("jsonl") {
        const std::string path = make_fifo(dir, "pipe.jsonl");
        FifoWriter writer(path, {"{\"email\":\"a@x.io\"}\n{\"em", "ail\":\"b@x.io\"}\n"},
                          std::chrono::milliseconds(150));
        auto reader = open_segment(path, "jsonl", {"email"}, fifo_options(5));
        const auto items = read_all(*reader);
        REQUIRE(items.size() == 2);
        require_row(items[0], 1, {"a@x.io"});
        require_row(items[1], 2, {"b@x.io"});
    }
}

TEST_CASE("hostile segments: stopping while waiting for a FIFO's writer ends the open at once") {
    TempDir dir;
    const std::string path = make_fifo(dir, "pipe.csv");
    std::atomic<bool> stop{false};
    SegmentOpenOptions options = fifo_options(600);
    options.stop = [&] { return stop.load(); };
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        stop = true;
    });
    std::string message;
    try {
        open_segment(path, "csv", {"email"}, options);
    } catch (const SegmentCancelled& cancelled) {
        message = cancelled.what();
    }
    stopper.join();
    CHECK(message == "cancelled while waiting for the writer of FIFO segment file " + path);
}

TEST_CASE("hostile segments: stopping a regular file's reading between chunks") {
    TempDir dir;
    std::string content = "email\n";
    for (int i = 0; i < 20000; ++i) content += "member" + std::to_string(i) + "@x.io\n";
    const std::string path = dir.write("big.csv", content);
    int asked = 0;
    SegmentOpenOptions options;
    options.stop = [&] { return ++asked > 2; };  // open, the header's chunk, then stop
    auto reader = open_segment(path, "csv", {"email"}, options);
    CHECK_THROWS_AS(read_all(*reader), SegmentCancelled);
}
