#include "reliability/reliability_support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

namespace segpush::test::reliability {

namespace {

const char* const kBulk = "POST /api/3/import/bulk_import";

std::string lower(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

}  // namespace

Segment make_segment(size_t size, size_t first) {
    Segment segment;
    for (auto& profile : make_profiles(size, first)) {
        const size_t i = std::stoul(profile.first_name.substr(5));
        if (i % 100 == 37) {
            // The host checks emails as ActiveCampaign does (an apostrophe is refused by both), so
            // all of these are rejected before sending; destination rejections come from
            // the sandbox's fail_emails (kRefusedEmails).
            switch ((i / 100) % 4) {
                case 0: profile.email = "not-an-email-" + std::to_string(i); break;
                case 1: profile.email = "member " + std::to_string(i) + "@example.com"; break;
                case 2: profile.email = "member" + std::to_string(i) + "@nodot"; break;
                default: profile.email = "o'member" + std::to_string(i) + "@example.com"; break;
            }
            segment.host_invalid.insert(profile.email);
        } else {
            segment.valid.push_back(profile);
        }
        segment.rows.push_back(profile);
    }
    return segment;
}

void mark_destination_rejected(Segment& segment, const std::vector<std::string>& emails) {
    for (const auto& email : emails) {
        auto it = std::find_if(segment.valid.begin(), segment.valid.end(),
                               [&](const Profile& p) { return p.email == email; });
        REQUIRE(it != segment.valid.end());
        segment.valid.erase(it);
        segment.dest_invalid.insert(email);
    }
}

const std::vector<std::string> kRefusedEmails = {"member5@example.com", "member10001@example.com",
                                                 "member19998@example.com"};

Sandbox::Options fast_sandbox(bool keep_state, const std::string& extra_config) {
    Sandbox::Options options;
    std::string refused;
    for (const auto& email : kRefusedEmails) refused += (refused.empty() ? "\"" : ", \"") + email + "\"";
    options.config_json = R"({"rate_scale": 50, "latency_ms": 5, "fail_emails": [)" + refused + "]" +
                          (extra_config.empty() ? "" : ", " + extra_config) + "}";
    options.keep_state = keep_state;
    return options;
}

std::string config_text(ExportFixture& fixture, const ConfigOptions& options) {
    return fixture.config_text("    retry: { max_attempts: " + std::to_string(options.max_attempts) +
                                   ", max_backoff_seconds: " + std::to_string(options.max_backoff_seconds) + " }\n" +
                                   options.export_extra,
                               "      requests_per_second: 200\n      bulk_requests_per_minute: 4000\n"
                               "      timeout_seconds: 5\n" +
                                   options.connection_extra);
}

void write_config(ExportFixture& fixture, const ConfigOptions& options) {
    fixture.dir.write("segpush.yaml", config_text(fixture, options));
}

Run run_with_fault(ExportFixture& fixture, long long after_bulk, const std::function<void()>& action,
                   const std::string& args) {
    static int serial = 0;
    const std::string name = "bg-" + std::to_string(++serial);
    const long long start = fixture.sandbox.route_count(kBulk);
    BackgroundProcess process(fixture.segpush_argv(args), fixture.dir.file(name + ".out"),
                              fixture.dir.file(name + ".err"), fixture.env());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (process.running() && fixture.sandbox.route_count(kBulk) - start < after_bulk &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const bool fault_injected_mid_run = process.running();
    action();
    const int code = process.wait();
    Run run{code, read_file(fixture.dir.file(name + ".out")), read_file(fixture.dir.file(name + ".err"))};
    fixture.history.push_back(run);
    INFO(run.out << run.err);
    CHECK(fault_injected_mid_run);  // the fault must hit a run in progress to mean anything
    return run;
}

rapidjson::Document latest_run(ExportFixture& fixture) {
    const Run list = fixture.segpush("runs list vip_export --limit 1 --json");
    REQUIRE(list.exit_code == 0);
    rapidjson::Document all;
    all.Parse(list.out.c_str());
    REQUIRE(all.IsArray());
    REQUIRE(all.Size() == 1);
    rapidjson::Document run;
    run.CopyFrom(all[0], run.GetAllocator());
    return run;
}

std::string status_of(const rapidjson::Document& run) { return run["status"].GetString(); }

int64_t count_of(const rapidjson::Document& run, const char* name) { return run["counts"][name].GetInt64(); }

void require_list_exact(Sandbox& sandbox, const std::vector<Profile>& expected) {
    const auto members = sandbox.members(1);
    size_t subscribed = 0;
    for (const auto& [email, member] : members) subscribed += member.status == "subscribed";
    CHECK(members.size() == expected.size());
    CHECK(subscribed == expected.size());
    size_t wrong = 0;
    for (const auto& profile : expected) {
        auto it = members.find(lower(profile.email));
        if (it == members.end()) {
            if (++wrong <= 5) FAIL_CHECK("missing from the list: " << profile.email);
            continue;
        }
        const SandboxMember& m = it->second;
        if (m.status != "subscribed" || m.email != profile.email || m.first_name != profile.first_name ||
            m.last_name != profile.last_name || m.phone != profile.phone) {
            if (++wrong <= 5) {
                FAIL_CHECK("differs: " << profile.email << " has " << m.email << "," << m.first_name << ","
                                       << m.last_name << "," << m.phone << "," << m.status);
            }
        }
    }
    REQUIRE(wrong == 0);
}

void check_accounting(ExportFixture& fixture, const Segment& segment) {
    const auto run = latest_run(fixture);
    INFO("latest run: " << run["id"].GetInt64() << " " << status_of(run) << " " << run["error"].GetString());
    const int64_t rows = static_cast<int64_t>(segment.rows.size());
    const int64_t host_invalid = static_cast<int64_t>(segment.host_invalid.size());
    const int64_t dest_invalid = static_cast<int64_t>(segment.dest_invalid.size());
    // Refused rows keep the run from a plain success: not everyone in the segment got in.
    CHECK(status_of(run) == (host_invalid + dest_invalid > 0 ? "succeeded_with_rejections" : "succeeded"));
    // Every record sent (or learnt from an earlier run's receipts) has its outcome, none pending.
    CHECK(count_of(run, "sent") + count_of(run, "resumed") ==
          count_of(run, "accepted") + count_of(run, "rejected") + count_of(run, "removed") +
              count_of(run, "suppressed") + count_of(run, "pending"));
    CHECK(count_of(run, "pending") == 0);
    CHECK(count_of(run, "rows_read") == rows);
    CHECK(count_of(run, "invalid") == host_invalid);
    CHECK(count_of(run, "duplicates") == 0);
    CHECK(count_of(run, "members") == rows - host_invalid);
    // Everyone is settled: accepted now, rejected now, unchanged since an earlier run, or held
    // (refused by enough earlier runs, which a run killed after its imports counts as).
    const int64_t held = count_of(run, "rejected_held");
    CHECK(count_of(run, "accepted") + count_of(run, "rejected") + count_of(run, "unchanged") + held ==
          rows - host_invalid);
    CHECK(count_of(run, "new") + count_of(run, "changed") + count_of(run, "unchanged") == rows - host_invalid);
    // Destination-rejected members are never delivered: each run sends them again, or holds them.
    CHECK(count_of(run, "rejected") + held == dest_invalid);
    CHECK(count_of(run, "accepted") + count_of(run, "unchanged") == static_cast<int64_t>(segment.valid.size()));
    // The report names every rejected (or held) row, by email, once.
    std::string report_path = run["report"].GetString();
    REQUIRE_FALSE(report_path.empty());
    if (std::filesystem::path(report_path).is_relative()) report_path = fixture.dir.file(report_path);
    const std::string report = read_file(report_path);
    REQUIRE_THAT(report, Catch::StartsWith("source,line,email,outcome,reason\n"));
    size_t lines = 0;
    for (char c : report) lines += c == '\n';
    CHECK(lines == 1 + segment.host_invalid.size() + segment.dest_invalid.size());
    for (const auto* set : {&segment.host_invalid, &segment.dest_invalid}) {
        for (const auto& email : *set) {
            const std::string quoted = email.find_first_of(",\"") == std::string::npos ? email : "\"" + email + "\"";
            if (report.find("," + quoted + ",") == std::string::npos) FAIL_CHECK("report does not name " << email);
        }
    }
}

void check_no_secret_anywhere(const ExportFixture& fixture, std::vector<std::string> secrets) {
    secrets.push_back(fixture.sandbox.api_key());
    for (const auto& secret : secrets) {
        INFO("secret: " << secret);
        for (const auto& run : fixture.history) {
            if (run.out.find(secret) != std::string::npos || run.err.find(secret) != std::string::npos) {
                FAIL_CHECK("a run printed the secret:\n" << run.out << run.err);
            }
        }
        size_t files = 0;
        for (const auto& entry : std::filesystem::recursive_directory_iterator(
                 fixture.dir.path(), std::filesystem::directory_options::skip_permission_denied)) {
            std::error_code error;
            if (!entry.is_regular_file(error)) continue;
            ++files;
            const std::string content = read_file(entry.path().string());
            if (content.find(secret) != std::string::npos) FAIL_CHECK(entry.path() << " holds the secret");
        }
        CHECK(files > 0);
    }
}

bool ended_by_signal(int exit_code) { return exit_code < 0 || exit_code >= 128; }

}  // namespace segpush::test::reliability
