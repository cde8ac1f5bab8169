#pragma once

#include <string>
#include <vector>

namespace segpush {

// Where something was written: 1-based line and column; line 0 when unknown.
struct SourcePos {
    std::string file;
    int line = 0;
    int column = 0;
};

struct Diagnostic {
    enum class Severity { error, warning };
    Severity severity = Severity::error;
    SourcePos pos;
    std::string key_path;  // "connections.ac.settings.host"; empty for whole-file problems
    std::string message;

    // "file:line:column: error: key.path: message", the form editors and CI jump to.
    std::string format() const;
};

// Collects every problem instead of stopping at the first, so one `config check` shows all.
class Diagnostics {
public:
    void error(const SourcePos& pos, const std::string& key_path, const std::string& message);
    void warning(const SourcePos& pos, const std::string& key_path, const std::string& message);

    bool has_errors() const;
    // In file order, whatever order the checks found them in: by file (path), line and column,
    // errors and warnings together; a whole-file problem (line 0) first in its file; problems
    // at one place in the order they were reported. Everything that prints diagnostics (config
    // check, serve's reload log, a run's refusal) prints them from here, so all read the same.
    const std::vector<Diagnostic>& items() const;

private:
    // Sorted when asked for (a stable sort), not on each insertion: the plugin checks report
    // after the whole configuration was read, each in front of most of what came before.
    mutable std::vector<Diagnostic> items_;
    mutable bool sorted_ = true;
};

}  // namespace segpush
