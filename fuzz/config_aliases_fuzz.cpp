// libFuzzer target for the configuration limits (host/config/yaml_bounds.hpp): YAML whose
// anchors and aliases stand for far more than it says, through load_config + check_config
// with the file plugin loaded, so every export's settings are converted to JSON as in a real
// run. Run under -rss_limit_mb (fuzz/run.sh): a configuration that makes the loader grow past
// it is a finding. Every settings JSON kept must be within kMaxSettingsJsonBytes.
//
// The first byte picks how the rest is read:
//  - even: a program for a generator that writes a main file and a contributor-editable
//    exports.d file full of anchors, aliases (to anything defined before, or around them),
//    long strings and deep nesting, in settings, mappings and segment lists;
//  - odd: the contributor-editable exports.d file itself, verbatim (seeds in
//    fuzz/corpus/config_aliases/ are alias bombs written by hand).
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include "config/loader.hpp"
#include "config/yaml_bounds.hpp"
#include "fuzz_support.hpp"
#include "plugins/registry.hpp"

namespace {

class Program {
public:
    Program(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    bool done() const { return at_ >= size_; }
    uint8_t next() { return done() ? 0 : data_[at_++]; }

private:
    const uint8_t* data_;
    size_t size_;
    size_t at_ = 0;
};

// Writes flow-style YAML values. Anchors are a0, a1, ... in the order defined; an anchor is
// named before its value is written, so an alias inside may name the node around it.
class Generator {
public:
    explicit Generator(Program& program) : program_(program) {}

    void value(std::string& out, int depth = 0) {
        // The harness's own recursion and output stay small; the loader is what is under test.
        if (depth > 150 || out.size() > kMaxText) {
            out += "x";
            return;
        }
        const uint8_t op = program_.next();
        switch (op % 9) {
            case 0: out += scalar(program_.next()); break;
            case 1:
            case 2:  // aliases are what this target is about: twice as likely
                if (anchors_ == 0) out += "0";
                else out += "*a" + std::to_string(program_.next() % anchors_);
                break;
            case 3: {
                const int items = program_.next() % 12;
                out += "[";
                for (int i = 0; i < items; ++i) {
                    if (i) out += ", ";
                    value(out, depth + 1);
                }
                out += "]";
                break;
            }
            case 4: {
                const int items = program_.next() % 8;
                out += "{";
                for (int i = 0; i < items; ++i) {
                    if (i) out += ", ";
                    out += "k" + std::to_string(i) + ": ";
                    value(out, depth + 1);
                }
                out += "}";
                break;
            }
            case 5:
                out += "&a" + std::to_string(anchors_++) + " ";
                value(out, depth + 1);
                break;
            case 6: {
                const size_t length = (static_cast<size_t>(program_.next()) << 8 | program_.next()) % 65536;
                out += "\"" + std::string(length, static_cast<char>('a' + op % 26)) + "\"";
                break;
            }
            case 7: {
                const int levels = program_.next() % 100;
                out += std::string(levels, '[');
                value(out, depth + 1);
                out += std::string(levels, ']');
                break;
            }
            default: out += "${env:SEGPUSH_FUZZ_SECRET}"; break;
        }
    }

    // One export as a line under `exports:`; which of its keys gets a generated value is
    // chosen too, so aliases land in mappings and segment lists as well as settings.
    std::string export_line(int number) {
        const uint8_t where = program_.next();
        std::string settings = "{path: out.csv";
        const int keys = program_.next() % 4;
        for (int i = 0; i < keys; ++i) {
            settings += ", s" + std::to_string(i) + ": ";
            value(settings);
        }
        settings += "}";
        std::string segments = "[vip]", mapping = "{email: Email}";
        for (auto [choice, text] : {std::pair{1, &segments}, {2, &mapping}, {3, &settings}}) {
            if (where % 4 != choice) continue;
            text->clear();
            value(*text);
        }
        return "  e" + std::to_string(number) + ": {connection: out, segments: " + segments + ", mapping: " + mapping +
               ", settings: " + settings + "}\n";
    }

private:
    static constexpr size_t kMaxText = 1 << 20;

