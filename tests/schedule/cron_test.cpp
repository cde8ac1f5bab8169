#include <catch2/catch.hpp>

#include <ctime>
#include <stdexcept>
#include <vector>

#include "schedule/cron.hpp"

using namespace segpush;
using std::chrono::system_clock;

// Failures show times as UTC wall clock.
namespace Catch {
template <>
struct StringMaker<system_clock::time_point> {
    static std::string convert(system_clock::time_point when) { return wall_clock_text(when, "UTC"); }
};
}  // namespace Catch

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
    // A day field starting with `*` does not restrict on its own (cronie): odd days that are
    // weekdays, so not Saturday the 21st.
    CHECK(parse("0 9 */2 * mon-fri").next_after(utc(2026, 11, 20, 12, 0)) == utc(2026, 11, 23, 9, 0));
    std::string problem;
    CHECK_FALSE(CronSchedule::parse("0 0 31 2 */1", problem));
    CHECK(problem.find("never fires") != std::string::npos);
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

TEST_CASE("cron: a time zone moves the wall clock") {
    // 03:00 in Paris is 02:00 UTC in winter (CET) and 01:00 UTC in summer (CEST).
    CHECK(parse("0 3 * * *").next_after(utc(2026, 11, 22, 12, 0), "Europe/Paris") == utc(2026, 11, 23, 2, 0));
    CHECK(parse("0 3 * * *").next_after(utc(2026, 7, 1, 12, 0), "Europe/Paris") == utc(2026, 7, 2, 1, 0));
    CHECK(parse("0 3 * * *").next_after(utc(2026, 11, 22, 12, 0), "UTC") == utc(2026, 11, 23, 3, 0));
    CHECK(parse("0 3 * * *").next_after(utc(2026, 11, 22, 12, 0)) == utc(2026, 11, 23, 3, 0));
    // The day fields read the zone's date too: Monday 00:30 in Tokyo is Sunday 15:30 UTC.
    CHECK(parse("30 0 * * mon").next_after(utc(2026, 11, 22, 0, 0), "Asia/Tokyo") == utc(2026, 11, 22, 15, 30));
}

namespace {

// Every fire time of `expression` in `zone` after `from` up to `until` (UTC).
std::vector<system_clock::time_point> fires(const std::string& expression, const std::string& zone,
                                            system_clock::time_point from, system_clock::time_point until) {
    const CronSchedule schedule = parse(expression);
    std::vector<system_clock::time_point> times;
    for (auto t = schedule.next_after(from, zone); t <= until; t = schedule.next_after(t, zone)) times.push_back(t);
    return times;
}

using Times = std::vector<system_clock::time_point>;

}  // namespace

// The changes: Paris 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC) and 2026-10-25 03:00 CEST ->
// 02:00 CET (01:00 UTC); New York 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC) and 2026-11-01
// 02:00 EDT -> 01:00 EST (06:00 UTC).
TEST_CASE("cron: daylight-saving changes in Europe/Paris and America/New_York, each fire time") {
    SECTION("a time of day the spring change skips fires once, right after the jump") {
        // The days around it keep their wall time: 02:30 CET is 01:30 UTC, 02:30 CEST 00:30 UTC.
        CHECK(fires("30 2 * * *", "Europe/Paris", utc(2026, 3, 27, 12, 0), utc(2026, 3, 30, 12, 0)) ==
              Times{utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)});
        CHECK(fires("30 2 * * *", "America/New_York", utc(2026, 3, 6, 12, 0), utc(2026, 3, 9, 12, 0)) ==
              Times{utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)});
        // Several skipped times still fire once.
        CHECK(fires("0,15,45 2 * * *", "Europe/Paris", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0)) ==
              Times{utc(2026, 3, 29, 1, 0)});
        // A time of day right at the jump is the same run, not a second one.
        CHECK(fires("0 2,3 * * *", "Europe/Paris", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0)) ==
              Times{utc(2026, 3, 29, 1, 0)});
    }
    SECTION("a time of day the autumn change repeats fires on its first pass only") {
        CHECK(fires("30 2 * * *", "Europe/Paris", utc(2026, 10, 23, 12, 0), utc(2026, 10, 26, 12, 0)) ==
              Times{utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)});
        CHECK(fires("30 1 * * *", "America/New_York", utc(2026, 10, 30, 12, 0), utc(2026, 11, 2, 12, 0)) ==
              Times{utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)});
        // Asked from inside the second pass, the next run is the next day's.
        CHECK(parse("45 2 * * *").next_after(utc(2026, 10, 25, 1, 10), "Europe/Paris") == utc(2026, 10, 26, 1, 45));
    }
    SECTION("an hourly expression follows real time: every hour, whatever the wall clock shows") {
        CHECK(fires("0 * * * *", "Europe/Paris", utc(2026, 3, 28, 22, 30), utc(2026, 3, 29, 2, 30)) ==
              Times{utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0)});
        CHECK(
            fires("0 * * * *", "Europe/Paris", utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 2, 30)) ==
            Times{utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 2, 0)});
        CHECK(fires("0 * * * *", "America/New_York", utc(2026, 3, 8, 5, 30), utc(2026, 3, 8, 8, 30)) ==
              Times{utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 8, 0)});
        CHECK(fires("@hourly", "America/New_York", utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 7, 30)) ==
              Times{utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 6, 0), utc(2026, 11, 1, 7, 0)});
    }
    SECTION("an every-minute field in a skipped or repeated hour follows real time too") {
        // 02:xx does not exist on the spring day: nothing in that hour, none after the jump.
        CHECK(fires("*/30 2 * * *", "Europe/Paris", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 12, 0)).empty());
        // 01:xx happens twice on the autumn day in New York: both passes run.
        CHECK(fires("*/30 1 * * *", "America/New_York", utc(2026, 10, 31, 12, 0), utc(2026, 11, 1, 12, 0)) ==
              Times{utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 0), utc(2026, 11, 1, 6, 30)});
    }
}

