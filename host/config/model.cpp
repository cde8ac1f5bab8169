#include "config/model.hpp"

#include <algorithm>

namespace segpush {

namespace {

template <typename T>
const T* find_named(const std::vector<T>& items, const std::string& name) {
    auto it = std::find_if(items.begin(), items.end(), [&](const T& item) { return item.name == name; });
    return it == items.end() ? nullptr : &*it;
}

}  // namespace

bool ConnectionConfig::shared_with_contributors() const {
    return std::find(usable_by.begin(), usable_by.end(), Role::contributors) != usable_by.end();
}

const SegmentConfig* Config::find_segment(const std::string& name) const { return find_named(segments, name); }
const ConnectionConfig* Config::find_connection(const std::string& name) const { return find_named(connections, name); }
const ExportConfig* Config::find_export(const std::string& name) const { return find_named(exports, name); }

}  // namespace segpush
