// trellis serve: signal wiring around the host. SIGHUP reloads, SIGTERM/SIGINT drain and stop,
// SIGUSR1 reopens the log files (logrotate).
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
#include "host/host.hpp"
#include "host/pid_file.hpp"
#include "host/systemd_notify.hpp"
#include "runtime/logging.hpp"

namespace trellis::cli {
namespace {

// Drains the host on another thread while this one waits for the drain timeout or a second
// SIGTERM/SIGINT; either ends the process at once (exit code 1): handler threads cannot be
// cancelled safely, so no destructor runs under them.
void drain(host::Host& host, const sigset_t& signals, std::chrono::milliseconds timeout, spdlog::logger& log) {
    log.info("draining: no new connections; requests in flight have {} ms to finish", timeout.count());
    std::atomic<bool> done{false};
    std::thread drainer([&] {
        host.drain();
        done = true;
    });
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done) {
        if (std::chrono::steady_clock::now() >= deadline) {
            log.error("drain timeout of {} ms passed with requests still running; exiting now", timeout.count());
            trellis::logging::flush(std::chrono::milliseconds(500));
            std::_Exit(1);
        }
        timespec slice{0, 50'000'000};
        int signal = sigtimedwait(&signals, nullptr, &slice);
        if (signal == SIGUSR1) trellis::logging::reopen();
        if (signal == SIGINT || signal == SIGTERM) {
            log.warn("second {}, stopping at once", signal == SIGINT ? "SIGINT" : "SIGTERM");
            trellis::logging::flush(std::chrono::milliseconds(500));
            std::_Exit(1);
        }
    }
    drainer.join();
    log.info("drained: every request in flight finished");
}

// server.shutdown_delay: /readyz answers 503 while the listeners keep serving, so a load
// balancer takes this instance out before the drain closes them. A second SIGTERM/SIGINT
// ends the delay at once; a SIGHUP in it is ignored.
void shutdown_delay(host::Host& host, const sigset_t& signals, std::chrono::milliseconds delay, spdlog::logger& log) {
    host.begin_shutdown();
    if (delay.count() <= 0) return;
    log.info("/readyz answers 503; serving on for {} ms (server.shutdown_delay) before draining", delay.count());
    const auto deadline = std::chrono::steady_clock::now() + delay;
    while (true) {
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) return;
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        timespec slice{static_cast<std::time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        const int signal = sigtimedwait(&signals, nullptr, &slice);
        if (signal == SIGINT || signal == SIGTERM) {
            log.info("second {}: draining now", signal == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
        if (signal == SIGHUP) log.warn("SIGHUP ignored: shutting down");
    }
}

}  // namespace

int serve(const Arguments& args) {
    // Block the signals we wait for before any thread starts, so that only sigwait sees them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto config = load_config(args.config_path);
    if (!config) return 1;
    trellis::logging::configure(config->logging);
    auto log = trellis::logging::get("trellis");
    log->info("Trellis {} (plugin ABI {}.{}) starting with {}", TRELLIS_VERSION, TRELLIS_ABI_MAJOR, TRELLIS_ABI_MINOR,
              args.config_path);
    log->info("file descriptor limit: {}", trellis::engine::raise_file_limit());
    auto pid_file = host::PidFile::claim(config->server.pid_file);
    if (!pid_file) {
        log->critical("{}", pid_file.error());
        log->critical("start-up failed");
        return 1;
    }
    host::systemd::activate();

    const std::string path = args.config_path;
    auto host = host::Host::create(config, [path] { return config::load({path, config::process_environment()}); });
    if (!host) {
        for (const auto& error : host.error()) log->critical("{}", error);
        log->critical("start-up failed");
        return 1;
    }
    (*host)->start();
    if (auto written = pid_file->write(); !written) {
        log->critical("{}", written.error());
        log->critical("start-up failed");
        return 1;
    }
    const std::string listening =
        "listening on " + config->server.listen.text() + (config->server.tls ? " (public, HTTPS)" : " (public)") +
        (config->server.admin_enabled ? ", " + config->server.admin_listen.text() + " (admin)" : "");
    log->info("{}, {} engine", listening, config::to_string(config->server.engine));
    host::systemd::ready("serving; " + listening);
    host::systemd::Watchdog watchdog([&served = **host] { return served.oldest_heartbeat(); });

    while (true) {
        int signal = 0;
        sigwait(&signals, &signal);
        if (signal == SIGUSR1) {
            trellis::logging::reopen();
            log->info("received SIGUSR1, reopened the log files");
            continue;
        }
        if (signal != SIGHUP) {
            log->info("received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
            watchdog.stop();  // systemd stops watching at STOPPING=1
            host::systemd::stopping("stopping: draining the requests in flight");
            break;
        }
        log->info("received SIGHUP, reloading {}", args.config_path);
        auto result = (*host)->reload();
        for (const auto& error : result.errors) log->error("{}", error);
        if (result.reloaded) log->info("reloaded");
    }
    shutdown_delay(**host, signals, (*host)->config()->server.shutdown_delay, *log);
    drain(**host, signals, (*host)->config()->server.drain_timeout, *log);
    host->reset();
    log->info("stopped");
    return 0;
}

}  // namespace trellis::cli
