// Building a runtime: find, load, check, order, create and init the enabled plugins, then
// assemble routes and middleware chains. Each failure refuses one plugin, never the host.
#include "runtime/runtime.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "db/migrations.hpp"
#include "metrics/metrics.hpp"
#include "plugin/schema.hpp"
#include "runtime/logging.hpp"

namespace trellis::runtime {

std::string_view to_string(PluginStatus status) {
    switch (status) {
        case PluginStatus::loaded: return "loaded";
        case PluginStatus::disabled: return "disabled";
        case PluginStatus::failed: return "failed";
    }
    return "unknown";
}

namespace {

struct MiddlewareRef {
    std::string plugin;
    std::string name;  // empty: the plugin's only middleware
};

MiddlewareRef parse_ref(const std::string& text) {
    auto dot = text.find('.');
    if (dot == std::string::npos) return {text, {}};
    return {text.substr(0, dot), text.substr(dot + 1)};
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : std::string(separator)) + part;
    return out;
}

}  // namespace

std::string describe(const PluginReport& report) {
    return "plugin '" + report.name + "'" + (report.file.empty() ? "" : " (" + report.file + ")");
}

class Runtime::Builder {
public:
    Builder(Runtime& runtime, plugin::LibraryCache& libraries, Migrations migrations)
        : rt_(runtime), libraries_(libraries), migrations_(migrations), log_(logging::get("trellis")) {}

    config::Errors run() {
        reserve_host_routes();
        discover();
        for (auto& [name, candidate] : candidates_)
            if (candidate.state == 0) visit(name);
        for (const auto& name : order_) start(candidates_.at(name));
        config::Errors errors = resolve_global_chain();
        for (const auto& report : rt_.reports_)
            if (report.required && report.status != PluginStatus::loaded)
                errors.push_back(describe(report) + " is required but " +
                                 (report.status == PluginStatus::disabled ? "disabled" : report.reason));
        return errors;
    }

private:
    struct Candidate {
        const config::PluginConfig* config = nullptr;
        std::shared_ptr<const plugin::Library> library;
        std::vector<std::pair<std::string, std::string>> needs;  // (plugin, "depends on" / "uses middleware 'x' of")
        std::size_t report = 0;
        int state = 0;  // 0 unvisited, 1 visiting, 2 ordered
    };

    Runtime& rt_;
    plugin::LibraryCache& libraries_;
    Migrations migrations_;
    std::shared_ptr<spdlog::logger> log_;
    std::map<std::string, Candidate> candidates_;
    std::vector<std::string> order_;
    std::vector<std::string> stack_;
    std::vector<std::vector<const plugin::MiddlewareBinding*>> plugin_chains_;  // per target

    PluginReport& report(const Candidate& c) { return rt_.reports_[c.report]; }

    const PluginReport* find_report(const std::string& name) const {
        for (const auto& r : rt_.reports_)
            if (r.name == name) return &r;
        return nullptr;
    }

    void fail(PluginReport& r, const std::string& reason) {
        if (r.status == PluginStatus::failed) return;
        r.status = PluginStatus::failed;
        r.reason = reason;
        log_->error("{}: {}", describe(r), reason);
        metrics::plugin_failed(r.name);
    }

    void reserve_host_routes() {
        (void)rt_.router_.add("GET", "/livez", livez_route, "the host");
        (void)rt_.router_.add("GET", "/readyz", readyz_route, "the host");
        if (rt_.config_->openapi.enabled)
            (void)rt_.router_.add("GET", rt_.config_->openapi.path, openapi_route, "the host (openapi.path)");
    }

