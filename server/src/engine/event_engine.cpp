// The event engine: server.io_threads Boost.Asio event loops, each one io_context on one
// thread. Loop 0 accepts and spreads connections round robin; a connection stays on its loop
// for life and only that loop touches it. Each connection drives an http1::Session (the
// protocol, without I/O). Handlers hand their completion back with Exchange::complete(),
// from any thread: the loop then writes the response.
#include <utility>  // before Boost 1.74's Asio with g++ 12 in C++20

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sys/resource.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include "engine/engine.hpp"
#include "engine/http1.hpp"
#include "engine/tls.hpp"
#include "plugin/thread_role.hpp"
#include "runtime/logging.hpp"

namespace trellis::engine {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using TlsStream = asio::ssl::stream<tcp::socket>;
using http1::Clock;

class Connection;
class EventEngine;

// How often each loop checks its connections' deadlines; deadlines are kept to this.
constexpr auto sweep_interval = std::chrono::milliseconds(200);

struct Loop {
    http1::BufferPool buffers;  // first: connections destroyed with io give their buffers back
    asio::io_context io{1};
    asio::steady_timer sweep{io};
    // The systemd watchdog's proof that this loop runs: its own timer stores the time here
    // (steady clock ticks), read by oldest_heartbeat() on the watchdog thread.
    asio::steady_timer beat{io};
    std::atomic<Clock::rep> heartbeat{0};
    std::vector<Connection*> connections;  // every open connection of this loop
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    bool draining = false;
    std::thread thread;
};

std::string format_endpoint(const tcp::endpoint& endpoint) {
    const auto address = endpoint.address();
    std::string text = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return text + ":" + std::to_string(endpoint.port());
}

class EventEngine final : public Engine {
public:
    EventEngine(const Options& options, Handler handler);
    ~EventEngine() override { stop(); }

    tl::expected<void, std::string> bind();
    void start() override;
    void stop() override;
    std::uint16_t port() const override { return port_; }
    Clock::time_point oldest_heartbeat() const override;
    void replace_tls(std::shared_ptr<TlsContext> tls) override {
        std::lock_guard lock(tls_mutex_);
        if (tls_) tls_ = std::move(tls);
    }
    std::shared_ptr<TlsContext> tls() const {
        std::lock_guard lock(tls_mutex_);
        return tls_;
    }
    Stats stats() const override {
        return {open_.load(std::memory_order_relaxed), accepted_.load(std::memory_order_relaxed),
                refused_.load(std::memory_order_relaxed)};
    }

    const Options& options() const { return options_; }
    const Handler& handler() const { return handler_; }
    void connection_closed(Loop& loop);

private:
    void accept();
    void sweep(Loop& loop);
    void beat(Loop& loop);
    void finish_if_drained(Loop& loop);

    Options options_;
    Handler handler_;
    std::vector<std::unique_ptr<Loop>> loops_;
    tcp::acceptor acceptor_;
    asio::steady_timer backoff_;
    std::uint16_t port_ = 0;
    std::size_t next_loop_ = 0;
    std::atomic<int> open_{0};
    std::atomic<bool> paused_{false};
    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::uint64_t> refused_{0};
    Clock::time_point last_backoff_log_{};
    mutable std::mutex tls_mutex_;
    std::shared_ptr<TlsContext> tls_;  // null: plain HTTP
    bool started_ = false;
    std::atomic<bool> stopped_{false};
    std::shared_ptr<spdlog::logger> log_;
};

class Connection final : public Exchange, public std::enable_shared_from_this<Connection> {
public:
    // With `tls`, the connection speaks TLS: the handshake first, bounded by header_timeout.
    Connection(EventEngine& engine, Loop& loop, tcp::socket socket, std::string remote, std::shared_ptr<TlsContext> tls)
        : Exchange(true),
          engine_(engine),
          loop_(loop),
          socket_(std::move(socket)),
          session_(engine.options(), loop.buffers, request, response, std::move(remote), Clock::now()) {
        if (tls) {
            tls_context_ = std::move(tls);
            tls_ = std::make_unique<TlsStream>(std::move(socket_), tls_context_->native());
        }
    }

