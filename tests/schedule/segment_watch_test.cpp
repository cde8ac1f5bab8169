// schedule: on_change: a segment file's change starts a run only once the file has settled.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "schedule/segment_watch.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;
using segpush::test::TempDir;
using Clock = SegmentWatch::Clock;
using std::chrono::seconds;

namespace {

const Clock::time_point kStart = Clock::from_time_t(1800000000);

// Publishes `content` as `path` the documented way: written beside it, then renamed into place.
void publish(const TempDir& dir, const std::string& name, const std::string& content) {
    dir.write(name + ".tmp", content);
    std::filesystem::rename(dir.file(name + ".tmp"), dir.file(name));
}

void append(const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary | std::ios::app) << content;
}

// File times have the kernel's clock-tick resolution: a step so that two writes differ.
void next_tick() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

}  // namespace

TEST_CASE("segment watch: a file renamed into place settles after the settle time; unchanged files never do") {
    TempDir dir;
    const std::string vip = dir.write("vip.csv", "email\na@example.com\n");
    SegmentWatch watch({vip}, seconds(5), kStart);

    // Watching starts no run, however long the files stay as they were.
    CHECK_FALSE(watch.settled(kStart + seconds(1)));
    CHECK_FALSE(watch.settled(kStart + seconds(600)));
    CHECK_FALSE(watch.change_pending());

    next_tick();
    publish(dir, "vip.csv", "email\na@example.com\nb@example.com\n");
    const auto seen = kStart + seconds(700);
    CHECK_FALSE(watch.settled(seen));  // first seen now: it must stay so for 5 s
    CHECK(watch.change_pending());
    CHECK(watch.changed_files() == std::vector<std::string>{vip});
    CHECK_FALSE(watch.settled(seen + seconds(4)));
    CHECK(watch.settled(seen + seconds(5)));

    watch.run_starting();
    CHECK_FALSE(watch.change_pending());
    CHECK_FALSE(watch.settled(seen + seconds(60)));  // the run took this version: nothing more
}

TEST_CASE("segment watch: a file still being written in place does not settle until it stops changing") {
    TempDir dir;
    const std::string vip = dir.write("vip.csv", "email\n");
    SegmentWatch watch({vip}, seconds(5), kStart);

    next_tick();
    append(vip, "a@example.com\n");
    CHECK_FALSE(watch.settled(kStart + seconds(10)));
    append(vip, "b@example.com\n");  // the writer goes on 4 s later: the wait starts again
    CHECK_FALSE(watch.settled(kStart + seconds(14)));
    CHECK_FALSE(watch.settled(kStart + seconds(18)));
    CHECK(watch.settled(kStart + seconds(19)));

    SECTION("a rewrite of the same size is a change too") {
        watch.run_starting();
        next_tick();
        dir.write("vip.csv", "email\nc@example.com\nd@example.com\n");
        CHECK_FALSE(watch.settled(kStart + seconds(30)));
        CHECK(watch.settled(kStart + seconds(35)));
    }
}

TEST_CASE("segment watch: a missing file holds the run back until it is there and settled") {
    TempDir dir;
    const std::string vip = dir.write("vip.csv", "email\na@example.com\n");
    const std::string extra = dir.write("extra.csv", "email\nb@example.com\n");
    SegmentWatch watch({vip, extra}, seconds(2), kStart);

    std::filesystem::remove(extra);  // an upstream job deleted it and has not written the new one yet
    CHECK_FALSE(watch.settled(kStart + seconds(1)));
    CHECK_FALSE(watch.settled(kStart + seconds(100)));
    CHECK(watch.changed_files() == std::vector<std::string>{extra});

    publish(dir, "extra.csv", "email\nc@example.com\n");
    CHECK_FALSE(watch.settled(kStart + seconds(101)));
    CHECK(watch.settled(kStart + seconds(103)));
    CHECK(watch.changed_files() == std::vector<std::string>{extra});  // vip.csv did not change
}

TEST_CASE("segment watch: forget_seen counts the files as they are as a change, still to settle (catch_up)") {
    TempDir dir;
    const std::string vip = dir.write("vip.csv", "email\na@example.com\n");
    SegmentWatch watch({vip}, seconds(5), kStart);
    // The file was written just now: its time is what catch_up compares with the last run.
    REQUIRE(watch.newest_modification());
    const auto age = Clock::now() - *watch.newest_modification();
    CHECK(age >= seconds(0));
    CHECK(age < seconds(60));

    watch.forget_seen();
    CHECK_FALSE(watch.settled(kStart + seconds(3)));
    CHECK(watch.settled(kStart + seconds(5)));
}