    void discover() {
        const auto& cfg = *rt_.config_;
        for (const auto& pc : cfg.plugins) {
            rt_.reports_.push_back(
                PluginReport{pc.name, PluginStatus::disabled, pc.required, {}, {}, {}, {}, pc.mount});
            auto& r = rt_.reports_.back();
            if (!pc.enabled) {
                log_->info("plugin '{}': disabled in the configuration, not loaded", pc.name);
                continue;
            }
            auto file = plugin::find_plugin_file(pc.name, cfg.plugin_search_paths);
            if (!file) {
                std::vector<std::string> dirs;
                for (const auto& dir : cfg.plugin_search_paths) dirs.push_back(dir.string());
                fail(r, "no " + pc.name + ".so in the plugin search paths (" +
                            (dirs.empty() ? std::string("none configured") : join(dirs, ", ")) + ")");
                continue;
            }
            r.file = file->string();
            auto library = libraries_.load(*file);
            if (!library) {
                fail(r, library.error());
                continue;
            }
            if ((*library)->name != pc.name) {
                fail(r, "the library declares the name '" + (*library)->name +
                            "'; a plugin file must be named after the plugin it contains");
                continue;
            }
            r.version = (*library)->version;
            r.abi = plugin::abi_version_string((*library)->abi_major, (*library)->abi_minor);
            Candidate c{&pc, *library, {}, rt_.reports_.size() - 1, 0};
            for (const auto& dep : (*library)->dependencies) c.needs.emplace_back(dep, "depends on");
            for (const auto& mw : pc.middleware) {
                auto ref = parse_ref(mw);
                if (ref.plugin != pc.name) c.needs.emplace_back(ref.plugin, "uses middleware '" + mw + "' of");
            }
            candidates_.emplace(pc.name, std::move(c));
        }
    }

    // Depth-first, dependencies first; a back edge is a cycle and fails every plugin on it.
    void visit(const std::string& name) {
        auto& c = candidates_.at(name);
        c.state = 1;
        stack_.push_back(name);
        for (const auto& [dep, why] : c.needs) {
            auto it = candidates_.find(dep);
            if (it == candidates_.end()) continue;  // reported when the plugin starts
            if (it->second.state == 1) {
                auto begin = std::find(stack_.begin(), stack_.end(), dep);
                std::vector<std::string> cycle(begin, stack_.end());
                cycle.push_back(dep);
                for (auto member = begin; member != stack_.end(); ++member)
                    fail(report(candidates_.at(*member)), "dependency cycle: " + join(cycle, " -> "));
            } else if (it->second.state == 0) {
                visit(dep);
            }
        }
        stack_.pop_back();
        c.state = 2;
        order_.push_back(name);
    }

    bool needs_available(Candidate& c) {
        for (const auto& [dep, why] : c.needs) {
            const PluginReport* r = find_report(dep);
            std::string state = !r                                    ? "is not configured"
                                : r->status == PluginStatus::disabled ? "is disabled"
                                : r->status == PluginStatus::failed   ? "failed to load"
                                                                      : "";
            if (!state.empty()) {
                fail(report(c), why + " plugin '" + dep + "', which " + state);
                return false;
            }
        }
        return true;
    }

    void start(Candidate& c) {
        auto& r = report(c);
        if (r.status == PluginStatus::failed || !needs_available(c)) return;
        if (auto valid = plugin::validate_config(*c.config, c.library->config_schema_json); !valid)
            return fail(r, "configuration rejected by the plugin's schema: " + join(valid.error(), "; "));

        auto instance =
            plugin::Instance::create(c.library, c.config->config.dump(), logging::get(r.name), rt_.database_);
        if (!instance) return fail(r, instance.error());
        if (auto ok = (*instance)->init(); !ok) return fail(r, ok.error());
        if (auto ok = migrate(**instance); !ok) return fail(r, ok.error());

        std::vector<std::unique_ptr<plugin::MiddlewareBinding>> bindings;
        for (const auto& mw : (*instance)->middleware())
            bindings.push_back(std::make_unique<plugin::MiddlewareBinding>(
                plugin::MiddlewareBinding{r.name, r.name + "." + mw.name, mw.on_middleware, mw.user_data,
                                          mw.non_blocking}));

        std::vector<const plugin::MiddlewareBinding*> chain;
        for (const auto& name : c.config->middleware) {
            auto found = resolve(name, &bindings);
            if (!found) return fail(r, "key 'plugins." + r.name + ".middleware': " + found.error());
            chain.push_back(*found);
        }
        if (auto ok = add_routes(**instance, r, chain, c.config->scopes); !ok) return fail(r, ok.error());

        r.status = PluginStatus::loaded;
        for (auto& binding : bindings) rt_.bindings_.push_back(std::move(binding));
        rt_.instances_.push_back(std::move(*instance));
        metrics::plugin_started(r.name);
        log_->info("{}: loaded, version {}, ABI {}, mounted at {}", describe(r), r.version, r.abi, r.mount);
    }

