// The bad input catalogue: configurations, segment files, plugins, command lines and
// destinations that are wrong in every way we could think of. Each case runs the real binary
// after a successful export and checks: the exit code, a message that names the file, line or
// field, no crash (no signal, no "internal error"), and that nothing delivered was lost (the
// list keeps its members and a later good run sends nothing).
//
// The table in README.md is printed from this file:
//   segpush_reliability_tests "[.catalogue]" -s   (the case "catalogue: markdown table")
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "reliability/reliability_support.hpp"

using namespace segpush::test;
using namespace segpush::test::reliability;
namespace fs = std::filesystem;

namespace {

constexpr int kOk = 0, kFail = 1, kUsage = 2, kRejections = 3;
const char* const kWrongKey = "wrong-key-3c9e1f0a77d2";

struct Case {
    std::string name;
    std::string input;      // for the README table
    std::string behaviour;  // for the README table
    std::function<void(ExportFixture&)> setup;
    std::string args;  // segpush arguments after --config segpush.yaml
    int exit_code;
    std::vector<std::string> messages;  // each must appear in stdout + stderr
};

// Replaces `from` (which must be there) with `to` in the fixture's segpush.yaml.
void edit_config(ExportFixture& f, const std::string& from, const std::string& to) {
    std::string text = read_file(f.dir.file("segpush.yaml"));
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    f.dir.write("segpush.yaml", text);
}

const std::vector<Profile>& baseline() {
    static const std::vector<Profile> profiles = make_profiles(300);
    return profiles;
}

// The baseline plus 5 new members, so that a run has something to send.
void segment_with_new_members(ExportFixture& f) {
    auto profiles = baseline();
    auto more = make_profiles(5, 5000);
    profiles.insert(profiles.end(), more.begin(), more.end());
    f.dir.write("vip.csv", to_csv(profiles));
}

int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t size = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    close(fd);
    return ntohs(address.sin_port);
}

std::string ac_plugin_file() {
    for (const auto& entry : fs::directory_iterator(SEGPUSH_PLUGIN_DIR)) {
        if (entry.path().filename().string().find("activecampaign") != std::string::npos &&
            entry.path().extension() == ".so") {
            return entry.path().string();
        }
    }
    FAIL("no activecampaign plugin in " << SEGPUSH_PLUGIN_DIR);
    return {};
}

// A plugin folder below the build tree, whose every ancestor passes the plugin trust checks
// (the fixture's own folder, under the sticky world-writable /tmp, does not); restore()
// removes it.
std::string catalogue_scratch() {
    return std::string(SEGPUSH_TRUSTED_SCRATCH_DIR) + "/catalogue-" + std::to_string(getpid());
}

std::string trusted_plugin_dir() {
    const std::string dir = catalogue_scratch() + "/plugins";
    fs::create_directories(dir);
    for (const std::string& made : {std::string(SEGPUSH_TRUSTED_SCRATCH_DIR), catalogue_scratch(), dir}) {
        chmod(made.c_str(), 0755);  // whatever the umask
    }
    return dir;
}

// The activecampaign plugin (linked, or copied when `copy`) into a trusted plugin folder that
// the configuration then names.
std::string use_trusted_plugin_dir(ExportFixture& f, bool copy = false) {
    const std::string dir = trusted_plugin_dir();
    if (copy) {
        fs::copy_file(ac_plugin_file(), dir + "/activecampaign.so");
    } else {
        fs::create_symlink(ac_plugin_file(), dir + "/activecampaign.so");
    }
    edit_config(f, std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR, "plugin_dir: " + dir);
    return dir;
}

const std::string kRun = "export run vip_export";
const std::string kCheck = "config check";

// Nine lines of a settings block whose last stands for 10^9 strings ("billion laughs").
std::string alias_bomb() {
    std::string lines = "      a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (char level = 'b'; level <= 'i'; ++level) {
        const std::string alias = std::string("*") + static_cast<char>(level - 1);
        lines += std::string("      ") + level + ": &" + level + " [" + alias;
        for (int i = 1; i < 10; ++i) lines += ", " + alias;
        lines += "]\n";
    }
    return lines;
}

// The API key from key.txt, at `mode`, instead of the environment.
void use_key_file(ExportFixture& f, mode_t mode) {
    REQUIRE(chmod(f.dir.write("key.txt", f.sandbox.api_key()).c_str(), mode) == 0);
    edit_config(f, "${env:AC_API_KEY}", "${file:key.txt}");
}

