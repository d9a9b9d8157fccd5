// The immutable runtime built from one configuration: loaded plugin instances in
// dependency order, the route table, the middleware chains. Start-up and reload both
// build one; request threads hold a shared_ptr to the one they started with.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "config/config.hpp"
#include "db/pool.hpp"
#include "http/router.hpp"
#include "plugin/chain.hpp"
#include "plugin/instance.hpp"
#include "plugin/loader.hpp"

namespace trellis::runtime {

enum class PluginStatus { loaded, disabled, failed };
std::string_view to_string(PluginStatus status);

struct PluginReport {
    std::string name;
    PluginStatus status = PluginStatus::disabled;
    bool required = false;
    std::string reason;  // why it failed; empty otherwise
    std::string file;    // the library, once found
    std::string version;
    std::string abi;  // "1.0", once loaded
    std::string mount;
};

// "plugin 'NAME' (FILE)", or without the file when none was found: how every message
// about a plugin starts.
std::string describe(const PluginReport& report);

struct RouteTarget {
    const plugin::Instance* instance = nullptr;
    const plugin::RouteRegistration* route = nullptr;
    std::string method;
    std::string full_path;                                // mount + route path
    std::string label;                                    // "METHOD full_path" (attribute trellis.route)
    std::vector<const plugin::MiddlewareBinding*> chain;  // global, then the plugin's own
    // Access (ABI 1.4 metadata, or plugins.NAME.scopes, which wins): when `requires_auth`,
    // the host answers 401 unless a middleware set the attribute auth.scopes, and 403 unless
    // those hold every one of `scopes`. `scopes_json` is the attribute trellis.route_scopes.
    bool requires_auth = false;
    std::vector<std::string> scopes;
    std::string scopes_json;
    std::string challenge;  // WWW-Authenticate of a 401 ("Bearer realm=\"trellis\"", ...)
    // The handler and every middleware of its chain declared non-blocking (ABI 1.2): the
    // whole request may run on an event loop.
    bool runs_inline = false;
};

// Route ids reserved for the host's own endpoints, which the listeners serve before the
// runtime's routes (host/host.cpp); registered here only to refuse plugins that claim them.
inline constexpr std::size_t livez_route = static_cast<std::size_t>(-1);
inline constexpr std::size_t readyz_route = static_cast<std::size_t>(-2);
inline constexpr std::size_t openapi_route = static_cast<std::size_t>(-3);  // config openapi.path

// What a build does with the migrations plugins register.
enum class Migrations {
    apply,  // run what is pending (serve with database.migrate_on_start); a failure fails the plugin
    check,  // a plugin with pending, failed or changed migrations fails (serve without it)
    ignore  // touch no database (check, plugins list, routes, migrate)
};

class Runtime {
public:
    // Never throws for a bad plugin: each failure is logged ("plugin 'x' (file): reason")
    // and reported in plugins(). Fails only when a required plugin failed or the global
    // middleware list names middleware that is not available; the errors say why.
    static tl::expected<std::shared_ptr<const Runtime>, config::Errors> build(
        std::shared_ptr<const config::Config> config, plugin::LibraryCache& libraries);
    // As build(), with migrations applied or checked as `serve` does for this config.
    static Migrations serving_mode(const config::Config& config);

    // The same build, keeping the runtime even when it must not serve, so that `trellis
    // check` and `trellis plugins list` can report every plugin.
    struct Assembly {
        std::shared_ptr<const Runtime> runtime;
        config::Errors errors;  // as build() would return them
    };
    static Assembly assemble(std::shared_ptr<const config::Config> config, plugin::LibraryCache& libraries,
                             Migrations migrations = Migrations::ignore);

    ~Runtime();  // shuts plugins down in reverse dependency order, then destroys them
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    const config::Config& config() const { return *config_; }
    const http::Router& router() const { return router_; }
    const RouteTarget& target(std::size_t id) const { return targets_[id]; }
    const std::vector<RouteTarget>& targets() const { return targets_; }
    const std::vector<const plugin::MiddlewareBinding*>& global_chain() const { return global_chain_; }
    // Every global middleware is non-blocking: unmatched requests (404, 405, 308) run inline.
    bool global_chain_inline() const { return global_chain_inline_; }
    const std::vector<PluginReport>& plugins() const { return reports_; }
    const std::vector<std::unique_ptr<plugin::Instance>>& instances() const { return instances_; }
    db::Pool& database() const { return *database_; }

private:
    class Builder;
    explicit Runtime(std::shared_ptr<const config::Config> config);

    std::shared_ptr<const config::Config> config_;
    std::shared_ptr<db::Pool> database_;                        // outlives the instances using it
    std::vector<std::unique_ptr<plugin::Instance>> instances_;  // dependency order
    std::vector<std::unique_ptr<plugin::MiddlewareBinding>> bindings_;
    http::Router router_;
    std::vector<RouteTarget> targets_;
    std::vector<const plugin::MiddlewareBinding*> global_chain_;
    bool global_chain_inline_ = true;
    std::vector<PluginReport> reports_;
};

}  // namespace trellis::runtime
