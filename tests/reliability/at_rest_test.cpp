// Personal data and secrets at rest: what segpush leaves on disk after real runs of the real
// binary. Secrets a server echoes are scrubbed before they are stored (state file, its WAL,
// reports), files are private whatever the umask, no core dump can hold the key, and
// `segpush forget` leaves no trace of a person.
#include <catch2/catch.hpp>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "reliability/reliability_support.hpp"

using namespace segpush::test;
using namespace segpush::test::reliability;
namespace fs = std::filesystem;

namespace {

// A key with the characters that JSON and URLs escape, so that each encoding differs.
const std::string kAwkwardKey = "key-with-\"quote\"-and\\backslash/slash+plus 6f1d2c9a";

std::string json_escaped(const std::string& value) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.String(value.c_str());
    const std::string quoted = buffer.GetString();
    return quoted.substr(1, quoted.size() - 2);
}

std::string percent_encoded(const std::string& value) {
    std::string out;
    char hex[4];
    for (unsigned char c : value) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            std::snprintf(hex, sizeof hex, "%%%02X", c);
            out += hex;
        }
    }
    return out;
}

// Every form of the key a server could echo back.
std::vector<std::string> key_forms() { return {kAwkwardKey, json_escaped(kAwkwardKey), percent_encoded(kAwkwardKey)}; }

// A JSON object for the sandbox's override_routes: `status` with a message quoting every form of the key.
std::string echoing_route(const std::string& route, int status) {
    const std::string message = "denied for token " + kAwkwardKey + "; settings were {\"api_key\":\"" +
                                json_escaped(kAwkwardKey) + "\"}; url ?api_key=" + percent_encoded(kAwkwardKey);
    return "{\"override_routes\": {\"" + route + "\": {\"status\": " + std::to_string(status) +
           ", \"body\": {\"message\": \"" + json_escaped(message) + "\"}}}}";
}

// Keeps a connection to the state file open, so that its WAL outlives segpush's runs whatever
// segpush does when it closes: the scan then reads what a run wrote to the WAL too.
struct WalKeeper {
    explicit WalKeeper(const std::string& path) {
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "SELECT COUNT(*) FROM runs", nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    ~WalKeeper() { sqlite3_close(db); }
    sqlite3* db = nullptr;
};

std::string bytes_of_state(ExportFixture& f) {
    std::string bytes;
    for (const char* file : {"state/segpush.db", "state/segpush.db-wal"}) {
        if (fs::exists(f.dir.file(file))) bytes += read_file(f.dir.file(file));
    }
    return bytes;
}

mode_t mode_of(const fs::path& path) {
    struct stat info {};
    REQUIRE(::lstat(path.c_str(), &info) == 0);
    return info.st_mode & 07777;
}

}  // namespace

