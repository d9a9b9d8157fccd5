// trellis/plugin.hpp - the C++17 SDK for writing Trellis plugins, header-only, over abi.h.
// Plugin authors write against this; it never lets an exception reach the C boundary.
#ifndef TRELLIS_PLUGIN_HPP
#define TRELLIS_PLUGIN_HPP

#include <trellis/abi.h>
#include <trellis/database.hpp>

#include <cstddef>
#include <deque>
#include <initializer_list>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace trellis {

using json = nlohmann::json;

/// Describes a plugin; returned by the static `info()` of the class given to TRELLIS_PLUGIN.
struct PluginInfo {
    std::string name;                       ///< [a-z][a-z0-9_]*, the key under `plugins:` in config
    std::string version;                    ///< the plugin's own version
    std::string description;                ///< one line
    std::vector<std::string> dependencies;  ///< plugins that must start first
    std::string config_schema;              ///< JSON Schema (text) of the config section, or empty
};

/// An error that becomes an HTTP answer: throw it from a handler or middleware and the client
/// receives an application/problem+json document with this status, code and detail.
class HttpError : public std::runtime_error {
public:
    HttpError(int status, std::string code, std::string detail, json extensions = json::object())
        : std::runtime_error(detail), status_(status), code_(std::move(code)), extensions_(std::move(extensions)) {}
    int status() const noexcept { return status_; }
    const std::string& code() const noexcept { return code_; }
    std::string detail() const { return what(); }
    /// Extra members merged into the problem document (e.g. {"errors": [...]}).
    const json& extensions() const noexcept { return extensions_; }

private:
    int status_;
    std::string code_;
    json extensions_;
};

/// Limits of Request::json_body(): nesting of arrays and objects, and values of any kind
/// (objects, arrays and scalars) in one body. Past either the request is answered 400.
inline constexpr int kMaxJsonDepth = 64;
inline constexpr std::size_t kMaxJsonValues = 100000;

/// The most entries a validation answer lists in its `errors` (the rest are counted in
/// `errors_omitted`): a request with thousands of bad parameters gets a small answer.
inline constexpr std::size_t kMaxListedErrors = 20;

/// True for application/json and application/*+json, with or without parameters.
inline bool is_json_media_type(std::string_view content_type) {
    std::string media(content_type.substr(0, content_type.find(';')));
    while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.pop_back();
    while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.erase(0, 1);
    for (char& c : media)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    constexpr std::string_view prefix = "application/", suffix = "+json";
    if (media == "application/json") return true;
    return media.size() > prefix.size() + suffix.size() && media.compare(0, prefix.size(), prefix) == 0 &&
           media.compare(media.size() - suffix.size(), suffix.size(), suffix) == 0 &&
           media.find_first_of(" \t/", prefix.size()) == std::string::npos;
}

/// Throws HttpError 415 `unsupported_media_type` unless `content_type` is a JSON type; an
/// absent Content-Type is refused too (see Request::require_json_content_type).
inline void require_json_media_type(std::optional<std::string_view> content_type) {
    if (!content_type || !is_json_media_type(*content_type))
        throw HttpError(415, "unsupported_media_type",
                        content_type ? "Send the body as application/json (Content-Type is '" + std::string(*content_type) +
                                           "')."
                                     : std::string("Send the body as application/json (the request has no Content-Type)."));
}

/// Percent-encodes all but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~), for a
/// value placed in a query string or a path segment, such as the cursor of a `next` link.
inline std::string url_encode(std::string_view text) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                                c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    return out;
}

/// Parses a request body as JSON within kMaxJsonDepth and kMaxJsonValues. Throws HttpError
/// 400 `invalid_json`, `json_too_deep` or `json_too_many_values` (Request::json_body uses it,
/// and so does the host's request validation).
inline json parse_json_body(std::string_view body) {
    std::size_t values = 0;
    auto limits = [&values](int depth, json::parse_event_t event, json&) {
        using event_t = json::parse_event_t;
        if (event == event_t::object_start || event == event_t::array_start) {
            if (depth >= kMaxJsonDepth)  // `depth` counts the arrays/objects around this one
                throw HttpError(400, "json_too_deep",
                                "The request body nests arrays and objects more than " +
                                    std::to_string(kMaxJsonDepth) + " deep.");
        }
        if ((event == event_t::value || event == event_t::object_start || event == event_t::array_start) &&
            ++values > kMaxJsonValues)
            throw HttpError(400, "json_too_many_values",
                            "The request body has more than " + std::to_string(kMaxJsonValues) + " JSON values.");
        return true;
    };
    try {
        return json::parse(body, limits);
    } catch (const json::out_of_range& e) {
        throw HttpError(400, "invalid_json", std::string("The request body has a number out of range: ") + e.what());
    } catch (const json::exception& e) {
        throw HttpError(400, "invalid_json", std::string("The request body is not valid JSON: ") + e.what());
    }
}

