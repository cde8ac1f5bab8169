// The file plugin, driven through its C ABI exactly as the host drives it: dlopen, the entry
// point, then the lifecycle. Plus `segpush plugins describe file` through the real binary.
#include <catch2/catch.hpp>

#include <dlfcn.h>
#include <rapidjson/document.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <segpush/plugin.h>

#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using segpush::test::TempDir;

namespace {

// ---- a minimal host --------------------------------------------------------------------

struct HostRecord {
    std::vector<std::string> logs;
    uint64_t last_done = 0;
    void* last_token = nullptr;
};
HostRecord g_record;

void host_log(void*, segpush_log_level, const char* message) { g_record.logs.emplace_back(message); }
void host_progress(void*, void* token, uint64_t done, uint64_t, const char*) {
    g_record.last_done = done;
    g_record.last_token = token;
}
int host_is_cancelled(void*, void*) { return 0; }

const segpush_host kHost = {sizeof(segpush_host), SEGPUSH_ABI_MAJOR, SEGPUSH_ABI_MINOR, "test", nullptr, host_log,
                            host_progress,        host_is_cancelled};

// file.so, loaded once for the whole test program (as the host keeps plugins loaded).
const segpush_plugin& plugin() {
    static const segpush_plugin* api = [] {
        void* library = dlopen(SEGPUSH_FILE_PLUGIN, RTLD_NOW | RTLD_LOCAL);
        if (!library) FAIL("cannot load " SEGPUSH_FILE_PLUGIN ": " << dlerror());
        auto entry = reinterpret_cast<segpush_plugin_entry_fn>(dlsym(library, SEGPUSH_ENTRY_SYMBOL));
        if (!entry) FAIL("no entry symbol");
        const segpush_plugin* descriptor = entry(&kHost);
        if (!descriptor) FAIL("entry returned NULL");
        return descriptor;
    }();
    return *api;
}

segpush_error fresh_error() {
    segpush_error error{};
    error.struct_size = sizeof error;
    return error;
}

struct Validation {
    segpush_status status;
    std::string field;
    std::string message;
};

Validation validate(const char* kind, const std::string& json) {
    segpush_error error = fresh_error();
    const segpush_status status = plugin().validate_settings(kind, json.c_str(), &error);
    return {status, error.field, error.message};
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::vector<std::string> temp_files_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.find(".tmp-") != std::string::npos) out.push_back(name);
    }
    return out;
}

std::string json_quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

// One value of a batch; nullptr = absent.
struct Value {
    const char* text;
};

// Drives one connection and export through the ABI; each step REQUIREs success.
class Run {
public:
    Run(const std::string& connection_json, const std::string& export_json, std::vector<std::string> fields)
        : fields_(std::move(fields)) {
        segpush_error error = fresh_error();
        REQUIRE(plugin().open_connection(connection_json.c_str(), &connection_, &error) == SEGPUSH_OK);
        REQUIRE(plugin().check_connection(connection_, &error) == SEGPUSH_OK);
        std::vector<const char*> ids;
        for (const auto& f : fields_) ids.push_back(f.c_str());
        const segpush_status status = plugin().begin_export(connection_, export_json.c_str(), ids.data(), ids.size(),
                                                            &token_, &export_, &error);
        INFO(error.message);
        REQUIRE(status == SEGPUSH_OK);
    }
    ~Run() {
        if (export_) plugin().abort_export(export_);
        plugin().close_connection(connection_);
    }

    // Pushes records (rows of fields_.size() values) and returns their outcome statuses.
    std::vector<segpush_record_status> push(const std::vector<std::vector<Value>>& rows,
                                            uint32_t action = SEGPUSH_ACTION_UPSERT) {
        std::vector<uint64_t> ids;
        std::vector<segpush_value> values;
        for (const auto& row : rows) {
            REQUIRE(row.size() == fields_.size());
            ids.push_back(next_id_++);
            for (const auto& value : row) {
                values.push_back(value.text ? segpush_value{value.text, std::strlen(value.text)}
                                            : segpush_value{nullptr, 0});
            }
        }
        const segpush_batch batch{sizeof(segpush_batch), static_cast<uint32_t>(fields_.size()),
                                  rows.size(),           ids.data(),
                                  values.data(),         action};
        segpush_outcomes outcomes{};
        segpush_error error = fresh_error();
        const segpush_status status = plugin().push_batch(export_, &batch, &outcomes, &error);
        INFO(error.message);
        REQUIRE(status == SEGPUSH_OK);
        REQUIRE(outcomes.count == rows.size());
        std::vector<segpush_record_status> statuses;
        for (size_t i = 0; i < outcomes.count; ++i) {
            CHECK(outcomes.items[i].record_id == ids[i]);
            statuses.push_back(outcomes.items[i].status);
        }
        REQUIRE(outcomes.release != nullptr);
        outcomes.release(&outcomes);
        CHECK(outcomes.release == nullptr);
        return statuses;
    }