std::vector<Case> catalogue() {
    std::vector<Case> cases;
    auto add = [&](Case c) { cases.push_back(std::move(c)); };
    auto config = [](const std::string& from, const std::string& to) {
        return [from, to](ExportFixture& f) { edit_config(f, from, to); };
    };
    auto file = [](const std::string& name, const std::string& content) {
        return [name, content](ExportFixture& f) { f.dir.write(name, content); };
    };

    // The table is laid out by hand, a case to a few lines: clang-format would put each field
    // of each case on a line of its own.
    // clang-format off
    // ---- configuration files
    add({"malformed YAML", "an unclosed flow list in segpush.yaml", "exit 2, file:line:column and 'malformed YAML'",
         config("segments: [vip]", "segments: [vip"), kRun, kUsage, {"segpush.yaml:", "malformed YAML"}});
    add({"tab indentation", "a tab character indenting a key", "exit 2, malformed YAML with the line",
         config("\n    connection: ac", "\n\tconnection: ac"), kRun, kUsage, {"segpush.yaml:", "malformed YAML"}});
    add({"config file missing", "--config points at a file that does not exist", "exit 2, names the file",
         nullptr, "--config nowhere.yaml export run vip_export", kUsage, {"nowhere.yaml"}});
    add({"config is a directory", "--config points at a folder", "exit 2, names it", nullptr,
         "--config state export run vip_export", kUsage, {"state"}});
    add({"config empty", "segpush.yaml is 0 bytes", "exit 2, 'the file is empty'", file("segpush.yaml", ""), kRun,
         kUsage, {"segpush.yaml:1", "empty"}});
    add({"config binary garbage", "random bytes with NULs as segpush.yaml", "exit 2, no crash",
         file("segpush.yaml", std::string("\x7f" "ELF\x02\x01\x01\0\0\0\xff\xfe garbage: [\0\x01", 24)), kRun, kUsage,
         {"segpush.yaml"}});
    add({"config top level is a list", "- plugin_dir: x", "exit 2, expected a map", file("segpush.yaml", "- a\n- b\n"),
         kRun, kUsage, {"segpush.yaml:1"}});
    add({"unknown top-level key", "'export:' instead of 'exports:'", "exit 2, suggests 'exports'",
         config("exports:", "export:"), kRun, kUsage, {"segpush.yaml:", "export", "exports"}});
    add({"unknown export key", "'schedul:' in an export", "exit 2, suggests 'schedule'",
         config("    connection: ac", "    schedul: \"0 3 * * *\"\n    connection: ac"), kRun, kUsage,
         {"segpush.yaml:", "schedul", "schedule"}});
    add({"wrong type: max_profiles", "max_profiles: many", "exit 2, names exports.vip_export.max_profiles",
         config("    connection: ac", "    max_profiles: many\n    connection: ac"), kRun, kUsage,
         {"segpush.yaml:", "max_profiles"}});
    add({"wrong type: segments", "segments: {a: b} (a mapping, not a list)", "exit 2, names the key",
         config("segments: [vip]", "segments: {a: b}"), kRun, kUsage, {"segpush.yaml:", "segments"}});
    add({"wrong type: mapping", "mapping is a list", "exit 2, names the mapping",
         config("mapping: { email: Email, first_name: FirstName, last_name: LastName, phone: Phone }",
                "mapping: [Email]"),
         kRun, kUsage, {"segpush.yaml:", "mapping"}});
    add({"mapping to nothing", "email: with no column", "exit 2, names mapping.email",
         config("mapping: { email: Email,", "mapping: { email: ,"), kRun, kUsage, {"segpush.yaml:", "mapping.email"}});
    add({"mapping unknown field", "mapping a field the plugin lacks", "exit 2, lists the plugin's fields",
         config("phone: Phone }", "phone: Phone, shoe_size: Size }"), kRun, kUsage,
         {"segpush.yaml:", "shoe_size"}});
    add({"required field unmapped", "mapping without email", "exit 2, says email is required",
         config("mapping: { email: Email, ", "mapping: { "), kRun, kUsage, {"segpush.yaml:", "mapping.email"}});
    add({"list_id wrong type", "list_id: abc", "exit 2, names settings.list_id",
         config("list_id: 1", "list_id: abc"), kRun, kUsage, {"segpush.yaml:", "list_id"}});
    add({"list_id missing", "settings: {}", "exit 2, list_id is required",
         config("settings: { list_id: 1 }", "settings: {}"), kRun, kUsage, {"segpush.yaml:", "list_id"}});
    add({"unknown connection setting", "'hots:' next to host", "exit 2, names the key",
         config("      timeout_seconds: 5", "      timeout_seconds: 5\n      hots: x"), kRun, kUsage,
         {"segpush.yaml:", "hots"}});
    add({"host with scheme", "host: https://...", "exit 2, says to drop the scheme",
         config("host: \"", "host: \"https://"), kRun, kUsage, {"segpush.yaml:", "host", "scheme"}});
    add({"timeout below minimum", "timeout_seconds: 1", "exit 2, names timeout_seconds",
         config("timeout_seconds: 5", "timeout_seconds: 1"), kRun, kUsage, {"segpush.yaml:", "timeout_seconds"}});
    add({"no privacy consent", "privacy_consent: false", "exit 2, explains privacy_consent",
         config("privacy_consent: true", "privacy_consent: false"), kRun, kUsage,
         {"segpush.yaml:", "privacy_consent"}});
    add({"api key env var unset", "api_key: ${env:NO_SUCH_KEY_VAR}", "exit 2, names the variable",
         config("${env:AC_API_KEY}", "${env:NO_SUCH_KEY_VAR}"), kRun, kUsage,
         {"segpush.yaml:", "NO_SUCH_KEY_VAR"}});
    add({"api key file missing", "api_key: ${file:missing-key.txt}", "exit 2, names the file",
         config("${env:AC_API_KEY}", "${file:missing-key.txt}"), kRun, kUsage,
         {"segpush.yaml:", "missing-key.txt"}});
    add({"api key given in clear", "api_key: a literal key", "exit 2, asks for a reference; key not echoed",
         config("${env:AC_API_KEY}", kWrongKey), kRun, kUsage, {"segpush.yaml:", "api_key"}});
    add({"unknown connection", "connection: acc", "exit 2, suggests 'ac'", config("connection: ac", "connection: acc"),
         kRun, kUsage, {"segpush.yaml:", "acc", "ac"}});
    add({"unknown segment", "segments: [vips]", "exit 2, suggests 'vip'", config("segments: [vip]", "segments: [vips]"),
         kRun, kUsage, {"segpush.yaml:", "vips"}});
    add({"unknown plugin", "plugin: activecampain", "exit 2, suggests activecampaign",
         config("plugin: activecampaign", "plugin: activecampain"), kRun, kUsage,
         {"segpush.yaml:", "activecampain", "activecampaign"}});
    add({"retry attempts zero", "retry: {max_attempts: 0}", "exit 2, names retry.max_attempts",
         config("max_attempts: 6", "max_attempts: 0"), kRun, kUsage, {"segpush.yaml:", "max_attempts"}});
    add({"retry unknown key", "retry: {attempts: 3}", "exit 2, names the key",
         config("max_attempts: 6", "attempts: 6"), kRun, kUsage, {"segpush.yaml:", "attempts"}});
    add({"bad schedule", "schedule: \"61 * * * *\"", "exit 2, names the schedule",
         config("    connection: ac", "    schedule: \"61 * * * *\"\n    connection: ac"), kRun, kUsage,
         {"segpush.yaml:", "schedule"}});
    add({"bad time zone", "timezone: Mars/Olympus", "exit 2, names the zone",
         config("    connection: ac", "    timezone: Mars/Olympus\n    connection: ac"), kRun, kUsage,
         {"segpush.yaml:", "Mars/Olympus"}});
    add({"include missing", "include: [missing.yaml]", "exit 2, names the file",
         config("state: state/segpush.db", "state: state/segpush.db\ninclude: [missing.yaml]"), kRun, kUsage,
         {"segpush.yaml:", "missing.yaml"}});
    add({"segment format unknown", "path: vip.txt, no source", "exit 2, asks for source:",
         config("vip: { path: vip.csv }", "vip: { path: vip.txt }"), kRun, kUsage, {"segpush.yaml:", "source"}});
    add({"segment source unknown", "source: xml", "exit 2, lists csv and jsonl",
         config("vip: { path: vip.csv }", "vip: { path: vip.csv, source: xml }"), kRun, kUsage,
         {"segpush.yaml:", "xml"}});

    // ---- segment files
    add({"segment file missing", "path names a file that does not exist", "exit 1, names the file; nothing sent",
         config("vip: { path: vip.csv }", "vip: { path: gone.csv }"), kRun, kFail, {"gone.csv"}});
    add({"segment unreadable", "the segment is a symlink loop (root can read chmod 000 files)",
         "exit 1, names the file", [](ExportFixture& f) {
             fs::remove(f.dir.file("vip.csv"));
             fs::create_symlink("vip.csv", f.dir.file("vip.csv"));
         },
         kRun, kFail, {"vip.csv"}});
    add({"segment is a directory", "path names a folder", "exit 1, names it",
         [](ExportFixture& f) {
             fs::remove(f.dir.file("vip.csv"));
             fs::create_directories(f.dir.file("vip.csv"));
         },
         kRun, kFail, {"vip.csv"}});
    add({"segment empty", "0-byte CSV", "exit 1 (no header), nothing sent or removed", file("vip.csv", ""), kRun, kFail,
         {"vip.csv"}});
    add({"segment header only", "a header and no rows", "exit 0, 0 members, nobody removed (on_leave: keep)",
         file("vip.csv", "Email,FirstName,LastName,Phone\n"), kRun, kOk, {"leaving       300"}});
    add({"missing mapped column", "no Phone column", "exit 2, names the mapping, the column and the file",
         file("vip.csv", "Email,FirstName,LastName\nmember0@example.com,First0,Last0\n"), kRun, kUsage,
         {"exports.vip_export.mapping.phone", "vip.csv", "Phone"}});
    add({"BOM and CRLF", "the same members with a UTF-8 BOM and CRLF line ends", "exit 0, all 300 unchanged",
         [](ExportFixture& f) {
             std::string csv = to_csv(baseline()), crlf = "\xEF\xBB\xBF";
             for (char c : csv) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
             f.dir.write("vip.csv", crlf);
         },
         kRun, kOk, {"0 new, 0 changed, 300 unchanged"}});
    add({"binary garbage CSV", "random bytes with NULs as the segment", "exit 2: no mapped column in its header",
         [](ExportFixture& f) {
             std::string junk;
             uint32_t x = 12345;
             for (int i = 0; i < 20000; ++i) junk += static_cast<char>((x = x * 1103515245 + 12345) >> 16);
             f.dir.write("vip.csv", junk);
         },
         kRun, kUsage, {"vip.csv"}});
    add({"unterminated quote", "a quoted field never closed", "exit 3 (succeeded_with_rejections), the row is "
         "refused with its line",
         [](ExportFixture& f) { f.dir.write("vip.csv", to_csv(baseline()) + "\"member9999@example.com,Open,Quote,\n"); },
         kRun, kRejections, {"300 unchanged", "1 invalid, refused before sending"}});
    add({"rows with extra columns", "rows with more fields than the header", "exit 3 (succeeded_with_rejections), "
         "the row refused with its line",
         [](ExportFixture& f) {
             f.dir.write("vip.csv", to_csv(baseline()) + "member9998@example.com,A,B,C,D,E\n");
         },
         kRun, kRejections, {"300 unchanged"}});
    add({"NUL bytes in a field", "a row with a NUL inside a name", "exit 3 (succeeded_with_rejections), the row "
         "refused, no crash",
         [](ExportFixture& f) {
             f.dir.write("vip.csv", to_csv(baseline()) + std::string("member9997@example.com,Nu\0l,B,\n", 31));
         },
         kRun, kRejections, {"300 unchanged"}});
    add({"invalid UTF-8", "Latin-1 bytes in a name", "exit 3 (succeeded_with_rejections), the row refused, no crash",
         [](ExportFixture& f) { f.dir.write("vip.csv", to_csv(baseline()) + "member9996@example.com,Ren\xE9,B,\n"); },
         kRun, kRejections, {"300 unchanged"}});
    add({"huge field", "a 2 MB first name", "exit 3 (succeeded_with_rejections), the row refused, no crash",
         [](ExportFixture& f) {
             f.dir.write("vip.csv", to_csv(baseline()) + "member9995@example.com," + std::string(2 << 20, 'x') + ",B,\n");
         },
         kRun, kRejections, {"300 unchanged"}});
    add({"JSONL with garbage lines", "the members as JSON Lines plus broken lines", "exit 3 "
         "(succeeded_with_rejections), broken lines reported with their line numbers",
         [](ExportFixture& f) {
             std::string jsonl;
             for (const auto& p : baseline()) {
                 jsonl += R"({"Email":")" + p.email + R"(","FirstName":")" + p.first_name + R"(","LastName":")" +
                          p.last_name + R"(","Phone":")" + p.phone + "\"}\n";
             }
             jsonl += "{not json\n[1,2,3]\n\"just a string\"\n{\"Email\": 42}\n";
             f.dir.write("vip.jsonl", jsonl);
             edit_config(f, "vip: { path: vip.csv }", "vip: { path: vip.jsonl }");
         },
         kRun, kRejections, {"300 unchanged", "4 invalid, refused before sending"}});

    // ---- plugins
    add({"plugin_dir missing", "plugin_dir names a folder that does not exist", "exit 2, names plugin_dir",
         config(std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR, "plugin_dir: /nonexistent/plugins"), kRun, kUsage,
         {"segpush.yaml:", "/nonexistent/plugins"}});
    add({"plugin_dir is a file", "plugin_dir names a regular file", "exit 2, names it",
         config(std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR, "plugin_dir: vip.csv"), kRun, kUsage,
         {"segpush.yaml:", "vip.csv"}});
    add({"only broken plugins", "plugin_dir with a text file named .so, a wrong-ABI plugin and others",
         "exit 2, unknown plugin, says files were refused",
         config(std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR, std::string("plugin_dir: ") + SEGPUSH_TEST_PLUGIN_DIR),
         kRun, kUsage, {"not_a_library.so", "wrong_abi", "activecampaign"}});
    add({"broken plugins beside the good one", "the activecampaign plugin plus a non-library .so and a wrong-ABI one",
         "exit 0: only activecampaign.so is opened (the others are not even read), the export runs",
         [](ExportFixture& f) {
             const std::string dir = use_trusted_plugin_dir(f);
             fs::copy_file(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/not_a_library.so", dir + "/not_a_library.so");
             fs::copy_file(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/wrong_abi.so", dir + "/wrong_abi.so");
         },
         kRun, kOk, {"300 unchanged"}});
    add({"--plugin-dir missing", "--plugin-dir /nonexistent", "exit 2, names it", nullptr,
         "--plugin-dir /nonexistent/dir export run vip_export", kUsage, {"/nonexistent/dir"}});

    // ---- command line
    add({"unknown export", "export run vip", "exit 2, suggests vip_export", nullptr, "export run vip", kUsage,
         {"no export named 'vip'", "vip_export"}});
    add({"export run without a name", "export run", "exit 2, usage", nullptr, "export run", kUsage, {"export run"}});
    add({"unknown flag", "--frobnicate", "exit 2, lists the options", nullptr, "export run vip_export --frobnicate",
         kUsage, {"--frobnicate"}});
    add({"unknown command", "exprot run", "exit 2, suggests export run", nullptr, "exprot run vip_export", kUsage,
         {"exprot"}});
    add({"runs show with a word", "runs show abc", "exit 2, the id must be a number", nullptr, "runs show abc", kUsage,
         {"abc"}});
    add({"runs show unknown id", "runs show 99999", "exit 2, no such run", nullptr, "runs show 99999", kUsage,
         {"99999"}});
    add({"runs show negative id", "runs show -5", "exit 2, no crash", nullptr, "runs show -5", kUsage, {"-5"}});
    add({"bad --limit", "runs list --limit lots", "exit 2, --limit needs a number", nullptr, "runs list --limit lots",
         kUsage, {"--limit"}});

    // ---- destinations (5 new members so the run has something to send)
    add({"dead server", "host is a port with nothing listening", "exit 1, failed_will_retry, names the host",
         [](ExportFixture& f) {
             segment_with_new_members(f);
             edit_config(f, f.sandbox.host(), "127.0.0.1:" + std::to_string(free_port()));
             edit_config(f, "max_attempts: 6, max_backoff_seconds: 2", "max_attempts: 2, max_backoff_seconds: 1");
         },
         kRun, kFail, {"failed_will_retry", "127.0.0.1"}});
    add({"wrong CA", "ca_bundle is a different self-signed certificate", "exit 1, says the certificate is not trusted",
         [](ExportFixture& f) {
             segment_with_new_members(f);
             const Run made = run_shell(f.dir.path().string(),
                                        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -days 2 "
                                        "-keyout other-key.pem -out other-cert.pem");
             REQUIRE(made.exit_code == 0);
             edit_config(f, f.sandbox.ca_file(), f.dir.file("other-cert.pem"));
             edit_config(f, "max_attempts: 6, max_backoff_seconds: 2", "max_attempts: 2, max_backoff_seconds: 1");
         },
         kRun, kFail, {"certificate"}});
    add({"ca_bundle missing", "ca_bundle names a file that does not exist",
         "exit 2 from config check, at its line, names the file",
         [](ExportFixture& f) {
             segment_with_new_members(f);
             edit_config(f, f.sandbox.ca_file(), f.dir.file("no-such-ca.pem"));
         },
         kCheck, kUsage, {"segpush.yaml:", "ca_bundle", "no-such-ca.pem", "does not exist"}});
    add({"ca_bundle a directory", "ca_bundle names a folder", "exit 2, at its line, 'not a file'",
         [](ExportFixture& f) {
             segment_with_new_members(f);
             edit_config(f, f.sandbox.ca_file(), f.dir.path().string());
         },
         kRun, kUsage, {"segpush.yaml:", "ca_bundle", "not a file"}});
    add({"ca_bundle not PEM", "ca_bundle is a text file", "exit 1 or 2, says the CA file is unusable",
         [](ExportFixture& f) {
             segment_with_new_members(f);
             f.dir.write("junk-ca.pem", "not a certificate\n");
             edit_config(f, f.sandbox.ca_file(), f.dir.file("junk-ca.pem"));
             edit_config(f, "max_attempts: 6, max_backoff_seconds: 2", "max_attempts: 2, max_backoff_seconds: 1");
         },
         kRun, kFail, {"junk-ca.pem"}});
    add({"bad key", "AC_API_KEY holds a wrong key", "exit 1, failed_permanently, credentials refused; the key is "
         "never printed",
         [](ExportFixture& f) {
             segment_with_new_members(f);
             chmod(f.dir.write("key.txt", kWrongKey).c_str(), 0600);  // as we tell users to
             edit_config(f, "${env:AC_API_KEY}", "${file:key.txt}");
         },
         kRun, kFail, {"failed_permanently", "credentials"}});
    add({"missing list", "list_id: 7, no such list", "exit 1, failed_permanently, names list 7",
         [](ExportFixture& f) {
             segment_with_new_members(f);
             edit_config(f, "list_id: 1", "list_id: 7");
         },
         kRun, kFail, {"failed_permanently", "7"}});

    // ---- plugin trust
    add({"world-writable plugin dir", "plugin_dir is mode 0777", "exit 2, the plugin is refused: the folder is "
         "writable by group and others, with the chmod that fixes it",
         [](ExportFixture& f) { chmod(use_trusted_plugin_dir(f).c_str(), 0777); }, kRun, kUsage,
         {"plugin 'activecampaign' was refused", "is writable by group and others (mode 0777)", "chmod go-w"}});
    add({"0666 plugin file", "activecampaign.so is mode 0666", "exit 2, the plugin is refused, with the chmod that "
         "fixes it",
         [](ExportFixture& f) { chmod((use_trusted_plugin_dir(f, true) + "/activecampaign.so").c_str(), 0666); },
         kRun, kUsage, {"activecampaign.so is writable by group and others (mode 0666)", "chmod go-w"}});
    add({"symlink out of the plugin dir", "activecampaign.so links to a copy in a world-writable folder",
         "exit 2, refused: names the link, its target and the folder at fault",
         [](ExportFixture& f) {
             const std::string dir = trusted_plugin_dir(), open = catalogue_scratch() + "/open";
             fs::create_directories(open);
             chmod(open.c_str(), 0777);
             fs::copy_file(ac_plugin_file(), open + "/activecampaign.so");
             fs::create_symlink(open + "/activecampaign.so", dir + "/activecampaign.so");
             edit_config(f, std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR, "plugin_dir: " + dir);
         },
         kRun, kUsage, {"activecampaign.so is a symbolic link to", "/open is writable by group and others"}});
    add({"crashing plugin beside the good one", "a plugin whose entry point raises SIGSEGV next to activecampaign.so",
         "exit 0: it is never opened, the export runs",
         [](ExportFixture& f) {
             fs::copy_file(std::string(SEGPUSH_MISBEHAVING_PLUGIN_DIR) + "/crash_in_entry.so",
                           use_trusted_plugin_dir(f) + "/crash_in_entry.so");
         },
         kRun, kOk, {"300 unchanged"}});
    add({"exit(0) plugin beside the good one", "a plugin whose constructor calls exit(0) next to activecampaign.so",
         "exit 0: it is never opened, the export runs (and does not end silently)",
         [](ExportFixture& f) {
             fs::copy_file(std::string(SEGPUSH_MISBEHAVING_PLUGIN_DIR) + "/exit_in_constructor.so",
                           use_trusted_plugin_dir(f) + "/exit_in_constructor.so");
         },
         kRun, kOk, {"300 unchanged"}});
    add({"plugins list with crashing plugins", "plugins list over activecampaign.so, a crashing and an exit(0) plugin",
         "exit 0, lists activecampaign, refuses the other two by name: crashed with SIGSEGV, exited with status 0",
         [](ExportFixture& f) {
             const std::string dir = use_trusted_plugin_dir(f);
             for (const char* name : {"crash_in_entry.so", "exit_in_constructor.so"}) {
                 fs::copy_file(std::string(SEGPUSH_MISBEHAVING_PLUGIN_DIR) + "/" + name, dir + "/" + name);
             }
         },
         "plugins list", kOk,
         {"activecampaign", "crash_in_entry.so: crashed with SIGSEGV while loading",
          "exit_in_constructor.so: exited with status 0 while loading"}});
    add({"needed plugin exits while loading", "activecampaign.so is a plugin whose constructor calls exit(0)",
         "exit 2, refused: exited with status 0 while loading",
         [](ExportFixture& f) {
             const std::string dir = trusted_plugin_dir();
             fs::copy_file(std::string(SEGPUSH_MISBEHAVING_PLUGIN_DIR) + "/exit_in_constructor.so", dir + "/activecampaign.so");
             edit_config(f, std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR, "plugin_dir: " + dir);
         },
         kRun, kUsage, {"plugin 'activecampaign' was refused", "exited with status 0 while loading"}});
    add({"plugin file named for another id", "activecampaign.so holds the c-example plugin",
         "exit 2, refused: it declares id 'c-example', rename it",
         [](ExportFixture& f) {
             const std::string dir = trusted_plugin_dir();
             fs::copy_file(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", dir + "/activecampaign.so");
             edit_config(f, std::string("plugin_dir: ") + SEGPUSH_PLUGIN_DIR, "plugin_dir: " + dir);
         },
         kRun, kUsage, {"plugin 'activecampaign' was refused", "declares id 'c-example'"}});

    // ---- hostile segments
    add({"a million header columns", "a CSV header of 1,000,000 columns", "exit 1, names the file and the "
         "10000-column cap, at once",
         [](ExportFixture& f) {
             std::string header = "Email,FirstName,LastName,Phone";
             for (int i = 5; i <= 1000000; ++i) header += ",c" + std::to_string(i);
             f.dir.write("vip.csv", header + "\n");
         },
         kRun, kFail, {"vip.csv", "line 1", "more than 10000 columns"}});
    add({"segment is a FIFO", "vip.csv is a named pipe nobody writes to, no fifo_timeout_seconds",
         "exit 1 at once, 'not a regular file' and how to allow a FIFO",
         [](ExportFixture& f) {
             fs::remove(f.dir.file("vip.csv"));
             REQUIRE(mkfifo(f.dir.file("vip.csv").c_str(), 0600) == 0);
         },
         kRun, kFail, {"vip.csv", "not a regular file", "fifo_timeout_seconds"}});
    add({"segment is /dev/zero", "path: /dev/zero", "exit 1 at once, names it, 'character device'",
         config("vip: { path: vip.csv }", "vip: { path: /dev/zero, source: csv }"), kRun, kFail,
         {"/dev/zero", "character device, not a regular file"}});
    add({"segment is standard input", "path: '-'", "exit 2, at its line, says to use a file or a FIFO",
         config("vip: { path: vip.csv }", "vip: { path: '-', source: csv }"), kRun, kUsage,
         {"segpush.yaml:", "standard input", "fifo_timeout_seconds"}});

    // ---- bounded configuration
    add({"alias bomb in segpush.yaml", "nine lines of anchors and aliases standing for 10^9 values in the export's "
         "settings", "exit 2 at once, at the alias past 100,000 YAML nodes",
         config("    settings: { list_id: 1 }\n", "    settings:\n      list_id: 1\n" + alias_bomb()), kRun, kUsage,
         {"segpush.yaml:26:42: error: exports.vip_export.settings.e[7]: this file holds more than 100,000 YAML nodes",
          "alias *d"}});
    add({"alias bomb in exports.d/x.yaml", "the same bomb in a contributor-editable file", "exit 2 at once, at the "
         "alias in exports.d/x.yaml",
         [](ExportFixture& f) {
             f.dir.write("exports.d/x.yaml", "exports:\n  x:\n    connection: ac\n    segments: [vip]\n"
                                             "    mapping: {email: Email}\n    settings:\n      list_id: 1\n" +
                                                 alias_bomb());
             edit_config(f, "privacy_consent: true\n", "privacy_consent: true\n    usable_by: [admins, contributors]\n");
             edit_config(f, "exports:\n", "include:\n  - path: exports.d/*.yaml\n    editable_by: contributors\nexports:\n");
         },
         kRun, kUsage, {"exports.d/x.yaml:12:42: error: exports.x.settings.e[7]: this file holds more than 100,000"}});
    add({"key file readable by everyone", "api_key: ${file:key.txt}, key.txt mode 0644",
         "exit 0: a warning names the file and chmod 600, the run proceeds",
         [](ExportFixture& f) { use_key_file(f, 0644); }, kRun, kOk,
         {"segpush.yaml:11:16: warning: connections.ac.settings.api_key: secret file key.txt can be read by group or "
          "others (mode 0644): make it private to its owner with chmod 600 key.txt", "300 unchanged"}});
    add({"key file readable by everyone, strict", "the same with strict: true", "exit 2, the same message as an error",
         [](ExportFixture& f) {
             use_key_file(f, 0644);
             edit_config(f, "state: state/segpush.db\n", "state: state/segpush.db\nstrict: true\n");
         },
         kRun, kUsage,
         {"segpush.yaml:12:16: error: connections.ac.settings.api_key: secret file key.txt can be read by group or "
          "others (mode 0644)", "strict: true makes unsafe permissions errors"}});
    // ---- reload
    add({"wrong type: catch_up", "catch_up: sometimes in an export", "exit 2, names exports.vip_export.catch_up",
         config("    connection: ac", "    catch_up: sometimes\n    connection: ac"), kCheck, kUsage,
         {"segpush.yaml:", ": error: exports.vip_export.catch_up: expected true or false"}});
    // clang-format on
    return cases;
}

void restore(ExportFixture& f) {
    for (const char* leftover : {"vip.csv", "plugins", "vip.jsonl", "key.txt", "exports.d"}) {
        std::error_code ignored;
        fs::remove_all(f.dir.file(leftover), ignored);
    }
    std::error_code ignored;
    fs::remove_all(catalogue_scratch(), ignored);
    f.dir.write("vip.csv", to_csv(baseline()));
    write_config(f);
}

}  // namespace

TEST_CASE("bad input: every case gives a clear error, never a crash, and loses nothing delivered") {
    Sandbox::Options options = fast_sandbox();
    options.config_json = R"({"rate_scale": 50, "latency_ms": 5})";  // no refused emails here
    ExportFixture fixture(options);
    restore(fixture);
    {
        const Run first = fixture.segpush(kRun);
        INFO(first.out << first.err);
        REQUIRE(first.exit_code == 0);
        require_list_exact(fixture.sandbox, baseline());
    }
    const bool verbose = std::getenv("SEGPUSH_CATALOGUE_VERBOSE") != nullptr;

    const auto cases = catalogue();
    CHECK(cases.size() >= 40);
    for (const auto& c : cases) {
        INFO("case: " << c.name);
        if (c.setup) c.setup(fixture);
        const Run run = fixture.segpush(c.args);
        const std::string output = run.out + run.err;
        if (verbose) std::cout << "=== " << c.name << ": exit " << run.exit_code << "\n" << output;
        INFO("exit " << run.exit_code << ", output:\n" << output);
        CHECK_FALSE(ended_by_signal(run.exit_code));
        CHECK(output.find("internal error") == std::string::npos);
        CHECK(run.exit_code == c.exit_code);
        for (const auto& message : c.messages) CHECK_THAT(output, Catch::Contains(message));
        CHECK(output.find(kWrongKey) == std::string::npos);
        restore(fixture);
    }

    // Nothing delivered was lost: the list still has everyone, and the state still says they
    // were delivered, so a good run sends nothing. (Cases with odd but valid rows may have
    // added their member999x.)
    const auto members = fixture.sandbox.members(1);
    for (const auto& profile : baseline()) {
        INFO(profile.email);
        REQUIRE(members.count(profile.email) == 1);
        const auto& m = members.at(profile.email);
        CHECK((m.status == "subscribed" && m.first_name == profile.first_name && m.last_name == profile.last_name &&
               m.phone == profile.phone));
    }
    for (const auto& [email, member] : members) {
        if (email.rfind("member99", 0) == 0) continue;
        INFO(email);
        CHECK(std::stoi(email.substr(6)) < 300);
    }
    const long long requests_before = fixture.sandbox.total_requests();
    const Run good = fixture.segpush(kRun);
    INFO(good.out << good.err);
    REQUIRE(good.exit_code == 0);
    CHECK_THAT(good.out, Catch::Contains("0 new, 0 changed, 300 unchanged"));
    CHECK(fixture.sandbox.total_requests() == requests_before);
    check_no_secret_anywhere(fixture, {kWrongKey});
}

TEST_CASE("catalogue: markdown table", "[.catalogue]") {
    std::cout << "| # | Case | Input | Expected behaviour |\n|---|---|---|---|\n";
    int n = 0;
    for (const auto& c : catalogue()) {
        std::cout << "| " << ++n << " | " << c.name << " | " << c.input << " | " << c.behaviour << " |\n";
    }
}

// A run waiting for a FIFO's writer (fifo_timeout_seconds far away) stops at SIGTERM, and is
// recorded as cancelled, having contacted nobody.
TEST_CASE("hostile segments: SIGTERM while a run waits for a FIFO segment's writer ends it cancelled") {
    ExportFixture fixture(fast_sandbox());
    write_config(fixture);
    edit_config(fixture, "vip: { path: vip.csv }", "vip: { path: vip.csv, fifo_timeout_seconds: 600 }");
    const std::string fifo = fixture.dir.file("vip.csv");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const long long requests_before = fixture.sandbox.total_requests();

    BackgroundProcess process(fixture.segpush_argv(kRun), fixture.dir.file("fifo.out"), fixture.dir.file("fifo.err"),
                              fixture.env());
    // The signal goes once the run holds the FIFO open, waiting for its writer: sent sooner (a
    // slow start, under a sanitizer), it would find segpush before it handles signals at all.
    const auto holds_fifo = [&] {
        std::error_code error;
        for (const auto& fd :
             std::filesystem::directory_iterator("/proc/" + std::to_string(process.pid()) + "/fd", error)) {
            if (std::filesystem::read_symlink(fd.path(), error) == fifo) return true;
        }
        return false;
    };
    const auto opened_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (process.running() && !holds_fifo() && std::chrono::steady_clock::now() < opened_by) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(process.running());
    REQUIRE(holds_fifo());
    process.signal(SIGTERM);
    // The watchdog: far below the FIFO's 600 s, so only the signal can have ended it.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (process.running() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const bool ended = !process.running();
    if (!ended) process.signal(SIGKILL);
    const Run run{process.wait(), read_file(fixture.dir.file("fifo.out")), read_file(fixture.dir.file("fifo.err"))};
    fixture.history.push_back(run);
    INFO(run.out << run.err);
    REQUIRE(ended);
    CHECK(run.exit_code == kFail);
    const std::string stopped = "cancelled while waiting for the writer of FIFO segment file " + fifo;
    CHECK_THAT(run.out + run.err, Catch::Contains(stopped));

    const auto latest = latest_run(fixture);
    CHECK(status_of(latest) == "cancelled");
    CHECK_THAT(std::string(latest["error"].GetString()),
               Catch::Contains("cancelled while waiting for the writer of FIFO segment file " + fifo +
                               "; nothing was sent"));
    CHECK(count_of(latest, "sent") == 0);
    CHECK(fixture.sandbox.total_requests() == requests_before);
    check_no_secret_anywhere(fixture);
}
