// The request path through the host: request id, the listener's own routes (health, admin),
// routing, the middleware chains, the handler, problem+json for every failure, and the
// access log line. Chains that may block run on the worker pool; the rest runs where the
// engine called (an event loop, or a Poco connection thread).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "engine/engine.hpp"
#include "http/compression.hpp"
#include "http/forwarded.hpp"
#include "http/message.hpp"
#include "http/router.hpp"
#include "runtime/runtime.hpp"

namespace trellis::host {
class WorkerPool;
}
namespace trellis::metrics {
class Metrics;
}

namespace trellis::runtime {

// What one listener serves: the host's own routes (matched first, answered on the calling
// thread without plugin middleware) and, on the public listener, the runtime's routes.
class ListenerRoutes {
public:
    using Answer = std::function<void(const http::Request&, http::Response&)>;

    ListenerRoutes(std::string name, bool serves_plugins) : name_(std::move(name)), serves_plugins_(serves_plugins) {}

    // The answer must not block: it runs on an event loop. A `blocking` answer (database,
    // reload) runs on the worker pool instead, as a blocking plugin route does.
    void add(std::string_view method, std::string_view path, Answer answer, bool blocking = false);

    const std::string& name() const { return name_; }
    bool serves_plugins() const { return serves_plugins_; }
    const http::Router& router() const { return router_; }
    const Answer& answer(std::size_t id) const { return answers_[id]; }
    bool blocking(std::size_t id) const { return blocking_[id]; }

    // The Host names this listener serves, and its own "host:port" for base URLs of
    // requests without a usable Host; set by the host once the listener is bound.
    void set_edge(http::AllowedHosts hosts, std::string authority) {
        allowed_hosts_.emplace(std::move(hosts));
        authority_ = std::move(authority);
    }
    bool allows_host(const std::string* host) const { return !allowed_hosts_ || allowed_hosts_->allows(host); }
    const std::string& authority() const { return authority_; }

private:
    std::string name_;
    bool serves_plugins_;
    http::Router router_;
    std::vector<Answer> answers_;
    std::vector<bool> blocking_;
    std::optional<http::AllowedHosts> allowed_hosts_;
    std::string authority_ = "localhost";
};

struct PipelineOptions {
    host::WorkerPool* workers = nullptr;            // null: everything runs where the engine calls
    std::chrono::microseconds inline_warn{5000};    // an inline chain slower than this is logged
    bool force_workers = false;                     // benchmarks: every plugin chain on the pool
    metrics::Metrics* metrics = nullptr;            // null: no request instrumentation
    std::shared_ptr<const http::ProxyList> trusted_proxies;  // null: no proxy is trusted
    http::CompressionSettings compression;
    // On an event loop, bodies larger than this are compressed on the worker pool.
    std::size_t inline_compress_limit = 64 * 1024;
};

class Pipeline {
public:
    explicit Pipeline(std::shared_ptr<const Runtime> initial, PipelineOptions options = {});

    // Swaps in a new runtime; requests in flight finish on the one they started with, and
    // the old runtime is released (plugins shut down) when its last request ends.
    void replace(std::shared_ptr<const Runtime> next);
    std::shared_ptr<const Runtime> current() const { return runtime_.load(); }

    // Never throws; every failure becomes a problem+json response. Completes the exchange,
    // on this thread or on a worker.
    void handle(engine::Exchange& exchange, const ListenerRoutes& listener) const;

    // Where requests ran since start: on the thread the engine called (an event loop, or a
    // Poco connection thread), on the worker pool, or refused because its queue was full.
    struct Counts {
        std::uint64_t inline_runs = 0;
        std::uint64_t worker_runs = 0;
        std::uint64_t worker_rejections = 0;
        std::uint64_t compressions_on_workers = 0;  // large bodies handed off by an event loop
    };
    Counts counts() const;

    // As handle(), for callers without an engine (tests): runs on this thread.
    void handle(http::Request& request, http::Response& response, const ListenerRoutes& listener) const;

private:
    struct Work;
    void run(Work& work) const noexcept;
    void run_host_answer_on_worker(Work& work, const ListenerRoutes::Answer& answer) const;
    void finish(Work& work) const noexcept;
    void install_metrics(const Runtime* runtime) const;
    void count_request(Work& work, std::chrono::steady_clock::time_point now) const noexcept;
    // Sets trellis.client_address and trellis.base_url; false (with a 421) when the Host is
    // not one the listener serves.
    bool edge(http::Request& request, http::Response& response, const ListenerRoutes& listener) const;
    // Compresses the response, or hands it to a worker that finishes the exchange (true).
    bool compress(Work& work) const noexcept;

    std::atomic<std::shared_ptr<const Runtime>> runtime_;
    PipelineOptions options_;
    std::shared_ptr<spdlog::logger> log_;  // looked up once: get() takes a lock
    std::shared_ptr<spdlog::logger> access_log_;
    mutable std::atomic<std::uint64_t> inline_runs_{0};
    mutable std::atomic<std::uint64_t> worker_runs_{0};
    mutable std::atomic<std::uint64_t> worker_rejections_{0};
    mutable std::atomic<std::uint64_t> compressions_on_workers_{0};
};

}  // namespace trellis::runtime