/// Appends `text` to `out` as a JSON string literal: the same bytes as
/// `json(text).dump(-1, ' ', false, json::error_handler_t::replace)`. For handlers that
/// write a small JSON body directly, which costs a fraction of building a json value and
/// dumping it.
inline void append_json_string(std::string& out, std::string_view text) {
    for (unsigned char c : text) {
        if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
            // Escapes and UTF-8 (valid or not) are left to nlohmann, so the bytes always match.
            out += json(std::string(text)).dump(-1, ' ', false, json::error_handler_t::replace);
            return;
        }
    }
    out += '"';
    out.append(text);
    out += '"';
}

namespace detail {
inline std::string_view view(trellis_str s) { return s.data ? std::string_view(s.data, s.size) : std::string_view(); }
inline trellis_str str(std::string_view s) { return trellis_str{s.data(), s.size()}; }
}  // namespace detail

/// Writes log lines attributed to the plugin. Usable from any thread.
class Logger {
public:
    Logger(const trellis_host_api* api, trellis_host* host) : api_(api), host_(host) {}
    void log(trellis_log_level level, std::string_view message) const { api_->log(host_, level, detail::str(message)); }
    void trace(std::string_view m) const { log(TRELLIS_LOG_TRACE, m); }
    void debug(std::string_view m) const { log(TRELLIS_LOG_DEBUG, m); }
    void info(std::string_view m) const { log(TRELLIS_LOG_INFO, m); }
    void warn(std::string_view m) const { log(TRELLIS_LOG_WARN, m); }
    void error(std::string_view m) const { log(TRELLIS_LOG_ERROR, m); }

private:
    const trellis_host_api* api_;
    trellis_host* host_;
};

/// A request in flight. Views returned by its accessors are valid until the handler returns.
class Request {
public:
    using Fields = std::vector<std::pair<std::string_view, std::string_view>>;

    Request(const trellis_host_api* api, trellis_request* raw) : api_(api), raw_(raw) {}

    std::string_view method() const { return detail::view(api_->request_method(raw_)); }
    /// The path as received (percent-encoded), without the query.
    std::string_view path() const { return detail::view(api_->request_path(raw_)); }
    std::string_view query_string() const { return detail::view(api_->request_query(raw_)); }
    std::string_view body() const { return detail::view(api_->request_body(raw_)); }

    /// A header, case-insensitively.
    std::optional<std::string_view> header(std::string_view name) const { return get(TRELLIS_FIELD_HEADER, name); }
    /// A query parameter, percent-decoded (the first when repeated).
    std::optional<std::string_view> query(std::string_view name) const { return get(TRELLIS_FIELD_QUERY, name); }
    /// A path parameter of the matched route ("/items/{id}" gives param("id")), decoded.
    std::optional<std::string_view> param(std::string_view name) const { return get(TRELLIS_FIELD_PATH_PARAM, name); }
    /// A per-request attribute set by middleware (by convention JSON text).
    std::optional<std::string_view> attribute(std::string_view name) const {
        return get(TRELLIS_FIELD_ATTRIBUTE, name);
    }
    /// Sets an attribute for the middleware and handler that run after this one. Names
    /// starting with "trellis." (trellis.client_address, trellis.base_url,
    /// trellis.request_id) are the host's: reading them works, setting them throws.
    void set_attribute(std::string_view name, std::string_view value) {
        if (api_->request_set_attribute(raw_, detail::str(name), detail::str(value)) != TRELLIS_OK)
            throw std::runtime_error("cannot set request attribute '" + std::string(name) + "'" +
                                     (name.substr(0, 8) == "trellis." ? " (names starting with 'trellis.' are reserved)" : ""));
    }

    Fields headers() const { return all(TRELLIS_FIELD_HEADER); }
    Fields query_params() const { return all(TRELLIS_FIELD_QUERY); }
    Fields params() const { return all(TRELLIS_FIELD_PATH_PARAM); }
    Fields attributes() const { return all(TRELLIS_FIELD_ATTRIBUTE); }

    /// The body parsed as JSON. Answered with problem+json instead (the HttpError thrown):
    /// 415 `unsupported_media_type` unless Content-Type is JSON (require_json_content_type);
    /// 400 `invalid_json` for a body that is not JSON or holds a number out of range;
    /// 400 `json_too_deep` past kMaxJsonDepth nested arrays/objects; 400 `json_too_many_values`
    /// past kMaxJsonValues values. Parsing stops at the first value over a limit.
    json json_body() const {
        require_json_content_type();
        return parse_json_body(body());
    }

