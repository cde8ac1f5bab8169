#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <cstring>
#include <filesystem>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include "plugins/host_services.hpp"
#include "plugins/registry.hpp"
#include "support/abi.hpp"
#include "support/captured_stderr.hpp"
#include "support/plugin_folder.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;
using test::captured_stderr;
using test::misbehaving;
using test::PluginFolder;
using test::refusal_for;

TEST_CASE("a plugin directory with every kind of bad file still loads the good plugin") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_TEST_PLUGIN_DIR);
    REQUIRE(registry.directory_problem().empty());

    REQUIRE(registry.loaded().size() == 1);
    CHECK(registry.loaded()[0]->id() == "c-example");
    CHECK(registry.find("c-example") != nullptr);

    CHECK_THAT(refusal_for(registry, "wrong_abi.so"),
               Catch::Contains(std::string("built for plugin ABI 2.0, this host speaks ") + kHostAbiNumber));
    CHECK_THAT(refusal_for(registry, "no_entry.so"), Catch::Contains("does not export segpush_plugin_entry"));
    CHECK_THAT(refusal_for(registry, "not_a_library.so"), Catch::Contains("not a loadable shared library"));
    CHECK_THAT(refusal_for(registry, "bad_schema.so"), Catch::Contains("connection_schema is not valid JSON"));
    CHECK_THAT(refusal_for(registry, "declines.so"), Catch::Contains("returned NULL"));
    // Both files claiming "dup" are refused, each naming the other.
    CHECK_THAT(refusal_for(registry, "dup_one.so"),
               Catch::Contains("declares id 'dup'") && Catch::Contains("dup_two.so"));
    CHECK_THAT(refusal_for(registry, "dup_two.so"),
               Catch::Contains("declares id 'dup'") && Catch::Contains("dup_one.so"));
    CHECK(registry.find("dup") == nullptr);
    CHECK(refusal_for(registry, "two_keys.so") ==
          "plugin 'broken' declares 2 key fields (SEGPUSH_FIELD_KEY): 'user_id', 'email'; a plugin declares exactly "
          "one field that identifies a member");
    CHECK(refusal_for(registry, "no_key.so") ==
          "plugin 'broken' declares no key field (SEGPUSH_FIELD_KEY) and no email field to identify members by");
    CHECK(registry.refused().size() == 9);
}

TEST_CASE("refusal reasons are one line each") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_TEST_PLUGIN_DIR);
    for (const auto& refused : registry.refused()) {
        INFO(refused.file);
        CHECK(refused.reason.find('\n') == std::string::npos);
        CHECK(!refused.reason.empty());
    }
}

TEST_CASE("a missing plugin directory is reported, not thrown") {
    const auto registry = PluginRegistry::load_directory("/nonexistent/segpush/plugins");
    CHECK_THAT(registry.directory_problem(),
               Catch::Contains("/nonexistent/segpush/plugins") && Catch::Contains("does not exist"));
    CHECK(registry.loaded().empty());
}

TEST_CASE("files that are not named like shared libraries are not tried") {
    test::TempDir dir(SEGPUSH_TRUSTED_SCRATCH_DIR);
    dir.write("README.md", "notes");
    std::filesystem::copy_file(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", dir.file("c_example.so"));
    const auto registry = PluginRegistry::load_directory(dir.path().string());
    CHECK(registry.loaded().size() == 1);
    CHECK(registry.refused().empty());
}

TEST_CASE("the real ActiveCampaign plugin loads and declares its schema") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_PLUGIN_DIR);
    const LoadedPlugin* plugin = registry.find("activecampaign");
    REQUIRE(plugin);
    CHECK(plugin->api.abi_major == SEGPUSH_ABI_MAJOR);
    CHECK_THAT(plugin->api.connection_schema, Catch::Contains("\"api_key\"") && Catch::Contains("\"x-secret\": true"));
    CHECK_THAT(plugin->api.export_schema, Catch::Contains("\"list_id\""));
    std::vector<std::string> required, optional;
    for (size_t i = 0; i < plugin->api.n_fields; ++i) {
        const auto& field = plugin->api.fields[i];
        ((field.flags & SEGPUSH_FIELD_REQUIRED) ? required : optional).push_back(field.id);
    }
    CHECK(required == std::vector<std::string>{"email"});
    CHECK(optional == std::vector<std::string>{"first_name", "last_name", "phone"});
    CHECK(plugin->limits.max_records_per_batch == 250);
    CHECK(plugin->limits.max_bytes_per_batch < 400000);
}

