#include "notify/notify_policy.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "config/paths.hpp"
#include "config/secret_setting.hpp"
#include "config/yaml_reader.hpp"

namespace segpush {

namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kNotifyKeys = {
    "enabled", "on_retryable_failure", "rejected_ratio_above", "on_recovery", "command", "webhook"};
const std::vector<std::string> kCommandKeys = {"argv", "timeout_seconds"};
const std::vector<std::string> kWebhookKeys = {"url", "secret", "ca_file", "timeout_seconds", "max_attempts"};

bool given(const YAML::Node& map, const char* key) { return map[key].IsDefined(); }
bool given_null(const YAML::Node& map, const char* key) { return map[key].IsDefined() && map[key].IsNull(); }

struct UrlParts {
    std::string scheme, host, port;
};

std::optional<UrlParts> parse_url(const std::string& url) {
    std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> handle(curl_url(), curl_url_cleanup);
    if (!handle || curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return std::nullopt;
    UrlParts parts;
    auto part = [&](CURLUPart which, std::string& out) {
        char* value = nullptr;
        if (curl_url_get(handle.get(), which, &value, 0) == CURLUE_OK && value) out = value;
        curl_free(value);
    };
    part(CURLUPART_SCHEME, parts.scheme);
    part(CURLUPART_HOST, parts.host);
    part(CURLUPART_PORT, parts.port);
    return parts;
}

std::optional<int> bounded_integer(YamlReader& reader, const YAML::Node& map, const std::string& key,
                                   const std::string& path, uint64_t most) {
    const auto value = reader.positive_integer(map, key, path);
    if (!value) return std::nullopt;
    if (*value > most) {
        reader.error(map[key], path + "." + key, "must be at most " + std::to_string(most));
        return std::nullopt;
    }
    return static_cast<int>(*value);
}

std::optional<CommandHook> read_command(YamlReader& reader, const YAML::Node& node, const std::string& path) {
    if (!reader.expect_map(node, path, kCommandKeys)) return std::nullopt;
    CommandHook hook;
    const YAML::Node argv = node["argv"];
    if (!argv.IsDefined() || argv.IsNull()) {
        reader.error(node, path + ".argv",
                     "missing required key 'argv': the program and its arguments as a list, e.g. "
                     "[/usr/local/bin/page-oncall, --team, marketing]");
        return std::nullopt;
    }
    if (!argv.IsSequence() || argv.size() == 0) {
        reader.error(argv, path + ".argv",
                     "expected a non-empty list (the program, then its arguments; no shell), found " +
                         describe_node_type(argv));
        return std::nullopt;
    }
    for (size_t i = 0; i < argv.size(); ++i) {
        if (!argv[i].IsScalar() || argv[i].Scalar().empty()) {
            reader.error(argv[i], path + ".argv[" + std::to_string(i) + "]",
                         "expected a non-empty string, found " + describe_node_type(argv[i]));
            return std::nullopt;
        }
        hook.argv.push_back(argv[i].Scalar());
    }
    if (auto seconds = bounded_integer(reader, node, "timeout_seconds", path, 600))
        hook.timeout = std::chrono::seconds(*seconds);
    return hook;
}

std::optional<Webhook> read_webhook(YamlReader& reader, const YAML::Node& node, const std::string& path, bool strict) {
    if (!reader.expect_map(node, path, kWebhookKeys)) return std::nullopt;
    Webhook hook;
    bool ok = true;
    if (!given(node, "url") || given_null(node, "url")) {
        reader.error(node, path + ".url", "missing required key 'url': the https:// address to POST notices to");
        ok = false;
    } else if (auto url = read_secret_setting(reader, node, "url", path, false, strict)) {
        const auto parts = parse_url(*url);
        // The URL is not repeated: it may hold a token.
        if (!parts || parts->host.empty()) {
            reader.error(node["url"], path + ".url", "is not a valid URL; expected https://HOST/PATH");
            ok = false;
        } else if (parts->scheme != "https") {
            reader.error(node["url"], path + ".url",
                         "must be an https:// URL (notices carry run summaries and are signed; plain " + parts->scheme +
                             " is refused)");
            ok = false;
        } else {
            hook.url = *url;
            hook.shown_url = url_origin(*url);
        }
    } else {
        ok = false;
    }
    if (given(node, "secret") && !given_null(node, "secret")) {
        if (auto secret = read_secret_setting(reader, node, "secret", path, true, strict)) {
            hook.secret = *secret;
        } else {
            ok = false;
        }
    }
    if (auto ca_file = reader.string(node, "ca_file", path, false)) {
        std::string base_dir = fs::path(reader.file()).parent_path().string();
        hook.ca_file = config_path(base_dir.empty() ? "." : base_dir, *ca_file);
        std::error_code error;
        if (!fs::is_regular_file(hook.ca_file, error)) {
            reader.error(node["ca_file"], path + ".ca_file",
                         "CA file " + hook.ca_file + " does not exist or is not a file (PEM certificates expected)");
            ok = false;
        }
    }
    if (auto seconds = bounded_integer(reader, node, "timeout_seconds", path, 120))
        hook.timeout = std::chrono::seconds(*seconds);
    if (auto attempts = bounded_integer(reader, node, "max_attempts", path, 10)) hook.max_attempts = *attempts;
    if (!ok) return std::nullopt;
    return hook;
}

}  // namespace

std::string url_origin(const std::string& url) {
    const auto parts = parse_url(url);
    if (!parts) return "(invalid URL)";
    std::string origin = parts->scheme + "://" + parts->host;
    if (!parts->port.empty()) origin += ":" + parts->port;
    return origin;
}

NotifyPolicy read_notify_policy(YamlReader& reader, const YAML::Node& block, const std::string& path,
                                const NotifyPolicy& inherited, bool contributor_file, bool strict) {
    NotifyPolicy policy = inherited;
    if (!block.IsDefined() || block.IsNull() || !reader.expect_map(block, path, kNotifyKeys)) return policy;
    if (auto enabled = reader.boolean(block, "enabled", path)) policy.enabled = *enabled;
    if (auto retryable = reader.boolean(block, "on_retryable_failure", path)) policy.on_retryable_failure = *retryable;
    if (auto recovery = reader.boolean(block, "on_recovery", path)) policy.on_recovery = *recovery;
    if (given_null(block, "rejected_ratio_above")) {
        policy.rejected_ratio_above.reset();
    } else if (given(block, "rejected_ratio_above")) {
        const YAML::Node node = block["rejected_ratio_above"];
        const auto kind = node.IsScalar() ? scalar_kind(node) : ScalarKind::null;
        double ratio = -1;
        if (kind == ScalarKind::integer || kind == ScalarKind::number) {
            try {
                ratio = std::stod(node.Scalar());
            } catch (const std::exception&) {
            }
        }
        if (ratio < 0 || ratio >= 1) {
            reader.error(node, path + ".rejected_ratio_above",
                         "expected a fraction from 0 up to (not including) 1, e.g. 0.05 for more than 5% of the rows "
                         "read refused, found " +
                             describe_node_type(node) + (node.IsScalar() ? " '" + node.Scalar() + "'" : ""));
        } else {
            policy.rejected_ratio_above = ratio;
        }
    }
    for (const char* channel : {"command", "webhook"}) {
        if (!given(block, channel)) continue;
        const YAML::Node node = block[channel];
        const std::string channel_path = path + "." + channel;
        if (contributor_file && !node.IsNull()) {
            reader.error(node, channel_path,
                         std::string("only admins may set a notification ") + channel +
                             " (a command runs as segpush's user, a webhook receives run summaries): set it in the "
                             "main configuration's notify: or an admin file");
            continue;
        }
        if (std::string(channel) == "command") {
            policy.command = node.IsNull() ? std::nullopt : read_command(reader, node, channel_path);
        } else {
            policy.webhook = node.IsNull() ? std::nullopt : read_webhook(reader, node, channel_path, strict);
        }
    }
    return policy;
}

}  // namespace segpush
