#include "service/listen_address.hpp"

#include <boost/asio/ip/address.hpp>

namespace segpush {

std::optional<ListenAddress> parse_listen_address(const std::string& text, std::string& problem) {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
        problem = "expected HOST:PORT, e.g. 127.0.0.1:9464 (loopback only) or 0.0.0.0:9464 (every interface)";
        return std::nullopt;
    }
    std::string host = text.substr(0, colon);
    const std::string port_text = text.substr(colon + 1);
    const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    boost::system::error_code error;
    const auto ip = boost::asio::ip::make_address(host, error);
    if (error || (ip.is_v6() && !bracketed)) {
        problem = "'" + text.substr(0, colon) +
                  "' is not an IP address; give a numeric address (127.0.0.1, 0.0.0.0, or [::1] for IPv6)";
        return std::nullopt;
    }
    if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port_text) > 65535) {
        problem = "port '" + port_text + "' is not a number from 0 to 65535";
        return std::nullopt;
    }
    return ListenAddress{host, static_cast<uint16_t>(std::stoul(port_text))};
}

std::string listen_address_text(const ListenAddress& address) {
    const bool v6 = address.host.find(':') != std::string::npos;
    return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

}  // namespace segpush
