// Request dispatch. Host middleware (request id, errors, access log) wraps the plugin
// middleware chain: global middleware first, then the route's plugin middleware.
#include "runtime/pipeline.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <iterator>
#include <stdexcept>

#include <fmt/compile.h>
#include <nlohmann/json.hpp>

#include "http/problem.hpp"
#include "http/request_id.hpp"
#include "http/trace_context.hpp"
#include "plugin/host_api.hpp"
#include "host/worker_pool.hpp"
#include "metrics/metrics.hpp"
#include "runtime/logging.hpp"

namespace trellis::runtime {
namespace {

struct Terminal {
    const Runtime* runtime;
    const http::RouteMatch* match;
    http::Request* request;
    http::Response* response;
    trellis_request* abi_request;
    trellis_response* abi_response;
};

// What runs after the last middleware: the route's handler, or the host's own answer.
// The route's required scopes against the attribute auth.scopes that an authenticating
// middleware set (a JSON array); answers 401 or 403 and returns false when they fall short.
bool authorized(const RouteTarget& target, const http::Request& request, http::Response& response) {
    const auto granted_text = request.attributes.find("auth.scopes");
    if (granted_text == request.attributes.end()) {
        http::set_problem(response, request, 401, "unauthenticated",
                          "This resource needs authentication: send credentials the server accepts.");
        response.set_header("WWW-Authenticate", target.challenge);
        return false;
    }
    const auto granted = nlohmann::json::parse(granted_text->second, nullptr, false);
    std::vector<std::string> missing;
    for (const auto& scope : target.scopes)
        if (!granted.is_array() || std::find(granted.begin(), granted.end(), scope) == granted.end())
            missing.push_back(scope);
    if (missing.empty()) return true;
    std::string listed;
    for (const auto& scope : target.scopes) listed += (listed.empty() ? "" : " ") + scope;
    http::set_problem(response, request, 403, "insufficient_scope",
                      "The credentials lack a scope this resource needs.",
                      nlohmann::json{{"required_scopes", target.scopes}, {"missing_scopes", missing}});
    if (target.challenge.starts_with("Bearer"))
        response.set_header("WWW-Authenticate", "Bearer realm=\"trellis\", error=\"insufficient_scope\", scope=\"" +
                                                    listed + "\"");
    return false;
}

trellis_status run_terminal(void* context) {
    auto& t = *static_cast<Terminal*>(context);
    using Kind = http::RouteMatch::Kind;
    switch (t.match->kind) {
        case Kind::found: {
            const auto& target = t.runtime->target(t.match->route_id);
            const auto& route = *target.route;
            if (target.requires_auth && !authorized(target, *t.request, *t.response)) return TRELLIS_OK;
            // 1.4: after the middleware (so that unauthenticated clients never see schema
            // errors), before the handler, which never sees a request that does not match.
            if (route.schemas)
                if (auto failure = route.schemas->check(*t.request)) {
                    nlohmann::json extensions = nlohmann::json::object();
                    const std::size_t listed = failure->errors.size();
                    if (listed > 0) extensions["errors"] = std::move(failure->errors);
                    if (failure->omitted > 0) {
                        extensions["errors_omitted"] = failure->omitted;
                        failure->detail += " The first " + std::to_string(listed) + " of " +
                                           std::to_string(listed + failure->omitted) + " are listed.";
                    }
                    http::set_problem(*t.response, *t.request, failure->status, failure->code, failure->detail,
                                      extensions);
                    return TRELLIS_OK;
                }
            return route.on_request(route.user_data, t.abi_request, t.abi_response);
        }
        case Kind::method_not_allowed:
            t.response->set_header("Allow", t.match->allow);
            if (t.request->method == "OPTIONS") {
                t.response->status = 204;
                return TRELLIS_OK;
            }
            http::set_problem(*t.response, *t.request, 405, "method_not_allowed",
                              "The resource does not support " + t.request->method + ".");
            return TRELLIS_OK;
        case Kind::redirect: {
            std::string location = t.match->location + (t.request->query.empty() ? "" : "?" + t.request->query);
            t.response->status = 308;
            t.response->set_header("Location", location);
            return TRELLIS_OK;
        }
        case Kind::bad_request:
            http::set_problem(*t.response, *t.request, 400, "bad_path", "The request path is not valid.");
            return TRELLIS_OK;
        case Kind::not_found: break;
    }
    http::set_problem(*t.response, *t.request, 404, "not_found", "No resource matches this path.");
    return TRELLIS_OK;
}

// The client as the host believes it (trellis.client_address), else the TCP peer.
const std::string& client_address(const http::Request& request) {
    const auto it = request.attributes.find("trellis.client_address");
    return it != request.attributes.end() ? it->second : request.remote_address;
}

}  // namespace

void ListenerRoutes::add(std::string_view method, std::string_view path, Answer answer, bool blocking) {
    if (auto added = router_.add(method, path, answers_.size(), "the host"); !added)
        throw std::logic_error("host route " + std::string(method) + " " + std::string(path) + ": " + added.error());
    answers_.push_back(std::move(answer));
    blocking_.push_back(blocking);
}

struct Pipeline::Work {
    engine::Exchange* exchange = nullptr;  // null when called without an engine
    http::Request* request = nullptr;
    http::Response* response = nullptr;
    std::shared_ptr<const Runtime> runtime;
    http::RouteMatch match;
    std::chrono::steady_clock::time_point started;
    http::TraceContext trace;
    // The trace id for the log context: an array, so that a moved-from Work still holds it
    // for the scope of the thread that moved it to a worker.
    std::array<char, 32> trace_id{};
    std::string_view trace_view() const { return {trace_id.data(), trace_id.size()}; }
    const metrics::Metrics::Series* series = nullptr;  // host routes; else from the match
    bool on_worker = false;    // running on the worker pool (not an event loop)
    bool compressed = false;   // compression was decided (and done, or handed off)
};

Pipeline::Pipeline(std::shared_ptr<const Runtime> initial, PipelineOptions options)
    : runtime_(std::move(initial)),
      options_(options),
      log_(logging::get("trellis")),
      access_log_(logging::get("access")) {
    install_metrics(runtime_.load().get());
}

void Pipeline::replace(std::shared_ptr<const Runtime> next) {
    install_metrics(next.get());
    runtime_.store(std::move(next));
}

// The series of every route target, resolved once per runtime so that a request only
// increments what its target points at.
void Pipeline::install_metrics(const Runtime* runtime) const {
    if (!options_.metrics || !runtime) return;
    std::vector<std::pair<std::string, std::string>> routes;
    routes.reserve(runtime->targets().size());
    for (const auto& target : runtime->targets()) routes.emplace_back(target.method, target.full_path);
    options_.metrics->install_routes(runtime, routes);
}

void Pipeline::count_request(Work& work, std::chrono::steady_clock::time_point now) const noexcept {
    auto* m = options_.metrics;
    try {
        const metrics::Metrics::Series* series = work.series;
        if (!series && work.runtime && work.match.kind == http::RouteMatch::Kind::found) {
            auto table = m->routes();
            if (table && table->key == work.runtime.get())
                series = &table->targets[work.match.route_id];
            else  // the runtime was replaced while this request ran
                series = &m->series(work.request->method, work.runtime->target(work.match.route_id).full_path);
        }
        if (!series) series = &m->unmatched(work.request->method);
        metrics::Metrics::record(*series, work.response->status, std::chrono::duration<double>(now - work.started).count());
    } catch (...) {
    }
    m->request_finished();
}

Pipeline::Counts Pipeline::counts() const {
    return {inline_runs_.load(std::memory_order_relaxed), worker_runs_.load(std::memory_order_relaxed),
            worker_rejections_.load(std::memory_order_relaxed), compressions_on_workers_.load(std::memory_order_relaxed)};
}

void Pipeline::handle(http::Request& request, http::Response& response, const ListenerRoutes& listener) const {
    // No engine: a local exchange that runs everything on this thread.
    struct Local final : engine::Exchange {
        Local() : Exchange(false) {}
        void complete() noexcept override {}
    } local;
    local.request = std::move(request);
    local.response = std::move(response);
    handle(local, listener);
    request = std::move(local.request);
    response = std::move(local.response);
}

void Pipeline::handle(engine::Exchange& exchange, const ListenerRoutes& listener) const {
    Work work;
    work.exchange = &exchange;
    work.request = &exchange.request;
    work.response = &exchange.response;
    work.started = std::chrono::steady_clock::now();
    if (options_.metrics) options_.metrics->request_started();
    http::Request& request = exchange.request;
    http::Response& response = exchange.response;
    request.request_id = http::choose_request_id(request.header(http::request_id_header));
    work.trace = http::choose_trace_context(request.header(http::traceparent_header));
    std::copy_n(work.trace.trace_id.data(), std::min(work.trace.trace_id.size(), work.trace_id.size()),
                work.trace_id.begin());
    const logging::RequestScope scope(request.request_id, work.trace_view());
    try {
        if (!edge(request, response, listener)) return finish(work);
        if (request.body_too_large) {
            response.close_connection = true;
            http::set_problem(response, request, 413, "payload_too_large",
                              "The request body exceeds the limit of this server.");
            return finish(work);
        }
        http::RouteMatch own = listener.router().match(request.method, request.path);
        if (own.kind == http::RouteMatch::Kind::found) {
            if (options_.metrics) work.series = &options_.metrics->series(request.method, request.path);
            if (listener.blocking(own.route_id) && exchange.on_event_loop() && options_.workers)
                return run_host_answer_on_worker(work, listener.answer(own.route_id));
            listener.answer(own.route_id)(request, response);
            return finish(work);
        }
        if (!listener.serves_plugins()) {
            if (own.kind == http::RouteMatch::Kind::method_not_allowed) {
                response.set_header("Allow", own.allow);
                http::set_problem(response, request, 405, "method_not_allowed",
                                  "The resource does not support " + request.method + ".");
            } else {
                http::set_problem(response, request, 404, "not_found",
                                  "No " + listener.name() + " resource matches this path.");
            }
            return finish(work);
        }

        work.runtime = runtime_.load();
        const Runtime& runtime = *work.runtime;
        work.match = runtime.router().match(request.method, request.path);
        if (work.match.kind == http::RouteMatch::Kind::found && work.match.route_id >= runtime.targets().size())
            work.match.kind = http::RouteMatch::Kind::method_not_allowed;  // a host path with another method
        const bool may_block = work.match.kind == http::RouteMatch::Kind::found
                                   ? !runtime.target(work.match.route_id).runs_inline
                                   : !runtime.global_chain_inline();
        const bool to_workers = exchange.on_event_loop() && options_.workers &&
                                (may_block || (options_.force_workers && work.match.kind == http::RouteMatch::Kind::found));
        if (!to_workers) {
            inline_runs_.fetch_add(1, std::memory_order_relaxed);
            run(work);
            const auto took = std::chrono::steady_clock::now() - work.started;
            if (exchange.on_event_loop() && took > options_.inline_warn) {
                std::string where = "global middleware";
                if (work.match.kind == http::RouteMatch::Kind::found) {
                    const auto& target = runtime.target(work.match.route_id);
                    where = target.method + " " + target.full_path + " of plugin '" + target.instance->name() + "'";
                }
                log_->warn("request {}: the inline route {} ran for {} us on an event loop (server.inline_warn is {} us); "
                           "a route that can take this long should not be declared non-blocking",
                           request.request_id, where,
                           std::chrono::duration_cast<std::chrono::microseconds>(took).count(),
                           options_.inline_warn.count());
            }
            return finish(work);
        }
        auto job = std::make_shared<Work>(std::move(work));
        if (options_.workers->submit([this, job] {
                const logging::RequestScope job_scope(job->request->request_id, job->trace_view());
                job->on_worker = true;
                run(*job);
                finish(*job);
            })) {
            worker_runs_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        worker_rejections_.fetch_add(1, std::memory_order_relaxed);
        work = std::move(*job);
        response = http::Response{};
        http::set_problem(response, request, 503, "overloaded",
                          "The server has too many requests waiting; retry later.");
        response.set_header("Retry-After", "1");
        return finish(work);
    } catch (const std::exception& e) {
        log_->error("request {} {} {} failed in the host: {}", request.request_id, request.method, request.path,
                    e.what());
        response = http::Response{};
        http::set_problem(response, request, 500, "internal_error", "The request could not be completed.");
        return finish(work);
    }
}

void Pipeline::run_host_answer_on_worker(Work& work, const ListenerRoutes::Answer& answer) const {
    auto job = std::make_shared<Work>(std::move(work));
    if (options_.workers->submit([this, job, &answer] {
            try {
                answer(*job->request, *job->response);
            } catch (const std::exception& e) {
                log_->error("request {} {} {} failed in the host: {}", job->request->request_id, job->request->method,
                            job->request->path, e.what());
                *job->response = http::Response{};
                http::set_problem(*job->response, *job->request, 500, "internal_error",
                                  "The request could not be completed.");
            }
            finish(*job);
        })) {
        worker_runs_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    worker_rejections_.fetch_add(1, std::memory_order_relaxed);
    work = std::move(*job);
    *work.response = http::Response{};
    http::set_problem(*work.response, *work.request, 503, "overloaded",
                      "The server has too many requests waiting; retry later.");
    work.response->set_header("Retry-After", "1");
    finish(work);
}

void Pipeline::run(Work& work) const noexcept {
    http::Request& request = *work.request;
    http::Response& response = *work.response;
    try {
        const Runtime& runtime = *work.runtime;
        request.query_params = http::parse_query(request.query);
        request.attributes.insert_or_assign("trellis.request_id", request.request_id);
        request.attributes.insert_or_assign("trellis.traceparent", work.trace.traceparent());
        http::RouteMatch& match = work.match;
        request.path_params = std::move(match.params);
        if (match.kind == http::RouteMatch::Kind::found) {
            // For middleware: which route answers ("GET /notes/{id}"), and the scopes it
            // declares (1.4).
            const auto& target = runtime.target(match.route_id);
            request.attributes.insert_or_assign("trellis.route", target.label);
            if (!target.scopes_json.empty()) request.attributes.insert_or_assign("trellis.route_scopes", target.scopes_json);
        }

        trellis_request abi_request{&request, {}};
        trellis_response abi_response{&response};
        Terminal terminal{&runtime, &match, &request, &response, &abi_request, &abi_response};
        plugin::ChainRun chain;
        chain.steps = match.kind == http::RouteMatch::Kind::found ? &runtime.target(match.route_id).chain
                                                                  : &runtime.global_chain();
        chain.request = &abi_request;
        chain.response = &abi_response;
        chain.terminal = run_terminal;
        chain.terminal_context = &terminal;

        const trellis_status status = plugin::run_chain(chain, 0);
        if (status == TRELLIS_OK) return;

        std::string where = chain.failed_at;
        if (match.kind == http::RouteMatch::Kind::found && where == "handler") {
            const auto& target = runtime.target(match.route_id);
            where = "handler " + target.method + " " + target.full_path + " of plugin '" + target.instance->name() + "'";
        }
        if (options_.metrics) {
            // Counted against the plugin whose handler or middleware failed.
            std::string plugin;
            if (chain.failed_at == "handler" && match.kind == http::RouteMatch::Kind::found)
                plugin = runtime.target(match.route_id).instance->name();
            else if (chain.failed_at.starts_with("middleware "))
                plugin = chain.failed_at.substr(11, chain.failed_at.find('.') - 11);
            if (!plugin.empty()) options_.metrics->plugin_request_failed(plugin);
        }
        const std::string_view reason =
            abi_request.error.empty() ? std::string_view("no message given") : std::string_view(abi_request.error);
        response = http::Response{};
        if (status == TRELLIS_ERROR_UNAVAILABLE) {
            // No database connection in time, or the database is down: the client may retry.
            log_->warn("request {} {} {} unavailable in {}: {}", request.request_id, request.method, request.path,
                       where, reason);
            http::set_problem(response, request, 503, "unavailable",
                              "The service is temporarily unable to handle the request; retry later.");
            response.set_header("Retry-After", "1");
            return;
        }
        log_->error("request {} {} {} failed in {}: {}", request.request_id, request.method, request.path, where,
                    reason);
        http::set_problem(response, request, 500, "internal_error", "The request could not be completed.");
    } catch (const std::exception& e) {
        log_->error("request {} {} {} failed in the host: {}", request.request_id, request.method, request.path,
                    e.what());
        response = http::Response{};
        http::set_problem(response, request, 500, "internal_error", "The request could not be completed.");
    }
}

bool Pipeline::edge(http::Request& request, http::Response& response, const ListenerRoutes& listener) const {
    static const http::ProxyList no_proxies;
    const http::ClientView client = http::resolve_client(
        request, options_.trusted_proxies ? *options_.trusted_proxies : no_proxies, request.secure ? "https" : "http", listener.authority());
    request.attributes.insert_or_assign("trellis.client_address", client.address);
    request.attributes.insert_or_assign("trellis.base_url", client.base_url);
    if (listener.allows_host(request.header("Host"))) return true;
    http::set_problem(response, request, 421, "misdirected_request",
                      "This server does not serve the host named in the request (see server.allowed_hosts).");
    return false;
}

void Pipeline::finish(Work& work) const noexcept {
    http::Request& request = *work.request;
    http::Response& response = *work.response;
    if (!work.compressed) {
        work.compressed = true;
        if (compress(work)) return;  // finishes on a worker
    }
    const auto now = std::chrono::steady_clock::now();
    if (options_.metrics) count_request(work, now);
    try {
        response.set_header(http::request_id_header, request.request_id);
        response.set_header(http::traceparent_header, work.trace.traceparent());
        if (logging::access_log_enabled()) {
            logging::AccessEntry entry;
            entry.client_address = client_address(request);
            entry.method = request.method;
            entry.path = request.path;
            entry.query = request.query;
            entry.version = request.version;
            if (work.runtime && work.match.kind == http::RouteMatch::Kind::found &&
                work.match.route_id < work.runtime->targets().size())
                entry.route = &work.runtime->target(work.match.route_id).full_path;
            entry.status = response.status;
            entry.bytes = response.body.size();
            entry.duration =
                std::chrono::duration_cast<std::chrono::microseconds>(now - work.started);
            if (const std::string* agent = request.header("User-Agent")) entry.user_agent = *agent;
            logging::access(entry);
        }
    } catch (...) {
        // Logging failed (out of memory): the response still goes out.
    }
    // Release the runtime before the exchange is handed back: the engine may reuse it at once.
    work.runtime.reset();
    if (work.exchange) work.exchange->complete();
}

bool Pipeline::compress(Work& work) const noexcept {
    http::Request& request = *work.request;
    http::Response& response = *work.response;
    try {
        const http::Decision decision = http::plan_compression(request, response, options_.compression);
        const bool hand_off = decision.plan == http::Plan::compress && !work.on_worker && options_.workers &&
                              work.exchange && work.exchange->on_event_loop() &&
                              response.body.size() > options_.inline_compress_limit;
        if (hand_off) {
            auto job = std::make_shared<Work>(std::move(work));
            if (options_.workers->submit([this, job, decision] {
                    job->on_worker = true;
                    const logging::RequestScope job_scope(job->request->request_id, job->trace_view());
                    try {
                        http::apply_compression(*job->response, decision, options_.compression);
                    } catch (const std::exception& e) {
                        log_->warn("request {}: compression failed, sent as is: {}", job->request->request_id, e.what());
                    }
                    finish(*job);
                })) {
                compressions_on_workers_.fetch_add(1, std::memory_order_relaxed);
                return true;
            }
            // The pool is full: better uncompressed now than a 503 for a finished response.
            work = std::move(*job);
            http::apply_compression(response, http::Decision{http::Plan::vary, http::Coding::identity},
                                    options_.compression);
            return false;
        }
        http::apply_compression(response, decision, options_.compression);
    } catch (const std::exception& e) {
        log_->warn("request {}: compression failed, sent as is: {}", request.request_id, e.what());
    }
    return false;
}

}  // namespace trellis::runtime
