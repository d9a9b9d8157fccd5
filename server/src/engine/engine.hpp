// The HTTP engine adapter: the only place that knows which HTTP library serves sockets.
// Everything above it sees trellis::http::Request/Response. Two engines: `event` (Boost.Asio
// event loops and Beast's parser, event_engine.cpp) and `poco` (Poco's thread-per-connection
// HTTPServer, poco_engine.cpp); make_engine() picks one from server.engine.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <tl/expected.hpp>

#include "http/message.hpp"

namespace trellis::engine {

class TlsContext;

enum class Kind { event, poco };

struct Options {
    Kind kind = Kind::event;
    std::string name = "public";  // for logs and thread names
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;  // 0 picks a free port (tests)

    // Both engines.
    std::chrono::milliseconds keep_alive_timeout{5000};
    int max_keep_alive_requests = 1000;  // 0: no limit
    std::size_t max_body_bytes = 1024 * 1024;
    std::chrono::milliseconds header_timeout{10000};  // the whole request head
    std::chrono::milliseconds body_timeout{60000};    // the body, from the end of the head
    std::chrono::milliseconds send_timeout{60000};    // a response that makes no progress
    std::size_t max_header_bytes = 16 * 1024;         // 431 beyond
    int max_headers = 100;                            // 431 beyond
    std::size_t max_uri_bytes = 8 * 1024;             // 414 beyond

    // Event engine.
    int io_threads = 1;
    std::shared_ptr<TlsContext> tls;  // HTTPS when set (engine/tls.hpp)
    int max_connections = 16384;  // beyond it the listener stops accepting until one closes

    // Poco engine: thread per connection.
    int max_threads = 512;
    int max_queued = 1024;

    // The systemd watchdog: each event loop marks a heartbeat this often from a timer on the
    // loop (0: no heartbeat timer).
    std::chrono::milliseconds heartbeat_interval{0};
};

// One request and its response. The engine owns it and hands it to the handler; the handler
// fills `response` and calls complete() exactly once, from any thread, and must not touch the
// exchange afterwards. Until then the engine keeps the exchange (and its connection) alive.
class Exchange {
public:
    http::Request request;
    http::Response response;

    // True when the handler is called on an event loop thread, which must never block: the
    // host then runs blocking work on its worker pool. False on the Poco engine, whose
    // handler thread belongs to one connection and may block.
    bool on_event_loop() const { return on_event_loop_; }

    virtual void complete() noexcept = 0;

protected:
    explicit Exchange(bool on_event_loop) : on_event_loop_(on_event_loop) {}
    ~Exchange() = default;

private:
    bool on_event_loop_;
};

// An exchange whose caller blocks until the handler completes it: the Poco engine's handler
// thread and the embedding API's request call. complete() may come from any thread.
class BlockingExchange final : public Exchange {
public:
    explicit BlockingExchange(bool on_event_loop) : Exchange(on_event_loop) {}

    void complete() noexcept override {
        // Notified under the lock: the waiter may destroy this exchange as soon as it wakes.
        std::lock_guard lock(mutex_);
        done_ = true;
        done_changed_.notify_all();
    }

    void wait() {
        std::unique_lock lock(mutex_);
        done_changed_.wait(lock, [this] { return done_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable done_changed_;
    bool done_ = false;
};

// Called for every request that passed the engine's checks; must not throw.
// request.body_too_large is set when the body exceeded max_body_bytes (body is empty then).
using Handler = std::function<void(Exchange&)>;

class Engine {
public:
    virtual ~Engine() = default;
    virtual void start() = 0;
    // Stops accepting, closes idle keep-alive connections, and waits for requests in flight
    // to finish; responses sent from now on carry Connection: close.
    virtual void stop() = 0;
    virtual std::uint16_t port() const = 0;

    // New connections use this TLS context (a reload's re-read certificates); connections
    // already open keep theirs. Only an engine started with TLS takes one.
    virtual void replace_tls(std::shared_ptr<TlsContext>) {}

    // Connection counts since start, read at scrape (GET /metrics).
    struct Stats {
        std::int64_t open = 0;       // connections open now (Poco: served and queued)
        std::uint64_t accepted = 0;  // connections accepted
        std::uint64_t refused = 0;   // event: accepts deferred at max_connections or failed for lack of
                                     // descriptors/memory (EMFILE, ENFILE, ENOBUFS, ENOMEM); Poco:
                                     // connections refused beyond max_queued
    };
    virtual Stats stats() const { return {}; }

    // The stalest heartbeat of the engine's event loops (Options::heartbeat_interval): a loop
    // that is stuck shows here as an old time. An engine without event loops (Poco: a thread
    // per connection, where a handler may block) has nothing to go stale and answers now.
    virtual std::chrono::steady_clock::time_point oldest_heartbeat() const { return std::chrono::steady_clock::now(); }
};

// Binds the socket immediately so that a busy port is reported before anything starts.
tl::expected<std::unique_ptr<Engine>, std::string> make_engine(const Options& options, Handler handler);
tl::expected<std::unique_ptr<Engine>, std::string> make_poco_engine(const Options& options, Handler handler);
tl::expected<std::unique_ptr<Engine>, std::string> make_event_engine(const Options& options, Handler handler);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
std::uint64_t raise_file_limit();

}  // namespace trellis::engine