    /// Throws HttpError 415 `unsupported_media_type` unless the Content-Type is JSON:
    /// application/json or application/<anything>+json, parameters (charset) allowed. An
    /// absent Content-Type is refused too: a cross-site HTML form cannot send a JSON type
    /// without a CORS preflight, so this keeps form posts from reaching a JSON resource.
    void require_json_content_type() const { require_json_media_type(header("Content-Type")); }

    /// True for application/json and application/*+json, with or without parameters.
    static bool is_json_media_type(std::string_view content_type) { return trellis::is_json_media_type(content_type); }

    /// The host's request id (also sent back as X-Request-ID), for log lines.
    std::string_view request_id() const { return attribute("trellis.request_id").value_or(std::string_view()); }

    trellis_request* raw() const { return raw_; }

private:
    std::optional<std::string_view> get(trellis_field_kind kind, std::string_view name) const {
        trellis_str value{nullptr, 0};
        if (api_->request_field_get(raw_, kind, detail::str(name), &value) != TRELLIS_OK) return std::nullopt;
        return detail::view(value);
    }
    Fields all(trellis_field_kind kind) const {
        Fields out;
        size_t count = api_->request_field_count(raw_, kind);
        for (size_t i = 0; i < count; ++i) {
            trellis_str name{nullptr, 0}, value{nullptr, 0};
            if (api_->request_field_at(raw_, kind, i, &name, &value) == TRELLIS_OK)
                out.emplace_back(detail::view(name), detail::view(value));
        }
        return out;
    }

    const trellis_host_api* api_;
    trellis_request* raw_;
};

/// The response being built. Status defaults to 200.
class Response {
public:
    Response(const trellis_host_api* api, trellis_response* raw) : api_(api), raw_(raw) {}

    Response& status(int code) {
        check(api_->response_set_status(raw_, code), "status");
        return *this;
    }
    int status() const { return api_->response_status(raw_); }

    /// Replaces a header; an empty value removes it. Refused (std::invalid_argument): control
    /// characters other than HTAB, and Content-Length, Transfer-Encoding, Connection.
    Response& header(std::string_view name, std::string_view value) {
        check_header(api_->response_set_header(raw_, detail::str(name), detail::str(value)), name);
        return *this;
    }
    Response& add_header(std::string_view name, std::string_view value) {
        check_header(api_->response_add_header(raw_, detail::str(name), detail::str(value)), name);
        return *this;
    }
    std::optional<std::string_view> header(std::string_view name) const {
        trellis_str value{nullptr, 0};
        if (api_->response_header(raw_, detail::str(name), &value) != TRELLIS_OK) return std::nullopt;
        return detail::view(value);
    }

    Response& body(std::string_view bytes) {
        check(api_->response_set_body(raw_, detail::str(bytes)), "body");
        return *this;
    }
    std::string_view body() const { return detail::view(api_->response_body(raw_)); }

