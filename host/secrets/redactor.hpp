#pragma once

#include <mutex>
#include <string>
#include <vector>

namespace segpush {

// Every secret the process has resolved, so anything written to a terminal, log, report or
// state file can be scrubbed of them. A second line of defence: messages are built without
// secret values in the first place; this catches what a plugin or library echoes back.
class Redactor {
public:
    static Redactor& instance();

    void add_secret(const std::string& value);
    // `text` with every known secret replaced by "***".
    std::string scrub(std::string text) const;

private:
    mutable std::mutex mutex_;
    std::vector<std::string> secrets_;
};

}  // namespace segpush