    // A plugin whose schema is not where its code expects it must not serve.
    tl::expected<void, std::string> migrate(const plugin::Instance& instance) {
        if (instance.migrations().empty() || migrations_ == Migrations::ignore) return {};
        const auto migrations = db::for_dialect(instance.migrations(), rt_.database_->dialect());
        db::Migrator migrator(*rt_.database_);
        if (migrations_ == Migrations::apply) {
            auto applied = migrator.up(instance.name(), migrations, false);
            if (!applied) return tl::unexpected(applied.error());
            if (*applied > 0) log_->info("plugin '{}': applied {} migration(s)", instance.name(), *applied);
            return {};
        }
        auto status = migrator.status(instance.name(), migrations);
        if (!status) return tl::unexpected(status.error());
        std::vector<std::string> problems;
        for (const auto& m : *status)
            if (m.state != db::State::applied && m.state != db::State::missing)
                problems.push_back(std::to_string(m.version) + " (" + m.name + ") " + std::string(db::to_string(m.state)));
        if (problems.empty()) return {};
        return tl::unexpected("migrations not applied: " + join(problems, ", ") +
                              "; run `trellis migrate up --plugin " + instance.name() +
                              "` (database.migrate_on_start is off)");
    }

    tl::expected<const plugin::MiddlewareBinding*, std::string> resolve(
        const std::string& text, const std::vector<std::unique_ptr<plugin::MiddlewareBinding>>* own) {
        auto ref = parse_ref(text);
        std::vector<const plugin::MiddlewareBinding*> offered;
        for (const auto& b : rt_.bindings_)
            if (b->plugin == ref.plugin) offered.push_back(b.get());
        if (own)
            for (const auto& b : *own)
                if (b->plugin == ref.plugin) offered.push_back(b.get());
        if (offered.empty()) {
            const PluginReport* r = find_report(ref.plugin);
            std::string state = !r                                    ? "is not configured"
                                : r->status == PluginStatus::disabled ? "is disabled"
                                : r->status == PluginStatus::failed   ? "failed"
                                                                      : "registers no middleware";
            return tl::unexpected("middleware '" + text + "' is not available: plugin '" + ref.plugin + "' " + state);
        }
        if (ref.name.empty()) {
            if (offered.size() == 1) return offered.front();
            std::vector<std::string> names;
            for (const auto* b : offered) names.push_back(b->name);
            return tl::unexpected("plugin '" + ref.plugin + "' registers " + std::to_string(offered.size()) +
                                  " middleware (" + join(names, ", ") + "): name one as 'PLUGIN.NAME'");
        }
        for (const auto* b : offered)
            if (b->name == ref.plugin + "." + ref.name) return b;
        return tl::unexpected("plugin '" + ref.plugin + "' registers no middleware named '" + ref.name + "'");
    }

    tl::expected<void, std::string> add_routes(const plugin::Instance& instance, const PluginReport& r,
                                               const std::vector<const plugin::MiddlewareBinding*>& chain,
                                               const std::map<std::string, config::RouteScopes>& scopes) {
        // Check every route first so that a refused plugin leaves no route behind.
        http::Router own;
        for (const auto& route : instance.routes()) {
            auto full = http::join_mount(r.mount, route.path);
            if (const auto* clash = rt_.router_.conflict(route.method, full))
                return tl::unexpected("route " + route.method + " " + full + " conflicts with " + clash->method + " " +
                                      clash->path_template + " of " + clash->owner + ", which keeps serving it");
            if (auto ok = own.add(route.method, full, 0, describe(r)); !ok) return tl::unexpected(ok.error());
        }
        std::set<std::string> labels;
        for (const auto& route : instance.routes()) labels.insert(route.method + " " + http::join_mount(r.mount, route.path));
        for (const auto& [label, configured] : scopes)
            if (!labels.count(label))
                return tl::unexpected("key 'plugins." + r.name + ".scopes' (" + configured.origin.describe() + "): '" +
                                      label + "' is not a route of the plugin; its routes: " +
                                      join(std::vector<std::string>(labels.begin(), labels.end()), ", "));
        for (const auto& route : instance.routes()) {
            auto full = http::join_mount(r.mount, route.path);
            (void)rt_.router_.add(route.method, full, rt_.targets_.size(), describe(r));
            RouteTarget target;
            target.instance = &instance;
            target.route = &route;
            target.method = route.method;
            target.full_path = full;
            target.label = route.method + " " + full;
            set_access(target, scopes);
            rt_.targets_.push_back(std::move(target));
            plugin_chains_.push_back(chain);
        }
        return {};
    }

