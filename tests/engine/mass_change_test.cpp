// The guard against mass change measured on a diff's counts: which runs it stops and what it
// says. tests/engine/mass_change_export_test.cpp runs it end to end.
#include <catch2/catch.hpp>

#include "engine/mass_change.hpp"

using namespace segpush;

namespace {

// A diff of an export that delivered `delivered` members before: `leaving` of them left the
// segment, `changed` of the rest changed, and `new_members` joined.
RunCounts diff_counts(int64_t delivered, int64_t leaving, int64_t changed, int64_t new_members = 0) {
    RunCounts counts;
    counts.leaving = leaving;
    counts.changed = changed;
    counts.unchanged = delivered - leaving - changed;
    counts.new_members = new_members;
    counts.members = counts.changed + counts.unchanged + new_members;
    counts.rows_read = counts.members;
    return counts;
}

ExportConfig export_named(const std::string& name) {
    ExportConfig config;
    config.name = name;
    return config;
}

}  // namespace

TEST_CASE("mass change: the leaving share is measured against max_leaving_ratio, equal passes") {
    ExportConfig config = export_named("vip");
    CHECK(config.max_leaving_ratio == 0.5);
    CHECK_FALSE(find_mass_change(diff_counts(100, 50, 0), config, true, false).found());
    const MassChange over = find_mass_change(diff_counts(100, 51, 0), config, true, false);
    REQUIRE(over.found());
    CHECK(over.text() == "would remove 51 of 100 delivered members (51 %), over max_leaving_ratio 0.5");

    config.max_leaving_ratio = 0.05;
    CHECK_FALSE(find_mass_change(diff_counts(200, 10, 0), config, true, false).found());
    CHECK(find_mass_change(diff_counts(200, 11, 0), config, true, false).found());

    // The figures of a large list, with as many decimals as show it is over.
    config.max_leaving_ratio = 0.5;
    CHECK(find_mass_change(diff_counts(5000, 4812, 0), config, true, false).text() ==
          "would remove 4,812 of 5,000 delivered members (96 %), over max_leaving_ratio 0.5");
    CHECK(find_mass_change(diff_counts(10000, 5001, 0), config, true, false).text() ==
          "would remove 5,001 of 10,000 delivered members (50.01 %), over max_leaving_ratio 0.5");
}

TEST_CASE("mass change: leavers count only when they are removed") {
    const ExportConfig config = export_named("vip");
    // on_leave: keep (or a plugin that cannot remove): leavers change nothing at the destination.
    CHECK_FALSE(find_mass_change(diff_counts(100, 90, 0), config, false, false).found());
    RunCounts empty = diff_counts(100, 100, 0);
    CHECK_FALSE(find_mass_change(empty, config, false, false).found());
}

TEST_CASE("mass change: a segment without members always needs a confirmation when leavers are removed") {
    ExportConfig config = export_named("vip");
    config.max_leaving_ratio = 1;  // whatever the ratio allows
    RunCounts header_only = diff_counts(5000, 5000, 0);
    const MassChange change = find_mass_change(header_only, config, true, false);
    REQUIRE(change.found());
    CHECK(change.text() == "the segment has no members (no rows after its header), so the run would remove all "
                           "5,000 delivered members (on_leave: unsubscribe); an empty segment always needs a "
                           "confirmation");
    CHECK(change.settings.empty());
    CHECK(change.error(config) ==
          "guard against mass change: " + change.text() +
              "; nothing was sent. If this is intended, run 'segpush export run vip --allow-mass-change' once to go "
              "ahead");

    RunCounts all_invalid = header_only;
    all_invalid.rows_read = 12;
    all_invalid.invalid = 12;
    CHECK_THAT(find_mass_change(all_invalid, config, true, false).text(),
               Catch::StartsWith("the segment has no members (12 rows read, none valid)"));
}

TEST_CASE("mass change: max_changed_ratio is off by default and measured when set, never for --full") {
    ExportConfig config = export_named("vip");
    CHECK(config.max_changed_ratio == 1);
    CHECK_FALSE(find_mass_change(diff_counts(100, 0, 100), config, true, false).found());

    config.max_changed_ratio = 0.25;
    CHECK_FALSE(find_mass_change(diff_counts(100, 0, 25, 500), config, true, false).found());  // new ones do not count
    const MassChange over = find_mass_change(diff_counts(100, 0, 26), config, true, false);
    REQUIRE(over.found());
    CHECK(over.text() == "would change 26 of 100 delivered members (26 %), over max_changed_ratio 0.25");
    CHECK(over.error(config) ==
          "guard against mass change: would change 26 of 100 delivered members (26 %), over max_changed_ratio 0.25; "
          "nothing was sent. If this is intended, run 'segpush export run vip --allow-mass-change' once to go ahead, "
          "or raise max_changed_ratio (now 0.25) in the export's configuration");
    // --full resends everyone on purpose: every member it finds counts as changed.
    CHECK_FALSE(find_mass_change(diff_counts(100, 0, 100), config, true, true).found());
}

TEST_CASE("mass change: both limits over are both reported, a first delivery never is") {
    ExportConfig config = export_named("vip");
    config.max_changed_ratio = 0.1;
    const MassChange both = find_mass_change(diff_counts(1000, 600, 300), config, true, false);
    CHECK(both.findings.size() == 2);
    CHECK_THAT(both.error(config), Catch::Contains("or raise max_leaving_ratio (now 0.5) and max_changed_ratio "
                                                   "(now 0.1)"));
    // Nothing delivered before: nothing there to lose.
    CHECK_FALSE(find_mass_change(diff_counts(0, 0, 0, 1000), config, true, false).found());
    RunCounts nothing;
    CHECK_FALSE(find_mass_change(nothing, config, true, false).found());
    CHECK(grouped_digits(0) == "0");
    CHECK(grouped_digits(999) == "999");
    CHECK(grouped_digits(1000) == "1,000");
    CHECK(grouped_digits(1234567) == "1,234,567");
}
