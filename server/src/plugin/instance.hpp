// One plugin instance: its host context and the create/init/shutdown/destroy pairs.
// The library is held for as long as the instance lives and is released after it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <tl/expected.hpp>

#include "plugin/host_api.hpp"
#include "plugin/loader.hpp"

namespace trellis::plugin {

// The outcome of one readiness check a plugin registered (ABI 1.3).
struct HealthCheckResult {
    std::string name;
    bool ok;
    std::string message;
};

class Instance {
public:
    // Calls on_create. The error is the plugin's own message (set_error) or the status.
    static tl::expected<std::unique_ptr<Instance>, std::string> create(std::shared_ptr<const Library> library,
                                                                       std::string config_json,
                                                                       std::shared_ptr<spdlog::logger> logger,
                                                                       std::shared_ptr<db::Pool> database = nullptr);
    ~Instance();  // on_shutdown if initialised, then on_destroy
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    // Calls on_init with registration open.
    tl::expected<void, std::string> init();
    // Calls on_shutdown once (idempotent; the destructor calls it too).
    void shutdown() noexcept;

    const Library& library() const { return *library_; }
    const std::string& name() const { return host_.plugin_name; }
    const std::vector<RouteRegistration>& routes() const { return host_.routes; }
    const std::vector<MiddlewareRegistration>& middleware() const { return host_.middleware; }
    const std::vector<db::Migration>& migrations() const { return host_.migrations; }

    // Runs every readiness check the plugin registered, in registration order; a check that
    // throws fails with that message. Any thread, concurrently with requests.
    std::vector<HealthCheckResult> run_health_checks() const;

private:
    Instance(std::shared_ptr<const Library> library, std::string config_json, std::shared_ptr<spdlog::logger> logger,
             std::shared_ptr<db::Pool> database);
    std::string failure(const char* call, trellis_status status) const;

    std::shared_ptr<const Library> library_;  // first: released after everything below
    trellis_host host_;
    void* instance_ = nullptr;
    bool created_ = false;
    bool initialised_ = false;
};

}  // namespace trellis::plugin
