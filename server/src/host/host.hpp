// The running server: one object owns the loaded plugin libraries, the current runtime, the
// worker pool, the listeners and their engines, and offers reload() and drain(). Start-up and
// reload build the runtime the same way; the CLI only wires signals to this object.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <tl/expected.hpp>

#include "config/config.hpp"
#include "engine/engine.hpp"
#include "host/readiness.hpp"
#include "host/upgrades.hpp"
#include "host/worker_pool.hpp"
#include "metrics/metrics.hpp"
#include "plugin/loader.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/runtime.hpp"

namespace trellis::host {

// Loads the configuration again for a reload (the main file, conf.d and the environment).
using ConfigSource = std::function<tl::expected<std::shared_ptr<const config::Config>, config::Errors>()>;

class Host {
public:
    // Builds the runtime and binds every listener (a busy port is an error here), but serves
    // nothing until start(). The errors say what failed, one message each.
    static tl::expected<std::unique_ptr<Host>, config::Errors> create(std::shared_ptr<const config::Config> config,
                                                                      ConfigSource reload_source);
    // Without listeners, for the embedding API (server/src/embed): the same runtime, worker
    // pool and public routes, served by serve_local() on the caller's thread; no admin listener.
    static tl::expected<std::unique_ptr<Host>, config::Errors> create_local(std::shared_ptr<const config::Config> config,
                                                                            ConfigSource reload_source);
    // One request to the public routes, as the public listener's engine hands it over.
    void serve_local(engine::Exchange& exchange) const { pipeline_->handle(exchange, *local_routes_); }

    ~Host();  // drain() if still serving
    Host(const Host&) = delete;
    Host& operator=(const Host&) = delete;

    void start();

    // Loads the configuration again and swaps in a runtime built from it. On any error the
    // current runtime keeps serving and the errors are returned. One reload at a time: with
    // `wait` (SIGHUP) after the one running, else (POST /admin/reload) busy and nothing done.
    struct ReloadResult {
        bool reloaded = false;
        bool busy = false;
        config::Errors errors;
    };
    ReloadResult reload(bool wait = true);

    // SIGTERM with server.shutdown_delay: /readyz answers 503 from now on while the
    // listeners keep serving; drain() follows.
    void begin_shutdown() { shutting_down_ = true; }

    // /readyz answers 503 from now on; stop accepting, close idle connections, let requests
    // in flight finish with Connection: close, then stop the workers and release the runtime
    // (plugins shut down). Blocks until done; the caller enforces server.drain_timeout.
    void drain();

    bool ready() const { return ready_; }
    void set_ready(bool ready) { ready_ = ready; }

    std::uint16_t public_port() const;
    std::uint16_t admin_port() const;  // 0 when the admin listener is off
    // The stalest event-loop heartbeat of every listener (the systemd watchdog's probe).
    std::chrono::steady_clock::time_point oldest_heartbeat() const;
    runtime::Pipeline& pipeline() { return *pipeline_; }
    plugin::LibraryCache& libraries() { return libraries_; }
    // Why each plugin that refused the last reload failed (an upgrade that did not load).
    std::map<std::string, std::string> reload_errors() const { return reload_errors_.get(); }
    std::shared_ptr<const config::Config> config() const;
    // The registry GET /metrics serves; add_callback() adds values read at scrape.
    metrics::Metrics& metrics() { return *metrics_; }

private:
    Host(std::shared_ptr<const config::Config> config, ConfigSource reload_source);
    static tl::expected<std::unique_ptr<Host>, config::Errors> make(std::shared_ptr<const config::Config> config,
                                                                    ConfigSource reload_source, bool listen);
    void add_health_routes(runtime::ListenerRoutes& routes, bool admin = false);
    void add_metrics_route(runtime::ListenerRoutes& routes);  // host/host_metrics.cpp
    void add_metrics_callbacks();
    tl::expected<void, std::string> add_listener(std::unique_ptr<runtime::ListenerRoutes> routes, bool admin);

    std::shared_ptr<spdlog::logger> log_;
    ConfigSource reload_source_;
    mutable std::mutex config_mutex_;
    std::shared_ptr<const config::Config> config_;
    std::mutex reload_mutex_;
    std::atomic<bool> ready_{false};
    std::atomic<bool> shutting_down_{false};
    std::unique_ptr<Readiness> readiness_;
    std::unique_ptr<metrics::Metrics> metrics_;  // outlives the pipeline and engines that count into it
    plugin::LibraryCache libraries_;
    ReloadErrors reload_errors_;
    std::unique_ptr<WorkerPool> workers_;
    std::unique_ptr<runtime::Pipeline> pipeline_;
    struct Listener {
        std::unique_ptr<runtime::ListenerRoutes> routes;
        std::unique_ptr<engine::Engine> engine;
        bool admin = false;
    };
    std::vector<Listener> listeners_;
    std::unique_ptr<runtime::ListenerRoutes> local_routes_;  // create_local() only
    bool started_ = false;
    bool drained_ = false;
};

// The engine options for one listener of this configuration.
engine::Options engine_options(const config::ServerConfig& server, bool admin);

}  // namespace trellis::host
