// trellis serve: listen, serve, reload on SIGHUP, stop on SIGTERM/SIGINT.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <thread>

#include <pthread.h>
#include <trellis/abi.h>

#include "cli/commands.hpp"
#include "engine/engine.hpp"
#include "runtime/logging.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/runtime.hpp"

namespace trellis::cli {
namespace {

trellis::engine::Options engine_options(const trellis::config::ServerConfig& server, bool admin) {
    trellis::engine::Options options;
    options.name = admin ? "admin" : "public";
    const auto& endpoint = admin ? server.admin_listen : server.listen;
    options.host = endpoint.host;
    options.port = endpoint.port;
    options.max_threads = admin ? 16 : server.max_threads;
    options.max_queued = admin ? 64 : server.max_queued;
    options.keep_alive_timeout = server.keep_alive_timeout;
    options.max_keep_alive_requests = server.max_keep_alive_requests;
    options.max_body_bytes = server.max_body_bytes;
    return options;
}

// Stops accepting, closes idle keep-alive connections and lets requests in flight finish
// (their responses carry Connection: close). Returns false when the drain timeout passed
// or a second SIGTERM/SIGINT asked to stop at once; the caller then exits non-zero.
bool drain(std::vector<std::unique_ptr<trellis::engine::Engine>>& engines, const sigset_t& signals,
           std::chrono::milliseconds timeout, spdlog::logger& log) {
    log.info("draining: no new connections; requests in flight have {} ms to finish", timeout.count());
    std::atomic<bool> done{false};
    std::thread drainer([&] {
        for (auto& engine : engines) engine->stop();
        done = true;
    });
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done) {
        if (std::chrono::steady_clock::now() >= deadline) {
            log.error("drain timeout of {} ms passed with requests still running; exiting now", timeout.count());
            log.flush();
            std::_Exit(1);  // handler threads cannot be cancelled safely; do not run destructors under them
        }
        timespec slice{0, 50'000'000};
        int signal = sigtimedwait(&signals, nullptr, &slice);
        if (signal == SIGINT || signal == SIGTERM) {
            log.warn("second {}, stopping at once", signal == SIGINT ? "SIGINT" : "SIGTERM");
            log.flush();
            std::_Exit(1);
        }
    }
    drainer.join();
    log.info("drained: every request in flight finished");
    return true;
}

}  // namespace

int serve(const Arguments& args) {
    namespace rt = trellis::runtime;
    // Block the signals we wait for before any thread starts, so that only sigwait sees them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto config = load_config(args.config_path);
    if (!config) return 1;
    trellis::logging::configure(config->logging);
    auto log = trellis::logging::get("trellis");
    log->info("Trellis {} (plugin ABI {}.{}) starting with {}", TRELLIS_VERSION, TRELLIS_ABI_MAJOR, TRELLIS_ABI_MINOR,
              args.config_path);

    trellis::plugin::LibraryCache libraries;
    auto runtime = rt::Runtime::build(config, libraries);
    if (!runtime) {
        for (const auto& error : runtime.error()) log->critical("{}", error);
        log->critical("start-up failed");
        return 1;
    }
    rt::Pipeline pipeline(*runtime);

    std::vector<std::unique_ptr<trellis::engine::Engine>> engines;
    auto add_engine = [&](bool admin) {
        auto listener = admin ? rt::Listener::admin : rt::Listener::public_;
        auto made = trellis::engine::make_poco_engine(
            engine_options(config->server, admin),
            [&pipeline, listener](auto& request, auto& response) { pipeline.handle(request, response, listener); });
        if (!made) {
            log->critical("{}", made.error());
            return false;
        }
        engines.push_back(std::move(*made));
        return true;
    };
    if (!add_engine(false) || (config->server.admin_enabled && !add_engine(true))) return 1;
    for (auto& engine : engines) engine->start();
    log->info("listening on {} (public){}", config->server.listen.text(),
              config->server.admin_enabled ? ", " + config->server.admin_listen.text() + " (admin)" : "");

    while (true) {
        int signal = 0;
        sigwait(&signals, &signal);
        if (signal != SIGHUP) {
            log->info("received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        // Reload: the same path as start-up; on any error the current runtime keeps serving.
        log->info("received SIGHUP, reloading {}", args.config_path);
        auto next_config = load_config(args.config_path);
        if (!next_config) {
            log->error("reload aborted: configuration has errors; still serving the previous one");
            continue;
        }
        if (next_config->server.listen.text() != config->server.listen.text() ||
            next_config->server.admin_listen.text() != config->server.admin_listen.text())
            log->warn("listener addresses changed; they take effect after a restart");
        trellis::logging::configure(next_config->logging);
        auto next = rt::Runtime::build(next_config, libraries);
        if (!next) {
            for (const auto& error : next.error()) log->error("{}", error);
            log->error("reload aborted; still serving the previous runtime");
            continue;
        }
        pipeline.replace(*next);
        log->info("reloaded");
    }
    pipeline.set_ready(false);
    if (!drain(engines, signals, config->server.drain_timeout, *log)) return 1;
    // Releasing the last runtime shuts the plugins down in reverse dependency order.
    pipeline.replace(nullptr);
    runtime = {};
    log->info("stopped");
    return 0;
}

}  // namespace trellis::cli
