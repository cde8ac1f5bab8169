#include "schedule/cron.hpp"

#include <date/tz.h>

#include <array>
#include <cctype>
#include <sstream>
#include <utility>
#include <vector>

namespace segpush {

namespace {

struct FieldSpec {
    const char* name;
    int low;
    int high;
    std::vector<std::string> names;  // names[i] stands for low + i
};

const std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, {}},
    {"hour", 0, 23, {}},
    {"day of month", 1, 31, {}},
    {"month", 1, 12, {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
    {"day of week", 0, 7, {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}};

bool parse_value(const FieldSpec& spec, std::string text, int& out) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (size_t i = 0; i < spec.names.size(); ++i) {
        if (text == spec.names[i]) {
            out = spec.low + static_cast<int>(i);
            return true;
        }
    }
    if (text.empty() || text.size() > 2) return false;
    for (char c : text) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    out = std::stoi(text);
    return out >= spec.low && out <= spec.high;
}

// Sets bits[v - low] for every value `field` selects; false with `problem` on bad syntax.
bool parse_field(const FieldSpec& spec, const std::string& field, std::vector<bool>& bits, std::string& problem) {
    const std::string range_hint = " (allowed " + std::to_string(spec.low) + "-" + std::to_string(spec.high) +
                                   (spec.names.empty() ? "" : " or names like " + spec.names[0]) + ")";
    std::stringstream parts(field);
    std::string part;
    while (std::getline(parts, part, ',')) {
        int step = 1;
        if (auto slash = part.find('/'); slash != std::string::npos) {
            const std::string step_text = part.substr(slash + 1);
            if (step_text.empty() || step_text.size() > 2 ||
                step_text.find_first_not_of("0123456789") != std::string::npos || std::stoi(step_text) == 0) {
                problem = spec.name + std::string(" step '") + step_text + "' is not a positive number";
                return false;
            }
            step = std::stoi(step_text);
            part = part.substr(0, slash);
        }
        int first = spec.low, last = spec.high;
        if (part != "*") {
            auto dash = part.find('-');
            if (!parse_value(spec, part.substr(0, dash), first) ||
                (dash != std::string::npos && !parse_value(spec, part.substr(dash + 1), last))) {
                problem = spec.name + std::string(" '") + part + "' is not valid" + range_hint;
                return false;
            }
            if (dash == std::string::npos) last = (step > 1 ? spec.high : first);
            if (last < first) {
                problem = spec.name + std::string(" range '") + part + "' runs backwards";
                return false;
            }
        }
        for (int v = first; v <= last; v += step) bits[v - spec.low] = true;
    }
    if (field.empty() || field.back() == ',') {
        problem = spec.name + std::string(" is empty");
        return false;
    }
    return true;
}

// cronie's shorthands, as the 5-field expressions they stand for.
const std::array<std::pair<const char*, const char*>, 7> kShorthands = {{
    {"@hourly", "0 * * * *"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},
    {"@monthly", "0 0 1 * *"},
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
}};

const std::array<const char*, 13> kMonthNames = {"",        "January",  "February", "March",  "April",
                                                 "May",     "June",     "July",     "August", "September",
                                                 "October", "November", "December"};

// "a", "a and b", "a, b and c" (or with "or").
std::string spoken_list(const std::vector<std::string>& items, const std::string& last_joiner) {
    std::string text;
    for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) text += i + 1 == items.size() ? " " + last_joiner + " " : ", ";
        text += items[i];
    }
    return text;
}

}  // namespace

