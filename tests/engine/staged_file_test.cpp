// The staged file: a run's members appended in seq order and read back by seq, whole or in
// part, across its blocks and its write buffer.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "engine/staged_file.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

// What a row held, owned (a StagedRow's views last only until the file reads on).
struct Held {
    int action;
    int64_t hash, source, line;
    std::string member_key, key_value, payload;
    bool has_payload;

    static Held of(const StagedRow& row) {
        return {row.action,
                row.hash,
                row.source,
                row.line,
                std::string(row.member_key),
                std::string(row.key_value),
                std::string(row.payload),
                row.has_payload};
    }
    bool operator==(const Held& other) const {
        return action == other.action && hash == other.hash && source == other.source && line == other.line &&
               member_key == other.member_key && key_value == other.key_value && payload == other.payload &&
               has_payload == other.has_payload;
    }
};

// Row `seq` of the test: sizes vary (some payloads larger than a block of 64 small rows),
// some emails were written in other case, every 50th is a leaver without payload.
Held expected_row(int64_t seq) {
    Held row{0,
             static_cast<int64_t>(seq * 0x9E3779B97F4A7C15ULL),
             seq % 3,
             seq + 1,
             "member" + std::to_string(seq) + "@example.com",
             "",
             "",
             true};
    if (seq % 7 == 0) row.key_value = "Member" + std::to_string(seq) + "@Example.com";
    if (seq % 50 == 0) {
        row.action = 1;
        row.has_payload = false;
    } else {
        row.payload = std::string(static_cast<size_t>(seq % 13 == 0 ? 9000 : 20 + seq % 150),
                                  static_cast<char>('a' + seq % 26));
    }
    return row;
}

void append(StagedFile& file, int64_t seq, const Held& held) {
    StagedRow row;
    row.seq = seq;
    row.action = held.action;
    row.hash = held.hash;
    row.source = held.source;
    row.line = held.line;
    row.member_key = held.member_key;
    row.key_value = held.key_value;
    row.payload = held.payload;
    row.has_payload = held.has_payload;
    file.append(row);
}

std::map<int64_t, Held> visited(StagedFile& file, const std::vector<int64_t>& seqs) {
    std::map<int64_t, Held> rows;
    int64_t last = 0;
    file.visit(seqs, [&](const StagedRow& row) {
        CHECK(row.seq > last);  // in seq order, each once
        last = row.seq;
        rows.emplace(row.seq, Held::of(row));
    });
    return rows;
}

}  // namespace

TEST_CASE("staged file: rows come back by seq, close together or spread out, across blocks and the write buffer") {
    test::TempDir dir;
    setenv("TMPDIR", dir.path().c_str(), 1);
    StagedFile file;
    // Seqs with gaps (every 10th missing), over several MiB so that most rows are written
    // out and the last ones are still buffered when read.
    std::map<int64_t, Held> all;
    for (int64_t seq = 1; seq <= 30000; ++seq) {
        if (seq % 10 == 0) continue;
        all.emplace(seq, expected_row(seq));
        append(file, seq, all.at(seq));
    }
    unsetenv("TMPDIR");
    // Made in TMPDIR and unlinked at once: nothing is left there, whatever ends the run.
    CHECK(std::filesystem::is_empty(dir.path()));
    CHECK(file.last_seq() == 29999);

    SECTION("all of them, in order") {
        std::map<int64_t, Held> rows;
        file.visit_all([&](const StagedRow& row) {
            CHECK(rows.empty() == (row.seq == 1));
            CHECK((rows.empty() || row.seq > rows.rbegin()->first));
            rows.emplace(row.seq, Held::of(row));
        });
        CHECK(rows.size() == all.size());
        CHECK(rows == all);
    }
    SECTION("a batch's seqs close together, a missing one among them") {
        std::vector<int64_t> seqs;
        for (int64_t seq = 12345; seq < 12345 + 250; ++seq) seqs.push_back(seq);
        const auto rows = visited(file, seqs);
        CHECK(rows.size() == 225);  // 25 of them are multiples of 10
        for (const auto& [seq, row] : rows) CHECK(row == all.at(seq));
    }
    SECTION("every seq at once, close together: read a few blocks at a time, none missed") {
        std::vector<int64_t> seqs;
        for (int64_t seq = 1; seq <= 30000; ++seq) seqs.push_back(seq);
        CHECK(visited(file, seqs) == all);
    }
    SECTION("spread seqs, some in one block, some missing, some past the last row, the last ones still buffered") {
        const std::vector<int64_t> seqs{1, 2, 64, 65, 640, 641, 5001, 9999, 10000, 20001, 29990, 29999, 30001, 40000};
        const auto rows = visited(file, seqs);
        std::vector<int64_t> found;
        for (const auto& [seq, row] : rows) {
            found.push_back(seq);
            CHECK(row == all.at(seq));
        }
        CHECK(found == std::vector<int64_t>{1, 2, 64, 65, 641, 5001, 9999, 20001, 29999});
    }
    SECTION("a seq no higher than the last is refused, and nothing changes") {
        Held late = expected_row(7);
        CHECK_THROWS_AS(append(file, 29999, late), std::logic_error);
        CHECK_THROWS_AS(append(file, 5, late), std::logic_error);
        const auto rows = visited(file, {5, 29999});
        CHECK(rows.at(5) == all.at(5));
        CHECK(rows.at(29999) == all.at(29999));
        append(file, 30000, late);
        CHECK(visited(file, {30000}).at(30000) == late);
    }
    SECTION("cleared, it holds nothing and takes seqs from 1 again") {
        file.clear();
        CHECK(file.empty());
        CHECK(visited(file, {1, 2, 3}).empty());
        const Held first = expected_row(2);
        append(file, 1, first);
        const auto rows = visited(file, {1, 2});
        REQUIRE(rows.size() == 1);
        CHECK(rows.at(1) == first);
    }
}