    static std::string scalar(uint8_t choice) {
        switch (choice % 6) {
            case 0: return "lol";
            case 1: return std::to_string(choice);
            case 2: return "true";
            case 3: return "~";
            case 4: return "1e999";
            default: return "\"\\t\\\"\"";
        }
    }

    Program& program_;
    int anchors_ = 0;
};

const char* const kMainHead = R"(state: state.db
segments:
  vip: {path: vip.csv}
connections:
  out:
    plugin: file
    privacy_consent: true
    usable_by: [admins, contributors]
    settings: {directory: .}
include:
  - path: exports.d/*.yaml
    editable_by: contributors
exports:
)";

// As in config_loader_fuzz.cpp: a ${file:} reference to a device or a /proc or /sys file may
// block on a terminal; a backslash could spell those names with YAML escapes. Skipped.
bool may_open_special_files(std::string_view text) {
    for (const char* word : {"dev", "proc", "sys", "\\"}) {
        if (text.find(word) != std::string_view::npos) return true;
    }
    return false;
}

void write(const std::string& path, const std::string& text) {
    std::FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) std::abort();
    if (!text.empty() && std::fwrite(text.data(), 1, text.size(), file) != text.size()) std::abort();
    std::fclose(file);
}

void check_bounded(const segpush::Settings& settings) {
    if (settings.resolved_json.size() > segpush::kMaxSettingsJsonBytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static segpush::fuzz::TempFile main_file("segpush.yaml");
    static const std::string contributor_file = [] {
        const std::string dir = main_file.dir() + "/exports.d";
        if (mkdir(dir.c_str(), 0700) != 0) std::abort();
        return dir + "/x.yaml";
    }();
    static const segpush::PluginRegistry registry = [] {
        setenv("SEGPUSH_FUZZ_SECRET", "fuzz-secret-value", 1);
        auto loaded = segpush::PluginRegistry::load_directory(SEGPUSH_FUZZ_PLUGIN_DIR);
        if (!loaded.find("file")) std::abort();  // the harness is broken, not the loader
        return loaded;
    }();
    if (size == 0) return -1;

    Program program(data + 1, size - 1);
    std::string main = kMainHead, contributed;
    if (data[0] % 2 == 0) {
        Generator generator(program);
        const int exports = 1 + program.next() % 4;
        for (int i = 0; i < exports; ++i) main += generator.export_line(i);
        // A fresh generator: the contributor's file is a document of its own, with its own anchors.
        Generator contributor(program);
        contributed = "exports:\n";
        for (int i = 0; !program.done() && i < 8; ++i) contributed += contributor.export_line(100 + i);
    } else {
        if (may_open_special_files({reinterpret_cast<const char*>(data + 1), size - 1})) return -1;
        contributed.assign(reinterpret_cast<const char*>(data + 1), size - 1);
        main += "  e0: {connection: out, segments: [vip], mapping: {email: Email}, settings: {path: out.csv}}\n";
    }
    write(main_file.dir() + "/segpush.yaml", main);
    write(contributor_file, contributed);

    segpush::Diagnostics diagnostics;
    auto config = segpush::load_config(main_file.dir() + "/segpush.yaml", diagnostics);
    if (config) {
        segpush::check_config(*config, registry, diagnostics);
        for (const auto& connection : config->connections) check_bounded(connection.settings);
        for (const auto& item : config->exports) check_bounded(item.settings);
    } else if (!diagnostics.has_errors()) {
        std::abort();  // no config must come with a reason
    }
    for (const auto& item : diagnostics.items()) {
        if (item.message.empty()) std::abort();
        (void)item.format();
    }
    return 0;
}
