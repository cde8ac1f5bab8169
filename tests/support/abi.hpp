// The host's plugin ABI version as segpush prints it, so tests do not break at each minor bump.
#pragma once

#include <segpush/plugin.h>

#include <string>

namespace {

const std::string kHostAbiNumber = std::to_string(SEGPUSH_ABI_MAJOR) + "." + std::to_string(SEGPUSH_ABI_MINOR);
const std::string kHostAbi = "ABI " + kHostAbiNumber;

}  // namespace
