// Plugin loading as the real binary does it: `plugins list` and `plugins describe` with plugins
// that are refused or crash, hang or exit while loading (probing the hanging one takes its full
// timeout), when a plugin is unloaded, and `export run` with such plugins beside the one it
// needs, or as that one.
#include <rapidjson/document.h>
#include <segpush/plugin.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "plugins/registry.hpp"
#include "support/plugin_folder.hpp"
#include "support/process.hpp"

using namespace segpush;
using test::misbehaving;
using test::PluginFolder;
using test::refusal_for;

namespace {

namespace fs = std::filesystem;

test::Run run_segpush(const std::string& directory, const std::string& args) {
    return test::run_shell(directory, test::shell_quote(SEGPUSH_BINARY) + " " + args);
}

}  // namespace

TEST_CASE("plugins list: a plugin that crashes, hangs or exits while loading is refused by name, the list goes on") {
    PluginFolder folder;
    folder.add_c_example();
    for (const char* name : {"crash_in_entry.so", "hang_in_entry.so", "exit_in_constructor.so"}) {
        folder.add(misbehaving(name), name);
    }
    const test::Run list = run_segpush(folder.root.path().string(), "--plugin-dir plugins plugins list");
    INFO(list.out << list.err);
    CHECK(list.exit_code == 0);
    CHECK_THAT(list.out, Catch::Contains("c-example") && Catch::Contains("Refused:"));
    CHECK_THAT(list.out, Catch::Contains("crash_in_entry.so: crashed with SIGSEGV while loading"));
    CHECK_THAT(list.out, Catch::Contains("hang_in_entry.so: did not answer within 10 s while loading"));
    CHECK_THAT(list.out, Catch::Contains("exit_in_constructor.so: exited with status 0 while loading"));
}

TEST_CASE("mapping fields of another size than segpush_field are refused, and the refused plugin is never unloaded") {
    PluginFolder folder;
    folder.add(std::string(SEGPUSH_WIDE_FIELDS_PLUGIN_DIR) + "/wide_fields.so", "broken.so");
    const auto registry = PluginRegistry::load_directory(folder.dir);
    CHECK(registry.loaded().empty());
    CHECK_THAT(refusal_for(registry, "broken.so"),
               Catch::Contains("mapping field 0 has struct_size " + std::to_string(sizeof(segpush_field) + 8)) &&
                   Catch::Contains("not sizeof(segpush_field)"));
    const test::Run describe = run_segpush(folder.root.path().string(), "--plugin-dir plugins plugins describe broken");
    INFO(describe.out << describe.err);
    CHECK(describe.exit_code != 0);
    CHECK_THAT(describe.err, Catch::Contains("not sizeof(segpush_field)"));
    CHECK_THAT(describe.err, !Catch::Contains("unloading"));
}

TEST_CASE("a plugin's unload hook runs once, in the command's process, after its load probe") {
    PluginFolder folder;
    folder.add_c_example("c-example.so");
    const test::Run describe = run_segpush(folder.root.path().string(),
                                           "--plugin-dir plugins plugins describe c-example");
    INFO(describe.out << describe.err);
    REQUIRE(describe.exit_code == 0);
    CHECK_THAT(describe.out, Catch::Contains("C example"));
    // Once: the probe's child never releases the plugin, the command releases it as it ends.
    const std::string line = "[c-example] unloading";
    const size_t first = describe.err.find(line);
    CHECK(first != std::string::npos);
    CHECK(describe.err.find(line, first + 1) == std::string::npos);
}

TEST_CASE("plugins list --json: plugins that crash or exit while loading are in refused, with the reason") {
    PluginFolder folder;
    folder.add_c_example();
    folder.add(misbehaving("crash_in_entry.so"), "crash_in_entry.so");
    folder.add(misbehaving("exit_in_constructor.so"), "exit_in_constructor.so");
    const test::Run list = run_segpush(folder.root.path().string(), "--plugin-dir plugins plugins list --json");
    INFO(list.out << list.err);
    CHECK(list.exit_code == 0);
    rapidjson::Document doc;
    doc.Parse(list.out.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    REQUIRE(doc["loaded"].Size() == 1);
    CHECK(std::string(doc["loaded"][0]["id"].GetString()) == "c-example");
    REQUIRE(doc["refused"].Size() == 2);
    CHECK(std::string(doc["refused"][0]["file"].GetString()) == "plugins/crash_in_entry.so");
    CHECK(std::string(doc["refused"][0]["reason"].GetString()) == "crashed with SIGSEGV while loading");
    CHECK(std::string(doc["refused"][1]["file"].GetString()) == "plugins/exit_in_constructor.so");
    CHECK(std::string(doc["refused"][1]["reason"].GetString()) == "exited with status 0 while loading");
}

namespace {

// A folder with an export through the file plugin, whose plugin folder (below the build tree)
// holds `file.so` from `plugin_file` and the misbehaving plugins beside it.
struct FileExport {
    PluginFolder folder;
    std::string config;

    explicit FileExport(const std::string& plugin_file) {
        folder.add(plugin_file, "file.so");
        for (const char* name : {"crash_in_entry.so", "hang_in_entry.so", "exit_in_constructor.so"}) {
            folder.add(misbehaving(name), name);
        }
        folder.root.write("vip.csv", "Email\nada@example.com\n");
        fs::create_directory(folder.root.file("out"));
        config = folder.root.write("segpush.yaml", "plugin_dir: plugins\n"
                                                   "state: state.db\n"
                                                   "segments:\n"
                                                   "  vip: { source: csv, path: vip.csv }\n"
                                                   "connections:\n"
                                                   "  files:\n"
                                                   "    plugin: file\n"
                                                   "    privacy_consent: true\n"
                                                   "    settings: { directory: out }\n"
                                                   "exports:\n"
                                                   "  vip_files:\n"
                                                   "    connection: files\n"
                                                   "    segments: [vip]\n"
                                                   "    settings: { path: vip.csv }\n"
                                                   "    mapping: { email: Email }\n");
    }
    test::Run segpush(const std::string& args) const { return run_segpush(folder.root.path().string(), args); }
};

}  // namespace

TEST_CASE("export run: a plugin that crashes, hangs or exits beside the needed one changes nothing") {
    const FileExport fixture(std::string(SEGPUSH_PLUGIN_DIR) + "/file.so");
    const test::Run check = fixture.segpush("--config segpush.yaml config check");
    INFO(check.out << check.err);
    CHECK(check.exit_code == 0);
    const test::Run run = fixture.segpush("--config segpush.yaml export run vip_files");
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    CHECK(test::read_file(fixture.folder.root.file("out/vip.csv")) == "email\r\nada@example.com\r\n");
    for (const char* name : {"crash_in_entry", "hang_in_entry", "exit_in_constructor"}) {
        CHECK((run.out + run.err + check.out + check.err).find(name) == std::string::npos);
    }
}

TEST_CASE("export run: a needed plugin that crashes or exits while loading is an error naming it, not a crash") {
    for (const char* name : {"crash_in_entry.so", "exit_in_constructor.so"}) {
        INFO(name);
        const FileExport fixture(misbehaving(name));
        const test::Run run = fixture.segpush("--config segpush.yaml export run vip_files");
        INFO(run.out << run.err);
        CHECK(run.exit_code == 2);
        CHECK_THAT(run.err, Catch::Contains("plugin 'file' was refused: plugins/file.so: ") &&
                                (Catch::Contains("crashed with SIGSEGV while loading") ||
                                 Catch::Contains("exited with status 0 while loading")));
        CHECK_FALSE(fs::exists(fixture.folder.root.file("out/vip.csv")));
    }
}