TEST_CASE("at rest: a server that echoes the API key leaves it in no state file, WAL, report or later output") {
    Sandbox::Options options = fast_sandbox();
    options.api_key = kAwkwardKey;
    ExportFixture f(options);
    const Segment segment = make_segment(300);
    f.write_segment(segment.rows);
    write_config(f);
    REQUIRE(f.segpush("export run vip_export").exit_code == 3);  // succeeded_with_rejections: the invalid rows
    const WalKeeper keep_wal(f.dir.file("state/segpush.db"));

    // The key refused, the 403 quoting it: the run fails and its error is stored.
    f.sandbox.configure(echoing_route("GET /api/3/users/me", 403));
    f.write_segment(make_segment(310).rows);
    const Run refused = f.segpush("export run vip_export");
    CHECK(refused.exit_code == 1);
    CHECK_THAT(refused.out + refused.err, Catch::Contains("denied for token ***"));

    // Every record of an import refused with a message quoting the key: the reasons are stored
    // and reported.
    f.sandbox.configure(R"({"override_routes": {}})");
    f.sandbox.configure(echoing_route("POST /api/3/import/bulk_import", 400));
    f.segpush("export run vip_export");
    f.sandbox.configure(R"({"override_routes": {}})");
    const auto refusing = latest_run(f);
    INFO("status " << status_of(refusing) << ", error " << refusing["error"].GetString());
    CHECK(count_of(refusing, "rejected") == 11);  // the 10 new members, and member5 (fail_emails), new to every run
    const fs::path report_path = refusing["report"].GetString();
    const std::string report = read_file(report_path.is_absolute() ? report_path.string() : f.dir.file(report_path));
    INFO(report);
    CHECK(report.find("denied for token ***") != std::string::npos);  // the reasons are kept, scrubbed

    const std::string state = bytes_of_state(f);
    CHECK(state.find("denied for token ***") != std::string::npos);  // the error is kept, scrubbed
    for (const auto& form : key_forms()) {
        INFO("form of the key: " << form);
        CHECK(state.find(form) == std::string::npos);
    }
    // Later, without the key's variable: runs show prints the stored error, scrubbed.
    const Run show = run_shell(f.dir.path().string(),
                               std::string(SEGPUSH_BINARY) + " --config segpush.yaml runs show 2");
    CHECK(show.exit_code == 0);
    CHECK_THAT(show.out, Catch::Contains("denied for token ***"));
    f.history.push_back(show);

    // Log lines as JSON: a server error quoting the key is logged with each retry, and each line
    // is one JSON object with the key scrubbed in every form (a JSON-escaped key would differ
    // from the raw one the text format scrubs).
    ConfigOptions two_tries;
    two_tries.max_attempts = 2;
    write_config(f, two_tries);
    f.sandbox.configure(echoing_route("GET /api/3/users/me", 502));
    const Run json_logged = f.segpush("--log-format json export run vip_export");
    f.sandbox.configure(R"({"override_routes": {}})");
    CHECK(json_logged.exit_code == 1);
    size_t scrubbed_lines = 0;
    std::istringstream lines(json_logged.err);
    for (std::string line; std::getline(lines, line);) {
        INFO(line);
        rapidjson::Document entry;
        entry.Parse(line.c_str(), line.size());
        REQUIRE_FALSE(entry.HasParseError());
        REQUIRE(entry.IsObject());
        const std::string message = entry["message"].GetString();
        if (message.find("denied for token ***") != std::string::npos) ++scrubbed_lines;
    }
    CHECK(scrubbed_lines >= 1);
    check_no_secret_anywhere(f, key_forms());
}

