// Getting a run's members in: the export's segment files read, counted and staged into the
// run's members; what the end of reading finds (an absent column) and a stop while reading.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "engine/run_failure.hpp"
#include "engine/run_members.hpp"
#include "engine/segment_intake.hpp"
#include "state/sqlite_state_store.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

// An export "e" of the given segments, each "<name>.<source>" in `dir`, mapping email (the
// key, required) and first_name (optional) from the columns Email and First.
struct Intake {
    Intake(const test::TempDir& dir, const std::vector<std::pair<std::string, std::string>>& segments)
        : state(dir.file("state.db")),
          claim(state.history().begin_run("e", false, false)),
          members(state.delivered(), "e", claim.run_id, true) {
        export_config.name = "e";
        for (const auto& [name, source] : segments) {
            config.segments.push_back({name, source, dir.file(name + "." + source), std::nullopt, {}});
            export_config.segments.push_back(name);
        }
        plan.fields = {{"email", "Email", SEGPUSH_FIELD_EMAIL, true, "Email"},
                       {"first_name", "First name", SEGPUSH_FIELD_STRING, false, "First"}};
        plan.columns = {"Email", "First"};
        plan.column_of_field = {0, 1};
        plan.key_field = 0;
    }

    SegmentIntake open() { return SegmentIntake(config, export_config, plan, members, counts, cancel); }

    SqliteStateStore state;
    RunHistory::Claim claim;
    RunMembers members;
    Config config;
    ExportConfig export_config;
    RecordPlan plan;
    RunCounts counts;
    std::atomic<bool> cancel{false};
};

}  // namespace

TEST_CASE("segment intake: every row is counted, duplicates across files and invalid rows kept out of the members") {
    test::TempDir dir;
    dir.write("a.csv", "Email,First\nada@example.com,Ada\nnot-an-email,Nobody\nbob@example.com,Bob\n");
    dir.write("b.jsonl", "{\"Email\": \"BOB@example.com\", \"First\": \"Robert\"}\n"
                         "not json\n"
                         "{\"Email\": \"cy@example.com\"}\n");
    Intake run(dir, {{"a", "csv"}, {"b", "jsonl"}});
    SegmentIntake intake = run.open();
    CHECK_FALSE(intake.columns_checked_when_opened());  // JSON Lines has no header
    intake.stage_all();
    CHECK(intake.done());
    CHECK(intake.last_seq() == 3);
    CHECK(run.counts.rows_read == 6);
    CHECK(run.counts.invalid == 2);
    CHECK(run.counts.duplicates == 1);

    // Members are numbered in reading order, the first row of a key winning.
    const auto todo = run.members.next_todo(0, 10);
    REQUIRE(todo.size() == 3);
    const std::vector<std::pair<std::string, std::string>> expected = {{"ada@example.com", "Ada"},
                                                                       {"bob@example.com", "Bob"},
                                                                       {"cy@example.com", ""}};
    for (size_t i = 0; i < todo.size(); ++i) {
        segpush_value values[2];
        REQUIRE(decode_record(todo[i].payload, 2, values));
        CHECK(todo[i].seq == static_cast<int64_t>(i + 1));
        CHECK(std::string(values[0].data, values[0].size) == expected[i].first);
        CHECK(std::string(values[1].data ? values[1].data : "", values[1].size) == expected[i].second);
    }
    // The refused rows are reported by their file and line.
    const auto refused = run.members.reported_members(intake.sources());
    REQUIRE(refused.size() == 2);
    CHECK(refused[0].source == dir.file("a.csv"));
    CHECK(refused[0].line == 3);
    CHECK(refused[0].key == "not-an-email");
    CHECK(refused[1].source == dir.file("b.jsonl"));
    CHECK(refused[1].line == 2);
}

TEST_CASE("segment intake: a required column no JSON Lines row has stops reading, an optional one does not") {
    test::TempDir dir;
    SECTION("required") {
        dir.write("b.jsonl", "{\"email\": \"ada@example.com\", \"First\": \"Ada\"}\n");
        Intake run(dir, {{"b", "jsonl"}});
        SegmentIntake intake = run.open();
        CHECK_THROWS_WITH(intake.stage_all(),
                          Catch::Contains("segment file " + dir.file("b.jsonl") +
                                          ": no row has the column \"Email\" that the mapping reads for email "
                                          "(did you mean 'email'?)") &&
                              Catch::Contains("; its rows have "));
        CHECK_FALSE(intake.done());
    }
    SECTION("optional") {
        dir.write("b.jsonl", "{\"Email\": \"ada@example.com\"}\n");
        Intake run(dir, {{"b", "jsonl"}});
        SegmentIntake intake = run.open();
        intake.stage_all();
        CHECK(intake.done());
        CHECK(intake.last_seq() == 1);
    }
}

TEST_CASE("segment intake: a stop asked before reading ends stages nothing more and says how far it got") {
    test::TempDir dir;
    dir.write("a.csv", "Email,First\nada@example.com,Ada\n");
    Intake run(dir, {{"a", "csv"}});
    SegmentIntake intake = run.open();
    CHECK(intake.columns_checked_when_opened());
    run.cancel = true;
    try {
        intake.stage_all();
        FAIL("stage_all returned after a stop");
    } catch (const RunFailure& failure) {
        CHECK(failure.status == RunStatus::cancelled);
        CHECK(failure.message == "cancelled while reading the segment, after 0 rows; nothing was sent");
    }
    CHECK_FALSE(intake.done());
    CHECK(intake.last_seq() == 0);
}