namespace {

struct RecordingObserver : ExportObserver {
    uint64_t last_done = 0;
    int reports = 0;
    void on_plugin_progress(uint64_t done, uint64_t, const std::string&) override {
        last_done = done;
        ++reports;
    }
    bool cancel_requested() const override { return false; }
};

segpush_value text(const char* s) { return {s, std::strlen(s)}; }

}  // namespace

TEST_CASE("the C plugin runs the whole lifecycle through the ABI, outcomes released by the plugin") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_TEST_PLUGIN_DIR);
    const LoadedPlugin* plugin = registry.find("c-example");
    REQUIRE(plugin);
    const segpush_plugin& api = plugin->api;

    segpush_error error{};
    error.struct_size = sizeof error;
    segpush_connection* connection = nullptr;
    REQUIRE(api.open_connection("{}", &connection, &error) == SEGPUSH_OK);
    REQUIRE(api.check_connection(connection, &error) == SEGPUSH_OK);

    RecordingObserver observer;
    const char* fields[] = {"email", "name"};
    segpush_export* exp = nullptr;
    REQUIRE(api.begin_export(connection, "{}", fields, 2, &observer, &exp, &error) == SEGPUSH_OK);

    const uint64_t ids[] = {10, 11, 12};
    const segpush_value values[] = {text("ada@example.com"),  text("Ada"), text("not-an-email"), {nullptr, 0},
                                    text("alan@example.com"), text("Alan")};
    const segpush_batch batch{sizeof(segpush_batch), 2, 3, ids, values, SEGPUSH_ACTION_UPSERT, nullptr};
    segpush_outcomes outcomes{};
    outcomes.struct_size = sizeof outcomes;  // as the host hands it over
    REQUIRE(api.push_batch(exp, &batch, &outcomes, &error) == SEGPUSH_OK);
    REQUIRE(outcomes.count == 3);
    CHECK(outcomes.items[0].record_id == 10);
    CHECK(outcomes.items[0].status == SEGPUSH_RECORD_ACCEPTED);
    CHECK(outcomes.items[1].status == SEGPUSH_RECORD_REJECTED);
    CHECK(std::string(outcomes.items[1].reason) == "email has no @");
    CHECK(outcomes.items[2].status == SEGPUSH_RECORD_ACCEPTED);
    REQUIRE(outcomes.release != nullptr);
    outcomes.release(&outcomes);
    CHECK(outcomes.release == nullptr);  // released exactly once, marked so

    CHECK(observer.reports == 1);
    CHECK(observer.last_done == 2);

    segpush_outcomes final_outcomes{};
    CHECK(api.finish_export(exp, &final_outcomes, &error) == SEGPUSH_OK);
    CHECK(final_outcomes.release == nullptr);
    api.close_connection(connection);
}

TEST_CASE("a plugin's CONFIG error names the field at fault") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_TEST_PLUGIN_DIR);
    const LoadedPlugin* plugin = registry.find("c-example");
    REQUIRE(plugin);
    segpush_error error{};
    error.struct_size = sizeof error;
    segpush_connection* connection = nullptr;
    REQUIRE(plugin->api.open_connection("{}", &connection, &error) == SEGPUSH_OK);
    const char* fields[] = {"name"};
    segpush_export* exp = nullptr;
    CHECK(plugin->api.begin_export(connection, "{}", fields, 1, nullptr, &exp, &error) == SEGPUSH_ERR_CONFIG);
    CHECK(std::string(error.field) == "mapping");
    plugin->api.close_connection(connection);
}