    // Which routes need a principal, and which scopes: the admin's plugins.NAME.scopes, else
    // what the route declares (scopes, or a security requirement without scopes).
    static void set_access(RouteTarget& target, const std::map<std::string, config::RouteScopes>& configured) {
        const auto security = nlohmann::json::parse(target.route->security_json, nullptr, false);
        std::set<std::string> schemes;
        if (security.is_array())
            for (const auto& requirement : security)
                if (requirement.is_object())
                    for (const auto& [scheme, unused] : requirement.items()) schemes.insert(scheme);
        if (auto it = configured.find(target.label); it != configured.end()) {
            target.requires_auth = true;
            target.scopes = it->second.scopes;
        } else {
            const auto declared = nlohmann::json::parse(target.route->scopes_json, nullptr, false);
            if (declared.is_array())
                for (const auto& scope : declared) target.scopes.push_back(scope.get<std::string>());
            target.requires_auth = !target.scopes.empty() || !schemes.empty();
        }
        if (!target.requires_auth) return;
        target.scopes_json = nlohmann::json(target.scopes).dump();
        // Without a declared scheme, bearer tokens are the default way to authenticate.
        if (schemes.empty() || schemes.count("bearer")) target.challenge = "Bearer realm=\"trellis\"";
        if (schemes.count("apiKey"))
            target.challenge += (target.challenge.empty() ? "" : ", ") + std::string("ApiKey realm=\"trellis\"");
    }

    config::Errors resolve_global_chain() {
        config::Errors errors;
        for (const auto& name : rt_.config_->middleware) {
            auto found = resolve(name, nullptr);
            if (!found) {
                errors.push_back("key 'middleware': " + found.error() +
                                 "; global middleware is never skipped, so Trellis does not start without it");
                continue;
            }
            rt_.global_chain_.push_back(*found);
            rt_.global_chain_inline_ = rt_.global_chain_inline_ && (*found)->non_blocking;
        }
        for (std::size_t i = 0; i < rt_.targets_.size(); ++i) {
            auto& chain = rt_.targets_[i].chain;
            chain = rt_.global_chain_;
            chain.insert(chain.end(), plugin_chains_[i].begin(), plugin_chains_[i].end());
            rt_.targets_[i].runs_inline =
                rt_.targets_[i].route->non_blocking &&
                std::all_of(chain.begin(), chain.end(), [](const auto* step) { return step->non_blocking; });
        }
        return errors;
    }
};

Runtime::Runtime(std::shared_ptr<const config::Config> config)
    : config_(std::move(config)), database_(db::Pool::create(config_->database)) {}

Runtime::~Runtime() {
    for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) (*it)->shutdown();
    while (!instances_.empty()) instances_.pop_back();
}

Migrations Runtime::serving_mode(const config::Config& config) {
    return config.database.migrate_on_start ? Migrations::apply : Migrations::check;
}

Runtime::Assembly Runtime::assemble(std::shared_ptr<const config::Config> config, plugin::LibraryCache& libraries,
                                   Migrations migrations) {
    std::shared_ptr<Runtime> runtime(new Runtime(std::move(config)));
    config::Errors errors = Builder(*runtime, libraries, migrations).run();
    return {std::move(runtime), std::move(errors)};
}

tl::expected<std::shared_ptr<const Runtime>, config::Errors> Runtime::build(
    std::shared_ptr<const config::Config> config, plugin::LibraryCache& libraries) {
    const Migrations mode = serving_mode(*config);
    auto assembly = assemble(std::move(config), libraries, mode);
    if (!assembly.errors.empty()) return tl::unexpected(std::move(assembly.errors));
    return std::move(assembly.runtime);
}

}  // namespace trellis::runtime