    // On the connection's loop.
    void start() {
        index_ = loop_.connections.size();
        loop_.connections.push_back(this);
        if (loop_.draining) session_.drain();
        if (!tls_) return drive();
        handshaking_ = true;
        tls_->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this()](const boost::system::error_code& error) {
            self->handshaking_ = false;
            if (self->closed_) return;
            if (error) return self->close();  // a plain-HTTP client, TLS 1.1, no shared cipher
            self->request.secure = true;
            self->drive();
        });
    }

    // Any thread, once per dispatched request.
    void complete() noexcept override {
        if (in_handler_ && loop_.io.get_executor().running_in_this_thread()) {
            completed_inline_ = true;
            return;
        }
        asio::post(loop_.io, [self = std::move(pending_)] {
            if (self->closed_) return;
            self->session_.responded(Clock::now());
            self->drive();
        });
    }

    void on_deadline(Clock::time_point now) {
        if (handshaking_) return close();
        session_.expired(now);
        drive();
    }

    void begin_drain() {
        session_.drain();
        if (handshaking_ || session_.idle()) close();
    }

    Clock::time_point deadline() const { return session_.deadline(); }

    void close() {
        if (closed_) return;
        closed_ = true;
        boost::system::error_code ignored;
        lowest().close(ignored);
        Connection* moved = loop_.connections.back();
        loop_.connections[index_] = moved;
        moved->index_ = index_;
        loop_.connections.pop_back();
        engine_.connection_closed(loop_);
    }

private:
    void drive() {
        while (!closed_) {
            switch (session_.next(Clock::now())) {
                case http1::Session::Step::read: return read();
                case http1::Session::Step::dispatch:
                    if (!dispatch()) return;
                    break;
                case http1::Session::Step::write: return write();
                case http1::Session::Step::linger:
                    if (!shut_down_) {
                        boost::system::error_code ignored;
                        lowest().shutdown(tcp::socket::shutdown_send, ignored);
                        shut_down_ = true;
                    }
                    return read();
                case http1::Session::Step::close: return close();
            }
        }
    }

    tcp::socket& lowest() { return tls_ ? tls_->next_layer() : socket_; }

    void read() {
        if (reading_) return;
        auto [data, size] = session_.read_space();
        if (size == 0) return close();
        reading_ = true;
        auto done = [self = shared_from_this()](const boost::system::error_code& error, std::size_t bytes) {
            self->reading_ = false;
            if (self->closed_) return;
            if (error || bytes == 0)
                self->session_.end_of_input();
            else
                self->session_.received(bytes, Clock::now());
            self->drive();
        };
        if (tls_)
            tls_->async_read_some(asio::buffer(data, size), std::move(done));
        else
            socket_.async_read_some(asio::buffer(data, size), std::move(done));
    }

    void write() {
        if (writing_) return;
        const auto out = session_.output();
        const std::array<asio::const_buffer, 2> buffers{asio::buffer(out[0]), asio::buffer(out[1])};
        writing_ = true;
        // One gathered write (writev) of head and body; partial writes continue from sent().
        // Over TLS a write takes the first non-empty buffer only, one record at a time.
        auto done = [self = shared_from_this()](const boost::system::error_code& error, std::size_t bytes) {
            self->writing_ = false;
            if (self->closed_) return;
            if (error)
                self->session_.end_of_input();
            else
                self->session_.sent(bytes, Clock::now());
            self->drive();
        };
        if (tls_)
            tls_->async_write_some(buffers, std::move(done));
        else
            socket_.async_write_some(buffers, std::move(done));
    }

    // True when the handler completed on this thread and the loop may go on.
    bool dispatch() {
        pending_ = shared_from_this();  // the exchange lives until complete()
        completed_inline_ = false;
        in_handler_ = true;
        engine_.handler()(*this);
        in_handler_ = false;
        if (!completed_inline_) return false;
        pending_.reset();
        session_.responded(Clock::now());
        return true;
    }

    EventEngine& engine_;
    Loop& loop_;
    tcp::socket socket_;  // plain HTTP; moved into tls_ for TLS
    std::shared_ptr<TlsContext> tls_context_;  // kept for the stream's life (a reload may replace the engine's)
    std::unique_ptr<TlsStream> tls_;
    http1::Session session_;
    std::shared_ptr<Connection> pending_;
    std::size_t index_ = 0;
    bool closed_ = false;
    bool reading_ = false;
    bool writing_ = false;
    bool shut_down_ = false;
    bool in_handler_ = false;
    bool completed_inline_ = false;
    bool handshaking_ = false;
};

