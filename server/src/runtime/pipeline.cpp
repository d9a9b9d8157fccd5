// Request dispatch. Host middleware (request id, errors, access log) wraps the plugin
// middleware chain: global middleware first, then the route's plugin middleware.
#include "runtime/pipeline.hpp"

#include <chrono>
#include <iterator>

#include <fmt/compile.h>
#include <nlohmann/json.hpp>

#include "http/problem.hpp"
#include "http/request_id.hpp"
#include "plugin/host_api.hpp"
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
trellis_status run_terminal(void* context) {
    auto& t = *static_cast<Terminal*>(context);
    using Kind = http::RouteMatch::Kind;
    switch (t.match->kind) {
        case Kind::found: {
            const auto& route = *t.runtime->target(t.match->route_id).route;
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

void answer_json(http::Response& response, int status, const nlohmann::json& body) {
    response.status = status;
    response.set_header("Content-Type", "application/json");
    response.set_header("Cache-Control", "no-store");
    response.body = body.dump();
}

}  // namespace

Pipeline::Pipeline(std::shared_ptr<const Runtime> initial)
    : runtime_(std::move(initial)), log_(logging::get("trellis")), access_log_(logging::get("access")) {}

void Pipeline::replace(std::shared_ptr<const Runtime> next) { runtime_.store(std::move(next)); }

void Pipeline::handle(http::Request& request, http::Response& response, Listener listener) const {
    auto started = std::chrono::steady_clock::now();
    request.request_id = http::choose_request_id(request.header(http::request_id_header));
    std::shared_ptr<const Runtime> runtime = runtime_.load();
    try {
        dispatch(*runtime, request, response, listener);
    } catch (const std::exception& e) {
        log_->error("request {} {} {} failed in the host: {}", request.request_id, request.method, request.path,
                    e.what());
        response = http::Response{};
        http::set_problem(response, request, 500, "internal_error", "The request could not be completed.");
    }
    response.set_header(http::request_id_header, request.request_id);

    if (logging::access_log_enabled()) {
        auto micros = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        // Formatted here with a compiled format string, and milliseconds as integer parts
        // (the same text as {:.3f} of micros / 1000.0): runtime format parsing and float
        // formatting were most of the line's cost.
        auto ms = micros.count();
        fmt::memory_buffer line;
        fmt::format_to(std::back_inserter(line), FMT_COMPILE("{} \"{} {}{}{} {}\" {} {} {}.{:03}ms id={}"),
                       request.remote_address, request.method, request.path, request.query.empty() ? "" : "?",
                       request.query, request.version, response.status, response.body.size(), ms / 1000, ms % 1000,
                       request.request_id);
        access_log_->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
    }
}

void Pipeline::dispatch(const Runtime& runtime, http::Request& request, http::Response& response,
                        Listener listener) const {
    if (request.body_too_large) {
        response.close_connection = true;
        http::set_problem(
            response, request, 413, "payload_too_large",
            "The request body exceeds " + std::to_string(runtime.config().server.max_body_bytes) + " bytes.");
        return;
    }
    if (request.path == "/livez" && (request.method == "GET" || request.method == "HEAD"))
        return answer_json(response, 200, {{"status", "ok"}});
    if (request.path == "/readyz" && (request.method == "GET" || request.method == "HEAD"))
        return answer_json(response, ready_ ? 200 : 503, {{"status", ready_ ? "ready" : "not ready"}});
    if (listener == Listener::admin) {
        http::set_problem(response, request, 404, "not_found", "No admin resource matches this path.");
        return;
    }

    request.query_params = http::parse_query(request.query);
    request.attributes.insert_or_assign("trellis.request_id", request.request_id);
    http::RouteMatch match = runtime.router().match(request.method, request.path);
    if (match.kind == http::RouteMatch::Kind::found && match.route_id >= runtime.targets().size())
        match.kind = http::RouteMatch::Kind::method_not_allowed;  // a host route with another method
    request.path_params = std::move(match.params);

    trellis_request abi_request{&request, {}};
    trellis_response abi_response{&response};
    Terminal terminal{&runtime, &match, &request, &response, &abi_request, &abi_response};
    plugin::ChainRun run;
    run.steps =
        match.kind == http::RouteMatch::Kind::found ? &runtime.target(match.route_id).chain : &runtime.global_chain();
    run.request = &abi_request;
    run.response = &abi_response;
    run.terminal = run_terminal;
    run.terminal_context = &terminal;

    const trellis_status status = plugin::run_chain(run, 0);
    if (status == TRELLIS_OK) return;

    std::string where = run.failed_at;
    if (match.kind == http::RouteMatch::Kind::found && where == "handler") {
        const auto& target = runtime.target(match.route_id);
        where = "handler " + target.method + " " + target.full_path + " of plugin '" + target.instance->name() + "'";
    }
    const std::string_view reason =
        abi_request.error.empty() ? std::string_view("no message given") : std::string_view(abi_request.error);
    response = http::Response{};
    if (status == TRELLIS_ERROR_UNAVAILABLE) {
        // No database connection in time, or the database is down: the client may retry.
        log_->warn("request {} {} {} unavailable in {}: {}", request.request_id, request.method, request.path, where,
                   reason);
        http::set_problem(response, request, 503, "unavailable",
                          "The service is temporarily unable to handle the request; retry later.");
        response.set_header("Retry-After", "1");
        return;
    }
    log_->error("request {} {} {} failed in {}: {}", request.request_id, request.method, request.path, where, reason);
    http::set_problem(response, request, 500, "internal_error", "The request could not be completed.");
}

}  // namespace trellis::runtime
