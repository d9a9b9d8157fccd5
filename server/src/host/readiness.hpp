// /readyz: the checks that say whether this instance should get traffic. The database and
// the plugins' own checks may block, so a prober thread runs them (at most once a second,
// the database with a short timeout) and /readyz, answered on an event loop, reads the
// cached results only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "plugin/instance.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/runtime.hpp"

namespace trellis::host {

// One check's outcome; the plugins' own checks (ABI 1.3) come in the same shape.
using HealthCheckResult = plugin::HealthCheckResult;

// The checks the loaded plugins registered, named "PLUGIN/CHECK"; run on the prober thread,
// never on an event loop.
std::vector<HealthCheckResult> plugin_checks(const runtime::Runtime& runtime);

inline constexpr std::chrono::milliseconds readiness_probe_interval{1000};
inline constexpr std::chrono::milliseconds database_probe_timeout{500};

class Readiness {
public:
    explicit Readiness(const runtime::Pipeline& pipeline);
    ~Readiness();  // stop()
    Readiness(const Readiness&) = delete;
    Readiness& operator=(const Readiness&) = delete;

    // Starts the prober thread (probing at once); stop() joins it. Both idempotent.
    void start();
    void stop();

    // What the host knows itself, read on every request.
    struct HostState {
        bool loaded = false;    // started, with a runtime
        bool draining = false;  // shutdown begun (shutdown_delay) or drain running
    };
    struct Report {
        bool ready = false;
        nlohmann::json body;  // {status} or, detailed, {status, checks: [{name, ok, message, ...}]}
    };
    // Never blocks: the database and plugin checks are the prober's last results.
    Report report(HostState state, bool detailed) const;

private:
    struct Probe {
        std::chrono::steady_clock::time_point at;
        bool ok = false;
        std::string message;
    };
    void run();
    Probe probe_database(const runtime::Runtime& runtime) const;

    const runtime::Pipeline& pipeline_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::optional<Probe> database_;  // the last finished probe
    std::optional<std::chrono::steady_clock::time_point> probing_since_;
    std::vector<HealthCheckResult> plugin_results_;
    std::thread thread_;
};

}  // namespace trellis::host