EventEngine::EventEngine(const Options& options, Handler handler)
    : options_(options),
      handler_(std::move(handler)),
      loops_([&] {
          std::vector<std::unique_ptr<Loop>> loops;
          for (int i = 0; i < std::max(1, options.io_threads); ++i) loops.push_back(std::make_unique<Loop>());
          return loops;
      }()),
      acceptor_(loops_.front()->io),
      backoff_(loops_.front()->io),
      tls_(options.tls),
      log_(logging::get("trellis")) {}

tl::expected<void, std::string> EventEngine::bind() {
    const std::string where = options_.host + ":" + std::to_string(options_.port) + " (" + options_.name + " listener)";
    try {
        tcp::resolver resolver(loops_.front()->io);
        auto results = resolver.resolve(options_.host, std::to_string(options_.port),
                                        tcp::resolver::passive | tcp::resolver::numeric_service);
        if (results.empty()) return tl::unexpected("cannot listen on " + where + ": the address does not resolve");
        const tcp::endpoint endpoint = results.begin()->endpoint();
        acceptor_.open(endpoint.protocol());
        // SO_REUSEADDR for quick restarts, never SO_REUSEPORT: a second Trellis on the same
        // port must fail, not share it.
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen(asio::socket_base::max_listen_connections);
        port_ = acceptor_.local_endpoint().port();
    } catch (const boost::system::system_error& e) {
        return tl::unexpected("cannot listen on " + where + ": " + e.code().message());
    }
    return {};
}

void EventEngine::start() {
    started_ = true;
    for (std::size_t i = 0; i < loops_.size(); ++i) {
        Loop& loop = *loops_[i];
        loop.guard.emplace(loop.io.get_executor());
        sweep(loop);
        loop.heartbeat.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        if (options_.heartbeat_interval.count() > 0) beat(loop);
        loop.thread = std::thread([&loop] {
            plugin::EventLoopThreadScope role;  // database calls from here are refused
            loop.io.run();
        });
        std::string name = ("trellis-" + options_.name.substr(0, 3) + "-" + std::to_string(i)).substr(0, 15);
        pthread_setname_np(loop.thread.native_handle(), name.c_str());
    }
    asio::post(loops_.front()->io, [this] { accept(); });
}

void EventEngine::accept() {
    if (stopped_ || !acceptor_.is_open()) return;
    if (open_.load() >= options_.max_connections) {
        // Full: accept again when a connection closes (connection_closed resumes).
        paused_ = true;
        refused_.fetch_add(1, std::memory_order_relaxed);
        if (open_.load() < options_.max_connections && paused_.exchange(false)) accept();
        return;
    }
    Loop& loop = *loops_[next_loop_];
    next_loop_ = (next_loop_ + 1) % loops_.size();
    acceptor_.async_accept(loop.io, [this, &loop](const boost::system::error_code& error, tcp::socket socket) {
        if (error == asio::error::operation_aborted || stopped_) return;
        if (error) {
            if (error.value() == EMFILE || error.value() == ENFILE || error.value() == ENOBUFS ||
                error.value() == ENOMEM) {
                // Out of descriptors or memory: wait for connections to close instead of spinning.
                refused_.fetch_add(1, std::memory_order_relaxed);
                auto now = Clock::now();
                if (now - last_backoff_log_ > std::chrono::seconds(1)) {
                    log_->warn("{} listener cannot accept ({}); {} connections open; pausing accepts briefly",
                               options_.name, error.message(), open_.load());
                    last_backoff_log_ = now;
                }
                backoff_.expires_after(std::chrono::milliseconds(100));
                backoff_.async_wait([this](const boost::system::error_code& waited) {
                    if (!waited) accept();
                });
                return;
            }
            accept();  // the client gave up before we accepted (ECONNABORTED and the like)
            return;
        }
        ++open_;
        accepted_.fetch_add(1, std::memory_order_relaxed);
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto endpoint = socket.remote_endpoint(ignored);
        auto connection =
            std::make_shared<Connection>(*this, loop, std::move(socket), format_endpoint(endpoint), tls());
        asio::post(loop.io, [connection] { connection->start(); });
        accept();
    });
}