    segpush_status finish() {
        segpush_outcomes outcomes{};
        segpush_error error = fresh_error();
        const segpush_status status = plugin().finish_export(export_, &outcomes, &error);
        export_ = nullptr;  // gone after any non-RETRY return
        CHECK(outcomes.release == nullptr);
        last_error = error.message;
        return status;
    }

    void abort() {
        plugin().abort_export(export_);
        export_ = nullptr;
    }

    std::string last_error;
    int token_ = 0;

private:
    std::vector<std::string> fields_;
    segpush_connection* connection_ = nullptr;
    segpush_export* export_ = nullptr;
    uint64_t next_id_ = 100;
};

std::string connection_in(const TempDir& dir) { return "{\"directory\":" + json_quote(dir.path().string()) + "}"; }

std::string run_binary(const std::string& args, int& exit_code) {
    const std::string command = std::string("'") + SEGPUSH_BINARY + "' " + args + " 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    REQUIRE(pipe);
    std::string out;
    std::array<char, 4096> buffer{};
    size_t n;
    while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
    const int status = pclose(pipe);
    exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

}  // namespace

// ---- descriptor --------------------------------------------------------------------------

TEST_CASE("the descriptor declares id, capabilities, fields, limits and valid schemas") {
    const segpush_plugin& api = plugin();
    CHECK(api.struct_size == sizeof(segpush_plugin));
    CHECK(api.abi_major == SEGPUSH_ABI_MAJOR);
    CHECK(std::string(api.id) == "file");
    CHECK((api.capabilities & SEGPUSH_CAP_REMOVE) != 0);
    CHECK(api.collect_outcomes == nullptr);
    REQUIRE(api.limits);
    CHECK(api.limits->max_records_per_batch == 5000);
    CHECK(api.limits->max_concurrent_pushes == 1);
    CHECK(api.limits->requests_per_second == 0);

    REQUIRE(api.n_fields >= 4);
    CHECK(std::string(api.fields[0].id) == "email");
    CHECK(api.fields[0].type == SEGPUSH_FIELD_EMAIL);
    CHECK(api.fields[0].flags == (SEGPUSH_FIELD_REQUIRED | SEGPUSH_FIELD_KEY));
    bool phone = false;
    for (size_t i = 1; i < api.n_fields; ++i) {
        CHECK((api.fields[i].flags & SEGPUSH_FIELD_REQUIRED) == 0);
        if (std::string(api.fields[i].id) == "phone") phone = api.fields[i].type == SEGPUSH_FIELD_PHONE;
    }
    CHECK(phone);

    for (const char* schema : {api.connection_schema, api.export_schema}) {
        rapidjson::Document doc;
        doc.Parse(schema);
        REQUIRE_FALSE(doc.HasParseError());
        CHECK(std::string(doc["type"].GetString()) == "object");
        CHECK(doc["additionalProperties"].GetBool() == false);
        for (const auto& property : doc["properties"].GetObject()) {
            INFO(property.name.GetString());
            CHECK(property.value.HasMember("description"));
        }
    }
    rapidjson::Document exp;
    exp.Parse(api.export_schema);
    CHECK(exp["required"][0].GetString() == std::string("path"));
    CHECK(exp["properties"]["format"]["enum"].Size() == 2);
}

// ---- settings validation -----------------------------------------------------------------

TEST_CASE("validate_settings accepts good settings") {
    CHECK(validate("export", R"({"path":"members.csv"})").status == SEGPUSH_OK);
    CHECK(validate("export", R"({"path":"out/{date}/members-{time}.jsonl"})").status == SEGPUSH_OK);
    CHECK(validate("export", R"({"path":"members.txt","format":"csv"})").status == SEGPUSH_OK);
    CHECK(validate("export", R"({"path":"m.ndjson","leavers_path":"gone-{date}.jsonl"})").status == SEGPUSH_OK);
    CHECK(validate("connection", R"({})").status == SEGPUSH_OK);
    CHECK(validate("connection", R"({"directory":"/srv/exports"})").status == SEGPUSH_OK);
}

