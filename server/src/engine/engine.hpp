// The HTTP engine adapter: the only place that knows which HTTP library serves sockets.
// Everything above it sees trellis::http::Request/Response; a different engine (an
// event-driven one, for example) replaces poco_engine.cpp without touching the rest.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <tl/expected.hpp>

#include "http/message.hpp"

namespace trellis::engine {

struct Options {
    std::string name = "public";  // for logs and thread names
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;  // 0 picks a free port (tests)
    int max_threads = 512;
    int max_queued = 1024;
    std::chrono::milliseconds keep_alive_timeout{5000};
    int max_keep_alive_requests = 1000;
    std::size_t max_body_bytes = 1024 * 1024;
};

// Called on an engine thread for every request; must not throw (the engine guards anyway).
// request.body_too_large is set when the body exceeded max_body_bytes (body is empty then).
using Handler = std::function<void(http::Request&, http::Response&)>;

class Engine {
public:
    virtual ~Engine() = default;
    virtual void start() = 0;
    // Stops accepting, closes idle keep-alive connections, and waits for requests in flight
    // to finish; responses sent from now on carry Connection: close.
    virtual void stop() = 0;
    virtual std::uint16_t port() const = 0;
};

// Binds the socket immediately so that a busy port is reported before anything starts.
tl::expected<std::unique_ptr<Engine>, std::string> make_poco_engine(const Options& options, Handler handler);

}  // namespace trellis::engine