namespace {

// What one push of `emails` through a plugin's whole lifecycle gave back.
struct PushedOnce {
    std::vector<segpush_record_status> statuses;
    bool outcomes_hold_receipts = false;  // the plugin's outcome list is large enough for 1.3's receipts
};

// Opens, begins an export of "email", pushes `emails` in one batch (with the host's own,
// current-size batch struct) and finishes, as the host does.
PushedOnce push_once(const LoadedPlugin& plugin, const std::vector<const char*>& emails) {
    const segpush_plugin& api = plugin.api;
    segpush_error error{};
    error.struct_size = sizeof error;
    segpush_connection* connection = nullptr;
    REQUIRE(api.open_connection("{}", &connection, &error) == SEGPUSH_OK);
    const char* fields[] = {"email"};
    segpush_export* exp = nullptr;
    REQUIRE(api.begin_export(connection, "{}", fields, 1, nullptr, &exp, &error) == SEGPUSH_OK);
    std::vector<uint64_t> ids;
    std::vector<segpush_value> values;
    for (const char* email : emails) {
        ids.push_back(ids.size() + 1);
        values.push_back(text(email));
    }
    const segpush_batch batch{sizeof(segpush_batch), 1,      ids.size(), ids.data(), values.data(),
                              SEGPUSH_ACTION_UPSERT, nullptr};
    segpush_outcomes outcomes{};
    outcomes.struct_size = sizeof outcomes;  // as the host hands it over
    REQUIRE(api.push_batch(exp, &batch, &outcomes, &error) == SEGPUSH_OK);
    PushedOnce pushed;
    for (size_t i = 0; i < outcomes.count; ++i) pushed.statuses.push_back(outcomes.items[i].status);
    pushed.outcomes_hold_receipts = SEGPUSH_HAS_FIELD(&outcomes, segpush_outcomes, receipts);
    outcomes.release(&outcomes);
    CHECK(api.finish_export(exp, &outcomes, &error) == SEGPUSH_OK);
    api.close_connection(connection);
    return pushed;
}

const LoadedPlugin& load_only(const PluginRegistry& registry, const char* id) {
    INFO((registry.refused().empty() ? "" : registry.refused()[0].reason));
    const LoadedPlugin* plugin = registry.find(id);
    REQUIRE(plugin);
    return *plugin;
}

}  // namespace

TEST_CASE("a plugin built against the ABI 1.0 header loads and runs in this host") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_ABI_1_0_PLUGIN_DIR);
    const LoadedPlugin& plugin = load_only(registry, "c-example-abi-1-0");
    CHECK(plugin.api.abi_minor == 0);
    // Fields the 1.0 descriptor lacks read as zero, not as bytes past its end.
    CHECK(plugin.api.capabilities == 0);
    CHECK(plugin.api.collect_outcomes == nullptr);
    // The host's batch is larger than 1.0's; the plugin reads only the fields it knows.
    CHECK(push_once(plugin, {"old@example.com"}).statuses ==
          std::vector<segpush_record_status>{SEGPUSH_RECORD_ACCEPTED});
}

TEST_CASE("a plugin built against the ABI 1.1 header loads and runs in this host") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_ABI_1_1_PLUGIN_DIR);
    const LoadedPlugin& plugin = load_only(registry, "c-example-abi-1-1");
    CHECK(plugin.api.abi_minor == 1);
    CHECK((plugin.api.capabilities & SEGPUSH_CAP_EXTRA_FIELDS) == 0);
    CHECK(push_once(plugin, {"a@example.com", "b@example.com"}).statuses ==
          std::vector<segpush_record_status>{SEGPUSH_RECORD_ACCEPTED, SEGPUSH_RECORD_ACCEPTED});
}

TEST_CASE("a plugin built against the ABI 1.2 header loads and runs in this host") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_ABI_1_2_PLUGIN_DIR);
    const LoadedPlugin& plugin = load_only(registry, "c-example-abi-1-2");
    CHECK(plugin.api.abi_minor == 2);
    CHECK(plugin.api.resume_pending == nullptr);  // 1.3's addition reads as absent
    const PushedOnce pushed = push_once(plugin, {"a@example.com"});
    CHECK(pushed.statuses == std::vector<segpush_record_status>{SEGPUSH_RECORD_ACCEPTED});
    // Its outcome list is 1.2's size: the host must not read receipts from it.
    CHECK_FALSE(pushed.outcomes_hold_receipts);
}

