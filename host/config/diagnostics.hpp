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
    const std::vector<Diagnostic>& items() const { return items_; }

private:
    std::vector<Diagnostic> items_;
};

}  // namespace segpush
