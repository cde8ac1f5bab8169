#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace segpush {

// Exit codes, as documented in `segpush --help`.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;       // bad command line or configuration
constexpr int kExitRejections = 3;  // a run that succeeded with rows refused (succeeded_with_rejections)
// export run stopped by the guard against mass change: nothing was sent, a person confirms.
constexpr int kExitGuarded = 4;

// Runs one command line (without the program name). Everything printed passes through the
// secret redactor.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace segpush