TEST_CASE("staged file: a TMPDIR that does not exist falls back to /var/tmp or /tmp") {
    test::TempDir dir;
    setenv("TMPDIR", (dir.path() / "not-there").c_str(), 1);
    StagedFile file;
    const Held row = expected_row(3);
    append(file, 3, row);
    unsetenv("TMPDIR");
    CHECK(visited(file, {3}).at(3) == row);

    // An email written as its key is not stored twice: it comes back empty, meaning the same.
    Held lower = expected_row(4);
    lower.key_value = lower.member_key;
    append(file, 4, lower);
    const Held back = visited(file, {4}).at(4);
    CHECK(back.key_value.empty());
    CHECK(back.member_key == lower.member_key);
}

TEST_CASE("staged file: a write that fails (a full disk) names the file's place, and loses no row appended before it") {
    // The file size limit stands in for a full disk: past it, writes fail (EFBIG) instead of
    // the process being stopped by SIGXFSZ.
    struct sigaction ignore {
    }, before{};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &ignore, &before);
    rlimit limit{}, restore{};
    getrlimit(RLIMIT_FSIZE, &restore);
    limit = restore;
    limit.rlim_cur = 2 << 20;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &limit) == 0);

    StagedFile file;
    std::map<int64_t, Held> appended;
    std::string error;
    int64_t seq = 1;
    for (; seq <= 100000 && error.empty(); ++seq) {
        const Held row = expected_row(seq);
        try {
            append(file, seq, row);
            appended.emplace(seq, row);
        } catch (const std::runtime_error& failure) {
            error = failure.what();
        }
    }
    REQUIRE_FALSE(error.empty());
    CHECK_THAT(error, Catch::Contains("the staging file in /") && Catch::Contains("cannot write it"));
    // The row whose append failed is not there; every one before it is, the megabyte that
    // waits to be written included: reading never writes, so it works while writing fails.
    CHECK(file.last_seq() == seq - 2);
    std::vector<int64_t> seqs;
    for (const auto& [appended_seq, row] : appended) seqs.push_back(appended_seq);
    seqs.push_back(seq - 1);
    const auto while_full = visited(file, seqs);
    setrlimit(RLIMIT_FSIZE, &restore);
    sigaction(SIGXFSZ, &before, nullptr);
    CHECK(while_full.size() == appended.size());
    CHECK(while_full == appended);
    // With room again, the buffered rows are written and the file goes on.
    const Held next = expected_row(seq);
    append(file, seq, next);
    for (int64_t more = seq + 1; more < seq + 20000; ++more) append(file, more, expected_row(more));
    const auto after = visited(file, {1, seq - 2, seq, seq + 19999});
    REQUIRE(after.size() == 4);
    CHECK(after.at(seq - 2) == appended.at(seq - 2));
    CHECK(after.at(seq) == next);
}
