// Run reports: safe to open in a spreadsheet, private to the user, pruned, and free of a person
// once they are forgotten.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <utime.h>

#include <filesystem>

#include "engine/run_report.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;
namespace fs = std::filesystem;

namespace {

mode_t mode_of(const std::string& path) {
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    return info.st_mode & 07777;
}

// Sets the process umask for the scope: what segpush creates must not depend on it.
struct Umask {
    explicit Umask(mode_t mask) : previous(::umask(mask)) {}
    ~Umask() { ::umask(previous); }
    mode_t previous;
};

void age(const std::string& path, int days) {
    const time_t when = ::time(nullptr) - days * 86400;
    const utimbuf times{when, when};
    REQUIRE(::utime(path.c_str(), &times) == 0);
}

}  // namespace

TEST_CASE("report: cells a spreadsheet would run as formulas are neutralised, control bytes escaped") {
    CHECK(report_cell("=HYPERLINK(\"http://x\")") == "\"'=HYPERLINK(\"\"http://x\"\")\"");
    CHECK(report_cell("+1-555") == "'+1-555");
    CHECK(report_cell("-2+3") == "'-2+3");
    CHECK(report_cell("@SUM(A1)") == "'@SUM(A1)");
    CHECK(report_cell("\tcmd") == "'\\x09cmd");
    CHECK(report_cell("\rcmd") == "'\\x0Dcmd");
    CHECK(report_cell(std::string("a\0b", 3)) == "a\\x00b");
    CHECK(report_cell("line\nbreak") == "line\\x0Abreak");
    CHECK(report_cell("back\\slash") == "back\\\\slash");
    CHECK(report_cell("a,b") == "\"a,b\"");
    CHECK(report_cell("plain@example.com") == "plain@example.com");
    CHECK(report_cell("") == "");
}

TEST_CASE("report: written 0600 in a 0700 folder whatever the umask, one line per member") {
    test::TempDir dir;
    const Umask open_to_all(0);
    const std::string path = dir.file("state/reports/e-run-1-report.csv");
    write_report(path, {{"vip.csv", 3, "=cmd|' /C calc'!A0", "invalid", "not a valid\nemail"},
                        {"vip.csv", 4, "b@example.com", "rejected", "refused"}});
    CHECK(mode_of(path) == 0600);
    CHECK(mode_of(dir.file("state/reports")) == 0700);
    CHECK(mode_of(dir.file("state")) == 0700);
    CHECK(test::read_file(path) == "source,line,email,outcome,reason\n"
                                   "vip.csv,3,'=cmd|' /C calc'!A0,invalid,not a valid\\x0Aemail\n"
                                   "vip.csv,4,b@example.com,rejected,refused\n");
}

TEST_CASE("report: reports older than the retention are deleted, newer ones and other files kept") {
    test::TempDir dir;
    const std::string reports = dir.file("reports");
    write_report(reports + "/e-run-1-report.csv", {{"s", 1, "a@example.com", "invalid", "x"}});
    write_report(reports + "/e-run-2-report.csv", {{"s", 1, "a@example.com", "invalid", "x"}});
    dir.write("reports/notes.txt", "mine");
    age(reports + "/e-run-1-report.csv", 31);
    age(reports + "/e-run-2-report.csv", 29);
    age(dir.file("reports/notes.txt"), 400);
    const auto removed = prune_reports(reports, std::chrono::hours(24 * 30));
    REQUIRE(removed.size() == 1);
    CHECK(fs::path(removed[0]).filename() == "e-run-1-report.csv");
    CHECK(fs::exists(reports + "/e-run-2-report.csv"));
    CHECK(fs::exists(dir.file("reports/notes.txt")));
    CHECK(prune_reports(dir.file("no-such-folder"), std::chrono::hours(1)).empty());
}

TEST_CASE("report: forgetting people removes their rows from every report, whatever the case they were written in") {
    test::TempDir dir;
    const std::string reports = dir.file("reports");
    write_report(reports + "/e-run-1-report.csv",
                 {{"s", 1, " Ann@Example.com", "rejected", "no"}, {"s", 2, "bob@example.com", "rejected", "no"}});
    write_report(reports + "/f-run-2-report.csv", {{"s", 9, "=odd@example.com", "invalid", "no"}});
    write_report(reports + "/g-run-3-report.csv", {{"s", 1, "carl@example.com", "invalid", "no"}});
    const auto changed = forget_in_reports(reports, {"ann@example.com", "=odd@example.com"});
    REQUIRE(changed.size() == 2);
    int64_t rows = 0;
    for (const auto& [path, removed] : changed) rows += removed;
    CHECK(rows == 2);
    CHECK(test::read_file(reports + "/e-run-1-report.csv") ==
          "source,line,email,outcome,reason\ns,2,bob@example.com,rejected,no\n");
    CHECK(test::read_file(reports + "/f-run-2-report.csv") == "source,line,email,outcome,reason\n");
    CHECK(mode_of(reports + "/e-run-1-report.csv") == 0600);
}

TEST_CASE("report: a report keyed by an id names the id's field, and forgetting compares ids exactly") {
    test::TempDir dir;
    const std::string reports = dir.file("reports");
    write_report(
        reports + "/u-run-1-report.csv",
        {{"s", 1, "ABC", "rejected", "no"}, {"s", 2, "abc", "rejected", "no"}, {"s", 3, "Abc", "invalid", "no"}},
        "user_id");
    CHECK(test::read_file(reports + "/u-run-1-report.csv") ==
          "source,line,user_id,outcome,reason\ns,1,ABC,rejected,no\ns,2,abc,rejected,no\ns,3,Abc,invalid,no\n");
    const auto changed = forget_in_reports(reports, {"abc"});
    REQUIRE(changed.size() == 1);
    CHECK(changed[0].second == 1);
    CHECK(test::read_file(reports + "/u-run-1-report.csv") ==
          "source,line,user_id,outcome,reason\ns,1,ABC,rejected,no\ns,3,Abc,invalid,no\n");
    // The header is no person, whatever is forgotten.
    CHECK(forget_in_reports(reports, {"user_id", "source"}).empty());
}

TEST_CASE("report: forgetting a phone number finds it however the segment wrote it") {
    test::TempDir dir;
    const std::string reports = dir.file("reports");
    write_report(reports + "/p-run-1-report.csv",
                 {{"s", 1, "+49 151 2345-6789", "rejected", "no"}, {"s", 2, "+4915199999999", "rejected", "no"}},
                 "mobile");
    const auto changed = forget_in_reports(reports, {"0049 15123456789"});
    REQUIRE(changed.size() == 1);
    CHECK(test::read_file(reports + "/p-run-1-report.csv") ==
          "source,line,mobile,outcome,reason\ns,2,'+4915199999999,rejected,no\n");
}
