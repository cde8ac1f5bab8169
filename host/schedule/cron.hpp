#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>

namespace segpush {

// A standard 5-field cron expression: minute hour day-of-month month day-of-week, each a
// `*`, number, name (jan, mon), range `a-b`, step `*/n` or `a-b/n`, or a comma list; or one of
// @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually).
// As in Vixie cron, when both day fields are restricted a day matching either one fires.
class CronSchedule {
public:
    // On failure returns nullopt and sets `problem` to a sentence naming the bad field. An
    // expression that can never fire (day 31 of February) is a failure too.
    static std::optional<CronSchedule> parse(const std::string& text, std::string& problem);

    // The first whole minute strictly after `after` at which the schedule fires, reading the
    // wall clock of `timezone` (an IANA name known to known_time_zone; empty or "UTC" for UTC).
    // Daylight-saving changes are handled as cronie does. An expression whose minute or hour
    // field starts with `*` follows real time: it fires whenever the wall clock shows a
    // matching minute, so both passes of a repeated hour and none of a skipped one. Any other
    // expression names its times of day: a time the clock shows twice fires on the first pass
    // only, and times the clock skips fire once, at the first minute after the jump.
    // Throws std::runtime_error for an unknown time zone.
    std::chrono::system_clock::time_point next_after(std::chrono::system_clock::time_point after,
                                                     const std::string& timezone = "") const;

private:
    std::bitset<60> minutes_;
    std::bitset<24> hours_;
    std::bitset<32> days_of_month_;
    std::bitset<13> months_;
    std::bitset<7> days_of_week_;
    bool day_of_month_restricted_ = false;
    bool day_of_week_restricted_ = false;
    bool follows_real_time_ = false;  // the minute or hour field starts with `*`

    bool day_matches(int day_of_month, int month, int day_of_week) const;
    std::string never_fires_problem() const;
};

// Whether `name` is UTC or a zone of the system's time zone database (/usr/share/zoneinfo).
bool known_time_zone(const std::string& name);

// `when` on the wall clock of `timezone`, with the zone's abbreviation and, outside UTC, the
// zone and its UTC offset so the time is unambiguous: "2026-03-29 03:00 CEST (Europe/Paris,
// UTC+02:00)", "2026-01-31 03:00 UTC".
std::string wall_clock_text(std::chrono::system_clock::time_point when, const std::string& timezone);

}  // namespace segpush