std::optional<CronSchedule> CronSchedule::parse(const std::string& text, std::string& problem) {
    std::stringstream stream(text);
    std::vector<std::string> fields;
    for (std::string field; stream >> field;) fields.push_back(field);
    if (fields.size() == 1 && fields[0][0] == '@') {
        std::string name = fields[0];
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        for (const auto& [shorthand, expression] : kShorthands) {
            if (name == shorthand) return parse(expression, problem);
        }
        problem = "unknown shorthand '" + fields[0] +
                  "'; use @hourly, @daily (or @midnight), @weekly, @monthly, @yearly (or @annually), or 5 fields";
        return std::nullopt;
    }
    if (fields.size() != 5) {
        problem = "a schedule has 5 fields (minute hour day-of-month month day-of-week), e.g. \"0 3 * * *\" for "
                  "03:00 UTC daily; found " +
                  std::to_string(fields.size());
        return std::nullopt;
    }
    CronSchedule schedule;
    for (size_t i = 0; i < 5; ++i) {
        const FieldSpec& spec = kFields[i];
        std::vector<bool> bits(spec.high - spec.low + 1);
        if (!parse_field(spec, fields[i], bits, problem)) return std::nullopt;
        for (size_t b = 0; b < bits.size(); ++b) {
            if (!bits[b]) continue;
            const int v = spec.low + static_cast<int>(b);
            switch (i) {
                case 0: schedule.minutes_.set(v); break;
                case 1: schedule.hours_.set(v); break;
                case 2: schedule.days_of_month_.set(v); break;
                case 3: schedule.months_.set(v); break;
                case 4: schedule.days_of_week_.set(v % 7); break;  // 7 is Sunday too
            }
        }
    }
    // As in cronie: a day field starting with `*` (`*`, `*/2`) does not restrict on its own, so
    // `0 9 */2 * mon-fri` runs on odd days that are weekdays, not on odd days or weekdays.
    schedule.day_of_month_restricted_ = fields[2][0] != '*';
    schedule.day_of_week_restricted_ = fields[4][0] != '*';
    schedule.follows_real_time_ = fields[0][0] == '*' || fields[1][0] == '*';
    if (const std::string never = schedule.never_fires_problem(); !never.empty()) {
        problem = "'" + text + "' never fires: " + never;
        return std::nullopt;
    }
    return schedule;
}

bool CronSchedule::day_matches(int day_of_month, int month, int day_of_week) const {
    if (!months_.test(month)) return false;
    const bool dom = days_of_month_.test(day_of_month);
    const bool dow = days_of_week_.test(day_of_week);
    if (day_of_month_restricted_ && day_of_week_restricted_) return dom || dow;
    return dom && dow;
}

// Every month has every day of the week, so only a day of the month that none of the months
// has can make an expression that never fires; Feb 29 counts, leap years have it.
std::string CronSchedule::never_fires_problem() const {
    if (!day_of_month_restricted_ || day_of_week_restricted_) return "";
    static const std::array<int, 13> kLongestMonth = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    std::vector<std::string> months;
    for (int month = 1; month <= 12; ++month) {
        if (!months_.test(month)) continue;
        for (int day = 1; day <= kLongestMonth[month]; ++day) {
            if (days_of_month_.test(day)) return "";
        }
        months.push_back(kMonthNames[month]);
    }
    std::vector<std::string> days;
    for (int day = 1; day <= 31; ++day) {
        if (days_of_month_.test(day)) days.push_back(std::to_string(day));
    }
    return spoken_list(months, "and") + (months.size() == 1 ? " has" : " have") + " no day " + spoken_list(days, "or");
}

namespace {

using Minutes = std::chrono::minutes;
using SysMinutes = date::sys_time<Minutes>;
using LocalMinutes = date::local_time<Minutes>;

// Null for UTC. The zone database (read from /usr/share/zoneinfo once) is safe to share
// between threads, unlike the process-wide zone that localtime_r reads.
const date::time_zone* find_zone(const std::string& name) {
    if (name.empty() || name == "UTC") return nullptr;
    return date::locate_zone(name);
}

// The wall clock at one instant, and the span of real time over which its UTC offset holds.
struct Wall {
    LocalMinutes local;
    SysMinutes offset_began;
    SysMinutes offset_ends;
};

Wall wall_at(const date::time_zone* zone, SysMinutes at) {
    if (!zone) return {LocalMinutes{at.time_since_epoch()}, SysMinutes::min(), SysMinutes::max()};
    const date::sys_info info = zone->get_info(at);
    return {date::floor<Minutes>(LocalMinutes{at.time_since_epoch()} + info.offset), date::ceil<Minutes>(info.begin),
            date::ceil<Minutes>(info.end)};
}

// The wall-clock minutes [first, second) that a jump forward at `at` skipped, if one did.
std::optional<std::pair<LocalMinutes, LocalMinutes>> skipped_by_jump_at(const date::time_zone* zone, SysMinutes at) {
    const date::sys_info now = zone->get_info(at);
    const date::sys_info before = zone->get_info(now.begin - std::chrono::seconds{1});
    if (before.offset >= now.offset) return std::nullopt;
    const LocalMinutes wall{at.time_since_epoch()};
    return std::make_pair(date::floor<Minutes>(wall + before.offset), date::floor<Minutes>(wall + now.offset));
}

// Whether the wall clock showed `local` already, before `at`: a repeated time's later pass.
bool shown_before(const date::time_zone* zone, LocalMinutes local, SysMinutes at) {
    const date::local_info info = zone->get_info(local);
    return info.result == date::local_info::ambiguous &&
           date::floor<Minutes>(SysMinutes{local.time_since_epoch()} - info.first.offset) < at;
}

}  // namespace

