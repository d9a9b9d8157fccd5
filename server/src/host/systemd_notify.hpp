// systemd's service protocol (sd_notify): READY=1 once the plugins are loaded and the
// listeners are bound, RELOADING=1 then READY=1 around every reload, STOPPING=1 when the
// shutdown begins, and WATCHDOG=1 only while every event loop shows a fresh heartbeat. Only
// `trellis serve` speaks for the process (activate()); without NOTIFY_SOCKET, or in any other
// user of the host (tests, the embedding library), every call does nothing.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trellis::host::systemd {

// From now on this process notifies systemd (when NOTIFY_SOCKET is set). Call before the
// host is made, so that its engines learn heartbeat_interval().
void activate();

// WATCHDOG_USEC when systemd expects watchdog pings from this process (WATCHDOG_PID unset
// or ours) and activate() was called; else zero.
std::chrono::microseconds watchdog_interval();

// How often each event loop marks its heartbeat: a quarter of the watchdog interval (at
// least 10 ms), zero when the watchdog is off.
std::chrono::milliseconds heartbeat_interval();

void ready(const std::string& status);      // READY=1, MAINPID=, STATUS=
void reloading(const std::string& status);  // RELOADING=1, MONOTONIC_USEC=, STATUS=
void stopping(const std::string& status);   // STOPPING=1, STATUS=

// Around one reload: RELOADING=1 when made, READY=1 when it goes out of scope, with a STATUS=
// saying how the reload ended (after a failed one the previous runtime keeps serving, so the
// service is ready either way). Reads the outcome from the two references at that moment.
class ReloadNotice {
public:
    ReloadNotice(const bool& reloaded, const std::vector<std::string>& errors);
    ~ReloadNotice();
    ReloadNotice(const ReloadNotice&) = delete;
    ReloadNotice& operator=(const ReloadNotice&) = delete;

private:
    const bool& reloaded_;
    const std::vector<std::string>& errors_;
};

// Sends WATCHDOG=1 every half watchdog interval while `oldest_heartbeat()` (the stalest
// heartbeat of every event loop) is no older than half the interval: a loop stuck for
// longer stops the pings and systemd restarts the service. Does nothing when the watchdog
// is off. Start it after READY=1 and stop it at STOPPING=1: systemd watches only between.
class Watchdog {
public:
    using Probe = std::function<std::chrono::steady_clock::time_point()>;
    explicit Watchdog(Probe oldest_heartbeat);
    ~Watchdog() { stop(); }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    void stop();

private:
    void run(std::chrono::microseconds interval);

    Probe oldest_heartbeat_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopped_ = false;
    bool stale_ = false;  // logged once per stall
    std::thread thread_;
};

}  // namespace trellis::host::systemd
