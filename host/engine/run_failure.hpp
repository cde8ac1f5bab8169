#pragma once

#include <string>

#include "state/run_history.hpp"

namespace segpush {

// A run that cannot go on; its status says whether a later run can simply retry.
struct RunFailure {
    RunStatus status;
    std::string message;
};

}  // namespace segpush
