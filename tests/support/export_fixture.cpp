#include "support/export_fixture.hpp"

#include <sstream>

namespace segpush::test {

std::vector<Profile> make_profiles(size_t count, size_t first) {
    std::vector<Profile> out;
    for (size_t i = first; i < first + count; ++i) {
        const std::string n = std::to_string(i);
        out.push_back({"member" + n + "@example.com", "First" + n, "Last" + n, "+1-555-" + n});
    }
    return out;
}

std::string to_csv(const std::vector<Profile>& profiles) {
    std::string out = "Email,FirstName,LastName,Phone\n";
    for (const auto& p : profiles) out += p.email + "," + p.first_name + "," + p.last_name + "," + p.phone + "\n";
    return out;
}

ExportFixture::ExportFixture(Sandbox::Options options) : sandbox(std::move(options)) {}

void ExportFixture::write_segment(const std::vector<Profile>& profiles) { dir.write("vip.csv", to_csv(profiles)); }

void ExportFixture::write_config(const std::string& export_extra, const std::string& connection_extra) {
    dir.write("segpush.yaml", config_text(export_extra, connection_extra));
}

std::string ExportFixture::config_text(const std::string& export_extra, const std::string& connection_extra) const {
    return config_yaml("  vip: { path: vip.csv }\n", R"(  vip_export:
    connection: ac
    segments: [vip]
    settings: { list_id: 1 }
    mapping: { email: Email, first_name: FirstName, last_name: LastName, phone: Phone }
)" + export_extra,
                       connection_extra);
}

std::string ExportFixture::config_yaml(const std::string& segments, const std::string& exports,
                                       const std::string& connection_extra, const std::string& more_connections) const {
    return std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR + "\nstate: state/segpush.db\nsegments:\n" + segments +
           R"(connections:
  ac:
    plugin: activecampaign
    privacy_consent: true
    settings:
      host: ")" +
           sandbox.host() + R"("
      api_key: ${env:AC_API_KEY}
      ca_bundle: ")" +
           sandbox.ca_file() + "\"\n" + connection_extra + more_connections + "exports:\n" + exports;
}

std::vector<std::string> ExportFixture::env() const { return {"AC_API_KEY=" + sandbox.api_key()}; }

Run ExportFixture::segpush(const std::string& args) {
    Run run = run_shell(dir.path().string(), "env AC_API_KEY=" + shell_quote(sandbox.api_key()) + " " + SEGPUSH_BINARY +
                                                 " --config segpush.yaml " + args);
    history.push_back(run);
    return run;
}

std::vector<std::string> ExportFixture::segpush_argv(const std::string& args) const {
    std::vector<std::string> argv{SEGPUSH_BINARY, "--config", dir.file("segpush.yaml")};
    std::istringstream words(args);
    for (std::string word; words >> word;) argv.push_back(word);
    return argv;
}

long long ExportFixture::records_sent() {
    const auto requests = sandbox.get("/__sandbox/requests");
    long long records = 0;
    for (const auto& request : requests.GetArray()) {
        const std::string path = request["path"].GetString();
        if (path == "/api/3/contact/sync" && request["status"].GetInt() < 300) ++records;
        if (path == "/api/3/import/bulk_import" && request["status"].GetInt() < 300 && request["body"].IsObject()) {
            records += request["body"]["contacts"].Size();
        }
    }
    return records;
}

void ExportFixture::clear_request_log() { sandbox.clear_request_log(); }

}  // namespace segpush::test