TEST_CASE("at rest: with umask 000 every file and folder segpush creates is private to its user") {
    ExportFixture f(fast_sandbox());
    const Segment segment = make_segment(3000);  // 1% invalid: a report is written
    f.write_segment(segment.rows);
    write_config(f);
    const std::string command = "umask 000 && env AC_API_KEY=" + shell_quote(f.sandbox.api_key()) + " " +
                                SEGPUSH_BINARY + " --config segpush.yaml export run vip_export";
    // While the run goes, the WAL and shared-memory files exist: their modes are read then.
    std::atomic<bool> done{false};
    std::map<std::string, mode_t> seen_while_running;
    std::thread watcher([&] {
        while (!done) {
            for (const char* file : {"state/segpush.db-wal", "state/segpush.db-shm"}) {
                struct stat info {};
                if (::stat(f.dir.file(file).c_str(), &info) == 0) seen_while_running[file] = info.st_mode & 07777;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    const Run run = run_shell(f.dir.path().string(), command);
    done = true;
    watcher.join();
    f.history.push_back(run);
    REQUIRE(run.exit_code == 3);  // succeeded_with_rejections: the invalid rows
    CHECK(seen_while_running.size() == 2);
    for (const auto& [file, mode] : seen_while_running) {
        INFO(file);
        CHECK(mode == 0600);
    }
    size_t files = 0;
    CHECK(mode_of(f.dir.file("state")) == 0700);
    for (const auto& entry : fs::recursive_directory_iterator(f.dir.file("state"))) {
        INFO(entry.path());
        CHECK(mode_of(entry.path()) == (entry.is_directory() ? 0700 : 0600));
        if (entry.is_regular_file()) ++files;
    }
    CHECK(files >= 2);  // the state file and the run's report at least
    CHECK(fs::exists(f.dir.file("state/reports/vip_export-run-1-report.csv")));
}

TEST_CASE("at rest: segpush runs with core dumps off unless SEGPUSH_CORE_DUMPS=1 asks for them") {
    ExportFixture f(fast_sandbox());
    f.write_segment(make_profiles(10));
    f.dir.write("segpush.yaml", f.config_text("    schedule: \"0 0 1 1 *\"\n"));
    int serves = 0;
    auto core_limit = [&](const std::vector<std::string>& env) {
        const std::string log = f.dir.file("serve-" + std::to_string(++serves) + ".err");
        BackgroundProcess serve(f.segpush_argv("serve"), f.dir.file("serve.out"), log, env);
        // Once serve has logged its schedules, main() is long past setting its limits.
        for (int tries = 0; tries < 500 && read_file(log).empty(); ++tries) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        std::string line;
        std::ifstream limits("/proc/" + std::to_string(serve.pid()) + "/limits");
        for (std::string text; std::getline(limits, text);) {
            if (text.rfind("Max core file size", 0) == 0) line = text;
        }
        serve.signal(SIGTERM);
        serve.wait();
        return line;
    };
    std::vector<std::string> env = f.env();
    CHECK_THAT(core_limit(env), Catch::Matches("Max core file size +0 +0 +bytes *"));
    env.push_back("SEGPUSH_CORE_DUMPS=1");
    const std::string asked = core_limit(env);
    INFO(asked);
    CHECK_FALSE(asked.empty());
    // Whatever limit this test runs under is kept: it is not forced to 0.
    struct rlimit own {};
    getrlimit(RLIMIT_CORE, &own);
    if (own.rlim_max != 0) CHECK_THAT(asked, !Catch::Matches("Max core file size +0 +0 +bytes *"));
}

TEST_CASE("at rest: segpush forget removes a person from the state file, its WAL and every report") {
    ExportFixture f(fast_sandbox());
    Segment segment = make_segment(300);
    mark_destination_rejected(segment, {"member5@example.com"});
    f.write_segment(segment.rows);
    write_config(f);
    REQUIRE(f.segpush("export run vip_export").exit_code == 3);  // succeeded_with_rejections
    const std::string delivered = segment.valid.front().email;
    const std::string refused = *segment.dest_invalid.begin();
    const std::string invalid = *segment.host_invalid.begin();
    const std::string report = read_file(f.dir.file("state/reports/vip_export-run-1-report.csv"));
    REQUIRE(report.find(refused) != std::string::npos);
    REQUIRE(report.find(invalid) != std::string::npos);

    const Run forget = f.segpush("forget " + delivered + " " + refused + " " + shell_quote(invalid) + " --json");
    INFO(forget.out << forget.err);
    REQUIRE(forget.exit_code == 0);
    rapidjson::Document answer;
    answer.Parse(forget.out.c_str());
    REQUIRE(answer.IsObject());
    CHECK(answer["delivered"].GetInt64() == 1);
    CHECK(answer["report_rows"].GetInt64() == 2);

    const std::string after = read_file(f.dir.file("state/reports/vip_export-run-1-report.csv"));
    CHECK(after.find(refused) == std::string::npos);
    CHECK(after.find(invalid) == std::string::npos);
    CHECK(std::count(after.begin(), after.end(), '\n') == std::count(report.begin(), report.end(), '\n') - 2);
    const std::string state = bytes_of_state(f);
    CHECK(state.find(delivered) == std::string::npos);
    CHECK(state.find(segment.valid.back().email) != std::string::npos);  // the others are kept

    // Still in the segment, the forgotten member is sent again as new by the next run, beside
    // the refused one, which is new to every run (it was never delivered).
    REQUIRE(f.segpush("export run vip_export").exit_code == 3);  // the refused one again
    CHECK(count_of(latest_run(f), "new") == 2);
    check_no_secret_anywhere(f);
}
