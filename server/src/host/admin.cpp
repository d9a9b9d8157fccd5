// The admin API. Reads (plugins, routes, config) answer on the event loop from the current
// runtime; what touches the database or reloads runs on the worker pool.
#include "host/admin.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <regex>

#include <Poco/SHA2Engine.h>

#include "db/migrations.hpp"
#include "host/host.hpp"
#include "host/version.hpp"
#include "http/problem.hpp"
#include "runtime/inventory.hpp"

namespace trellis::host {
namespace {

using nlohmann::json;

constexpr const char* kRedacted = "***";

void answer_json(http::Response& response, int status, const json& body) {
    response.status = status;
    response.set_header("Content-Type", "application/json");
    response.set_header("Cache-Control", "no-store");
    response.body = body.dump();
}

// A problem document with extra members (such as `errors`).
void answer_problem(http::Response& response, const http::Request& request, int status, std::string_view code,
                    std::string_view detail, const json& extra = json::object()) {
    http::set_problem(response, request, status, code, detail);
    response.set_header("Cache-Control", "no-store");
    if (extra.empty()) return;
    json body = json::parse(response.body, nullptr, false);
    if (body.is_discarded()) return;
    body.update(extra);
    response.body = body.dump();
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool is_secret_key(std::string_view key) {
    const std::string name = lower(key);
    for (const std::string_view word : {"password", "secret", "token", "key"})
        if (name.find(word) != std::string::npos) return true;
    return false;
}

// scheme://user:password@host... -> scheme://user:***@host...
std::string redact_url_credentials(const std::string& text) {
    static const std::regex credentials(R"(^([A-Za-z][A-Za-z0-9+.\-]*://[^/?#@:\s]*:)[^/?#@\s]*@)");
    return std::regex_replace(text, credentials, "$1***@", std::regex_constants::format_first_only);
}

void redact_by_name(json& value) {
    if (value.is_object()) {
        for (auto it = value.begin(); it != value.end(); ++it) {
            if (is_secret_key(it.key()) && !it.value().is_null())
                it.value() = kRedacted;
            else
                redact_by_name(it.value());
        }
    } else if (value.is_array()) {
        for (auto& item : value) redact_by_name(item);
    } else if (value.is_string()) {
        value = redact_url_credentials(value.get<std::string>());
    }
}

// Every property the schema marks writeOnly, in nested objects and arrays too.
void redact_write_only(json& value, const json& schema, int depth = 0) {
    if (!schema.is_object() || depth > 64) return;
    for (const char* combinator : {"allOf", "anyOf", "oneOf"})
        if (auto it = schema.find(combinator); it != schema.end() && it->is_array())
            for (const auto& sub : *it) redact_write_only(value, sub, depth + 1);
    if (value.is_object()) {
        const auto properties = schema.find("properties");
        for (auto it = value.begin(); it != value.end(); ++it) {
            const std::string& key = it.key();
            json& item = it.value();
            const json* sub = nullptr;
            if (properties != schema.end() && properties->is_object() && properties->contains(key))
                sub = &properties->at(key);
            else if (auto extra = schema.find("additionalProperties"); extra != schema.end() && extra->is_object())
                sub = &*extra;
            if (!sub) continue;
            if (sub->is_object() && sub->value("writeOnly", false))
                item = kRedacted;
            else
                redact_write_only(item, *sub, depth + 1);
        }
    } else if (value.is_array()) {
        if (auto items = schema.find("items"); items != schema.end() && items->is_object())
            for (auto& item : value) redact_write_only(item, *items, depth + 1);
    }
}

std::string duration(std::chrono::milliseconds value) { return std::to_string(value.count()) + "ms"; }

json plugin_config_json(const config::PluginConfig& plugin, const runtime::Runtime* runtime) {
    json section = plugin.config;
    redact_by_name(section);
    if (runtime) {
        for (const auto& instance : runtime->instances()) {
            if (instance->name() != plugin.name) continue;
            const auto schema = json::parse(instance->library().config_schema_json, nullptr, false);
            if (!schema.is_discarded()) redact_write_only(section, schema);
        }
    }
    return {{"enabled", plugin.enabled},
            {"required", plugin.required},
            {"mount", plugin.mount},
            {"middleware", plugin.middleware},
            {"config", std::move(section)}};
}

// The admin API answers only with the token, when one is configured. False: answered 401.
bool authorised(const Host& host, const http::Request& request, http::Response& response) {
    const auto config = host.config();
    const std::string& token = config->server.admin_token;
    if (token.empty()) return true;
    const std::string* header = request.header("Authorization");
    constexpr std::string_view scheme = "bearer ";
    if (header && header->size() > scheme.size() && http::iequals(std::string_view(*header).substr(0, scheme.size()), scheme)) {
        std::string_view given = std::string_view(*header).substr(scheme.size());
        while (!given.empty() && (given.front() == ' ' || given.front() == '\t')) given.remove_prefix(1);
        while (!given.empty() && (given.back() == ' ' || given.back() == '\t')) given.remove_suffix(1);
        if (token_matches(given, token)) return true;
    }
    answer_problem(response, request, 401, "unauthorized",
                   header ? "The bearer token is not valid for the admin API."
                          : "The admin API needs an Authorization: Bearer token.");
    response.set_header("WWW-Authenticate",
                        header ? R"(Bearer realm="trellis-admin", error="invalid_token")" : R"(Bearer realm="trellis-admin")");
    return false;
}

bool is_json_content(const http::Request& request) {
    const std::string* type = request.header("Content-Type");
    if (!type) return false;
    std::string_view media = *type;
    media = media.substr(0, media.find(';'));
    while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
    while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
    return http::iequals(media, "application/json");
}

// A state-changing request: the token when one is configured (checked by authorised()),
// otherwise a JSON body. False: answered 415 or 400.
bool accepts_state_change(const Host& host, const http::Request& request, http::Response& response) {
    const bool has_token = !host.config()->server.admin_token.empty();
    if (!has_token && !is_json_content(request)) {
        answer_problem(response, request, 415, "unsupported_media_type",
                       "A state-changing admin request needs a Content-Type: application/json body "
                       "(or server.admin_token_file and a bearer token).");
        response.set_header("Accept", "application/json");
        return false;
    }
    if (is_json_content(request) && !request.body.empty() && json::parse(request.body, nullptr, false).is_discarded()) {
        answer_problem(response, request, 400, "bad_json", "The request body is not valid JSON.");
        return false;
    }
    return true;
}

void list_plugins(Host& host, const http::Request& request, http::Response& response) {
    if (!authorised(host, request, response)) return;
    const auto runtime = host.pipeline().current();
    const auto reload_errors = host.reload_errors();
    json out = json::array();
    if (runtime)
        for (const auto& report : runtime->plugins()) {
            json item = runtime::plugin_json(report);
            // Why the last reload was refused for this plugin (an upgrade that failed).
            if (auto it = reload_errors.find(report.name); it != reload_errors.end()) item["reload_error"] = it->second;
            out.push_back(std::move(item));
        }
    answer_json(response, 200, {{"plugins", out}});
}

void list_routes(Host& host, const http::Request& request, http::Response& response) {
    if (!authorised(host, request, response)) return;
    const auto runtime = host.pipeline().current();
    json out = json::array();
    if (runtime)
        for (const auto& row : runtime::route_rows(*runtime)) out.push_back(runtime::route_json(row));
    answer_json(response, 200, {{"routes", out}});
}

void show_config(Host& host, const http::Request& request, http::Response& response) {
    if (!authorised(host, request, response)) return;
    const auto config = host.config();
    const auto runtime = host.pipeline().current();
    answer_json(response, 200, {{"config", redacted_config(*config, runtime.get())}, {"sources", config->sources}});
}

// Blocking: reads each plugin's migration history from the database.
void list_migrations(Host& host, const http::Request& request, http::Response& response) {
    if (!authorised(host, request, response)) return;
    const auto runtime = host.pipeline().current();
    if (!runtime) {
        answer_problem(response, request, 503, "not_loaded", "No runtime is loaded.");
        return;
    }
    db::Migrator migrator(runtime->database());
    json out = json::array();
    for (const auto& instance : runtime->instances()) {
        if (instance->migrations().empty()) continue;
        auto states = migrator.status(instance->name(), db::for_dialect(instance->migrations(), runtime->database().dialect()));
        if (!states) {
            answer_problem(response, request, 503, "database_unavailable",
                           "The migration history of plugin '" + instance->name() + "' could not be read: " +
                               config::redact_database_url(states.error()));
            response.set_header("Retry-After", "1");
            return;
        }
        for (const auto& state : *states) out.push_back(runtime::migration_json(instance->name(), state));
    }
    // A plugin whose migration failed is not loaded, so it registers nothing: its history
    // still says which migration failed and why.
    for (const auto& report : runtime->plugins()) {
        if (report.status != runtime::PluginStatus::failed) continue;
        auto states = migrator.status(report.name, {});
        if (!states) continue;
        for (const auto& state : *states)
            if (state.state == db::State::failed) out.push_back(runtime::migration_json(report.name, state));
    }
    answer_json(response, 200, {{"database", runtime->config().database.display}, {"migrations", out}});
}

// Blocking: builds a runtime. The same path as SIGHUP; a reload already running gives 409.
void run_reload(Host& host, const http::Request& request, http::Response& response) {
    if (!authorised(host, request, response)) return;
    if (!accepts_state_change(host, request, response)) return;
    auto result = host.reload(false);
    if (result.busy) {
        answer_problem(response, request, 409, "reload_in_progress",
                       "Another reload is running; retry when it has finished.");
        return;
    }
    if (!result.reloaded) {
        answer_problem(response, request, 422, "reload_failed",
                       "The reload failed; the previous runtime keeps serving.", {{"errors", result.errors}});
        return;
    }
    json plugins = json::array();
    if (const auto runtime = host.pipeline().current())
        for (const auto& report : runtime->plugins()) plugins.push_back(runtime::plugin_json(report));
    answer_json(response, 200, {{"reloaded", true}, {"plugins", plugins}});
}

}  // namespace

bool token_matches(std::string_view given, std::string_view expected) {
    auto digest = [](std::string_view text) {
        Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
        engine.update(text.data(), static_cast<unsigned>(text.size()));
        return engine.digest();
    };
    const auto a = digest(given);
    const auto b = digest(expected);
    if (a.size() != b.size()) return false;
    unsigned char difference = 0;
    for (std::size_t i = 0; i < a.size(); ++i) difference |= static_cast<unsigned char>(a[i] ^ b[i]);
    return difference == 0;
}

json redacted_config(const config::Config& config, const runtime::Runtime* runtime) {
    const auto& s = config.server;
    json server = {{"listen", s.listen.text()},
                   {"admin_listen", s.admin_listen.text()},
                   {"admin_enabled", s.admin_enabled},
                   {"engine", config::to_string(s.engine)},
                   {"io_threads", s.io_threads},
                   {"workers", s.workers},
                   {"worker_queue", s.worker_queue},
                   {"max_connections", s.max_connections},
                   {"header_timeout", duration(s.header_timeout)},
                   {"body_timeout", duration(s.body_timeout)},
                   {"send_timeout", duration(s.send_timeout)},
                   {"max_header_bytes", s.max_header_bytes},
                   {"max_headers", s.max_headers},
                   {"max_uri_bytes", s.max_uri_bytes},
                   {"inline_warn", duration(s.inline_warn)},
                   {"max_threads", s.max_threads},
                   {"max_queued", s.max_queued},
                   {"keep_alive_timeout", duration(s.keep_alive_timeout)},
                   {"max_keep_alive_requests", s.max_keep_alive_requests},
                   {"max_body_bytes", s.max_body_bytes},
                   {"drain_timeout", duration(s.drain_timeout)},
                   {"shutdown_delay", duration(s.shutdown_delay)},
                   {"data_dir", s.data_dir.string()},
                   {"trusted_proxies", s.trusted_proxies},
                   {"allowed_hosts", s.allowed_hosts},
                   {"admin_token_file", s.admin_token_file.empty() ? json(nullptr) : json(s.admin_token_file.string())},
                   {"pid_file", s.pid_file.empty() ? json(nullptr) : json(s.pid_file.string())}};
    const auto& d = config.database;
    json database = {{"url", config::redact_database_url(d.url)},
                     {"dialect", config::to_string(d.dialect)},
                     {"pool_size", d.pool_size},
                     {"acquire_timeout", duration(d.acquire_timeout)},
                     {"busy_timeout", duration(d.busy_timeout)},
                     {"migrate_on_start", d.migrate_on_start}};
    json logging = {{"level", config.logging.level},
                    {"format", config.logging.format},
                    {"access_log", config.logging.access_log},
                    {"levels", config.logging.levels},
                    {"output", config.logging.output},
                    {"access_output", config.logging.access_output},
                    {"buffer_size", config.logging.buffer_size}};
    json search_paths = json::array();
    for (const auto& path : config.plugin_search_paths) search_paths.push_back(path.string());
    json plugins = {{"search_paths", search_paths}};
    for (const auto& plugin : config.plugins) plugins[plugin.name] = plugin_config_json(plugin, runtime);
    // By name within each section, never on a plugin's name (a plugin may be called `keys`).
    for (json* section : {&server, &database, &logging}) redact_by_name(*section);
    json out = {{"server", server},
                {"logging", logging},
                {"database", database},
                {"health", {{"readyz_requires_database", config.health.readyz_requires_database}}},
                {"metrics", {{"enabled", config.metrics.enabled}}},
                {"compression",
                 {{"enabled", config.compression.enabled},
                  {"min_size", config.compression.min_size},
                  {"content_types", config.compression.content_types},
                  {"gzip_level", config.compression.gzip_level},
                  {"brotli_quality", config.compression.brotli_quality}}},
                {"middleware", config.middleware},
                {"plugins", plugins}};
    return out;
}

void add_admin_routes(runtime::ListenerRoutes& routes, Host& host) {
    Host* h = &host;
    routes.add("GET", "/admin/plugins", [h](const http::Request& q, http::Response& r) { list_plugins(*h, q, r); });
    routes.add("GET", "/admin/routes", [h](const http::Request& q, http::Response& r) { list_routes(*h, q, r); });
    routes.add("GET", "/admin/config", [h](const http::Request& q, http::Response& r) { show_config(*h, q, r); });
    routes.add("GET", "/admin/migrations", [h](const http::Request& q, http::Response& r) { list_migrations(*h, q, r); },
               true);
    routes.add("POST", "/admin/reload", [h](const http::Request& q, http::Response& r) { run_reload(*h, q, r); }, true);
    routes.add("GET", "/admin/version", [h](const http::Request& q, http::Response& r) {
        if (authorised(*h, q, r)) answer_json(r, 200, version_info());
    });
}

}  // namespace trellis::host
