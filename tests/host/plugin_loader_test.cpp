#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <vector>

#include "plugins/host_services.hpp"
#include "plugins/registry.hpp"
#include "support/abi.hpp"
#include "support/temp_dir.hpp"

using namespace segpush;

namespace {

std::string refusal_for(const PluginRegistry& registry, const std::string& file_name) {
    for (const auto& refused : registry.refused()) {
        if (std::filesystem::path(refused.file).filename() == file_name) return refused.reason;
    }
    return "(not refused)";
}

}  // namespace

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
    CHECK_THAT(refusal_for(registry, "dup_one.so"), Catch::Contains("declares id 'dup'") && Catch::Contains("dup_two.so"));
    CHECK_THAT(refusal_for(registry, "dup_two.so"), Catch::Contains("declares id 'dup'") && Catch::Contains("dup_one.so"));
    CHECK(registry.find("dup") == nullptr);
    CHECK(registry.refused().size() == 7);
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
    CHECK_THAT(registry.directory_problem(), Catch::Contains("/nonexistent/segpush/plugins") && Catch::Contains("does not exist"));
    CHECK(registry.loaded().empty());
}

TEST_CASE("files that are not named like shared libraries are not tried") {
    test::TempDir dir;
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
    const segpush_value values[] = {text("ada@example.com"), text("Ada"),
                                    text("not-an-email"),    {nullptr, 0},
                                    text("alan@example.com"), text("Alan")};
    const segpush_batch batch{sizeof(segpush_batch), 2, 3, ids, values, SEGPUSH_ACTION_UPSERT, nullptr};
    segpush_outcomes outcomes{};
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
    const segpush_batch batch{sizeof(segpush_batch), 1, ids.size(), ids.data(), values.data(), SEGPUSH_ACTION_UPSERT,
                              nullptr};
    segpush_outcomes outcomes{};
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
    CHECK(push_once(plugin, {"old@example.com"}).statuses == std::vector<segpush_record_status>{SEGPUSH_RECORD_ACCEPTED});
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

TEST_CASE("a plugin built against the ABI 1.3 header (the previous minor version) loads and runs in this host") {
    const auto registry = PluginRegistry::load_directory(SEGPUSH_ABI_1_3_PLUGIN_DIR);
    const LoadedPlugin& plugin = load_only(registry, "c-example-abi-1-3");
    CHECK(plugin.api.abi_minor == 3);
    // The host's batch carries 1.4's removed_at after the fields 1.3 knows: never read there.
    const PushedOnce pushed = push_once(plugin, {"a@example.com", "b@example.com"});
    CHECK(pushed.statuses == std::vector<segpush_record_status>{SEGPUSH_RECORD_ACCEPTED, SEGPUSH_RECORD_ACCEPTED});
    CHECK(pushed.outcomes_hold_receipts);
}
