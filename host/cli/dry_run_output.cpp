#include "cli/dry_run_output.hpp"

#include <functional>
#include <sstream>

namespace segpush {

namespace {

std::string plural(int64_t n, const std::string& one, const std::string& many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string quoted(const std::optional<std::string>& value) {
    if (!value) return "(absent)";
    std::string text = "\"";
    for (const char c : *value) {
        if (c == '"' || c == '\\') text += '\\';
        text += c;
    }
    return text + "\"";
}

std::string values_text(const std::vector<ShownValue>& values) {
    std::string text;
    for (const auto& value : values) {
        if (!text.empty()) text += ", ";
        text += value.field + " " + quoted(value.value);
    }
    return text;
}

void members_section(std::ostringstream& text, const char* title, const std::vector<ShownMember>& shown, int64_t total,
                     const std::function<std::string(const ShownMember&)>& line) {
    if (total == 0) return;
    text << title << " (" << shown.size() << " of " << total << " shown):\n";
    for (const auto& member : shown) text << "    " << member.key << ": " << line(member) << "\n";
}

}  // namespace

std::string dry_run_text(const ExportConfig& exp, const std::string& plugin_id, const DryRunPreview& preview,
                         const RunCounts& counts) {
    const RequestPlan& requests = preview.requests;
    std::ostringstream text;
    text << "  would request " << plural(requests.upsert_batches + requests.remove_batches, "batch", "batches")
         << " of up to " << plural(requests.max_records_per_batch, "record", "records");
    if (requests.max_bytes_per_batch) text << " and " << requests.max_bytes_per_batch << " bytes";
    text << " (" << plugin_id << "'s limits): " << requests.upsert_batches << " to add or update "
         << plural(requests.upsert_records, "member", "members") << ", " << requests.remove_batches << " to remove "
         << plural(requests.remove_records, "member", "members") << "\n";
    if (requests.resumed_records > 0) {
        text << "                first " << plural(requests.resume_calls, "call", "calls") << " to confirm "
             << plural(requests.resumed_records, "member", "members")
             << " an earlier run left awaiting confirmation (not sent again)\n";
    }
    if (requests.too_large_records > 0) {
        text << "                " << plural(requests.too_large_records, "member is", "members are")
             << " larger than one request may be: refused without sending\n";
    }
    text << "                (one request to the plugin a batch if the destination takes each the first time; "
            "the plugin's own checks, reads and polls come on top)\n";
    if (preview.shown_limit <= 0) return text.str();
    members_section(text, "  New members", preview.new_members, counts.new_members,
                    [](const ShownMember& member) { return values_text(member.values); });
    members_section(text, "  Changed members", preview.changed, counts.changed, [](const ShownMember& member) {
        if (!member.before_recorded) return "before: not recorded; now " + values_text(member.values);
        if (member.changes.empty()) return std::string("no field changed (sent again: --full)");
        std::string line;
        for (const auto& change : member.changes) {
            if (!line.empty()) line += ", ";
            line += change.field + " " + quoted(change.before) + " -> " + quoted(change.after);
        }
        return line;
    });
    const bool removes = exp.on_leave == OnLeave::unsubscribe;
    members_section(text, "  Leaving members", preview.leaving, counts.leaving, [&](const ShownMember& member) {
        return member.unsubscribe
                   ? std::string("would be unsubscribed (on_leave: unsubscribe)")
                   : std::string(removes ? "kept (the plugin cannot remove members)" : "kept (on_leave: keep)");
    });
    return text.str();
}

void add_dry_run_json(rapidjson::Value& target, const DryRunPreview& preview,
                      rapidjson::Document::AllocatorType& alloc) {
    auto text = [&](const std::string& value) { return rapidjson::Value(value.c_str(), value.size(), alloc); };
    auto optional_text = [&](const std::optional<std::string>& value) {
        return value ? text(*value) : rapidjson::Value(rapidjson::kNullType);
    };
    const RequestPlan& plan = preview.requests;
    rapidjson::Value requests(rapidjson::kObjectType);
    requests.AddMember("max_records_per_batch", plan.max_records_per_batch, alloc);
    requests.AddMember("max_bytes_per_batch", plan.max_bytes_per_batch, alloc);
    requests.AddMember("batches", plan.upsert_batches + plan.remove_batches, alloc);
    requests.AddMember("upsert_batches", plan.upsert_batches, alloc);
    requests.AddMember("upsert_records", plan.upsert_records, alloc);
    requests.AddMember("remove_batches", plan.remove_batches, alloc);
    requests.AddMember("remove_records", plan.remove_records, alloc);
    requests.AddMember("resume_calls", plan.resume_calls, alloc);
    requests.AddMember("resumed_records", plan.resumed_records, alloc);
    requests.AddMember("too_large_records", plan.too_large_records, alloc);
    target.AddMember("requests", requests, alloc);

    auto values_object = [&](const std::vector<ShownValue>& values) {
        rapidjson::Value object(rapidjson::kObjectType);
        for (const auto& value : values) object.AddMember(text(value.field), optional_text(value.value), alloc);
        return object;
    };
    const char* const key_name = preview.email_key ? "email" : "key";
    rapidjson::Value shown(rapidjson::kObjectType);
    shown.AddMember("limit", preview.shown_limit, alloc);
    rapidjson::Value added(rapidjson::kArrayType), changed(rapidjson::kArrayType), leaving(rapidjson::kArrayType);
    for (const auto& member : preview.new_members) {
        rapidjson::Value item(rapidjson::kObjectType);
        item.AddMember(rapidjson::StringRef(key_name), text(member.key), alloc);
        item.AddMember("values", values_object(member.values), alloc);
        added.PushBack(item, alloc);
    }
    for (const auto& member : preview.changed) {
        rapidjson::Value item(rapidjson::kObjectType);
        item.AddMember(rapidjson::StringRef(key_name), text(member.key), alloc);
        item.AddMember("before_recorded", member.before_recorded, alloc);
        rapidjson::Value changes(rapidjson::kArrayType);
        for (const auto& change : member.changes) {
            rapidjson::Value one(rapidjson::kObjectType);
            one.AddMember("field", text(change.field), alloc);
            one.AddMember("before", optional_text(change.before), alloc);
            one.AddMember("after", optional_text(change.after), alloc);
            changes.PushBack(one, alloc);
        }
        item.AddMember("changes", changes, alloc);
        // Without the values last sent, what would be sent is all there is to show.
        if (!member.before_recorded) item.AddMember("values", values_object(member.values), alloc);
        changed.PushBack(item, alloc);
    }
    for (const auto& member : preview.leaving) {
        rapidjson::Value item(rapidjson::kObjectType);
        item.AddMember(rapidjson::StringRef(key_name), text(member.key), alloc);
        item.AddMember("on_leave", rapidjson::StringRef(member.unsubscribe ? "unsubscribe" : "keep"), alloc);
        leaving.PushBack(item, alloc);
    }
    shown.AddMember("new", added, alloc);
    shown.AddMember("changed", changed, alloc);
    shown.AddMember("leaving", leaving, alloc);
    target.AddMember("shown", shown, alloc);
}

}  // namespace segpush
