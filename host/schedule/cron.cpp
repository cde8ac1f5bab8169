#include "schedule/cron.hpp"

#include <array>
#include <cctype>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <sstream>
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

}  // namespace

std::optional<CronSchedule> CronSchedule::parse(const std::string& text, std::string& problem) {
    std::stringstream stream(text);
    std::vector<std::string> fields;
    for (std::string field; stream >> field;) fields.push_back(field);
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
    schedule.day_of_month_restricted_ = fields[2] != "*";
    schedule.day_of_week_restricted_ = fields[4] != "*";
    return schedule;
}

bool CronSchedule::day_matches(int day_of_month, int month, int day_of_week) const {
    if (!months_.test(month)) return false;
    const bool dom = days_of_month_.test(day_of_month);
    const bool dow = days_of_week_.test(day_of_week);
    if (day_of_month_restricted_ && day_of_week_restricted_) return dom || dow;
    return dom && dow;
}

namespace {

// localtime_r follows the process-wide TZ, so switching zones is serialised here.
class WallClock {
public:
    explicit WallClock(const std::string& timezone) : utc_(timezone.empty() || timezone == "UTC") {
        if (utc_) return;
        lock_ = std::unique_lock<std::mutex>(mutex());
        const char* previous = std::getenv("TZ");
        had_previous_ = previous != nullptr;
        if (previous) previous_ = previous;
        setenv("TZ", (":" + timezone).c_str(), 1);
        tzset();
    }
    ~WallClock() {
        if (utc_) return;
        if (had_previous_) setenv("TZ", previous_.c_str(), 1);
        else unsetenv("TZ");
        tzset();
    }
    std::tm at(std::time_t t) const {
        std::tm tm{};
        if (utc_) gmtime_r(&t, &tm);
        else localtime_r(&t, &tm);
        return tm;
    }

private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    bool utc_;
    bool had_previous_ = false;
    std::string previous_;
    std::unique_lock<std::mutex> lock_;
};

}  // namespace

std::chrono::system_clock::time_point CronSchedule::next_after(std::chrono::system_clock::time_point after,
                                                               const std::string& timezone) const {
    using namespace std::chrono;
    const WallClock clock(timezone);
    std::time_t t = system_clock::to_time_t(time_point_cast<seconds>(after));
    t = t - t % 60 + 60;  // the next whole minute
    // Whole days that cannot match are skipped a day at a time; at most ~5 years are searched,
    // enough for any satisfiable expression (Feb 29 on a given weekday recurs within 28 years
    // only for OR-ed day fields, which match far sooner).
    for (int guard = 0; guard < 5 * 366 * 24 * 60;) {
        const std::tm utc = clock.at(t);
        if (!day_matches(utc.tm_mday, utc.tm_mon + 1, utc.tm_wday)) {
            t += (24 - utc.tm_hour) * 3600 - utc.tm_min * 60;
            guard += 24 * 60;
            continue;
        }
        if (!hours_.test(utc.tm_hour)) {
            t += 3600 - utc.tm_min * 60;
            guard += 60;
            continue;
        }
        if (!minutes_.test(utc.tm_min)) {
            t += 60;
            ++guard;
            continue;
        }
        return system_clock::from_time_t(t);
    }
    return system_clock::time_point::max();
}

}  // namespace segpush