std::chrono::system_clock::time_point CronSchedule::next_after(std::chrono::system_clock::time_point after,
                                                               const std::string& timezone) const {
    using namespace std::chrono;
    const date::time_zone* zone = find_zone(timezone);
    const bool names_times_of_day = zone && !follows_real_time_;
    struct Match {
        bool day, hour, minute;
    };
    const auto match = [this](LocalMinutes local) {
        const auto day = date::floor<date::days>(local);
        const date::year_month_day date{day};
        const auto time_of_day = local - day;
        return Match{day_matches(static_cast<int>(static_cast<unsigned>(date.day())),
                                 static_cast<int>(static_cast<unsigned>(date.month())),
                                 static_cast<int>(date::weekday{day}.c_encoding())),
                     hours_.test(static_cast<size_t>(time_of_day / hours{1})),
                     minutes_.test(static_cast<size_t>(time_of_day % hours{1} / Minutes{1}))};
    };
    constexpr date::days kSearched{366 * 10};  // Feb 29 recurs within 8 years (2096, 2104)
    if (after >= system_clock::time_point::max() - 2 * kSearched) return system_clock::time_point::max();
    SysMinutes t = date::floor<Minutes>(after) + Minutes{1};
    const SysMinutes limit = t + kSearched;
    // Real time is walked forward, skipping whole days and hours that cannot match while the
    // UTC offset holds; every offset change is visited, so no minute is jumped over.
    while (t < limit) {
        const Wall wall = wall_at(zone, t);
        if (names_times_of_day && t == wall.offset_began) {
            if (auto skipped = skipped_by_jump_at(zone, t)) {
                for (LocalMinutes local = skipped->first; local < skipped->second; local += Minutes{1}) {
                    const Match m = match(local);
                    if (m.day && m.hour && m.minute) return t;
                }
            }
        }
        const Match m = match(wall.local);
        SysMinutes next = t + Minutes{1};
        if (!m.day) {
            next = t + (date::floor<date::days>(wall.local) + date::days{1} - wall.local);
        } else if (!m.hour) {
            next = t + (hours{1} - (wall.local - date::floor<hours>(wall.local)));
        } else if (m.minute && !(names_times_of_day && shown_before(zone, wall.local, t))) {
            return t;
        }
        t = std::min(next, wall.offset_ends);
    }
    return system_clock::time_point::max();
}

bool known_time_zone(const std::string& name) {
    try {
        find_zone(name);
        return true;
    } catch (const std::exception&) {  // not in the database, or no database (package tzdata)
        return false;
    }
}

std::string wall_clock_text(std::chrono::system_clock::time_point when, const std::string& timezone) {
    if (when == std::chrono::system_clock::time_point::max()) return "never";
    const SysMinutes minute = date::floor<Minutes>(when);
    const date::time_zone* zone = find_zone(timezone);
    if (!zone) return date::format("%Y-%m-%d %H:%M UTC", minute);
    const date::zoned_time<Minutes> zoned(zone, minute);
    return date::format("%Y-%m-%d %H:%M %Z", zoned) + " (" + timezone + ", UTC" + date::format("%Ez", zoned) + ")";
}

}  // namespace segpush
