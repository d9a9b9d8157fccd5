// Readiness checks and their prober thread.
#include "host/readiness.hpp"

#include <filesystem>

#include <pthread.h>
#include <unistd.h>

#include "config/config.hpp"
#include "db/pool.hpp"

namespace trellis::host {

using nlohmann::json;

std::vector<HealthCheckResult> plugin_checks(const runtime::Runtime& runtime) {
    std::vector<HealthCheckResult> results;
    for (const auto& instance : runtime.instances())
        for (auto& check : instance->run_health_checks()) {
            check.name = instance->name() + "/" + check.name;
            results.push_back(std::move(check));
        }
    return results;
}

namespace {

// SQLite: a file not made yet is made on first use, and a probe must not make it (nor its
// folder): reachable when the nearest existing folder on its path is writable.
std::optional<std::string> sqlite_not_created(const config::DatabaseConfig& database, bool& ok) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (database.dialect != config::Dialect::sqlite || fs::exists(database.sqlite_file, ec)) return std::nullopt;
    fs::path folder = database.sqlite_file.parent_path();
    while (!folder.empty() && !fs::exists(folder, ec) && folder != folder.parent_path()) folder = folder.parent_path();
    ok = ::access(folder.c_str(), W_OK) == 0;
    if (ok) return std::string("the SQLite file is created on first use");
    return "cannot create the SQLite file: " + folder.string() + " is not writable";
}

}  // namespace

Readiness::Readiness(const runtime::Pipeline& pipeline) : pipeline_(pipeline) {}

Readiness::~Readiness() { stop(); }

void Readiness::start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable() || stopping_) return;
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "trellis-ready");
        run();
    });
}

void Readiness::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

Readiness::Probe Readiness::probe_database(const runtime::Runtime& runtime) const {
    Probe probe;
    if (auto message = sqlite_not_created(runtime.config().database, probe.ok)) {
        probe.message = std::move(*message);
        probe.at = std::chrono::steady_clock::now();
        return probe;
    }
    auto connection = runtime.database().acquire(database_probe_timeout);
    if (!connection) {
        probe.message = config::redact_database_url(connection.error().message);
    } else if (auto result = connection->execute("SELECT 1", {}, true); !result) {
        probe.message = config::redact_database_url(result.error().message);
    } else {
        probe.ok = true;
        probe.message = "reachable";
    }
    probe.at = std::chrono::steady_clock::now();
    return probe;
}

void Readiness::run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        lock.unlock();
        std::optional<Probe> database;
        std::vector<HealthCheckResult> plugins;
        if (auto runtime = pipeline_.current()) {
            {
                std::lock_guard started(mutex_);
                probing_since_ = std::chrono::steady_clock::now();
            }
            database = probe_database(*runtime);
            plugins = plugin_checks(*runtime);
        }
        lock.lock();
        probing_since_.reset();
        if (database) {
            database_ = std::move(database);
            plugin_results_ = std::move(plugins);
        }
        wake_.wait_for(lock, readiness_probe_interval, [this] { return stopping_; });
    }
}

Readiness::Report Readiness::report(HostState state, bool detailed) const {
    const auto runtime = pipeline_.current();
    json checks = json::array();
    bool ready = true;
    auto add = [&](const std::string& name, bool ok, const std::string& message, bool counts = true) {
        if (counts && !ok) ready = false;
        checks.push_back({{"name", name}, {"ok", ok}, {"message", message}});
    };

    add("runtime", state.loaded && runtime != nullptr,
        state.loaded && runtime ? "loaded" : "the runtime is not loaded");
    std::string down;
    if (runtime)
        for (const auto& plugin : runtime->plugins())
            if (plugin.required && plugin.status != runtime::PluginStatus::loaded)
                down += (down.empty() ? "" : ", ") + plugin.name;
    add("required_plugins", runtime && down.empty(),
        !runtime ? "no runtime" : down.empty() ? "every required plugin started" : "not started: " + down);
    add("not_draining", !state.draining, state.draining ? "shutting down" : "serving");

    const bool requires_database = runtime && runtime->config().health.readyz_requires_database;
    {
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        bool ok = false;
        std::string message = "not probed yet";
        if (probing_since_ && now - *probing_since_ > database_probe_timeout) {
            message = "no answer within " + std::to_string(database_probe_timeout.count()) + " ms";
        } else if (database_) {
            ok = database_->ok;
            message = database_->message;
        }
        add("database", ok, message, requires_database);
        checks.back()["required"] = requires_database;
        if (database_)
            checks.back()["age_ms"] =
                std::chrono::duration_cast<std::chrono::milliseconds>(now - database_->at).count();
        for (const auto& check : plugin_results_) add(check.name, check.ok, check.message);
    }

    Report out;
    out.ready = ready;
    out.body = {{"status", ready ? "ready" : "not ready"}};
    if (detailed) out.body["checks"] = std::move(checks);
    return out;
}

}  // namespace trellis::host