TEST_CASE("validate_settings names the field and says what is wrong") {
    struct Case {
        const char* kind;
        const char* json;
        const char* field;
        const char* message;
    };
    const Case cases[] = {
        {"export", R"({"path":""})", "path", "must not be empty"},
        {"export", R"({})", "path", "missing required setting 'path'"},
        {"export", R"({"path":"out/{dat}.csv"})", "path", "unknown placeholder {dat}"},
        {"export", R"({"path":"out/{Date}.csv"})", "path", "did you mean {date}?"},
        {"export", R"({"path":"out/{date.csv"})", "path", "never closed"},
        {"export", R"({"path":"out/date}.csv"})", "path", "'}' with no '{'"},
        {"export", R"({"path":"out/"})", "path", "must name a file"},
        {"export", R"({"path":"members.csv","format":"xml"})", "format", "format must be csv or jsonl, found \"xml\""},
        {"export", R"({"path":"members.csv","format":"CSV"})", "format", "lower case"},
        {"export", R"({"path":"members.txt"})", "path", "cannot tell the format from the extension \".txt\""},
        {"export", R"({"path":"members"})", "path", "without an extension"},
        {"export", R"({"path":"m.csv","leavers_path":"x/{hour}.csv"})", "leavers_path", "unknown placeholder {hour}"},
        {"export", R"({"path":"m.csv","leavers_path":"m.csv"})", "leavers_path", "must differ from path"},
        {"export", R"({"path":"m.csv","colour":"red"})", "colour", "not a setting"},
        {"export", R"([1])", "", "not a JSON object"},
        {"connection", R"({"directory":""})", "directory", "must not be empty"},
        {"connection", R"({"directory":7})", "directory", "must be a string"},
    };
    for (const auto& c : cases) {
        INFO(c.kind << " " << c.json);
        const Validation result = validate(c.kind, c.json);
        CHECK(result.status == SEGPUSH_ERR_CONFIG);
        CHECK(result.field == c.field);
        CHECK_THAT(result.message, Catch::Contains(c.message));
        CHECK(result.message.find('\n') == std::string::npos);
    }
}

// ---- output ------------------------------------------------------------------------------

TEST_CASE("CSV output: header of field ids, RFC 4180 quoting, empty cell for an absent value") {
    TempDir dir;
    {
        Run run(connection_in(dir), R"({"path":"members.csv"})", {"email", "first_name", "last_name", "phone"});
        const auto statuses = run.push({
            {{"ada@example.com"}, {"Ada"}, {"Lovelace"}, {"+44 20 7946 0000"}},
            {{"bob@example.com"}, {"Bob, Jr"}, {"O\"Brien"}, {nullptr}},
            {{"cy@example.com"}, {"two\nlines"}, {nullptr}, {"\r"}},
        });
        CHECK(statuses == std::vector<segpush_record_status>(3, SEGPUSH_RECORD_ACCEPTED));
        CHECK(g_record.last_done == 3);
        CHECK(g_record.last_token == &run.token_);
        REQUIRE(run.finish() == SEGPUSH_OK);
    }
    CHECK(read_file(dir.file("members.csv")) == "email,first_name,last_name,phone\r\n"
                                                "ada@example.com,Ada,Lovelace,+44 20 7946 0000\r\n"
                                                "bob@example.com,\"Bob, Jr\",\"O\"\"Brien\",\r\n"
                                                "cy@example.com,\"two\nlines\",,\"\r\"\r\n");
    CHECK_FALSE(fs::exists(dir.file("members.leavers.csv")));  // no leavers, no file
    CHECK(temp_files_in(dir.path()).empty());
}

TEST_CASE("JSON Lines output: one object per record, absent values omitted, strings escaped") {
    TempDir dir;
    {
        Run run(connection_in(dir), R"({"path":"members.jsonl"})", {"email", "first_name", "attribute_1"});
        run.push({
            {{"ada@example.com"}, {"Ada \"the\" first"}, {nullptr}},
            {{"bob@example.com"}, {nullptr}, {"tab\there\\ né"}},
            {{"cy@example.com"}, {"line\nbreak\x01"}, {""}},
        });
        REQUIRE(run.finish() == SEGPUSH_OK);
    }
    const std::string text = read_file(dir.file("members.jsonl"));
    CHECK(text == "{\"email\":\"ada@example.com\",\"first_name\":\"Ada \\\"the\\\" first\"}\n"
                  "{\"email\":\"bob@example.com\",\"attribute_1\":\"tab\\there\\\\ né\"}\n"
                  "{\"email\":\"cy@example.com\",\"first_name\":\"line\\nbreak\\u0001\",\"attribute_1\":\"\"}\n");
    // Every line is a JSON object a standard parser reads back.
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        rapidjson::Document doc;
        doc.Parse(line.c_str());
        CHECK_FALSE(doc.HasParseError());
        CHECK(doc.IsObject());
    }
}

