// Boost.Beast over Asio: header-only, from libboost-dev which the host already builds with, so
// the endpoint adds no library to install. One io_context on one thread serves every connection
// asynchronously, so a client that connects and sends nothing holds a connection slot until its
// timeout, never the thread.
#include "service/http_endpoint.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <thread>

#include "log/log.hpp"

namespace segpush {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Requests are "GET /metrics" and a few headers: anything larger is not a health check.
constexpr size_t kMaxHeaderBytes = 8 * 1024;
constexpr size_t kMaxConnections = 8;
// For a request to arrive in full (from the connection or the previous answer) and for an
// answer to be taken; a scraper on the same network needs milliseconds.
constexpr auto kIoTimeout = std::chrono::seconds(5);
constexpr int kMaxRequestsPerConnection = 100;

}  // namespace

struct HttpEndpoint::Impl {
    // Declared before the io_context: sessions the io_context still holds when it is destroyed
    // count themselves out here.
    size_t open_connections = 0;  // the endpoint's thread only
    asio::io_context io{1};
    tcp::acceptor acceptor{io};
    asio::steady_timer accept_pause{io};
    const Readiness& readiness;
    Metrics metrics;
    uint16_t port = 0;
    std::thread thread;

    Impl(const Readiness& readiness, Metrics metrics) : readiness(readiness), metrics(std::move(metrics)) {}

    void accept();
    http::response<http::string_body> answer(const http::request<http::empty_body>& request) const;
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(HttpEndpoint::Impl& endpoint, tcp::socket socket) : endpoint_(endpoint), stream_(std::move(socket)) {
        ++endpoint_.open_connections;
    }
    ~Session() { --endpoint_.open_connections; }

    void read() {
        parser_.emplace();
        parser_->header_limit(kMaxHeaderBytes);
        stream_.expires_after(kIoTimeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code error, size_t) { self->on_read(error); });
    }

private:
    void on_read(beast::error_code error) {
        if (error == http::error::header_limit || error == http::error::buffer_overflow) {
            return refuse(http::status::request_header_fields_too_large, "the request is too large\n");
        }
        if (error == http::error::unexpected_body) {
            return refuse(http::status::payload_too_large, "requests here have no body\n");
        }
        if (error) return close();  // the client went away, timed out, or did not speak HTTP
        const auto& request = parser_->get();
        auto response = std::make_shared<http::response<http::string_body>>(endpoint_.answer(request));
        const bool again = request.keep_alive() && ++served_ < kMaxRequestsPerConnection;
        response->keep_alive(again);
        response->prepare_payload();
        write(response, again);
    }

    void refuse(http::status status, const std::string& text) {
        auto response = std::make_shared<http::response<http::string_body>>(status, 11);
        response->set(http::field::content_type, "text/plain; charset=utf-8");
        response->body() = text;
        response->keep_alive(false);
        response->prepare_payload();
        write(response, false);
    }

    void write(const std::shared_ptr<http::response<http::string_body>>& response, bool again) {
        stream_.expires_after(kIoTimeout);
        http::async_write(stream_, *response,
                          [self = shared_from_this(), response, again](beast::error_code error, size_t) {
                              if (error || !again) return self->close();
                              self->read();
                          });
    }

    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream_.close();
    }

    HttpEndpoint::Impl& endpoint_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_{2 * kMaxHeaderBytes};
    std::optional<http::request_parser<http::empty_body>> parser_;
    int served_ = 0;
};

}  // namespace

void HttpEndpoint::Impl::accept() {
    acceptor.async_accept([this](beast::error_code error, tcp::socket socket) {
        if (error == asio::error::operation_aborted) return;
        if (error) {
            // Out of file descriptors, say: accepting again at once would spin; a moment later
            // some may have been given back.
            accept_pause.expires_after(std::chrono::milliseconds(100));
            accept_pause.async_wait([this](beast::error_code waited) {
                if (waited != asio::error::operation_aborted) accept();
            });
            return;
        }
        if (open_connections >= kMaxConnections) {
            beast::error_code ignored;
            socket.close(ignored);  // the scraper tries again; the endpoint stays small
        } else {
            std::make_shared<Session>(*this, std::move(socket))->read();
        }
        accept();
    });
}

http::response<http::string_body> HttpEndpoint::Impl::answer(const http::request<http::empty_body>& request) const {
    http::response<http::string_body> response(http::status::ok, request.version());
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    response.set(http::field::cache_control, "no-store");
    const std::string target(request.target());
    const std::string path = target.substr(0, target.find('?'));
    const bool known = path == "/healthz" || path == "/readyz" || path == "/metrics";
    if (!known) {
        response.result(http::status::not_found);
        response.body() = "not found: this endpoint answers /healthz, /readyz and /metrics\n";
    } else if (request.method() != http::verb::get) {
        response.result(http::status::method_not_allowed);
        response.set(http::field::allow, "GET");
        response.body() = "only GET is answered here\n";
    } else if (path == "/healthz") {
        response.body() = "ok\n";
    } else if (path == "/readyz") {
        const std::string problems = readiness.problems();
        if (problems.empty()) {
            response.body() = "ready\n";
        } else {
            response.result(http::status::service_unavailable);
            response.body() = "not ready: " + problems + "\n";
        }
    } else {
        response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        response.body() = metrics();
    }
    return response;
}

HttpEndpoint::HttpEndpoint(const ListenAddress& address, const Readiness& readiness, Metrics metrics)
    : impl_(std::make_unique<Impl>(readiness, std::move(metrics))) {
    beast::error_code error;
    const auto ip = asio::ip::make_address(address.host, error);
    const std::string where = listen_address_text(address);
    if (error) throw std::runtime_error("cannot listen on " + where + ": not an IP address");
    const tcp::endpoint endpoint(ip, address.port);
    auto& acceptor = impl_->acceptor;
    const auto fail_if = [&](const char* doing) {
        if (error) throw std::runtime_error("cannot listen on " + where + ": " + doing + ": " + error.message());
    };
    acceptor.open(endpoint.protocol(), error);
    fail_if("opening a socket");
    acceptor.set_option(asio::socket_base::reuse_address(true), error);
    fail_if("setting SO_REUSEADDR");
    acceptor.bind(endpoint, error);
    fail_if("binding");
    acceptor.listen(asio::socket_base::max_listen_connections, error);
    fail_if("listening");
    impl_->port = acceptor.local_endpoint(error).port();
    fail_if("reading the bound port");
    impl_->accept();
    impl_->thread = std::thread([impl = impl_.get()] {
        // A handler that throws (out of memory while answering) costs its request, never serve:
        // the loop runs on until the endpoint is stopped.
        for (;;) {
            try {
                impl->io.run();
                return;
            } catch (const std::exception& error) {
                log_line(LogLevel::error, std::string("serve: health and metrics endpoint: ") + error.what());
            }
        }
    });
}

HttpEndpoint::~HttpEndpoint() {
    impl_->io.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

uint16_t HttpEndpoint::port() const { return impl_->port; }

void Readiness::block(const std::string& condition, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mutex_);
    blocked_[condition] = reason;
}

void Readiness::clear(const std::string& condition) {
    std::lock_guard<std::mutex> lock(mutex_);
    blocked_.erase(condition);
}

std::string Readiness::problems() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string text;
    for (const auto& [condition, reason] : blocked_) text += (text.empty() ? "" : "; ") + reason;
    return text;
}

}  // namespace segpush