TEST_CASE("a plugin built against the ABI 1.3 header loads and runs in this host") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_ABI_1_3_PLUGIN_DIR);
    const LoadedPlugin& plugin = load_only(registry, "c-example-abi-1-3");
    CHECK(plugin.api.abi_minor == 3);
    // The host's batch carries 1.4's removed_at after the fields 1.3 knows: never read there.
    const PushedOnce pushed = push_once(plugin, {"a@example.com", "b@example.com"});
    CHECK(pushed.statuses == std::vector<segpush_record_status>{SEGPUSH_RECORD_ACCEPTED, SEGPUSH_RECORD_ACCEPTED});
    CHECK(pushed.outcomes_hold_receipts);
}

TEST_CASE("a plugin built against the ABI 1.4 header (the previous minor version) loads and runs in this host") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_ABI_1_4_PLUGIN_DIR);
    const LoadedPlugin& plugin = load_only(registry, "c-example-abi-1-4");
    CHECK(plugin.api.abi_minor == 4);
    CHECK(plugin.api.unload == nullptr);  // 1.5's addition reads as absent
    const PushedOnce pushed = push_once(plugin, {"a@example.com", "b@example.com"});
    CHECK(pushed.statuses == std::vector<segpush_record_status>{SEGPUSH_RECORD_ACCEPTED, SEGPUSH_RECORD_ACCEPTED});
    CHECK(pushed.outcomes_hold_receipts);
}

TEST_CASE("limits a plugin leaves 0 are the host's named defaults, the others as declared") {
    const LoadedPlugin undeclared;
    CHECK(undeclared.max_records_per_batch() == SEGPUSH_DEFAULT_MAX_RECORDS_PER_BATCH);
    CHECK(undeclared.max_concurrent_pushes() == SEGPUSH_DEFAULT_MAX_CONCURRENT_PUSHES);
    const auto registry = PluginRegistry::load_directory(SEGPUSH_ABI_1_4_PLUGIN_DIR);
    const LoadedPlugin& plugin = load_only(registry, "c-example-abi-1-4");
    CHECK(plugin.max_records_per_batch() == 100);
    CHECK(plugin.max_concurrent_pushes() == 1);
}

// ---- trust: owner and permissions of the plugin, every folder above it, and where links go

namespace fs = std::filesystem;

TEST_CASE("plugin trust: a plugin folder writable by group or others is refused, naming it and the fix") {
    PluginFolder folder;
    folder.add_c_example();
    REQUIRE(PluginRegistry::load_directory(folder.dir).find("c-example"));  // trusted as made
    for (const auto& [mode, who] :
         {std::pair{0775, "group"}, std::pair{0757, "others"}, std::pair{0777, "group and others"}}) {
        INFO("mode " << std::oct << mode);
        REQUIRE(chmod(folder.dir.c_str(), mode) == 0);
        const auto registry = PluginRegistry::load_directory(folder.dir);
        CHECK(registry.loaded().empty());
        CHECK_THAT(refusal_for(registry, "c_example.so"),
                   Catch::StartsWith("not trusted: " + folder.dir + " is writable by " + who) &&
                       Catch::Contains("chmod go-w " + folder.dir));
    }
}

TEST_CASE("plugin trust: a plugin file writable by group or others is refused") {
    PluginFolder folder;
    const std::string file = folder.add_c_example();
    for (const int mode : {0775, 0757, 0666}) {
        INFO("mode " << std::oct << mode);
        REQUIRE(chmod(file.c_str(), mode) == 0);
        const auto registry = PluginRegistry::load_directory(folder.dir);
        CHECK(registry.loaded().empty());
        CHECK_THAT(refusal_for(registry, "c_example.so"),
                   Catch::Contains(file + " is writable by") && Catch::Contains("chmod go-w " + file));
    }
}

