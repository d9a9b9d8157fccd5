// sd_notify messages and the watchdog thread (see systemd_notify.hpp).
#include "host/systemd_notify.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <string>
#include <system_error>
#include <utility>

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "runtime/logging.hpp"

namespace trellis::host::systemd {
namespace {

std::atomic<bool> active{false};
std::atomic<std::int64_t> watchdog_usec{0};

// STATUS= is one line.
std::string one_line(std::string text) {
    std::replace(text.begin(), text.end(), '\n', ' ');
    return text;
}

void notify(const std::string& message) {
    if (!active) return;
    // Best effort: a notification that cannot be sent must not stop the server. Said once,
    // not at every watchdog ping.
    static std::atomic<bool> failed{false};
    if (const int sent = sd_notify(0, message.c_str()); sent < 0 && !failed.exchange(true))
        logging::get("trellis")->warn("cannot notify systemd at NOTIFY_SOCKET ({}): {}; not saying this again",
                                      message.substr(0, message.find('\n')), std::system_category().message(-sent));
}

std::uint64_t monotonic_usec() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

}  // namespace

void activate() {
    active = true;
    std::uint64_t usec = 0;
    // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID is unset or this process.
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) watchdog_usec = static_cast<std::int64_t>(usec);
}

std::chrono::microseconds watchdog_interval() {
    return active ? std::chrono::microseconds(watchdog_usec.load()) : std::chrono::microseconds(0);
}

std::chrono::milliseconds heartbeat_interval() {
    const auto interval = watchdog_interval();
    if (interval.count() <= 0) return std::chrono::milliseconds(0);
    return std::max(std::chrono::milliseconds(10), std::chrono::duration_cast<std::chrono::milliseconds>(interval / 4));
}

void ready(const std::string& status) {
    notify("READY=1\nMAINPID=" + std::to_string(getpid()) + "\nSTATUS=" + one_line(status));
}

void reloading(const std::string& status) {
    notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()) + "\nSTATUS=" + one_line(status));
}

void stopping(const std::string& status) { notify("STOPPING=1\nSTATUS=" + one_line(status)); }

ReloadNotice::ReloadNotice(const bool& reloaded, const std::vector<std::string>& errors)
    : reloaded_(reloaded), errors_(errors) {
    reloading("reloading the configuration");
}

ReloadNotice::~ReloadNotice() {
    if (reloaded_)
        ready("serving; reloaded the configuration");
    else
        ready("serving the previous configuration; reload failed" + (errors_.empty() ? "" : ": " + errors_.front()));
}

Watchdog::Watchdog(Probe oldest_heartbeat) : oldest_heartbeat_(std::move(oldest_heartbeat)) {
    const auto interval = watchdog_interval();
    if (interval.count() <= 0) return;
    thread_ = std::thread([this, interval] { run(interval); });
}

void Watchdog::stop() {
    {
        std::lock_guard lock(mutex_);
        stopped_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Watchdog::run(std::chrono::microseconds interval) {
    const auto period = interval / 2;
    auto log = logging::get("trellis");
    std::unique_lock lock(mutex_);
    while (!stopped_) {
        const auto age = std::chrono::steady_clock::now() - oldest_heartbeat_();
        if (age <= period) {
            notify("WATCHDOG=1");
            if (stale_) log->warn("every event loop answers again; watchdog pings resume");
            stale_ = false;
        } else if (!stale_) {
            // systemd restarts the service if this lasts for the watchdog interval.
            log->error("an event loop has not run its timer for {} ms; withholding the watchdog ping",
                       std::chrono::duration_cast<std::chrono::milliseconds>(age).count());
            stale_ = true;
        }
        wake_.wait_for(lock, period, [this] { return stopped_; });
    }
}

}  // namespace trellis::host::systemd
