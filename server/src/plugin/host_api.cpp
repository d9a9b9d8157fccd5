// Implementation of trellis_host_api. Every entry is noexcept in effect: nothing the host
// does here may throw into plugin code, so each body catches and reports a status.
#include "plugin/host_api.hpp"

#include <algorithm>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http/router.hpp"
#include "plugin/chain.hpp"
#include "plugin/thread_role.hpp"

namespace trellis::plugin {
namespace {

std::string_view view(trellis_str s) { return s.data ? std::string_view(s.data, s.size) : std::string_view{}; }
trellis_str str(std::string_view s) { return trellis_str{s.data(), s.size()}; }

template <typename F>
trellis_status guarded(F&& f) noexcept {
    try {
        return f();
    } catch (const std::bad_alloc&) {
        return TRELLIS_ERROR_NO_MEMORY;
    } catch (...) {
        return TRELLIS_ERROR;
    }
}

spdlog::level::level_enum to_spdlog(trellis_log_level level) {
    switch (level) {
        case TRELLIS_LOG_TRACE: return spdlog::level::trace;
        case TRELLIS_LOG_DEBUG: return spdlog::level::debug;
        case TRELLIS_LOG_INFO: return spdlog::level::info;
        case TRELLIS_LOG_WARN: return spdlog::level::warn;
        case TRELLIS_LOG_ERROR: return spdlog::level::err;
        default: return spdlog::level::critical;
    }
}

void api_log(trellis_host* host, trellis_log_level level, trellis_str message) {
    if (!host || !host->logger) return;
    try {
        host->logger->log(to_spdlog(level), "{}", view(message));
    } catch (...) {
    }
}

trellis_str api_config_json(trellis_host* host) { return host ? str(host->config_json) : trellis_str{nullptr, 0}; }

void api_set_error(trellis_host* host, trellis_str message) {
    if (!host) return;
    try {
        host->error.assign(view(message));
    } catch (...) {
    }
}

// A field of a size-prefixed struct is read only when the plugin's struct_size covers it:
// a plugin built against an older minor has a smaller struct.
#define TRELLIS_COVERS(ptr, type, field) ((ptr)->struct_size >= offsetof(type, field) + sizeof(type::field))

// Flag bits the host refuses: a plugin of a newer minor never loads, so these are bugs
// (usually a struct that was not zeroed). Logged, because a C plugin only sees the status.
bool unknown_flags(trellis_host* host, std::uint32_t flags, std::uint32_t known, std::string_view what) {
    if ((flags & ~known) == 0) return false;
    if (host->logger)
        host->logger->error("{} has unknown flag bits 0x{:x} (ABI {}.{} knows 0x{:x}); was the struct zeroed?", what,
                            flags & ~known, TRELLIS_ABI_MAJOR, TRELLIS_ABI_MINOR, known);
    return true;
}

// 1.4: compiles the route's schemas and checks its scopes and security requirements; the
// reason when the host refuses them.
std::optional<std::string> check_route_metadata(RouteRegistration& reg) {
    auto schemas = RequestSchemas::compile(reg.request_schema_json, reg.query_schema_json, reg.path_schema_json);
    if (!schemas) return schemas.error();
    reg.schemas = std::move(*schemas);
    if (!reg.scopes_json.empty()) {
        const auto scopes = nlohmann::json::parse(reg.scopes_json, nullptr, false);
        if (!scopes.is_array() || !std::all_of(scopes.begin(), scopes.end(), [](const auto& s) {
                return s.is_string() && !s.template get_ref<const std::string&>().empty();
            }))
            return std::string("the scopes are not a JSON array of non-empty strings");
    }
    if (!reg.security_json.empty()) {
        const auto security = nlohmann::json::parse(reg.security_json, nullptr, false);
        bool valid = security.is_array();
        for (const auto& requirement : security) {
            if (!valid) break;
            valid = requirement.is_object();
            for (const auto& [scheme, scopes] : requirement.items()) {
                if (!known_security_schemes().contains(scheme))
                    return "the security requirements name the scheme '" + scheme +
                           "'; the host knows 'bearer' and 'apiKey'";
                valid = valid && scopes.is_array() &&
                        std::all_of(scopes.begin(), scopes.end(), [](const auto& s) { return s.is_string(); });
            }
        }
        if (!valid)
            return std::string(
                "the security requirements are not a JSON array of objects of scheme names to scope arrays");
    }
    return std::nullopt;
}

trellis_status api_register_route(trellis_host* host, const trellis_route* route) {
    if (!host || !route || route->struct_size < offsetof(trellis_route, summary) || !route->on_request)
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (!host->registering) return TRELLIS_ERROR_STATE;
    return guarded([&] {
        RouteRegistration reg;
        reg.method.assign(view(route->method));
        reg.path.assign(view(route->path));
        if (!http::validate_method(reg.method) || !http::validate_path_template(reg.path))
            return TRELLIS_ERROR_INVALID_ARGUMENT;
        reg.on_request = route->on_request;
        reg.user_data = route->user_data;
        // Metadata fields exist from 1.0 on, but read them only when the plugin's struct has them.
        if (TRELLIS_COVERS(route, trellis_route, summary)) reg.summary.assign(view(route->summary));
        if (TRELLIS_COVERS(route, trellis_route, tags_json)) reg.tags_json.assign(view(route->tags_json));
        if (TRELLIS_COVERS(route, trellis_route, request_schema_json))
            reg.request_schema_json.assign(view(route->request_schema_json));
        if (TRELLIS_COVERS(route, trellis_route, response_schema_json))
            reg.response_schema_json.assign(view(route->response_schema_json));
        const std::uint32_t flags = TRELLIS_COVERS(route, trellis_route, flags) ? route->flags : 0;  // 1.2
        if (unknown_flags(host, flags, TRELLIS_ROUTE_NON_BLOCKING, "route " + reg.method + " " + reg.path))
            return TRELLIS_ERROR_INVALID_ARGUMENT;
        reg.non_blocking = (flags & TRELLIS_ROUTE_NON_BLOCKING) != 0;
        if (TRELLIS_COVERS(route, trellis_route, security_json)) {  // 1.4
            reg.query_schema_json.assign(view(route->query_schema_json));
            reg.path_schema_json.assign(view(route->path_schema_json));
            reg.scopes_json.assign(view(route->scopes_json));
            reg.security_json.assign(view(route->security_json));
            if (auto refused = check_route_metadata(reg)) {
                host->refusal = "route " + reg.method + " " + reg.path + ": " + *refused;
                if (host->logger) host->logger->error("{}", host->refusal);
                return TRELLIS_ERROR_INVALID_ARGUMENT;
            }
        }
        host->routes.push_back(std::move(reg));
        return TRELLIS_OK;
    });
}

trellis_status api_register_middleware(trellis_host* host, const trellis_middleware* mw) {
    // 1.0's fields are required; flags (1.2) is read only when struct_size covers it.
    if (!host || !mw || !TRELLIS_COVERS(mw, trellis_middleware, user_data) || !mw->on_middleware)
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (!host->registering) return TRELLIS_ERROR_STATE;
    return guarded([&] {
        std::string name(view(mw->name));
        if (name.empty() || name.find_first_of(". \t") != std::string::npos) return TRELLIS_ERROR_INVALID_ARGUMENT;
        for (const auto& existing : host->middleware)
            if (existing.name == name) return TRELLIS_ERROR_CONFLICT;
        const std::uint32_t flags = TRELLIS_COVERS(mw, trellis_middleware, flags) ? mw->flags : 0;
        if (unknown_flags(host, flags, TRELLIS_MIDDLEWARE_NON_BLOCKING, "middleware '" + name + "'"))
            return TRELLIS_ERROR_INVALID_ARGUMENT;
        host->middleware.push_back(MiddlewareRegistration{std::move(name), mw->on_middleware, mw->user_data,
                                                          (flags & TRELLIS_MIDDLEWARE_NON_BLOCKING) != 0});
        return TRELLIS_OK;
    });
}

trellis_str api_request_method(const trellis_request* r) { return r ? str(r->http->method) : trellis_str{}; }
trellis_str api_request_path(const trellis_request* r) { return r ? str(r->http->path) : trellis_str{}; }
trellis_str api_request_query(const trellis_request* r) { return r ? str(r->http->query) : trellis_str{}; }
trellis_str api_request_body(const trellis_request* r) { return r ? str(r->http->body) : trellis_str{}; }

const http::Fields* fields_of(const trellis_request* r, trellis_field_kind kind) {
    switch (kind) {
        case TRELLIS_FIELD_HEADER: return &r->http->headers;
        case TRELLIS_FIELD_QUERY: return &r->http->query_params;
        case TRELLIS_FIELD_PATH_PARAM: return &r->http->path_params;
        default: return nullptr;
    }
}

size_t api_request_field_count(const trellis_request* r, trellis_field_kind kind) {
    if (!r) return 0;
    if (kind == TRELLIS_FIELD_ATTRIBUTE) return r->http->attributes.size();
    const auto* fields = fields_of(r, kind);
    return fields ? fields->size() : 0;
}

trellis_status api_request_field_at(const trellis_request* r, trellis_field_kind kind, size_t index,
                                    trellis_str* name_out, trellis_str* value_out) {
    if (!r) return TRELLIS_ERROR_INVALID_ARGUMENT;
    std::string_view name, value;
    if (kind == TRELLIS_FIELD_ATTRIBUTE) {
        if (index >= r->http->attributes.size()) return TRELLIS_ERROR_NOT_FOUND;
        auto it = std::next(r->http->attributes.begin(), static_cast<std::ptrdiff_t>(index));
        name = it->first;
        value = it->second;
    } else {
        const auto* fields = fields_of(r, kind);
        if (!fields) return TRELLIS_ERROR_INVALID_ARGUMENT;
        if (index >= fields->size()) return TRELLIS_ERROR_NOT_FOUND;
        name = (*fields)[index].first;
        value = (*fields)[index].second;
    }
    if (name_out) *name_out = str(name);
    if (value_out) *value_out = str(value);
    return TRELLIS_OK;
}

trellis_status api_request_field_get(const trellis_request* r, trellis_field_kind kind, trellis_str name,
                                     trellis_str* value_out) {
    if (!r) return TRELLIS_ERROR_INVALID_ARGUMENT;
    const std::string* found = nullptr;
    if (kind == TRELLIS_FIELD_ATTRIBUTE) {
        auto it = r->http->attributes.find(view(name));
        if (it != r->http->attributes.end()) found = &it->second;
    } else if (kind == TRELLIS_FIELD_HEADER) {
        found = http::find_field(r->http->headers, view(name));
    } else {
        const auto* fields = fields_of(r, kind);
        if (!fields) return TRELLIS_ERROR_INVALID_ARGUMENT;
        for (const auto& [key, value] : *fields)
            if (key == view(name)) {
                found = &value;
                break;
            }
    }
    if (!found) return TRELLIS_ERROR_NOT_FOUND;
    if (value_out) *value_out = str(*found);
    return TRELLIS_OK;
}

trellis_status api_request_set_attribute(trellis_request* r, trellis_str name, trellis_str value) {
    if (!r || !name.data || name.size == 0) return TRELLIS_ERROR_INVALID_ARGUMENT;
    return guarded([&] {
        // trellis.* (client address, base URL, request id) is the host's: plugins read it.
        if (view(name).starts_with("trellis.")) {
            r->error = "request attribute '" + std::string(view(name)) +
                       "' is reserved: names starting with 'trellis.' are set by the host only";
            return TRELLIS_ERROR_INVALID_ARGUMENT;
        }
        r->http->attributes.insert_or_assign(std::string(view(name)), std::string(view(value)));
        return TRELLIS_OK;
    });
}

void api_request_set_error(trellis_request* r, trellis_str message) {
    if (!r) return;
    try {
        r->error.assign(view(message));
    } catch (...) {
    }
}

trellis_status api_response_set_status(trellis_response* r, int32_t status) {
    if (!r || status < 100 || status > 599) return TRELLIS_ERROR_INVALID_ARGUMENT;
    r->http->status = status;
    return TRELLIS_OK;
}

int32_t api_response_status(const trellis_response* r) { return r ? r->http->status : 0; }

bool valid_header(std::string_view name, std::string_view value) {
    if (name.empty()) return false;
    for (unsigned char c : name)
        if (c <= 32 || c >= 127 || c == ':') return false;
    // Framing is the engine's: a plugin's own length, coding or connection option would
    // contradict what is sent (and could smuggle a second response).
    if (http::iequals(name, "Content-Length") || http::iequals(name, "Transfer-Encoding") ||
        http::iequals(name, "Connection"))
        return false;
    // No control characters but HTAB (CR, LF, NUL, ...): a plugin must not be able to split
    // a response. (A plain loop: find_first_of calls memchr once per character.)
    for (unsigned char c : value)
        if ((c < 32 && c != '\t') || c == 127) return false;
    return true;
}

trellis_status api_response_set_header(trellis_response* r, trellis_str name, trellis_str value) {
    if (!r || !valid_header(view(name), view(value))) return TRELLIS_ERROR_INVALID_ARGUMENT;
    return guarded([&] {
        r->http->set_header(view(name), view(value));
        return TRELLIS_OK;
    });
}

trellis_status api_response_add_header(trellis_response* r, trellis_str name, trellis_str value) {
    if (!r || !valid_header(view(name), view(value))) return TRELLIS_ERROR_INVALID_ARGUMENT;
    return guarded([&] {
        r->http->add_header(view(name), view(value));
        return TRELLIS_OK;
    });
}

trellis_status api_response_header(const trellis_response* r, trellis_str name, trellis_str* value_out) {
    if (!r) return TRELLIS_ERROR_INVALID_ARGUMENT;
    const std::string* found = r->http->header(view(name));
    if (!found) return TRELLIS_ERROR_NOT_FOUND;
    if (value_out) *value_out = str(*found);
    return TRELLIS_OK;
}

trellis_status api_response_set_body(trellis_response* r, trellis_str body) {
    if (!r) return TRELLIS_ERROR_INVALID_ARGUMENT;
    return guarded([&] {
        r->http->body.assign(view(body));
        return TRELLIS_OK;
    });
}

trellis_str api_response_body(const trellis_response* r) { return r ? str(r->http->body) : trellis_str{}; }

trellis_status api_next(trellis_next* next) {
    if (!next || !next->run) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (next->used) return TRELLIS_ERROR_STATE;
    next->used = true;
    return guarded([&] { return run_chain(*next->run, next->index); });
}

// ---- 1.1: database ----------------------------------------------------------------------
// 1.2: every entry that may touch a connection (and so block) first refuses event-loop
// threads; db_dialect, db_release and rows_* never wait on the database.

bool refused_on_event_loop(trellis_db* db) {
    if (!on_event_loop_thread()) return false;
    try {
        db->error.assign(event_loop_database_error());
    } catch (...) {
    }
    return true;
}

constexpr trellis_str kNoDialect{"", 0};

trellis_str api_db_dialect(trellis_host* host) {
    if (!host || !host->database) return kNoDialect;
    static constexpr std::string_view sqlite = "sqlite", postgresql = "postgresql";
    return str(host->database->dialect() == config::Dialect::sqlite ? sqlite : postgresql);
}

trellis_status api_db_acquire(trellis_host* host, trellis_db** db_out) {
    if (!host || !db_out) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (!host->database) return TRELLIS_ERROR_STATE;
    // No connection to carry db_error: the SDK tells this STATE from "no database" by the
    // dialect and raises the same text.
    if (on_event_loop_thread()) return TRELLIS_ERROR_STATE;
    return guarded([&] {
        auto connection = host->database->acquire();
        if (!connection) {
            if (host->logger) host->logger->warn("{}", connection.error().message);
            return connection.error().status;
        }
        *db_out = new trellis_db{std::move(*connection), {}};
        return TRELLIS_OK;
    });
}

void api_db_release(trellis_db* db) { delete db; }

template <typename T>
trellis_status outcome(trellis_db* db, const tl::expected<T, db::Error>& result) {
    if (result) return TRELLIS_OK;
    db->error = result.error().message;
    return result.error().status;
}

trellis_status api_db_begin(trellis_db* db) {
    if (!db) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (refused_on_event_loop(db)) return TRELLIS_ERROR_STATE;
    return guarded([&] { return outcome(db, db->connection.begin()); });
}

trellis_status api_db_commit(trellis_db* db) {
    if (!db) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (refused_on_event_loop(db)) return TRELLIS_ERROR_STATE;
    return guarded([&] { return outcome(db, db->connection.commit()); });
}

trellis_status api_db_rollback(trellis_db* db) {
    if (!db) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (refused_on_event_loop(db)) return TRELLIS_ERROR_STATE;
    return guarded([&] { return outcome(db, db->connection.rollback()); });
}

trellis_status api_db_execute(trellis_db* db, trellis_str sql, const trellis_param* params, size_t param_count,
                              trellis_rows** rows_out, int64_t* affected_out) {
    if (!db || (param_count > 0 && !params)) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (refused_on_event_loop(db)) return TRELLIS_ERROR_STATE;
    return guarded([&] {
        std::vector<db::Param> bound;
        bound.reserve(param_count);
        for (size_t i = 0; i < param_count; ++i) {
            const trellis_param& p = params[i];
            const std::string_view name = view(p.name);
            const bool valid_name = !name.empty() && std::ranges::all_of(name, [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
            });
            if (!valid_name || p.value.type < TRELLIS_VALUE_NULL || p.value.type > TRELLIS_VALUE_TEXT) {
                db->error = "parameter " + std::to_string(i) + " has an invalid name or type";
                return TRELLIS_ERROR_INVALID_ARGUMENT;
            }
            bound.push_back(db::Param{std::string(name), db::Value{p.value.type, p.value.int_value, p.value.real_value,
                                                                   std::string(view(p.value.text))}});
        }
        auto result = db->connection.execute(view(sql), bound, rows_out != nullptr);
        if (!result) return outcome(db, result);
        if (affected_out) *affected_out = result->affected;
        if (rows_out) *rows_out = new trellis_rows{std::move(*result)};
        return TRELLIS_OK;
    });
}

trellis_str api_db_error(const trellis_db* db) { return db ? str(db->error) : trellis_str{nullptr, 0}; }

size_t api_rows_count(const trellis_rows* rows) { return rows ? rows->result.rows() : 0; }

size_t api_rows_column_count(const trellis_rows* rows) { return rows ? rows->result.columns.size() : 0; }

trellis_str api_rows_column_name(const trellis_rows* rows, size_t column) {
    if (!rows || column >= rows->result.columns.size()) return trellis_str{nullptr, 0};
    return str(rows->result.columns[column]);
}

trellis_status api_rows_value(const trellis_rows* rows, size_t row, size_t column, trellis_value* value_out) {
    if (!rows || !value_out) return TRELLIS_ERROR_INVALID_ARGUMENT;
    const db::Result& r = rows->result;
    if (row >= r.rows() || column >= r.columns.size()) return TRELLIS_ERROR_NOT_FOUND;
    const db::Value& v = r.cells[row * r.columns.size() + column];
    *value_out = trellis_value{v.type, v.integer, v.real, str(v.text)};
    return TRELLIS_OK;
}

void api_rows_free(trellis_rows* rows) { delete rows; }

trellis_status api_register_migration(trellis_host* host, const trellis_migration* m) {
    if (!host || !m || m->struct_size < sizeof(trellis_migration)) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (!host->registering) return TRELLIS_ERROR_STATE;
    const std::string_view dialect = view(m->dialect);
    if (m->version < 1 || view(m->up_sql).empty() || view(m->name).empty() ||
        !(dialect.empty() || dialect == "sqlite" || dialect == "postgresql"))
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    const bool taken = std::ranges::any_of(host->migrations, [&](const db::Migration& other) {
        return other.version == m->version && other.dialect == dialect;
    });
    if (taken) return TRELLIS_ERROR_CONFLICT;
    return guarded([&] {
        host->migrations.push_back(db::Migration{m->version, std::string(view(m->name)), std::string(view(m->up_sql)),
                                                 std::string(view(m->down_sql)), std::string(dialect)});
        return TRELLIS_OK;
    });
}

// ---- 1.3: metrics and readiness checks ------------------------------------------------

trellis_status api_metric_register(trellis_host* host, const trellis_metric_spec* spec, trellis_metric** metric_out,
                                   trellis_str* error_out) {
    if (!host || !spec || !metric_out || !TRELLIS_COVERS(spec, trellis_metric_spec, bucket_count) ||
        (spec->label_count > 0 && !spec->label_names) || (spec->bucket_count > 0 && !spec->buckets))
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    return guarded([&] {
        std::lock_guard lock(host->metrics_mutex);
        host->metric_error.clear();
        const auto refuse = [&](trellis_status status, std::string message) {
            if (host->logger) host->logger->error("{}", message);
            host->metric_error = std::move(message);
            if (error_out) *error_out = str(host->metric_error);
            return status;
        };
        metrics::Kind kind;
        switch (spec->kind) {
            case TRELLIS_METRIC_COUNTER: kind = metrics::Kind::counter; break;
            case TRELLIS_METRIC_GAUGE: kind = metrics::Kind::gauge; break;
            case TRELLIS_METRIC_HISTOGRAM: kind = metrics::Kind::histogram; break;
            default:
                return refuse(TRELLIS_ERROR_INVALID_ARGUMENT,
                              "metric '" + std::string(view(spec->name)) + "': unknown kind " + std::to_string(spec->kind));
        }
        std::vector<std::string> labels;
        for (size_t i = 0; i < spec->label_count; ++i) labels.emplace_back(view(spec->label_names[i]));
        std::vector<double> buckets(spec->buckets, spec->buckets + spec->bucket_count);
        auto added = metrics::plugin_registry().add(host->plugin_name, kind, std::string(view(spec->name)),
                                                    std::string(view(spec->help)), std::move(labels),
                                                    std::move(buckets));
        if (!added.family)
            return refuse(added.error.find("already registered") != std::string::npos ? TRELLIS_ERROR_CONFLICT
                                                                                      : TRELLIS_ERROR_INVALID_ARGUMENT,
                          std::move(added.error));
        host->metrics.push_back(trellis_metric{added.family});
        *metric_out = &host->metrics.back();
        return TRELLIS_OK;
    });
}

trellis_status metric_update(trellis_metric* metric, const trellis_str* label_values, size_t label_count,
                             double value, metrics::PluginFamily::Op op) {
    if (!metric || !metric->family || (label_count > 0 && !label_values)) return TRELLIS_ERROR_INVALID_ARGUMENT;
    return guarded([&] {
        std::vector<std::string> values;
        values.reserve(label_count);
        for (size_t i = 0; i < label_count; ++i) values.emplace_back(view(label_values[i]));
        return metric->family->update(op, values, value).empty() ? TRELLIS_OK : TRELLIS_ERROR_INVALID_ARGUMENT;
    });
}

trellis_status api_metric_add(trellis_metric* metric, const trellis_str* label_values, size_t label_count,
                              double value) {
    return metric_update(metric, label_values, label_count, value, metrics::PluginFamily::Op::add);
}

trellis_status api_metric_set(trellis_metric* metric, const trellis_str* label_values, size_t label_count,
                              double value) {
    return metric_update(metric, label_values, label_count, value, metrics::PluginFamily::Op::set);
}

trellis_status api_metric_observe(trellis_metric* metric, const trellis_str* label_values, size_t label_count,
                                  double value) {
    return metric_update(metric, label_values, label_count, value, metrics::PluginFamily::Op::observe);
}

trellis_status api_register_check(trellis_host* host, trellis_str name, trellis_on_check_fn check, void* user_data) {
    if (!host || !check) return TRELLIS_ERROR_INVALID_ARGUMENT;
    if (!host->registering && !host->creating) return TRELLIS_ERROR_STATE;
    return guarded([&] {
        std::string text(view(name));
        const bool valid = !text.empty() && std::ranges::all_of(text, [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        });
        if (!valid) return TRELLIS_ERROR_INVALID_ARGUMENT;
        for (const auto& existing : host->checks)
            if (existing.name == text) return TRELLIS_ERROR_CONFLICT;
        host->checks.push_back(CheckRegistration{std::move(text), check, user_data});
        return TRELLIS_OK;
    });
}

void api_check_set_message(trellis_check* check, trellis_str message) {
    if (!check) return;
    try {
        check->message.assign(view(message));
    } catch (...) {
    }
}

const trellis_host_api table = {
    sizeof(trellis_host_api),
    TRELLIS_ABI_MAJOR,
    TRELLIS_ABI_MINOR,
    api_log,
    api_config_json,
    api_set_error,
    api_register_route,
    api_register_middleware,
    api_request_method,
    api_request_path,
    api_request_query,
    api_request_body,
    api_request_field_count,
    api_request_field_at,
    api_request_field_get,
    api_request_set_attribute,
    api_request_set_error,
    api_response_set_status,
    api_response_status,
    api_response_set_header,
    api_response_add_header,
    api_response_header,
    api_response_set_body,
    api_response_body,
    api_next,
    api_db_dialect,
    api_db_acquire,
    api_db_release,
    api_db_begin,
    api_db_commit,
    api_db_rollback,
    api_db_execute,
    api_db_error,
    api_rows_count,
    api_rows_column_count,
    api_rows_column_name,
    api_rows_value,
    api_rows_free,
    api_register_migration,
    api_metric_register,
    api_metric_add,
    api_metric_set,
    api_metric_observe,
    api_register_check,
    api_check_set_message,
};

}  // namespace

const trellis_host_api& host_api() { return table; }

}  // namespace trellis::plugin
