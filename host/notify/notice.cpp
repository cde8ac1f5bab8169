#include "notify/notice.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace segpush {

std::string to_string(NotifyEvent event) {
    switch (event) {
        case NotifyEvent::failure: return "failure";
        case NotifyEvent::threshold: return "threshold";
        case NotifyEvent::recovery: return "recovery";
    }
    return "failure";
}

std::optional<NotifyEvent> problem_of(const NotifyPolicy& policy, const RunRecord& run) {
    if (run.status == RunStatus::failed_permanent) return NotifyEvent::failure;
    if (run.status == RunStatus::failed_retryable && policy.on_retryable_failure) return NotifyEvent::failure;
    if (ran_to_end(run.status) && policy.rejected_ratio_above &&
        rejected_ratio(run.counts) > *policy.rejected_ratio_above) {
        return NotifyEvent::threshold;
    }
    return std::nullopt;
}

std::optional<NotifyEvent> notice_for(const NotifyPolicy& policy, const RunRecord& run,
                                      const std::optional<RunRecord>& previous) {
    if (!policy.enabled || run.dry_run) return std::nullopt;
    if (run.status == RunStatus::running || run.status == RunStatus::cancelled) return std::nullopt;
    if (auto problem = problem_of(policy, run)) return problem;
    if (!ran_to_end(run.status) || !policy.on_recovery || !previous) return std::nullopt;
    if (problem_of(policy, *previous)) return NotifyEvent::recovery;
    return std::nullopt;
}

std::string notice_text(NotifyEvent event, const RunRecord& run) {
    std::ostringstream text;
    text << "segpush: export " << run.export_name << ", run #" << run.id << ": ";
    switch (event) {
        case NotifyEvent::failure: text << to_string(run.status); break;
        case NotifyEvent::threshold:
            text << to_string(run.status) << ", but " << std::fixed << std::setprecision(1)
                 << 100 * rejected_ratio(run.counts) << "% of the rows read were refused (" << run.counts.invalid
                 << " invalid, " << run.counts.rejected << " rejected by the destination, " << run.counts.rejected_held
                 << " held after earlier refusals, of " << run.counts.rows_read << ")";
            break;
        case NotifyEvent::recovery: text << "succeeded again (recovered)"; break;
    }
    if (event != NotifyEvent::threshold) {
        text << ": sent " << run.counts.sent << ", accepted " << run.counts.accepted << ", rejected "
             << run.counts.rejected << ", invalid " << run.counts.invalid;
    }
    if (!run.error.empty()) text << ". Error: " << run.error;
    if (!run.report_path.empty()) text << ". Report: " << run.report_path;
    return text.str();
}

std::string notice_json(NotifyEvent event, const RunRecord& run, const std::string& hostname) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> json(buffer);
    auto field = [&](const char* name, const std::string& value) {
        json.Key(name);
        json.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
    };
    json.StartObject();
    json.Key("notice_version");
    json.Int(1);
    field("event", to_string(event));
    field("export", run.export_name);
    json.Key("run_id");
    json.Int64(run.id);
    field("status", to_string(run.status));
    field("started_at", run.started_at);
    field("finished_at", run.finished_at);
    json.Key("full");
    json.Bool(run.full);
    json.Key("counts");
    json.StartObject();
    for (const auto& [name, value] : named_counts(run.counts)) {
        json.Key(name);
        json.Int64(value);
    }
    json.EndObject();
    json.Key("rejected_ratio");
    json.Double(rejected_ratio(run.counts));
    field("error", run.error);
    field("report", run.report_path);
    field("host", hostname);
    field("text", notice_text(event, run));
    json.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize());
}

std::string hmac_sha256_hex(const std::string& secret, const std::string& body) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
              reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest, &length)) {
        throw std::runtime_error("HMAC-SHA256 failed (libcrypto)");
    }
    std::string hex;
    hex.reserve(length * 2);
    char pair[3];
    for (unsigned int i = 0; i < length; ++i) {
        std::snprintf(pair, sizeof pair, "%02x", digest[i]);
        hex += pair;
    }
    return hex;
}

std::string signature_header_value(const std::string& secret, const std::string& body) {
    return "sha256=" + hmac_sha256_hex(secret, body);
}

}  // namespace segpush
