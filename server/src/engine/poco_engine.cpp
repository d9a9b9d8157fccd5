// The first engine: Poco's HTTPServer, thread per connection. Poco types end here.
//
// Sizing: each keep-alive connection holds a pool thread until it is idle for
// keep_alive_timeout or has served max_keep_alive_requests. Up to max_threads connections
// are served at once; the next max_queued wait for a free thread and are refused beyond
// that. Defaults (512 threads, 1024 queued, 5 s) answer 256 concurrent keep-alive clients
// without any of them waiting.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <charconv>
#include <istream>

#include <netinet/in.h>
#include <sys/socket.h>

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>

#include "engine/engine.hpp"
#include "http/problem.hpp"

namespace trellis::engine {
namespace {

// Poco's SocketAddress::toString() cost about as much as the rest of translate(); IPv4,
// the common case, is written here in the same "a.b.c.d:port" form, the rest by Poco.
std::string format_address(const Poco::Net::SocketAddress& address) {
    if (address.family() != Poco::Net::SocketAddress::IPv4) return address.toString();
    const auto* in = reinterpret_cast<const sockaddr_in*>(address.addr());
    const auto* bytes = reinterpret_cast<const unsigned char*>(&in->sin_addr.s_addr);
    char text[sizeof "255.255.255.255:65535"];
    char* end = text + sizeof text;
    char* out = text;
    for (int i = 0; i < 4; ++i) {
        out = std::to_chars(out, end, static_cast<unsigned>(bytes[i])).ptr;
        *out++ = i < 3 ? '.' : ':';
    }
    out = std::to_chars(out, end, ntohs(in->sin_port)).ptr;
    return std::string(text, out);
}

http::Request translate(Poco::Net::HTTPServerRequest& in, std::size_t max_body) {
    http::Request out;
    out.method = in.getMethod();
    const std::string& uri = in.getURI();
    auto question = uri.find('?');
    out.path = uri.substr(0, question);
    if (question != std::string::npos) out.query = uri.substr(question + 1);
    out.version = in.getVersion();
    out.remote_address = format_address(in.clientAddress());
    out.headers.reserve(in.size());
    for (const auto& [name, value] : in) out.headers.emplace_back(name, value);

    bool has_body = in.hasContentLength() || in.getChunkedTransferEncoding();
    if (!has_body) return out;
    if (in.hasContentLength() && static_cast<std::size_t>(in.getContentLength64()) > max_body) {
        out.body_too_large = true;
        return out;
    }
    std::istream& stream = in.stream();
    std::string body;
    char buffer[8192];
    while (stream.read(buffer, sizeof buffer), stream.gcount() > 0) {
        body.append(buffer, static_cast<std::size_t>(stream.gcount()));
        if (body.size() > max_body) {
            out.body_too_large = true;
            return out;
        }
    }
    out.body = std::move(body);
    return out;
}

void send(const http::Response& response, Poco::Net::HTTPServerResponse& out, bool draining) {
    out.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(response.status),
                           std::string(http::reason_phrase(response.status)));
    for (const auto& [name, value] : response.headers) out.add(name, value);
    if (response.close_connection || draining) out.setKeepAlive(false);
    // sendBuffer sets Content-Length and omits the body for HEAD requests.
    out.sendBuffer(response.body.data(), response.body.size());
}

// The exchange of one Poco request. The host completes it on this handler thread (it may
// block here), but complete() from another thread works too: the handler waits for it.
class PocoExchange final : public Exchange {
public:
    PocoExchange() : Exchange(false) {}
    void complete() noexcept override {
        std::lock_guard lock(mutex_);
        done_ = true;
        done_signal_.notify_one();
    }
    void wait() {
        std::unique_lock lock(mutex_);
        done_signal_.wait(lock, [this] { return done_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable done_signal_;
    bool done_ = false;
};

class RequestHandler final : public Poco::Net::HTTPRequestHandler {
public:
    RequestHandler(const Handler& handler, std::size_t max_body, const std::atomic<bool>& draining)
        : handler_(handler), max_body_(max_body), draining_(draining) {}

    void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
        PocoExchange exchange;
        try {
            exchange.request = translate(in, max_body_);
            // An unread body would be parsed as the next request: close instead.
            if (exchange.request.body_too_large) exchange.response.close_connection = true;
        } catch (const Poco::Net::NetException&) {
            throw;  // the client went away; Poco closes the connection
        } catch (...) {
            http::Request bare;
            bare.path = in.getURI();
            http::set_problem(exchange.response, bare, 400, "bad_request", "The request could not be read.");
            exchange.response.close_connection = true;
            send(exchange.response, out, true);
            return;
        }
        handler_(exchange);
        exchange.wait();
        if (out.sent()) return;
        send(exchange.response, out, draining_.load());
    }

private:
    const Handler& handler_;
    std::size_t max_body_;
    const std::atomic<bool>& draining_;
};

class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
    HandlerFactory(Handler handler, std::size_t max_body, const std::atomic<bool>& draining)
        : handler_(std::move(handler)), max_body_(max_body), draining_(draining) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
        return new RequestHandler(handler_, max_body_, draining_);
    }

private:
    Handler handler_;
    std::size_t max_body_;
    const std::atomic<bool>& draining_;
};

class PocoEngine final : public Engine {
public:
    PocoEngine(const Options& options, Handler handler, Poco::Net::ServerSocket socket)
        : pool_("trellis-" + options.name, 4, options.max_threads, 60), port_(socket.address().port()) {
        auto* params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(options.max_threads);
        params->setMaxQueued(options.max_queued);
        params->setKeepAlive(true);
        params->setKeepAliveTimeout(Poco::Timespan(options.keep_alive_timeout.count() * 1000));
        params->setMaxKeepAliveRequests(options.max_keep_alive_requests);
        params->setTimeout(Poco::Timespan(30, 0));
        server_ = std::make_unique<Poco::Net::HTTPServer>(
            new HandlerFactory(std::move(handler), options.max_body_bytes, draining_), pool_, socket, params);
    }

