#include "config/diagnostics.hpp"

#include <algorithm>
#include <tuple>

#include "secrets/redactor.hpp"

namespace segpush {

std::string Diagnostic::format() const {
    std::string out = pos.file;
    if (pos.line > 0) out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
    out += severity == Severity::error ? ": error: " : ": warning: ";
    if (!key_path.empty()) out += key_path + ": ";
    out += message;
    return Redactor::instance().scrub(out);
}

void Diagnostics::error(const SourcePos& pos, const std::string& key_path, const std::string& message) {
    items_.push_back({Diagnostic::Severity::error, pos, key_path, message});
    sorted_ = false;
}

void Diagnostics::warning(const SourcePos& pos, const std::string& key_path, const std::string& message) {
    items_.push_back({Diagnostic::Severity::warning, pos, key_path, message});
    sorted_ = false;
}

const std::vector<Diagnostic>& Diagnostics::items() const {
    if (!sorted_) {
        // Stable: problems at one place keep the order they were reported in.
        std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
            return std::tie(a.pos.file, a.pos.line, a.pos.column) < std::tie(b.pos.file, b.pos.line, b.pos.column);
        });
        sorted_ = true;
    }
    return items_;
}

bool Diagnostics::has_errors() const {
    return std::any_of(items_.begin(), items_.end(),
                       [](const Diagnostic& d) { return d.severity == Diagnostic::Severity::error; });
}

}  // namespace segpush
