// What `export run --dry-run` prints beside the run's counts: the requests the run would make
// and, with --show N, the members it would change.
#pragma once

#include <rapidjson/document.h>

#include <string>

#include "config/model.hpp"
#include "engine/dry_run.hpp"
#include "state/run_history.hpp"

namespace segpush {

// The requests section, then up to --show members of each class, as text.
std::string dry_run_text(const ExportConfig& exp, const std::string& plugin_id, const DryRunPreview& preview,
                         const RunCounts& counts);

// The same as the members "requests" and "shown" of `target` (an object): the stable shape
// docs/operations.md documents.
void add_dry_run_json(rapidjson::Value& target, const DryRunPreview& preview,
                      rapidjson::Document::AllocatorType& alloc);

}  // namespace segpush
