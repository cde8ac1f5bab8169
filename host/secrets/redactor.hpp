#pragma once

#include <mutex>
#include <string>
#include <vector>

namespace segpush {

// Every secret the process has resolved, so anything written to a terminal, log, report or
// state file can be scrubbed of them. A second line of defence: messages are built without
// secret values in the first place; this catches what a plugin, a server or a library echoes
// back. Text is scrubbed before it is stored, not only before it is printed: what reaches the
// state file or a report stays there after the secret's variable is gone.
class Redactor {
public:
    static Redactor& instance();

    // Registers `value` and every form segpush itself writes it in: raw, JSON-escaped (the
    // settings handed to plugins are JSON) and percent-encoded (upper- and lower-case hex).
    void add_secret(const std::string& value);
    // `text` with every form of every known secret replaced by "***".
    std::string scrub(std::string text) const;

private:
    mutable std::mutex mutex_;
    std::vector<std::string> forms_;  // longest first, so a form containing another is scrubbed whole
};

}  // namespace segpush