void EventEngine::connection_closed(Loop& loop) {
    if (--open_ < options_.max_connections && paused_.exchange(false))
        asio::post(loops_.front()->io, [this] { accept(); });
    finish_if_drained(loop);
}

void EventEngine::sweep(Loop& loop) {
    loop.sweep.expires_after(sweep_interval);
    loop.sweep.async_wait([this, &loop](const boost::system::error_code& error) {
        if (error) return;
        const auto now = Clock::now();
        std::vector<std::shared_ptr<Connection>> expired;
        for (Connection* connection : loop.connections)
            if (connection->deadline() <= now) expired.push_back(connection->shared_from_this());
        for (auto& connection : expired) connection->on_deadline(now);
        if (!(loop.draining && loop.connections.empty())) sweep(loop);
    });
}

// A timer of its own, not the request path: one relaxed store per interval and loop.
void EventEngine::beat(Loop& loop) {
    loop.beat.expires_after(options_.heartbeat_interval);
    loop.beat.async_wait([this, &loop](const boost::system::error_code& error) {
        if (error || (loop.draining && loop.connections.empty())) return;
        loop.heartbeat.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
        beat(loop);
    });
}

Clock::time_point EventEngine::oldest_heartbeat() const {
    if (options_.heartbeat_interval.count() <= 0) return Clock::now();
    auto oldest = Clock::now().time_since_epoch().count();
    for (const auto& loop : loops_) oldest = std::min(oldest, loop->heartbeat.load(std::memory_order_relaxed));
    return Clock::time_point(Clock::duration(oldest));
}

void EventEngine::finish_if_drained(Loop& loop) {
    if (!loop.draining || !loop.connections.empty()) return;
    loop.sweep.cancel();
    loop.beat.cancel();
    loop.guard.reset();
}

void EventEngine::stop() {
    if (stopped_) return;
    if (!started_) {
        stopped_ = true;
        return;
    }
    // Stop accepting first (on loop 0, which owns the acceptor), then drain every loop.
    asio::post(loops_.front()->io, [this] {
        stopped_ = true;
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        backoff_.cancel();
    });
    for (auto& loop_ptr : loops_) {
        Loop& loop = *loop_ptr;
        asio::post(loop.io, [this, &loop] {
            loop.draining = true;
            std::vector<std::shared_ptr<Connection>> open;
            for (Connection* connection : loop.connections) open.push_back(connection->shared_from_this());
            for (auto& connection : open) connection->begin_drain();
            finish_if_drained(loop);
        });
    }
    for (auto& loop : loops_)
        if (loop->thread.joinable()) loop->thread.join();
    stopped_ = true;
}

}  // namespace

std::uint64_t raise_file_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return static_cast<std::uint64_t>(limit.rlim_cur);
}

tl::expected<std::unique_ptr<Engine>, std::string> make_event_engine(const Options& options, Handler handler) {
    auto engine = std::make_unique<EventEngine>(options, std::move(handler));
    if (auto bound = engine->bind(); !bound) return tl::unexpected(bound.error());
    return engine;
}

tl::expected<std::unique_ptr<Engine>, std::string> make_engine(const Options& options, Handler handler) {
    if (options.kind == Kind::poco) return make_poco_engine(options, std::move(handler));
    return make_event_engine(options, std::move(handler));
}

}  // namespace trellis::engine