TEST_CASE("REMOVE batches go to the leavers file, with only the email") {
    TempDir dir;
    {
        Run run(connection_in(dir), R"({"path":"members.csv"})", {"first_name", "email"});
        run.push({{{"Ada"}, {"ada@example.com"}}});
        // The host sends leavers with only the key field set.
        const auto statuses = run.push({{{nullptr}, {"gone@example.com"}}, {{nullptr}, {"left@example.com"}}},
                                       SEGPUSH_ACTION_REMOVE);
        CHECK(statuses == std::vector<segpush_record_status>(2, SEGPUSH_RECORD_ACCEPTED));
        REQUIRE(run.finish() == SEGPUSH_OK);
    }
    CHECK(read_file(dir.file("members.csv")) == "first_name,email\r\nAda,ada@example.com\r\n");
    CHECK(read_file(dir.file("members.leavers.csv")) == "email\r\ngone@example.com\r\nleft@example.com\r\n");

    TempDir other;
    {
        Run run(connection_in(other), R"({"path":"m.jsonl","leavers_path":"out/leavers-{date}.jsonl"})", {"email"});
        run.push({{{"x@example.com"}}}, SEGPUSH_ACTION_REMOVE);
        REQUIRE(run.finish() == SEGPUSH_OK);
    }
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(other.file("out")))
        names.push_back(entry.path().filename().string());
    REQUIRE(names.size() == 1);
    CHECK(std::regex_match(names[0], std::regex(R"(leavers-\d{4}-\d{2}-\d{2}\.jsonl)")));
    CHECK(read_file(other.file("out/" + names[0])) == "{\"email\":\"x@example.com\"}\n");
    CHECK(read_file(other.file("m.jsonl")).empty());  // a run with no upserts still writes its (empty) members file
}

TEST_CASE("a record without an email is rejected, never written") {
    TempDir dir;
    Run run(connection_in(dir), R"({"path":"members.csv"})", {"email", "first_name"});
    const auto statuses = run.push({{{nullptr}, {"Nobody"}}, {{"ada@example.com"}, {"Ada"}}});
    CHECK(statuses == std::vector<segpush_record_status>{SEGPUSH_RECORD_REJECTED, SEGPUSH_RECORD_ACCEPTED});
    REQUIRE(run.finish() == SEGPUSH_OK);
    CHECK(read_file(dir.file("members.csv")) == "email,first_name\r\nada@example.com,Ada\r\n");
}

TEST_CASE("path templates expand {date} and {time} in UTC, creating missing folders") {
    TempDir dir;
    const std::time_t before = std::time(nullptr);
    {
        Run run(connection_in(dir), R"({"path":"exports/{date}/members-{time}.csv"})", {"email"});
        run.push({{{"ada@example.com"}}});
        REQUIRE(run.finish() == SEGPUSH_OK);
    }
    std::tm utc{};
    gmtime_r(&before, &utc);
    char date[16];
    std::strftime(date, sizeof date, "%Y-%m-%d", &utc);
    const fs::path day = dir.path() / "exports" / date;
    REQUIRE(fs::is_directory(day));
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(day)) names.push_back(entry.path().filename().string());
    REQUIRE(names.size() == 1);
    CHECK(std::regex_match(names[0], std::regex(R"(members-\d{6}\.csv)")));
}

// ---- atomic write --------------------------------------------------------------------------

TEST_CASE("the final path keeps its old content until finish_export, never a half-written one") {
    TempDir dir;
    const std::string final_path = dir.write("members.csv", "old content\n");
    {
        Run run(connection_in(dir), R"({"path":"members.csv"})", {"email"});
        run.push({{{"ada@example.com"}}});
        run.push({{{"gone@example.com"}}}, SEGPUSH_ACTION_REMOVE);
        // Written so far: only to hidden temporaries in the same folder.
        CHECK(read_file(final_path) == "old content\n");
        CHECK_FALSE(fs::exists(dir.file("members.leavers.csv")));
        const auto temps = temp_files_in(dir.path());
        CHECK(temps.size() == 2);
        for (const auto& name : temps) CHECK(name.front() == '.');
        REQUIRE(run.finish() == SEGPUSH_OK);
    }
    CHECK(read_file(final_path) == "email\r\nada@example.com\r\n");
    CHECK(read_file(dir.file("members.leavers.csv")) == "email\r\ngone@example.com\r\n");
    CHECK(temp_files_in(dir.path()).empty());
}