TEST_CASE("cron: shorthands are the expressions they stand for") {
    const auto after = utc(2026, 11, 22, 16, 10);  // a Sunday
    CHECK(parse("@hourly").next_after(after) == utc(2026, 11, 22, 17, 0));
    CHECK(parse("@daily").next_after(after) == utc(2026, 11, 23, 0, 0));
    CHECK(parse("@midnight").next_after(after) == utc(2026, 11, 23, 0, 0));
    CHECK(parse("@weekly").next_after(after) == utc(2026, 11, 29, 0, 0));
    CHECK(parse("@monthly").next_after(after) == utc(2026, 12, 1, 0, 0));
    CHECK(parse("@yearly").next_after(after) == utc(2027, 1, 1, 0, 0));
    CHECK(parse("@annually").next_after(after) == utc(2027, 1, 1, 0, 0));
    CHECK(parse("@DAILY").next_after(after, "Europe/Paris") == utc(2026, 11, 22, 23, 0));
    std::string problem;
    CHECK_FALSE(CronSchedule::parse("@reboot", problem));
    CHECK(problem == "unknown shorthand '@reboot'; use @hourly, @daily (or @midnight), @weekly, @monthly, @yearly "
                     "(or @annually), or 5 fields");
}

TEST_CASE("cron: an expression that can never fire is refused") {
    std::string problem;
    CHECK_FALSE(CronSchedule::parse("0 3 31 2 *", problem));
    CHECK(problem == "'0 3 31 2 *' never fires: February has no day 31");
    CHECK_FALSE(CronSchedule::parse("0 0 30 2 *", problem));
    CHECK(problem == "'0 0 30 2 *' never fires: February has no day 30");
    CHECK_FALSE(CronSchedule::parse("0 0 30-31 feb *", problem));
    CHECK(problem == "'0 0 30-31 feb *' never fires: February has no day 30 or 31");
    CHECK_FALSE(CronSchedule::parse("0 0 31 2,4,jun *", problem));
    CHECK(problem == "'0 0 31 2,4,jun *' never fires: February, April and June have no day 31");
    // Possible somewhere, so accepted: Feb 29 in leap years, day 31 in one month of several, and
    // any day of the week (either day field matches when both are restricted).
    CHECK(parse("0 0 29 2 *").next_after(utc(2097, 3, 1, 0, 0)) == utc(2104, 2, 29, 0, 0));
    CHECK(parse("0 0 31 2,3 *").next_after(utc(2026, 1, 1, 0, 0)) == utc(2026, 3, 31, 0, 0));
    CHECK(parse("0 0 31 2 mon").next_after(utc(2026, 1, 1, 0, 0)) == utc(2026, 2, 2, 0, 0));
}

TEST_CASE("cron: time zones are those of the system's database") {
    CHECK(known_time_zone("UTC"));
    CHECK(known_time_zone("Europe/Paris"));
    CHECK(known_time_zone("America/New_York"));
    CHECK_FALSE(known_time_zone("Europe/Pariss"));
    CHECK_FALSE(known_time_zone("../../etc/passwd"));
    CHECK_FALSE(known_time_zone("zone.tab"));
    CHECK_THROWS_AS(parse("0 3 * * *").next_after(utc(2026, 1, 1, 0, 0), "Mars/Olympus"), std::runtime_error);
}

TEST_CASE("cron: fire times are shown on the zone's wall clock with its offset") {
    CHECK(wall_clock_text(utc(2026, 3, 29, 1, 0), "Europe/Paris") == "2026-03-29 03:00 CEST (Europe/Paris, UTC+02:00)");
    CHECK(wall_clock_text(utc(2026, 10, 25, 1, 30), "Europe/Paris") ==
          "2026-10-25 02:30 CET (Europe/Paris, UTC+01:00)");
    CHECK(wall_clock_text(utc(2026, 11, 1, 5, 30), "America/New_York") ==
          "2026-11-01 01:30 EDT (America/New_York, UTC-04:00)");
    CHECK(wall_clock_text(utc(2026, 1, 31, 3, 0), "") == "2026-01-31 03:00 UTC");
    CHECK(wall_clock_text(utc(2026, 1, 31, 3, 0), "UTC") == "2026-01-31 03:00 UTC");
}
