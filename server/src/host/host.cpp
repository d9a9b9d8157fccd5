// The running server.
#include "host/host.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>

#include <nlohmann/json.hpp>

#include "engine/tls.hpp"
#include "host/admin.hpp"
#include "host/systemd_notify.hpp"
#include "runtime/logging.hpp"
#include "runtime/openapi.hpp"

namespace trellis::host {
namespace {

void answer_json(http::Response& response, int status, const nlohmann::json& body) {
    response.status = status;
    response.set_header("Content-Type", "application/json");
    response.set_header("Cache-Control", "no-store");
    response.body = body.dump();
}

engine::Kind engine_kind(config::EngineKind kind) {
    return kind == config::EngineKind::poco ? engine::Kind::poco : engine::Kind::event;
}

std::shared_ptr<const http::ProxyList> edge_proxies(const config::ServerConfig& server) {
    auto proxies = std::make_shared<http::ProxyList>();
    for (const auto& network : server.trusted_proxies) proxies->add(network);  // checked at load
    return proxies;
}

}  // namespace

engine::Options engine_options(const config::ServerConfig& server, bool admin) {
    engine::Options options;
    options.kind = engine_kind(server.engine);
    options.name = admin ? "admin" : "public";
    const auto& endpoint = admin ? server.admin_listen : server.listen;
    options.host = endpoint.host;
    options.port = endpoint.port;
    options.keep_alive_timeout = server.keep_alive_timeout;
    options.max_keep_alive_requests = server.max_keep_alive_requests;
    options.max_body_bytes = server.max_body_bytes;
    options.header_timeout = server.header_timeout;
    options.body_timeout = server.body_timeout;
    options.send_timeout = server.send_timeout;
    options.max_header_bytes = server.max_header_bytes;
    options.max_headers = server.max_headers;
    options.max_uri_bytes = server.max_uri_bytes;
    // The admin listener is small and separate, so health checks and metrics stay reachable
    // when the public listener is full.
    options.io_threads = admin ? 1 : server.io_threads;
    options.max_connections = admin ? config::admin_max_connections : server.max_connections;
    options.max_threads = admin ? 16 : server.max_threads;
    options.max_queued = admin ? 64 : server.max_queued;
    return options;
}

Host::Host(std::shared_ptr<const config::Config> config, ConfigSource reload_source)
    : log_(logging::get("trellis")), reload_source_(std::move(reload_source)), config_(std::move(config)) {}

tl::expected<std::unique_ptr<Host>, config::Errors> Host::create(std::shared_ptr<const config::Config> config,
                                                                 ConfigSource reload_source) {
    return make(std::move(config), std::move(reload_source), true);
}

tl::expected<std::unique_ptr<Host>, config::Errors> Host::create_local(std::shared_ptr<const config::Config> config,
                                                                       ConfigSource reload_source) {
    return make(std::move(config), std::move(reload_source), false);
}

tl::expected<std::unique_ptr<Host>, config::Errors> Host::make(std::shared_ptr<const config::Config> config,
                                                               ConfigSource reload_source, bool listen) {
    std::unique_ptr<Host> host(new Host(config, std::move(reload_source)));
    host->metrics_ = std::make_unique<metrics::Metrics>(config->metrics.enabled);
    auto runtime = runtime::Runtime::build(config, host->libraries_);
    if (!runtime) return tl::unexpected(std::move(runtime.error()));

    const auto& server = config->server;
    runtime::PipelineOptions options;
    if (server.engine == config::EngineKind::event) {
        host->workers_ = std::make_unique<WorkerPool>("trellis-worker", server.workers,
                                                      static_cast<std::size_t>(server.worker_queue));
        options.workers = host->workers_.get();
    }
    options.inline_warn = server.inline_warn;
    if (config->metrics.enabled) options.metrics = host->metrics_.get();
    options.trusted_proxies = edge_proxies(server);
    options.compression = config->compression;
    // For benchmarks only: measures what the hop to a worker costs a non-blocking route.
    if (const char* force = std::getenv("TRELLIS_FORCE_WORKERS"); force && std::string_view(force) == "1")
        options.force_workers = true;
    host->pipeline_ = std::make_unique<runtime::Pipeline>(*runtime, options);
    host->readiness_ = std::make_unique<Readiness>(*host->pipeline_);

    auto public_routes = std::make_unique<runtime::ListenerRoutes>("public", true);
    host->add_health_routes(*public_routes);
    if (!listen) {
        // As a loopback listener: Host names localhost, 127.0.0.1 and [::1] unless allowed_hosts says.
        public_routes->set_edge(http::AllowedHosts(server.allowed_hosts, "127.0.0.1"), "localhost");
        host->local_routes_ = std::move(public_routes);
        host->add_metrics_callbacks();
        return host;
    }
    if (auto added = host->add_listener(std::move(public_routes), false); !added)
        return tl::unexpected(config::Errors{added.error()});
    if (server.admin_enabled) {
        auto admin_routes = std::make_unique<runtime::ListenerRoutes>("admin", false);
        host->add_health_routes(*admin_routes, true);
        add_admin_routes(*admin_routes, *host);
        host->add_metrics_route(*admin_routes);
        if (auto added = host->add_listener(std::move(admin_routes), true); !added)
            return tl::unexpected(config::Errors{added.error()});
    }
    host->add_metrics_callbacks();
    return host;
}

Host::~Host() {
    if (!drained_) drain();
}

void Host::add_health_routes(runtime::ListenerRoutes& routes, bool admin) {
    routes.add("GET", "/livez", [](const http::Request&, http::Response& response) {
        answer_json(response, 200, {{"status", "ok"}});
    });
    // The public listener says only whether; the admin listener says why (readiness.hpp).
    routes.add("GET", "/readyz", [this, admin](const http::Request&, http::Response& response) {
        const auto report = readiness_->report({ready_.load(), shutting_down_.load()}, admin);
        answer_json(response, report.ready ? 200 : 503, report.body);
    });
    if (!admin && config_->openapi.enabled)
        // Generated from the runtime serving now, so that a reload shows at once.
        routes.add("GET", config_->openapi.path, [this](const http::Request&, http::Response& response) {
            answer_json(response, 200, runtime::openapi_document(*pipeline_->current()));
            response.set_header("Cache-Control", "no-cache");
        });
}

tl::expected<void, std::string> Host::add_listener(std::unique_ptr<runtime::ListenerRoutes> routes, bool admin) {
    const runtime::Pipeline* pipeline = pipeline_.get();
    const runtime::ListenerRoutes* served = routes.get();
    auto options = engine_options(config_->server, admin);
    options.heartbeat_interval = systemd::heartbeat_interval();
    if (!admin && config_->server.tls) {  // HTTPS on the public listener only
        auto tls = engine::TlsContext::load(config_->server.tls->certificate, config_->server.tls->key);
        if (!tls) return tl::unexpected(tls.error());
        options.tls = std::move(*tls);
    }
    auto made = engine::make_engine(options,
                                    [pipeline, served](engine::Exchange& exchange) { pipeline->handle(exchange, *served); });
    if (!made) return tl::unexpected(made.error());
    const auto& endpoint = admin ? config_->server.admin_listen : config_->server.listen;
    routes->set_edge(http::AllowedHosts(config_->server.allowed_hosts, endpoint.host),
                     config::Endpoint{endpoint.host, (*made)->port()}.text());
    listeners_.push_back(Listener{std::move(routes), std::move(*made), admin});
    return {};
}

void Host::start() {
    for (auto& listener : listeners_) listener.engine->start();
    started_ = true;
    ready_ = true;
    readiness_->start();
}

Host::ReloadResult Host::reload(bool wait) {
    ReloadResult result;
    // Declared before the lock so that READY=1 goes out after the reload has let go of its
    // turn: a client that sees READY=1 and reloads at once is not told 409 (busy).
    std::optional<systemd::ReloadNotice> notice;
    std::unique_lock serialised(reload_mutex_, std::defer_lock);
    if (wait) {
        serialised.lock();
    } else if (!serialised.try_lock()) {
        result.busy = true;
        return result;
    }
    notice.emplace(result.reloaded, result.errors);
    auto next_config = reload_source_();
    if (!next_config) {
        result.errors = std::move(next_config.error());
        result.errors.push_back("reload aborted: the configuration has errors; still serving the previous one");
        return result;
    }
    auto current = config();
    if ((*next_config)->server.listen.text() != current->server.listen.text() ||
        (*next_config)->server.admin_listen.text() != current->server.admin_listen.text() ||
        (*next_config)->server.engine != current->server.engine)
        log_->warn("listener addresses or server.engine changed; they take effect after a restart");
    logging::configure((*next_config)->logging);
    // Certificates are read again (a renewed one is served from the next connection on); a
    // broken one refuses the reload, and the one in use stays.
    std::shared_ptr<engine::TlsContext> next_tls;
    if (const auto& tls = (*next_config)->server.tls; tls && current->server.tls) {
        auto loaded = engine::TlsContext::load(tls->certificate, tls->key);
        if (!loaded) {
            result.errors = {loaded.error(), "reload aborted; still serving the previous certificate and runtime"};
            return result;
        }
        next_tls = std::move(*loaded);
    } else if (tls.has_value() != current->server.tls.has_value()) {
        log_->warn("server.tls was added or removed; that takes effect after a restart");
    }
    auto next = build_for_reload(*next_config, pipeline_->current().get(), libraries_, reload_errors_, *log_);
    if (!next) {
        result.errors = std::move(next.error());
        result.errors.push_back("reload aborted; still serving the previous runtime");
        return result;
    }
    pipeline_->replace(*next);
    if (next_tls)
        for (auto& listener : listeners_)
            if (!listener.admin) listener.engine->replace_tls(next_tls);
    {
        std::lock_guard lock(config_mutex_);
        config_ = *next_config;
    }
    result.reloaded = true;
    return result;
}

void Host::drain() {
    if (drained_) return;
    shutting_down_ = true;
    ready_ = false;
    for (auto& listener : listeners_) listener.engine->stop();
    if (workers_) workers_->stop();
    if (readiness_) readiness_->stop();
    // Releasing the last runtime shuts the plugins down in reverse dependency order.
    if (pipeline_) pipeline_->replace(nullptr);
    drained_ = true;
}

std::uint16_t Host::public_port() const { return listeners_.empty() ? 0 : listeners_.front().engine->port(); }

std::uint16_t Host::admin_port() const {
    for (const auto& listener : listeners_)
        if (listener.admin) return listener.engine->port();
    return 0;
}

std::chrono::steady_clock::time_point Host::oldest_heartbeat() const {
    auto oldest = std::chrono::steady_clock::now();
    for (const auto& listener : listeners_) oldest = std::min(oldest, listener.engine->oldest_heartbeat());
    return oldest;
}

std::shared_ptr<const config::Config> Host::config() const {
    std::lock_guard lock(config_mutex_);
    return config_;
}

}  // namespace trellis::host