TEST_CASE("abort_export removes the temporaries and leaves the old file alone") {
    TempDir dir;
    const std::string final_path = dir.write("members.jsonl", "{\"email\":\"old@example.com\"}\n");
    {
        Run run(connection_in(dir), R"({"path":"members.jsonl"})", {"email"});
        run.push({{{"ada@example.com"}}});
        run.push({{{"gone@example.com"}}}, SEGPUSH_ACTION_REMOVE);
        CHECK(temp_files_in(dir.path()).size() == 2);
        run.abort();
    }
    CHECK(read_file(final_path) == "{\"email\":\"old@example.com\"}\n");
    CHECK_FALSE(fs::exists(dir.file("members.leavers.jsonl")));
    CHECK(temp_files_in(dir.path()).empty());
}

TEST_CASE("two exports writing the same file at once: the second is refused") {
    TempDir dir;
    Run first(connection_in(dir), R"({"path":"shared.csv"})", {"email"});
    segpush_error error = fresh_error();
    segpush_connection* connection = nullptr;
    REQUIRE(plugin().open_connection(connection_in(dir).c_str(), &connection, &error) == SEGPUSH_OK);
    const char* fields[] = {"email"};
    segpush_export* second = nullptr;
    CHECK(plugin().begin_export(connection, R"({"path":"shared.csv"})", fields, 1, nullptr, &second, &error) ==
          SEGPUSH_ERR_CONFIG);
    CHECK(std::string(error.field) == "path");
    CHECK_THAT(error.message, Catch::Contains("another export") && Catch::Contains("shared.csv"));
    plugin().close_connection(connection);
    CHECK(first.finish() == SEGPUSH_OK);
}

// ---- connection checks ---------------------------------------------------------------------

TEST_CASE("check_connection: a missing or unusable directory is a CONFIG error naming it") {
    TempDir dir;
    const std::string file_not_dir = dir.write("plain-file", "x");
    std::vector<std::pair<std::string, std::string>> cases = {
        {dir.file("does-not-exist"), "does not exist"},
        {file_not_dir, "is not a folder"},
    };
    if (geteuid() != 0) {  // root writes into a read-only folder anyway
        const std::string read_only = dir.file("read-only");
        fs::create_directory(read_only);
        ::chmod(read_only.c_str(), 0555);
        cases.emplace_back(read_only, "cannot create files");
    }
    for (const auto& [directory, expected] : cases) {
        INFO(directory);
        segpush_error error = fresh_error();
        segpush_connection* connection = nullptr;
        const std::string settings = "{\"directory\":" + json_quote(directory) + "}";
        REQUIRE(plugin().open_connection(settings.c_str(), &connection, &error) == SEGPUSH_OK);
        CHECK(plugin().check_connection(connection, &error) == SEGPUSH_ERR_CONFIG);
        CHECK(std::string(error.field) == "directory");
        CHECK_THAT(error.message, Catch::Contains(directory) && Catch::Contains(expected));
        plugin().close_connection(connection);
    }
}

TEST_CASE("begin_export: a folder that cannot be created is a CONFIG error naming it") {
    TempDir dir;
    dir.write("blocker", "a file where a folder should be");
    segpush_error error = fresh_error();
    segpush_connection* connection = nullptr;
    REQUIRE(plugin().open_connection(connection_in(dir).c_str(), &connection, &error) == SEGPUSH_OK);
    const char* fields[] = {"email"};
    segpush_export* exp = nullptr;
    CHECK(plugin().begin_export(connection, R"({"path":"blocker/members.csv"})", fields, 1, nullptr, &exp, &error) ==
          SEGPUSH_ERR_CONFIG);
    CHECK_THAT(error.message, Catch::Contains(dir.file("blocker")));
    plugin().close_connection(connection);
}

// ---- the binary ---------------------------------------------------------------------------

