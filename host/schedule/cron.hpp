#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>

namespace segpush {

// A standard 5-field cron expression: minute hour day-of-month month day-of-week, each a
// `*`, number, name (jan, mon), range `a-b`, step `*/n` or `a-b/n`, or a comma list.
// As in Vixie cron, when both day fields are restricted a day matching either one fires.
class CronSchedule {
public:
    // On failure returns nullopt and sets `problem` to a sentence naming the bad field.
    static std::optional<CronSchedule> parse(const std::string& text, std::string& problem);

    // The first whole minute strictly after `after` whose wall-clock time in `timezone` (an
    // IANA name; empty or "UTC" for UTC) matches. Minutes that a DST jump skips never fire;
    // minutes it repeats fire once.
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

    bool day_matches(int day_of_month, int month, int day_of_week) const;
};

}  // namespace segpush