    /// A JSON body with Content-Type application/json.
    Response& json(const nlohmann::json& value) {
        header("Content-Type", "application/json");
        return body(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
    /// A text body with Content-Type text/plain; charset=utf-8.
    Response& text(std::string_view value) {
        header("Content-Type", "text/plain; charset=utf-8");
        return body(value);
    }
    /// An RFC 9457 problem document, as HttpError produces.
    Response& problem(int code, std::string_view error_code, std::string_view detail_text, std::string_view instance,
                      const nlohmann::json& extensions = nlohmann::json::object()) {
        nlohmann::json doc = extensions.is_object() ? extensions : nlohmann::json::object();
        doc["type"] = "about:blank";
        doc["title"] = title(code);
        doc["status"] = code;
        doc["code"] = error_code;
        if (!detail_text.empty()) doc["detail"] = detail_text;
        if (!instance.empty()) doc["instance"] = instance;
        status(code);
        header("Content-Type", "application/problem+json");
        return body(doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }

    trellis_response* raw() const { return raw_; }

private:
    static void check(trellis_status status, const char* what) {
        if (status != TRELLIS_OK) throw std::invalid_argument(std::string("invalid response ") + what);
    }
    static void check_header(trellis_status status, std::string_view name) {
        if (status != TRELLIS_OK)
            throw std::invalid_argument(
                "invalid response header '" + std::string(name) +
                "': the host refuses Content-Length, Transfer-Encoding and Connection (framing is its own) and "
                "names or values with control characters (CR, LF, NUL, ...)");
    }
    static const char* title(int code) {
        switch (code) {
            case 400: return "Bad Request";
            case 401: return "Unauthorized";
            case 403: return "Forbidden";
            case 404: return "Not Found";
            case 405: return "Method Not Allowed";
            case 409: return "Conflict";
            case 412: return "Precondition Failed";
            case 415: return "Unsupported Media Type";
            case 422: return "Unprocessable Content";
            case 429: return "Too Many Requests";
            case 503: return "Service Unavailable";
            default: return code >= 500 ? "Server Error" : "Client Error";
        }
    }

    const trellis_host_api* api_;
    trellis_response* raw_;
};

/// The rest of the middleware chain. Call it at most once; an error further down is passed
/// back up by the SDK after your middleware returns.
class Next {
public:
    Next(const trellis_host_api* api, trellis_next* raw) : api_(api), raw_(raw) {}
    void operator()() {
        if (called_) throw std::logic_error("next() called twice");
        called_ = true;
        status_ = api_->next(raw_);
    }
    bool called() const { return called_; }
    trellis_status status() const { return status_; }

private:
    const trellis_host_api* api_;
    trellis_next* raw_;
    bool called_ = false;
    trellis_status status_ = TRELLIS_OK;
};

using Handler = std::function<void(Request&, Response&)>;
using Middleware = std::function<void(Request&, Response&, Next&)>;

/// Optional route metadata for generated API documents.
/// A route's description. The schemas are JSON Schema draft-07; the host enforces the
/// request, query and path schemas before the handler runs (see trellis_route in abi.h:
/// 422 `validation_failed`, 400 `invalid_query`, 404), so a handler sees only requests that
/// match them, and refuses at load a schema with a keyword it cannot check.
struct RouteInfo {
    std::string summary;
    std::vector<std::string> tags;
    nlohmann::json request_schema;   ///< JSON Schema of the request body, or null
    nlohmann::json response_schema;  ///< JSON Schema of the success body, or null
    // 1.4; initialised here so that code listing only the four members above still compiles
    // without -Wmissing-field-initializers warnings.
    nlohmann::json query_schema{};     ///< JSON Schema of the query parameters as one object, or null
    nlohmann::json path_schema{};      ///< JSON Schema of the path parameters as one object, or null
    std::vector<std::string> scopes{};  ///< scopes a caller needs (an auth middleware enforces them)
    nlohmann::json security{};          ///< OpenAPI security requirements, e.g. [{"bearer": []}], or null
};

namespace detail {

struct RouteSlot {
    const trellis_host_api* api;
    Handler handler;
};
struct MiddlewareSlot {
    const trellis_host_api* api;
    Middleware middleware;
};
struct CheckSlot {
    const trellis_host_api* api;
    std::function<std::pair<bool, std::string>()> check;
};

inline trellis_status on_check(void* user_data, trellis_check* check) noexcept {
    auto* slot = static_cast<CheckSlot*>(user_data);
    try {
        auto [ok, message] = slot->check();
        slot->api->check_set_message(check, str(message));
        return ok ? TRELLIS_OK : TRELLIS_ERROR;
    } catch (const std::exception& e) {
        slot->api->check_set_message(check, str(e.what()));
    } catch (...) {
        slot->api->check_set_message(check, str("unknown exception"));
    }
    return TRELLIS_ERROR;
}

// Turns whatever a handler throws into a response (HttpError) or an ABI error code.
template <typename Body>
trellis_status guard(const trellis_host_api* api, trellis_request* req, trellis_response* resp, Body&& body) noexcept {
    try {
        return body();
    } catch (const HttpError& e) {
        try {
            Response(api, resp).problem(e.status(), e.code(), e.detail(), detail::view(api->request_path(req)),
                                        e.extensions());
            return TRELLIS_OK;
        } catch (...) {
            api->request_set_error(req, str("could not write the problem response"));
            return TRELLIS_ERROR;
        }
    } catch (const DbUnavailable& e) {
        api->request_set_error(req, str(e.what()));
        return TRELLIS_ERROR_UNAVAILABLE;  // the host answers 503 with Retry-After
    } catch (const DbConflict& e) {
        api->request_set_error(req, str(e.what()));
        try {
            Response(api, resp).problem(409, "conflict", "The request conflicts with the current state of the resource.",
                                        detail::view(api->request_path(req)));
            return TRELLIS_OK;
        } catch (...) {
            return TRELLIS_ERROR;
        }
    } catch (const std::bad_alloc&) {
        api->request_set_error(req, str("out of memory"));
        return TRELLIS_ERROR_NO_MEMORY;
    } catch (const std::exception& e) {
        api->request_set_error(req, str(e.what()));
        return TRELLIS_ERROR;
    } catch (...) {
        api->request_set_error(req, str("unknown exception"));
        return TRELLIS_ERROR;
    }
}

inline trellis_status on_request(void* user_data, trellis_request* req, trellis_response* resp) {
    auto* slot = static_cast<RouteSlot*>(user_data);
    return guard(slot->api, req, resp, [&] {
        Request request(slot->api, req);
        Response response(slot->api, resp);
        slot->handler(request, response);
        return TRELLIS_OK;
    });
}

inline trellis_status on_middleware(void* user_data, trellis_request* req, trellis_response* resp,
                                    trellis_next* next_raw) {
    auto* slot = static_cast<MiddlewareSlot*>(user_data);
    return guard(slot->api, req, resp, [&] {
        Request request(slot->api, req);
        Response response(slot->api, resp);
        Next next(slot->api, next_raw);
        slot->middleware(request, response, next);
        return next.called() ? next.status() : TRELLIS_OK;
    });
}

}  // namespace detail

/// A metric the plugin registered (ABI 1.3): see Context::counter, gauge and histogram.
/// Copyable; valid until the plugin instance is destroyed; usable from any thread. Label
/// values are given in the order of the label names the metric was registered with.
class Metric {
public:
    Metric() = default;
    Metric(const trellis_host_api* api, trellis_metric* raw) : api_(api), raw_(raw) {}
    trellis_metric* raw() const { return raw_; }

protected:
    using Labels = std::initializer_list<std::string_view>;
    using Update = trellis_status (*)(trellis_metric*, const trellis_str*, size_t, double);
    void update(Update fn, Labels labels, double value, const char* what) const {
        if (!api_ || !raw_) throw std::logic_error("metric used before it was registered");
        trellis_str values[16];
        if (labels.size() > 16) throw std::invalid_argument("a metric has at most 16 labels");
        size_t i = 0;
        for (std::string_view label : labels) values[i++] = detail::str(label);
        if (fn(raw_, values, labels.size(), value) != TRELLIS_OK)
            throw std::invalid_argument(std::string("invalid metric ") + what +
                                        " (wrong number of label values, or a negative counter increment)");
    }
    const trellis_host_api* api_ = nullptr;
    trellis_metric* raw_ = nullptr;
};

/// Only goes up. Its name ends in "_total".
class Counter : public Metric {
public:
    using Metric::Metric;
    void inc(double by = 1.0, Labels labels = {}) const { update(api_->metric_add, labels, by, "increment"); }
    void inc(Labels labels) const { inc(1.0, labels); }
};

/// Set, or moved up and down.
class Gauge : public Metric {
public:
    using Metric::Metric;
    void set(double value, Labels labels = {}) const { update(api_->metric_set, labels, value, "set"); }
    void add(double by, Labels labels = {}) const { update(api_->metric_add, labels, by, "add"); }
    void inc(Labels labels = {}) const { add(1.0, labels); }
    void dec(Labels labels = {}) const { add(-1.0, labels); }
};

/// Observations counted in buckets (durations in seconds by default).
class Histogram : public Metric {
public:
    using Metric::Metric;
    void observe(double value, Labels labels = {}) const { update(api_->metric_observe, labels, value, "observation"); }
};

/// The outcome of a readiness check (ABI 1.3): see Context::add_readiness_check.
struct CheckResult {
    bool ok = true;
    std::string message;
};
using ReadinessCheck = std::function<CheckResult()>;

class Plugin;

/// What a plugin's init() receives: its configuration, its logger, and registration.
///
/// Routes and middleware are blocking by default: they run on the host's worker pool and may
/// use the database. A handler that never blocks can skip the hop to a worker (ABI 1.2):
///
///   context.non_blocking().get("/{name}", handler);        // TRELLIS_ROUTE_NON_BLOCKING
///   context.non_blocking().middleware("headers", fn);      // TRELLIS_MIDDLEWARE_NON_BLOCKING
///
/// Such a route runs inline on an event-loop thread when all of its middleware are
/// non-blocking too. It must not block there: no database (every Database call throws
/// DbError with event_loop_database_message, and the request fails with 500), no sleeping,
/// no blocking I/O, no long waits on locks.
class Context {
public:
    Context(const trellis_host_api* api, trellis_host* host, const nlohmann::json& config,
            std::deque<detail::RouteSlot>& routes, std::deque<detail::MiddlewareSlot>& middleware,
            std::deque<detail::CheckSlot>* checks = nullptr)
        : api_(api),
          host_(host),
          config_(config),
          logger_(api, host),
          routes_(routes),
          middleware_(middleware),
          checks_(checks) {}

    /// A view of this context whose route and middleware registrations carry the
    /// non-blocking flag (see above). Only the registrations made through it are flagged.
    Context non_blocking() const {
        Context flagged(*this);
        flagged.non_blocking_ = true;
        return flagged;
    }
    /// True when registrations through this context are flagged non-blocking.
    bool is_non_blocking() const { return non_blocking_; }

    /// The plugin's `config:` section, already validated against its schema.
    const nlohmann::json& config() const { return config_; }
    const Logger& log() const { return logger_; }
    /// The host's database (pooled connections); keep it in a member for the handlers.
    Database database() const { return Database(api_, host_); }

    /// Registers a schema migration. The host applies pending ones after init() returns, in
    /// version order, before any route is served; a failed one keeps the plugin from serving.
    void migration(const Migration& m) {
        trellis_migration raw{};
        raw.struct_size = sizeof(trellis_migration);
        raw.version = m.version;
        raw.name = detail::str(m.name);
        raw.up_sql = detail::str(m.up);
        raw.down_sql = detail::str(m.down);
        raw.dialect = detail::str(m.dialect);
        if (trellis_status status = api_->register_migration(host_, &raw); status != TRELLIS_OK)
            throw std::invalid_argument("cannot register migration " + std::to_string(m.version) + " (" + m.name +
                                        "): " +
                                        (status == TRELLIS_ERROR_CONFLICT ? "the version is registered twice"
                                                                          : "version below 1, empty name or SQL, or "
                                                                            "an unknown dialect"));
    }

    /// Registers a handler for METHOD and a path template relative to the plugin's mount.
    void route(std::string_view method, std::string_view path, Handler handler, const RouteInfo& info = {}) {
        routes_.push_back(detail::RouteSlot{api_, std::move(handler)});
        std::string tags = info.tags.empty() ? std::string() : nlohmann::json(info.tags).dump();
        std::string request_schema = info.request_schema.is_null() ? std::string() : info.request_schema.dump();
        std::string response_schema = info.response_schema.is_null() ? std::string() : info.response_schema.dump();
        std::string query_schema = info.query_schema.is_null() ? std::string() : info.query_schema.dump();
        std::string path_schema = info.path_schema.is_null() ? std::string() : info.path_schema.dump();
        std::string scopes = info.scopes.empty() ? std::string() : nlohmann::json(info.scopes).dump();
        std::string security = info.security.is_null() ? std::string() : info.security.dump();
        trellis_route route{};
        route.struct_size = sizeof(trellis_route);
        route.method = detail::str(method);
        route.path = detail::str(path);
        route.on_request = &detail::on_request;
        route.user_data = &routes_.back();
        route.summary = detail::str(info.summary);
        route.tags_json = detail::str(tags);
        route.request_schema_json = detail::str(request_schema);
        route.response_schema_json = detail::str(response_schema);
        route.flags = non_blocking_ ? TRELLIS_ROUTE_NON_BLOCKING : 0u;
        route.query_schema_json = detail::str(query_schema);
        route.path_schema_json = detail::str(path_schema);
        route.scopes_json = detail::str(scopes);
        route.security_json = detail::str(security);
        if (trellis_status status = api_->register_route(host_, &route); status != TRELLIS_OK) {
            routes_.pop_back();
            throw std::invalid_argument("cannot register route " + std::string(method) + " " + std::string(path) +
                                        " (status " + std::to_string(status) +
                                        (status == TRELLIS_ERROR_INVALID_ARGUMENT
                                             ? ": a malformed method or path, or a schema the host refuses)"
                                             : ")"));
        }
    }
    void get(std::string_view path, Handler h, const RouteInfo& info = {}) { route("GET", path, std::move(h), info); }
    void post(std::string_view path, Handler h, const RouteInfo& info = {}) { route("POST", path, std::move(h), info); }
    void put(std::string_view path, Handler h, const RouteInfo& info = {}) { route("PUT", path, std::move(h), info); }
    void patch(std::string_view path, Handler h, const RouteInfo& info = {}) {
        route("PATCH", path, std::move(h), info);
    }
    void del(std::string_view path, Handler h, const RouteInfo& info = {}) {
        route("DELETE", path, std::move(h), info);
    }

    /// Registers a middleware that configuration refers to as "PLUGIN.NAME" (or "PLUGIN").
    void middleware(std::string_view name, Middleware fn) {
        middleware_.push_back(detail::MiddlewareSlot{api_, std::move(fn)});
        trellis_middleware mw{};
        mw.struct_size = sizeof(trellis_middleware);
        mw.name = detail::str(name);
        mw.on_middleware = &detail::on_middleware;
        mw.user_data = &middleware_.back();
        mw.flags = non_blocking_ ? TRELLIS_MIDDLEWARE_NON_BLOCKING : 0u;
        if (trellis_status status = api_->register_middleware(host_, &mw); status != TRELLIS_OK) {
            middleware_.pop_back();
            throw std::invalid_argument("cannot register middleware '" + std::string(name) + "' (status " +
                                        std::to_string(status) + ")");
        }
    }

    /// ABI 1.3: the host's minor is at least 3, so metrics and readiness checks exist. The
    /// calls below throw std::logic_error on an older host; check this first to make them
    /// optional.
    bool host_has_metrics() const {
        return api_->abi_minor >= 3 &&
               api_->struct_size >= offsetof(trellis_host_api, check_set_message) + sizeof(api_->check_set_message);
    }

    /// Registers a counter (ABI 1.3), served by the host at GET /metrics on its admin
    /// listener. The name starts with the plugin's name and '_' and ends in "_total"
    /// ("notes_created_total"); label_names are the labels each update gives values for.
    /// At most 100 distinct label-value sets per metric (further ones are dropped). A
    /// reloaded instance registering the same metric gets the same series back.
    Counter counter(std::string_view name, std::string_view help, const std::vector<std::string>& label_names = {}) {
        return Counter(api_, register_metric(TRELLIS_METRIC_COUNTER, name, help, label_names, {}));
    }
    Gauge gauge(std::string_view name, std::string_view help, const std::vector<std::string>& label_names = {}) {
        return Gauge(api_, register_metric(TRELLIS_METRIC_GAUGE, name, help, label_names, {}));
    }
    /// buckets: strictly increasing upper bounds; empty for the host's default (0.5 ms to
    /// 10 s, for durations in seconds).
    Histogram histogram(std::string_view name, std::string_view help, const std::vector<double>& buckets = {},
                        const std::vector<std::string>& label_names = {}) {
        return Histogram(api_, register_metric(TRELLIS_METRIC_HISTOGRAM, name, help, label_names, buckets));
    }

    /// Registers a readiness check (ABI 1.3): the host runs it when readiness is asked for
    /// (GET /readyz), on any thread, concurrently with requests. It must return quickly.
    /// Name: [a-z0-9_.-]+, unique in the plugin. A thrown exception counts as failing.
    void add_readiness_check(std::string_view name, ReadinessCheck check) {
        require_metrics("readiness checks");
        if (!checks_) throw std::logic_error("readiness checks can only be added from init()");
        checks_->push_back(detail::CheckSlot{api_, [check = std::move(check)] {
                                                 CheckResult result = check();
                                                 return std::make_pair(result.ok, std::move(result.message));
                                             }});
        trellis_status status = api_->register_check(host_, detail::str(name), &detail::on_check, &checks_->back());
        if (status != TRELLIS_OK) {
            checks_->pop_back();
            throw std::invalid_argument("cannot register readiness check '" + std::string(name) + "': " +
                                        (status == TRELLIS_ERROR_CONFLICT ? "the name is registered twice"
                                         : status == TRELLIS_ERROR_STATE  ? "only from init()"
                                                                          : "the name is not [a-z0-9_.-]+"));
        }
    }

private:
    void require_metrics(const char* what) const {
        if (!host_has_metrics())
            throw std::logic_error(std::string(what) + " need a host of plugin ABI 1.3 or later; this host offers " +
                                   std::to_string(api_->abi_major) + "." + std::to_string(api_->abi_minor));
    }

    trellis_metric* register_metric(trellis_metric_kind kind, std::string_view name, std::string_view help,
                                    const std::vector<std::string>& label_names, const std::vector<double>& buckets) {
        require_metrics("metrics");
        std::vector<trellis_str> labels;
        for (const auto& label : label_names) labels.push_back(detail::str(label));
        trellis_metric_spec spec{};
        spec.struct_size = sizeof(trellis_metric_spec);
        spec.kind = kind;
        spec.name = detail::str(name);
        spec.help = detail::str(help);
        spec.label_names = labels.empty() ? nullptr : labels.data();
        spec.label_count = labels.size();
        spec.buckets = buckets.empty() ? nullptr : buckets.data();
        spec.bucket_count = buckets.size();
        trellis_metric* metric = nullptr;
        trellis_str error{nullptr, 0};
        if (api_->metric_register(host_, &spec, &metric, &error) != TRELLIS_OK)
            throw std::invalid_argument("cannot register metric '" + std::string(name) + "': " +
                                        (error.size ? std::string(detail::view(error)) : std::string("refused")));
        return metric;
    }

    const trellis_host_api* api_;
    trellis_host* host_;
    const nlohmann::json& config_;
    Logger logger_;
    std::deque<detail::RouteSlot>& routes_;
    std::deque<detail::MiddlewareSlot>& middleware_;
    std::deque<detail::CheckSlot>* checks_;
    bool non_blocking_ = false;
};

/// Base class of every plugin. One object per instance: keep all state in members, never
/// in globals. Handlers run on many threads at once; guard shared members yourself.
class Plugin {
public:
    virtual ~Plugin() = default;
    /// Reads config and registers routes and middleware. Throw to refuse to start.
    virtual void init(Context& context) = 0;
    /// Called once no request is in flight any more; release what init acquired.
    virtual void shutdown() {}
};

namespace detail {

// Everything one instance owns on the plugin side. deques keep slot addresses stable.
struct Instance {
    const trellis_host_api* api = nullptr;
    trellis_host* host = nullptr;
    std::unique_ptr<Plugin> plugin;
    nlohmann::json config;
    std::deque<RouteSlot> routes;
    std::deque<MiddlewareSlot> middleware;
    std::deque<CheckSlot> checks;  // 1.3
};

template <typename Body>
trellis_status lifecycle_guard(const trellis_host_api* api, trellis_host* host, Body&& body) noexcept {
    try {
        body();
        return TRELLIS_OK;
    } catch (const std::exception& e) {
        api->set_error(host, str(e.what()));
    } catch (...) {
        api->set_error(host, str("unknown exception"));
    }
    return TRELLIS_ERROR;
}

template <typename T>
trellis_status on_create(const trellis_host_api* api, trellis_host* host, void** out) {
    return lifecycle_guard(api, host, [&] {
        auto instance = std::make_unique<Instance>();
        instance->api = api;
        instance->host = host;
        instance->plugin = std::make_unique<T>();
        *out = instance.release();
    });
}

inline trellis_status on_init(void* raw) {
    auto* instance = static_cast<Instance*>(raw);
    return lifecycle_guard(instance->api, instance->host, [&] {
        std::string_view text = view(instance->api->config_json(instance->host));
        instance->config = text.empty() ? nlohmann::json::object() : nlohmann::json::parse(text);
        Context context(instance->api, instance->host, instance->config, instance->routes, instance->middleware,
                        &instance->checks);
        instance->plugin->init(context);
    });
}

inline void on_shutdown(void* raw) {
    auto* instance = static_cast<Instance*>(raw);
    trellis_status ignored = lifecycle_guard(instance->api, instance->host, [&] { instance->plugin->shutdown(); });
    (void)ignored;
}

inline void on_destroy(void* raw) {
    try {
        delete static_cast<Instance*>(raw);
    } catch (...) {
    }
}

// The descriptor and the strings it points to, in static storage for the library's lifetime.
struct DescriptorStorage {
    DescriptorStorage(PluginInfo from, trellis_on_create_fn create) : info(std::move(from)) {
        for (const auto& dep : info.dependencies) dependencies.push_back(str(dep));
        descriptor.abi_major = TRELLIS_ABI_MAJOR;
        descriptor.abi_minor = TRELLIS_ABI_MINOR;
        descriptor.struct_size = sizeof(trellis_plugin_descriptor);
        descriptor.name = str(info.name);
        descriptor.version = str(info.version);
        descriptor.description = str(info.description);
        descriptor.dependencies = dependencies.empty() ? nullptr : dependencies.data();
        descriptor.dependency_count = dependencies.size();
        descriptor.config_schema_json = str(info.config_schema);
        descriptor.on_create = create;
        descriptor.on_init = &on_init;
        descriptor.on_shutdown = &on_shutdown;
        descriptor.on_destroy = &on_destroy;
    }
    DescriptorStorage(const DescriptorStorage&) = delete;
    DescriptorStorage& operator=(const DescriptorStorage&) = delete;

    PluginInfo info;
    std::vector<trellis_str> dependencies;
    trellis_plugin_descriptor descriptor{};
};

template <typename T>
const trellis_plugin_descriptor* descriptor_for() noexcept {
    try {
        static const DescriptorStorage storage(T::info(), &on_create<T>);
        return &storage.descriptor;
    } catch (...) {
        return nullptr;  // the host reports "the entry point returned no descriptor"
    }
}

}  // namespace detail
}  // namespace trellis

/// Declares the plugin class of this library: it must derive from trellis::Plugin, be
/// default-constructible and have `static trellis::PluginInfo info()`. Use once per plugin.
#define TRELLIS_PLUGIN(PluginClass)                                                                \
    extern "C" TRELLIS_PLUGIN_EXPORT const trellis_plugin_descriptor* trellis_plugin_entry(void) { \
        return ::trellis::detail::descriptor_for<PluginClass>();                                   \
    }

#endif  // TRELLIS_PLUGIN_HPP
