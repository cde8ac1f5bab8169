#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace segpush {

// An address `serve` listens on for health and metrics: a numeric IPv4 or IPv6 address and a port.
struct ListenAddress {
    std::string host = "127.0.0.1";
    uint16_t port = 9464;
};

// Parses "HOST:PORT" ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464"). On a problem returns
// nullopt and says what is wrong in `problem`. Names are not resolved: what is bound is what the
// configuration says.
std::optional<ListenAddress> parse_listen_address(const std::string& text, std::string& problem);

// "127.0.0.1:9464", "[::1]:9464".
std::string listen_address_text(const ListenAddress& address);

}  // namespace segpush