TEST_CASE("plugin trust: a writable folder anywhere above the plugin folder is refused") {
    PluginFolder folder;
    const std::string middle = folder.root.file("shared");
    const std::string dir = middle + "/plugins";
    fs::create_directories(dir);
    chmod(dir.c_str(), 0755);
    fs::copy_file(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", dir + "/c_example.so");
    REQUIRE(chmod(middle.c_str(), 0777) == 0);
    const auto registry = PluginRegistry::load_directory(dir);
    CHECK(registry.loaded().empty());
    CHECK_THAT(refusal_for(registry, "c_example.so"),
               Catch::Contains(middle + " is writable by group and others (mode 0777)"));
}

TEST_CASE("plugin trust: a sticky world-writable folder such as /tmp may be passed through, never hold plugins") {
    struct stat system_temp {};
    const std::string temp = fs::temp_directory_path().string();
    if (stat(temp.c_str(), &system_temp) != 0 || (system_temp.st_mode & 01002) != 01002) {
        WARN("the system temp dir " << temp << " is not sticky and world-writable here; nothing to show");
        return;
    }
    test::TempDir dir;  // under the system temp dir, ours and 0700: strangers cannot replace it
    REQUIRE(chmod(dir.path().c_str(), 0700) == 0);
    fs::copy_file(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", dir.file("c_example.so"));
    CHECK(PluginRegistry::load_directory(dir.path().string()).loaded().size() == 1);

    // A folder of plugins that is itself sticky and world-writable lets anyone add files to it.
    PluginFolder shared;
    shared.add_c_example();
    REQUIRE(chmod(shared.dir.c_str(), 01777) == 0);
    const auto registry = PluginRegistry::load_directory(shared.dir);
    CHECK(registry.loaded().empty());
    CHECK_THAT(refusal_for(registry, "c_example.so"),
               Catch::Contains(shared.dir + " is writable by") &&
                   Catch::Contains("must be in a folder of their own that only root or their owner can write to"));
}

TEST_CASE("plugin trust: a plugin file or folder owned by another user is refused") {
    if (geteuid() != 0) {
        WARN("not root: cannot give a file to another user");
        return;
    }
    PluginFolder folder;
    const std::string file = folder.add_c_example();
    REQUIRE(chown(file.c_str(), 65534, static_cast<gid_t>(-1)) == 0);
    auto registry = PluginRegistry::load_directory(folder.dir);
    CHECK(registry.loaded().empty());
    CHECK_THAT(refusal_for(registry, "c_example.so"),
               Catch::Contains(file + " is owned by") && Catch::Contains("uid 65534") &&
                   Catch::Contains("not by root or") && Catch::Contains("chown root " + file));

    REQUIRE(chown(file.c_str(), 0, static_cast<gid_t>(-1)) == 0);
    REQUIRE(chown(folder.dir.c_str(), 65534, static_cast<gid_t>(-1)) == 0);
    registry = PluginRegistry::load_directory(folder.dir);
    CHECK(registry.loaded().empty());
    CHECK_THAT(refusal_for(registry, "c_example.so"), Catch::Contains(folder.dir + " is owned by"));
}

TEST_CASE("plugin trust: a symbolic link out of the plugin folder loads only when its target passes the same checks") {
    PluginFolder folder;
    SECTION("a target in a folder others can write to is refused") {
        const std::string open = folder.root.file("open");
        fs::create_directory(open);
        fs::copy_file(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", open + "/c_example.so");
        REQUIRE(chmod(open.c_str(), 0777) == 0);
        fs::create_symlink(open + "/c_example.so", folder.dir + "/c-example.so");
        const auto registry = PluginRegistry::load_plugins(folder.dir, {"c-example"});
        CHECK(registry.find("c-example") == nullptr);
        const RefusedPlugin* refused = registry.refused_for("c-example");
        REQUIRE(refused);
        CHECK_THAT(refused->reason, Catch::Contains(folder.dir + "/c-example.so is a symbolic link to " + open +
                                                    "/c_example.so, and " + open + " is writable by group and others"));
    }
    SECTION("a trusted target loads, under the link's name") {
        fs::create_symlink(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", folder.dir + "/c-example.so");
        const auto registry = PluginRegistry::load_plugins(folder.dir, {"c-example"});
        const LoadedPlugin* plugin = registry.find("c-example");
        REQUIRE(plugin);
        CHECK(plugin->file == folder.dir + "/c-example.so");
        CHECK(registry.refused().empty());
    }
    SECTION("a link that leads back into a writable folder through another link is refused") {
        const std::string open = folder.root.file("open");
        fs::create_directory(open);
        REQUIRE(chmod(open.c_str(), 0777) == 0);
        fs::create_symlink(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/c_example.so", open + "/hop.so");
        fs::create_symlink(open + "/hop.so", folder.dir + "/c-example.so");
        const auto registry = PluginRegistry::load_plugins(folder.dir, {"c-example"});
        CHECK(registry.find("c-example") == nullptr);
        REQUIRE(registry.refused_for("c-example"));
        CHECK_THAT(registry.refused_for("c-example")->reason, Catch::Contains(open + " is writable by"));
    }
}

TEST_CASE("plugin loading: a command opens only <id>.so, never the other files beside it") {
    PluginFolder folder;
    folder.add_c_example("c-example.so");
    folder.add(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/not_a_library.so", "not_a_library.so");
    folder.add(misbehaving("exit_in_constructor.so"), "exit_in_constructor.so");
    const auto registry = PluginRegistry::load_plugins(folder.dir, {"c-example"});
    REQUIRE(registry.find("c-example"));
    CHECK(registry.loaded().size() == 1);
    CHECK(registry.refused().empty());  // the others were never opened
    CHECK(registry.notes().empty());
}

TEST_CASE("plugin loading: <id>.so must declare that id") {
    PluginFolder folder;
    folder.add_c_example("other.so");
    const auto registry = PluginRegistry::load_plugins(folder.dir, {"other"});
    CHECK(registry.find("other") == nullptr);
    CHECK(registry.find("c-example") == nullptr);
    const RefusedPlugin* refused = registry.refused_for("other");
    REQUIRE(refused);
    CHECK(refused->file == folder.dir + "/other.so");
    CHECK_THAT(refused->reason,
               Catch::Contains("declares id 'c-example'") && Catch::Contains("rename it to c-example.so"));
}

TEST_CASE("plugin loading: without <id>.so, the folder is searched and the note names the file that had it") {
    PluginFolder folder;
    folder.add_c_example("c_example.so");
    folder.add(std::string(SEGPUSH_TEST_PLUGIN_DIR) + "/wrong_abi.so", "wrong_abi.so");
    const auto registry = PluginRegistry::load_plugins(folder.dir, {"c-example"});
    REQUIRE(registry.find("c-example"));
    REQUIRE(registry.notes().size() == 1);
    CHECK_THAT(registry.notes()[0],
               Catch::Contains(folder.dir + "/c_example.so") && Catch::Contains("rename it to c-example.so"));
    CHECK_THAT(refusal_for(registry, "wrong_abi.so"), Catch::Contains("built for plugin ABI 2.0"));
}

TEST_CASE("plugin loading: of two files declaring one id, the one named after it is used") {
    PluginFolder folder;
    folder.add_c_example("c-example.so");
    folder.add_c_example("c_example.so");
    const auto registry = PluginRegistry::load_directory(folder.dir);
    REQUIRE(registry.find("c-example"));
    CHECK(registry.find("c-example")->file == folder.dir + "/c-example.so");
    CHECK_THAT(refusal_for(registry, "c_example.so"),
               Catch::Contains("declares id 'c-example'") && Catch::Contains("is the one used"));
}

TEST_CASE("loaded in this process, a plugin is unloaded once when its registry goes, a refused one never") {
    PluginFolder folder;
    folder.add_c_example("c-example.so");
    folder.add(std::string(SEGPUSH_WIDE_FIELDS_PLUGIN_DIR) + "/wide_fields.so", "broken.so");
    // A second thread makes the registry load plugins here rather than probe them in a child
    // first, as it does for any caller that runs threads: the refusal happens in this process.
    std::promise<void> loaded;
    std::thread other([done = loaded.get_future()]() mutable { done.wait(); });
    std::string log;
    {
        std::optional<PluginRegistry> registry;
        log = captured_stderr(folder.root, [&] { registry = PluginRegistry::load_directory(folder.dir); });
        loaded.set_value();
        other.join();
        REQUIRE(registry->find("c-example"));
        CHECK_THAT(refusal_for(*registry, "broken.so"), Catch::Contains("not sizeof(segpush_field)"));
        CHECK(log.find("unloading") == std::string::npos);  // loaded, not yet released
        log = captured_stderr(folder.root, [&] { registry.reset(); });
    }
    // Once, and only the loaded plugin's.
    const size_t first = log.find("unloading");
    CHECK(first != std::string::npos);
    CHECK(log.find("unloading", first + 1) == std::string::npos);
    CHECK_THAT(log, Catch::Contains("[c-example] unloading"));
}
