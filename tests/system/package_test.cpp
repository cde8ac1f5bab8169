// The .deb packages as cpack makes them from this build: their contents and dependencies, and
// the segpush they hold, extracted anywhere, finds its own plugins and checks the example
// configuration. The systemd unit passes `systemd-analyze verify` where that can run.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using segpush::test::read_file;
using segpush::test::Run;
using segpush::test::run_shell;
using segpush::test::shell_quote;
using segpush::test::TempDir;

namespace {

// The one .deb in `folder` whose name starts with `prefix` ("segpush_", "segpush-dev_").
std::string deb_named(const std::string& folder, const std::string& prefix) {
    std::string found;
    for (const auto& entry : std::filesystem::directory_iterator(folder)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) == 0 && entry.path().extension() == ".deb") {
            CHECK(found.empty());
            found = entry.path().string();
        }
    }
    INFO("no " << prefix << "*.deb in " << folder);
    REQUIRE(!found.empty());
    return found;
}

Run checked(const TempDir& dir, const std::string& command) {
    const Run run = run_shell(dir.path().string(), command);
    INFO(command << "\nstdout:\n" << run.out << "stderr:\n" << run.err);
    REQUIRE(run.exit_code == 0);
    return run;
}

}  // namespace

TEST_CASE("packaging: cpack makes the runtime and -dev packages, and the extracted segpush finds its plugins") {
    // Under the build folder: segpush loads plugins only from folders nobody else can write to,
    // all the way up, which the system temp dir is not.
    TempDir work(SEGPUSH_TRUSTED_SCRATCH_DIR);
    checked(work, shell_quote(SEGPUSH_CPACK_COMMAND) + " --config " +
                      shell_quote(std::string(SEGPUSH_BUILD_DIR) + "/CPackConfig.cmake") + " -B out");
    const std::string runtime = deb_named(work.file("out"), "segpush_");
    const std::string dev = deb_named(work.file("out"), "segpush-dev_");

    // The runtime package: the documented paths, a conffile for the configuration, and the
    // libraries the binary and plugins link as dependencies.
    const std::string contents = checked(work, "dpkg-deb -c " + shell_quote(runtime)).out;
    for (const char* path : {"./usr/bin/segpush", "./usr/lib/segpush/plugins/activecampaign.so",
                             "./usr/lib/segpush/plugins/file.so", "./usr/lib/segpush/plugins/mailchimp.so",
                             "./etc/segpush/segpush.yaml", "./usr/lib/systemd/system/segpush.service"}) {
        CHECK_THAT(contents, Catch::Contains(std::string(" ") + path + "\n"));
    }
    CHECK_THAT(contents, !Catch::Contains("include/segpush"));
    CHECK(checked(work, "dpkg-deb -f " + shell_quote(runtime) + " Package").out == "segpush\n");
    const std::string depends = checked(work, "dpkg-deb -f " + shell_quote(runtime) + " Depends").out;
    for (const char* package : {"libc6", "libstdc++6", "libcurl4", "libsqlite3-0", "libyaml-cpp", "libsystemd0",
                                "ca-certificates", "tzdata"}) {
        CHECK_THAT(depends, Catch::Contains(package));
    }
    CHECK(checked(work, "dpkg-deb -I " + shell_quote(runtime) + " conffiles").out == "/etc/segpush/segpush.yaml\n");

    // The -dev package: the plugin author kit, architecture-independent, nothing of the runtime.
    const std::string dev_contents = checked(work, "dpkg-deb -c " + shell_quote(dev)).out;
    for (const char* path :
         {"/usr/include/segpush/plugin.h", "/usr/include/segpush/plugin_kit.hpp",
          "/segpush-plugin-api/segpush-plugin-apiConfig.cmake", "/pkgconfig/segpush-plugin-api.pc"}) {
        CHECK_THAT(dev_contents, Catch::Contains(path));
    }
    CHECK_THAT(dev_contents, !Catch::Contains("/usr/bin/segpush"));
    CHECK(checked(work, "dpkg-deb -f " + shell_quote(dev) + " Architecture").out == "all\n");

    // Extracted into a folder of its own: no plugin_dir in the example, so segpush loads the
    // plugins beside itself, and says so.
    checked(work, "dpkg -x " + shell_quote(runtime) + " root");
    const std::string root = work.file("root");
    const std::string example = read_file(root + "/etc/segpush/segpush.yaml");
    CHECK_THAT(example, Catch::Contains("\nstate: /var/lib/segpush/") && !Catch::Contains("\nplugin_dir:"));
    const std::string segpush = shell_quote(root + "/usr/bin/segpush") + " --config " +
                                shell_quote(root + "/etc/segpush/segpush.yaml");
    const Run check = checked(work, "env AC_API_KEY=not-a-real-key " + segpush + " config check");
    CHECK_THAT(check.out, Catch::Contains("segpush.yaml: OK (1 segment, 1 connection, 1 export)"));
    CHECK_THAT(check.out, Catch::Contains("plugins from " + root + "/usr/lib/segpush/plugins (plugin_dir is not set"));
    const Run list = checked(work, segpush + " plugins list");
    CHECK_THAT(list.out, Catch::Contains(root + "/usr/lib/segpush/plugins/activecampaign.so") &&
                             Catch::Contains(root + "/usr/lib/segpush/plugins/file.so") &&
                             Catch::Contains(root + "/usr/lib/segpush/plugins/mailchimp.so"));

    // The unit runs serve as systemd expects of a notify service, under its own user, and
    // reloads it with SIGHUP (serve reads and checks its configuration again).
    const std::string unit = read_file(root + "/usr/lib/systemd/system/segpush.service");
    for (const char* line : {"ExecStart=/usr/bin/segpush --config /etc/segpush/segpush.yaml serve", "Type=notify",
                             "WatchdogSec=", "DynamicUser=yes", "StateDirectory=segpush", "ProtectSystem=strict",
                             "NoNewPrivileges=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n"}) {
        CHECK_THAT(unit, Catch::Contains(std::string("\n") + line));
    }
    CHECK_THAT(unit, Catch::Contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));

    // systemd-analyze verify checks every directive, and that ExecStart's program exists: point
    // a copy of the unit at the extracted binary. Containers may lack a working systemd-analyze;
    // a unit that cannot fail tells that apart from a problem in ours.
    work.write("probe/segpush-probe.service", "[Service]\nExecStart=/bin/true\n");
    if (run_shell(work.path().string(), "systemd-analyze verify probe/segpush-probe.service").exit_code != 0) {
        WARN("systemd-analyze is missing or cannot run here: the unit was not verified");
        return;
    }
    std::string relocated = unit;
    const std::string packaged_binary = "ExecStart=/usr/bin/segpush";
    relocated.replace(relocated.find(packaged_binary), packaged_binary.size(),
                      "ExecStart=" + root + "/usr/bin/segpush");
    work.write("verify/segpush.service", relocated);
    const Run verify = run_shell(work.path().string(), "systemd-analyze verify verify/segpush.service");
    INFO("systemd-analyze verify:\n" << verify.out << verify.err);
    CHECK(verify.exit_code == 0);
    CHECK(verify.err.empty());
}

TEST_CASE(
    "packaging: without plugin_dir, a missing default plugin folder is an error naming the file and the default") {
    // The build's segpush is not installed: ../lib/segpush/plugins from its folder does not exist.
    TempDir dir;
    dir.write("segpush.yaml", "segments: {}\n");
    const Run run = run_shell(dir.path().string(), std::string(SEGPUSH_BINARY) + " --config segpush.yaml config check");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 2);
    const std::string expected_dir = (std::filesystem::path(SEGPUSH_BINARY).parent_path() / "../lib/segpush/plugins")
                                         .lexically_normal()
                                         .string();
    CHECK_THAT(run.err, Catch::Contains("segpush.yaml:1:1: error: plugin_dir: plugin directory " + expected_dir +
                                        " does not exist or is not a directory (plugin_dir is not set: the default, "
                                        "../lib/segpush/plugins from the folder of the segpush binary)"));
}