    ~PocoEngine() override { stop(); }

    void start() override { server_->start(); }

    // Poco's stop() ends the accept loop but leaves the socket listening (the kernel would
    // keep queueing connections nobody serves), so shut it down to refuse them. Then
    // stopAll(false) shuts idle keep-alive connections down at once and waits for each
    // request in flight before closing its connection.
    void stop() override {
        if (stopped_) return;
        stopped_ = true;
        draining_ = true;
        server_->stop();
        // Shut the listening socket down (Poco still owns and later closes the descriptor):
        // on Linux it leaves LISTEN, so new connections are refused instead of queued.
        ::shutdown(server_->socket().impl()->sockfd(), SHUT_RDWR);
        server_->stopAll(false);
        pool_.joinAll();
    }

    std::uint16_t port() const override { return port_; }

private:
    std::atomic<bool> draining_{false};  // responses from now on carry Connection: close
    Poco::ThreadPool pool_;              // before server_: the server is destroyed first
    std::unique_ptr<Poco::Net::HTTPServer> server_;
    std::uint16_t port_;
    bool stopped_ = false;
};

}  // namespace

tl::expected<std::unique_ptr<Engine>, std::string> make_poco_engine(const Options& options, Handler handler) {
    try {
        Poco::Net::SocketAddress address(options.host, options.port);
        Poco::Net::ServerSocket socket;
        // SO_REUSEADDR for quick restarts, but never SO_REUSEPORT (Poco's default with
        // reuseAddress): a second Trellis on the same port must fail, not share it.
        socket.bind(address, true, false);
        socket.listen(1024);
        return std::make_unique<PocoEngine>(options, std::move(handler), socket);
    } catch (const Poco::Exception& e) {
        return tl::unexpected("cannot listen on " + options.host + ":" + std::to_string(options.port) + " (" +
                              options.name + " listener): " + e.displayText());
    }
}

}  // namespace trellis::engine
