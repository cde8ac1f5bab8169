#include <catch2/catch.hpp>

#include <ctime>

#include "schedule/cron.hpp"

using namespace segpush;
using std::chrono::system_clock;

namespace {

system_clock::time_point utc(int year, int month, int day, int hour, int minute) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    return system_clock::from_time_t(timegm(&tm));
}

CronSchedule parse(const std::string& text) {
    std::string problem;
    auto schedule = CronSchedule::parse(text, problem);
    INFO(problem);
    REQUIRE(schedule);
    return *schedule;
}

}  // namespace

TEST_CASE("cron: next fire times") {
    CHECK(parse("0 3 * * *").next_after(utc(2026, 11, 22, 16, 10)) == utc(2026, 11, 23, 3, 0));
    CHECK(parse("* * * * *").next_after(utc(2026, 11, 22, 16, 10)) == utc(2026, 11, 22, 16, 11));
    CHECK(parse("*/15 * * * *").next_after(utc(2026, 11, 22, 16, 10)) == utc(2026, 11, 22, 16, 15));
    CHECK(parse("30 9 * * mon-fri").next_after(utc(2026, 11, 21, 12, 0)) == utc(2026, 11, 23, 9, 30));  // Sat -> Mon
    CHECK(parse("0 0 1 jan *").next_after(utc(2026, 11, 22, 0, 0)) == utc(2027, 1, 1, 0, 0));
    CHECK(parse("0 0 29 2 *").next_after(utc(2026, 3, 1, 0, 0)) == utc(2028, 2, 29, 0, 0));
    CHECK(parse("0 12 * * 7").next_after(utc(2026, 11, 22, 12, 0)) == utc(2026, 11, 29, 12, 0));  // 7 = Sunday
    // Both day fields restricted: either matches (Vixie cron).
    CHECK(parse("0 0 1 * mon").next_after(utc(2026, 11, 22, 0, 0)) == utc(2026, 11, 23, 0, 0));
}

TEST_CASE("cron: bad expressions name the field") {
    std::string problem;
    CHECK_FALSE(CronSchedule::parse("0 3 * *", problem));
    CHECK_THAT(problem, Catch::Contains("5 fields"));
    CHECK_FALSE(CronSchedule::parse("61 * * * *", problem));
    CHECK_THAT(problem, Catch::Contains("minute '61'"));
    CHECK_FALSE(CronSchedule::parse("0 5-2 * * *", problem));
    CHECK_THAT(problem, Catch::Contains("hour range '5-2' runs backwards"));
    CHECK_FALSE(CronSchedule::parse("0 0 * foo *", problem));
    CHECK_THAT(problem, Catch::Contains("month 'foo'"));
    CHECK_FALSE(CronSchedule::parse("*/0 * * * *", problem));
    CHECK_THAT(problem, Catch::Contains("step"));
}

TEST_CASE("cron: a time zone moves the wall clock, including across DST") {
    // 03:00 in Paris is 02:00 UTC in winter (CET) and 01:00 UTC in summer (CEST).
    CHECK(parse("0 3 * * *").next_after(utc(2026, 11, 22, 12, 0), "Europe/Paris") == utc(2026, 11, 23, 2, 0));
    CHECK(parse("0 3 * * *").next_after(utc(2026, 7, 1, 12, 0), "Europe/Paris") == utc(2026, 7, 2, 1, 0));
    // 2026-03-29: Paris skips 02:00-03:00; 02:30 does not exist that day.
    CHECK(parse("30 2 * * *").next_after(utc(2026, 3, 28, 12, 0), "Europe/Paris") == utc(2026, 3, 30, 0, 30));
    // The process's own zone setting is left as it was.
    CHECK(parse("0 3 * * *").next_after(utc(2026, 11, 22, 12, 0)) == utc(2026, 11, 23, 3, 0));
}