TEST_CASE("segpush plugins describe file shows the settings, fields and limits") {
    int code = -1;
    const std::string text = run_binary("--plugin-dir '" SEGPUSH_PLUGIN_DIR "' plugins describe file", code);
    INFO(text);
    CHECK(code == 0);
    CHECK_THAT(text, Catch::Contains("(file)") && Catch::Contains("directory") && Catch::Contains("path") &&
                         Catch::Contains("required") && Catch::Contains("{date}") && Catch::Contains("leavers_path") &&
                         Catch::Contains("enum [\"csv\",\"jsonl\"]") && Catch::Contains("email") &&
                         Catch::Contains("records per batch      5000"));

    const std::string json = run_binary("--plugin-dir '" SEGPUSH_PLUGIN_DIR "' plugins describe file --json", code);
    CHECK(code == 0);
    rapidjson::Document doc;
    doc.Parse(json.c_str());
    REQUIRE_FALSE(doc.HasParseError());
    CHECK(std::string(doc["export_schema"]["required"][0].GetString()) == "path");
    CHECK(doc["limits"]["max_concurrent_pushes"].GetUint() == 1);
}

TEST_CASE("segpush config check points at the file setting at fault, with file:line:column") {
    TempDir dir;
    dir.write("vip.csv", "Email\nada@example.com\n");
    const std::string config = dir.write("segpush.yaml", "plugin_dir: " SEGPUSH_PLUGIN_DIR "\n"
                                                         "state: " +
                                                             dir.file("state.db") +
                                                             "\n"
                                                             "segments:\n"
                                                             "  vip: { source: csv, path: vip.csv }\n"
                                                             "connections:\n"
                                                             "  files:\n"
                                                             "    plugin: file\n"
                                                             "    display_name: Files\n"
                                                             "    privacy_consent: true\n"
                                                             "    settings:\n"
                                                             "      directory: " +
                                                             dir.path().string() +
                                                             "\n"
                                                             "exports:\n"
                                                             "  vip_files:\n"
                                                             "    connection: files\n"
                                                             "    segments: [vip]\n"
                                                             "    settings:\n"
                                                             "      path: vip-{dat}.csv\n"
                                                             "    mapping: { email: Email }\n");
    int code = -1;
    const std::string text = run_binary("--config '" + config + "' config check", code);
    INFO(text);
    CHECK(code == 2);
    CHECK_THAT(text, Catch::Contains("segpush.yaml:17:13") && Catch::Contains("exports.vip_files.settings.path") &&
                         Catch::Contains("unknown placeholder {dat}"));
}

TEST_CASE("segpush export run through the file plugin: a delta file per run, leavers in their own file") {
    TempDir dir;
    const std::string segment = dir.write("vip.csv", "Email,First\nada@example.com,Ada\nbob@example.com,\"Bob, Jr\"\n");
    const std::string config = dir.write("segpush.yaml", "plugin_dir: " SEGPUSH_PLUGIN_DIR "\n"
                                                         "state: " +
                                                             dir.file("state.db") +
                                                             "\n"
                                                             "segments:\n"
                                                             "  vip: { source: csv, path: vip.csv }\n"
                                                             "connections:\n"
                                                             "  files:\n"
                                                             "    plugin: file\n"
                                                             "    display_name: Files\n"
                                                             "    privacy_consent: true\n"
                                                             "    settings: { directory: " +
                                                             dir.file("out") +
                                                             " }\n"
                                                             "exports:\n"
                                                             "  vip_files:\n"
                                                             "    connection: files\n"
                                                             "    segments: [vip]\n"
                                                             "    settings: { path: vip.csv }\n"
                                                             "    mapping: { email: Email, first_name: First }\n"
                                                             "    on_leave: unsubscribe\n");
    fs::create_directory(dir.file("out"));
    int code = -1;
    std::string text = run_binary("--config '" + config + "' export run vip_files", code);
    INFO(text);
    REQUIRE(code == 0);
    CHECK(read_file(dir.file("out/vip.csv")) ==
          "email,first_name\r\nada@example.com,Ada\r\nbob@example.com,\"Bob, Jr\"\r\n");
    CHECK_FALSE(fs::exists(dir.file("out/vip.leavers.csv")));

    // Bob leaves, Carol joins, Ada is unchanged: the next run writes only what changed.
    dir.write("vip.csv", "Email,First\nada@example.com,Ada\ncarol@example.com,Carol\n");
    text = run_binary("--config '" + config + "' export run vip_files", code);
    INFO(text);
    REQUIRE(code == 0);
    CHECK(read_file(dir.file("out/vip.csv")) == "email,first_name\r\ncarol@example.com,Carol\r\n");
    CHECK(read_file(dir.file("out/vip.leavers.csv")) == "email\r\nbob@example.com\r\n");
    CHECK(temp_files_in(dir.file("out")).empty());
}
