// An export to the Mailchimp sandbox run end to end: a segment file, a configuration that
// points the real Mailchimp plugin at the sandbox through its `server` setting, and the real
// segpush binary.
#pragma once

#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <vector>

#include "support/mc_sandbox.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"

namespace segpush::test::mc {

struct Person {
    std::string email, first_name, last_name;
};

// Member i is member<i>@shop.test (not a domain the sandbox calls fake, as Mailchimp calls
// example.com fake).
inline std::vector<Person> people(size_t count, size_t first = 0, const std::string& suffix = "") {
    std::vector<Person> out;
    for (size_t i = first; i < first + count; ++i) {
        const std::string n = std::to_string(i);
        out.push_back({"member" + n + "@shop.test", "First" + n + suffix, "Last" + n});
    }
    return out;
}

struct McExport {
    explicit McExport(McSandbox::Options options = {}) : sandbox(std::move(options)) {}

    McSandbox sandbox;
    TempDir dir;
    std::vector<Run> history;

    void write_segment(const std::vector<Person>& rows) {
        std::string csv = "Email,FirstName,LastName\n";
        for (const auto& p : rows) csv += p.email + "," + p.first_name + "," + p.last_name + "\n";
        dir.write("news.csv", csv);
    }

    // `settings`: the export's settings object; `extra`: YAML lines added to the export;
    // `connection_extra`: lines added to the connection's settings (indented by 6).
    void write_config(const std::string& settings = "{ list_id: a1b2c3d4e5, tags: [vip] }",
                      const std::string& extra = "    on_leave: unsubscribe\n",
                      const std::string& mapping = "{ email: Email, first_name: FirstName, last_name: LastName }",
                      const std::string& connection_extra = "") {
        dir.write("segpush.yaml", std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR +
                                      "\nstate: state/segpush.db\nsegments:\n  news: { path: news.csv }\n"
                                      "connections:\n  mc:\n    plugin: mailchimp\n    privacy_consent: true\n"
                                      "    settings:\n      api_key: ${env:MC_API_KEY}\n      server: \"" +
                                      sandbox.base_url() + "\"\n      ca_bundle: \"" + sandbox.ca_file() + "\"\n" +
                                      connection_extra +
                                      "exports:\n  news_export:\n    connection: mc\n    segments: [news]\n"
                                      "    settings: " +
                                      settings + "\n    mapping: " + mapping + "\n" + extra);
    }

    Run segpush(const std::string& args) {
        Run run = run_shell(dir.path().string(), "env MC_API_KEY=" + shell_quote(sandbox.api_key()) + " " +
                                                     SEGPUSH_BINARY + " --config segpush.yaml " + args);
        history.push_back(run);
        return run;
    }

    Run run_export() { return segpush("export run news_export"); }

    // The rejected-records report the last run's summary names.
    std::string report(const Run& run) {
        std::smatch match;
        REQUIRE(std::regex_search(run.out, match, std::regex("\\n  report +([^ \\n]+)")));
        const std::string path = match[1].str();
        return read_file(path.front() == '/' ? path : dir.file(path));
    }

    void check_key_never_printed() {
        for (const auto& run : history) {
            CHECK(run.out.find(sandbox.api_key()) == std::string::npos);
            CHECK(run.err.find(sandbox.api_key()) == std::string::npos);
        }
    }
};

}  // namespace segpush::test::mc
