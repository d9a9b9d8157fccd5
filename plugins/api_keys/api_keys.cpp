// api_keys: API keys for a principal, with scopes, expiry, rotation and revocation, and the
// middleware `api_keys.key` that authenticates requests carrying one. Built only through the SDK.
//
// A key reads trk_<prefix>_<secret>: the prefix (16 hex digits, random, unique) is public and
// finds the row; the secret (32 random bytes, base64url) is never stored: the row holds
// BLAKE2b (crypto_generichash) of the whole key text. Keys have full entropy, so a fast hash
// is enough (a password hash would only slow every request). The key text is shown once, in
// the answer that creates it; logs name the prefix only.
#include "key_text.hpp"

#include <trellis/plugin.hpp>

#include <sodium.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace api_keys;
using trellis::HttpError;
using trellis::json;
using trellis::Params;

constexpr const char* config_schema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "default_expires_in": {"type": "integer", "minimum": 1, "maximum": 3153600000,
      "description": "seconds a key lives when its creator gives no expires_in (default 7776000, 90 days)"},
    "max_expires_in": {"type": "integer", "minimum": 1, "maximum": 3153600000,
      "description": "the longest expires_in a creator may ask for (default 31536000, 365 days)"},
    "rotation_overlap": {"type": "integer", "minimum": 0, "maximum": 31536000,
      "description": "seconds a rotated key stays valid beside its successor (default 86400)"},
    "default_page_size": {"type": "integer", "minimum": 1, "maximum": 100},
    "max_page_size": {"type": "integer", "minimum": 1, "maximum": 1000},
    "bootstrap_key_file": {"type": "string", "pattern": "^/",
      "description": "absolute path of a file holding one key text (trk_<16 hex>_<43 base64url>) accepted as principal 'bootstrap' with api_keys.admin and bootstrap_scopes, while configured"},
    "bootstrap_scopes": {"type": "array", "uniqueItems": true, "maxItems": 100,
      "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,100}$"}}
  }
})json";

constexpr std::int64_t kLastUsedResolutionMs = 60'000;  // at most one write a minute per key
constexpr const char* kAdminScope = "api_keys.admin";
constexpr const char* kScopePattern = "^[A-Za-z0-9_.:/-]{1,100}$";
constexpr const char* kColumns =
    "id, prefix, name, principal_id, principal_name, scopes, created_at, expires_at, last_used_at, revoked_at, "
    "rotated_from, rotated_to";

// ---- small helpers --------------------------------------------------------------------

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string iso(std::int64_t ms) {
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms % 1000));
    return text;
}

json iso_or_null(const std::optional<std::int64_t>& ms) { return ms ? json(iso(*ms)) : json(nullptr); }

std::string trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    return std::string(text);
}

// A value for an audit line: quoted JSON, so that client-chosen text cannot forge fields.
std::string log_value(std::string_view text) {
    std::string out;
    trellis::append_json_string(out, text);
    return out;
}

std::string joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
    return out;
}

struct Principal {
    std::string id;
    std::string name;
};

// The authenticated caller, from the attributes an authenticating middleware set.
struct Caller {
    Principal principal;
    std::vector<std::string> scopes;
    bool admin = false;
    std::string via_key;  // the prefix of the API key the caller used, if it used one
    bool has(const std::string& scope) const { return std::find(scopes.begin(), scopes.end(), scope) != scopes.end(); }
};

Caller caller_of(const trellis::Request& request) {
    const auto principal = json::parse(request.attribute("auth.principal").value_or(""), nullptr, false);
    const auto scopes = json::parse(request.attribute("auth.scopes").value_or(""), nullptr, false);
    if (!principal.is_object() || !principal.contains("id") || !principal["id"].is_string() || !scopes.is_array())
        throw HttpError(401, "unauthenticated",
                        "This resource needs authentication: send credentials the server accepts.");
    Caller caller;
    caller.principal.id = principal["id"].get<std::string>();
    caller.principal.name = principal.contains("name") && principal["name"].is_string()
                                ? principal["name"].get<std::string>()
                                : caller.principal.id;
    for (const auto& scope : scopes)
        if (scope.is_string()) caller.scopes.push_back(scope.get<std::string>());
    caller.admin = caller.has(kAdminScope);
    if (principal.value("type", json()) == "api_key" && principal.contains("key") && principal["key"].is_string())
        caller.via_key = principal["key"].get<std::string>();
    return caller;
}

// ---- the API's schemas ------------------------------------------------------------------

json scopes_schema() {
    return {{"type", "array"},
            {"uniqueItems", true},
            {"maxItems", 100},
            {"items", {{"type", "string"}, {"pattern", kScopePattern}}}};
}

json principal_schema() {
    return {{"type", "object"},
            {"additionalProperties", false},
            {"required", {"id", "name"}},
            {"properties",
             {{"id", {{"type", "string"}, {"minLength", 1}, {"maxLength", 200}}},
              {"name", {{"type", "string"}, {"minLength", 1}, {"maxLength", 200}}}}}};
}

json key_schema(bool with_secret) {
    json nullable_time = {{"type", {"string", "null"}}, {"format", "date-time"}};
    json nullable_prefix = {{"type", {"string", "null"}}};
    json schema = {{"type", "object"},
                   {"required",
                    {"id", "name", "principal", "scopes", "status", "created_at", "expires_at", "last_used_at",
                     "revoked_at", "rotated_from", "rotated_to"}},
                   {"properties",
                    {{"id", {{"type", "string"}, {"description", "the key's public prefix"}}},
                     {"name", {{"type", "string"}}},
                     {"principal", principal_schema()},
                     {"scopes", scopes_schema()},
                     {"status", {{"enum", {"active", "expired", "revoked"}}}},
                     {"created_at", {{"type", "string"}, {"format", "date-time"}}},
                     {"expires_at", {{"type", "string"}, {"format", "date-time"}}},
                     {"last_used_at", nullable_time},
                     {"revoked_at", nullable_time},
                     {"rotated_from", nullable_prefix},
                     {"rotated_to", nullable_prefix}}}};
    if (with_secret) {
        schema["required"].push_back("key");
        schema["properties"]["key"] = {{"type", "string"},
                                       {"description", "the key itself: shown in this answer only, never again"}};
    }
    return schema;
}

json path_schema() {
    return {
        {"type", "object"},
        {"required", {"id"}},
        {"properties",
         {{"id", {{"type", "string"}, {"pattern", "^[0-9a-f]{16}$"}, {"description", "the key's public prefix"}}}}}};
}

json create_schema(std::int64_t max_expires_in) {
    return {{"type", "object"},
            {"additionalProperties", false},
            {"required", {"scopes"}},
            {"properties",
             {{"name", {{"type", "string"}, {"maxLength", 100}, {"description", "a label for people"}}},
              {"scopes", scopes_schema()},
              {"expires_in", {{"type", "integer"}, {"minimum", 1}, {"maximum", max_expires_in}}},
              {"principal", principal_schema()}}}};
}

json rotate_schema(std::int64_t max_expires_in) {
    return {{"type", "object"},
            {"additionalProperties", false},
            {"properties", {{"expires_in", {{"type", "integer"}, {"minimum", 1}, {"maximum", max_expires_in}}}}}};
}

json list_query_schema(int max_limit) {
    return {{"type", "object"},
            {"additionalProperties", false},
            {"properties",
             {{"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", max_limit}, {"description", "page size"}}},
              {"cursor", {{"type", "string"}, {"maxLength", 200}, {"description", "the `next` of the previous page"}}},
              {"principal",
               {{"type", "string"},
                {"minLength", 1},
                {"maxLength", 200},
                {"description", "only this principal's keys (api_keys.admin only)"}}}}}};
}

json page_schema() {
    return {
        {"type", "object"},
        {"required", {"items", "next"}},
        {"properties",
         {{"items", {{"type", "array"}, {"items", key_schema(false)}}},
          {"next", {{"type", {"string", "null"}}, {"description", "the next page's path and query; also in Link"}}}}}};
}

const json kSecurity = json::array({{{"bearer", json::array()}}, {{"apiKey", json::array()}}});

// ---- the plugin -------------------------------------------------------------------------

class ApiKeys final : public trellis::Plugin {
public:
    static trellis::PluginInfo info() {
        return {"api_keys",
                API_KEYS_VERSION,
                "API keys with scopes, expiry and rotation, and their middleware",
                {},
                config_schema};
    }

    void init(trellis::Context& context) override {
        if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
        log_.emplace(context.log());
        db_.emplace(context.database());
        const json& config = context.config();
        default_expires_ms_ = config.value("default_expires_in", std::int64_t{7776000}) * 1000;
        max_expires_in_ = config.value("max_expires_in", std::int64_t{31536000});
        overlap_ms_ = config.value("rotation_overlap", std::int64_t{86400}) * 1000;
        default_limit_ = config.value("default_page_size", 20);
        max_limit_ = config.value("max_page_size", 100);
        if (default_expires_ms_ > max_expires_in_ * 1000)
            throw std::invalid_argument("default_expires_in (" + std::to_string(default_expires_ms_ / 1000) +
                                        ") is above max_expires_in (" + std::to_string(max_expires_in_) + ")");
        if (default_limit_ > max_limit_) throw std::invalid_argument("default_page_size is above max_page_size");
        if (config.contains("bootstrap_key_file")) read_bootstrap(context, config);

        register_migrations(context);

        // The middleware reads the database: blocking, so it runs on the worker pool.
        context.middleware("key", [this](trellis::Request& rq, trellis::Response& rs, trellis::Next& next) {
            authenticate(rq, rs, next);
        });

        auto doc = [](std::string summary, json body, json response) {
            trellis::RouteInfo info{std::move(summary), {"api_keys"}, std::move(body), std::move(response)};
            info.security = kSecurity;
            return info;
        };
        context.post(
            "/keys", [this](trellis::Request& rq, trellis::Response& rs) { create(rq, rs); },
            doc("Create a key (its text is in this answer only)", create_schema(max_expires_in_), key_schema(true)));
        trellis::RouteInfo list_doc = doc("List keys, a page at a time (never their text)", nullptr, page_schema());
        list_doc.query_schema = list_query_schema(max_limit_);
        context.get(
            "/keys", [this](trellis::Request& rq, trellis::Response& rs) { list(rq, rs); }, list_doc);
        trellis::RouteInfo get_doc = doc("Get a key (never its text)", nullptr, key_schema(false));
        get_doc.path_schema = path_schema();
        context.get(
            "/keys/{id}", [this](trellis::Request& rq, trellis::Response& rs) { get(rq, rs); }, get_doc);
        trellis::RouteInfo revoke_doc = doc("Revoke a key", nullptr, nullptr);
        revoke_doc.path_schema = path_schema();
        context.del(
            "/keys/{id}", [this](trellis::Request& rq, trellis::Response& rs) { revoke(rq, rs); }, revoke_doc);
        trellis::RouteInfo rotate_doc =
            doc("Rotate a key: a new key with the same scopes; the old one stays valid for rotation_overlap seconds",
                rotate_schema(max_expires_in_), key_schema(true));
        rotate_doc.path_schema = path_schema();
        context.post(
            "/keys/{id}/rotate", [this](trellis::Request& rq, trellis::Response& rs) { rotate(rq, rs); }, rotate_doc);
    }

private:
    static void register_migrations(trellis::Context& context) {
        const std::string columns =
            "  prefix TEXT NOT NULL UNIQUE,\n"
            "  hash TEXT NOT NULL,\n"
            "  name TEXT NOT NULL DEFAULT '',\n"
            "  principal_id TEXT NOT NULL,\n"
            "  principal_name TEXT NOT NULL,\n"
            "  scopes TEXT NOT NULL,\n"
            "  created_by TEXT NOT NULL,\n"
            "  created_at BIGINT NOT NULL,\n"
            "  expires_at BIGINT NOT NULL,\n"
            "  last_used_at BIGINT,\n"
            "  revoked_at BIGINT,\n"
            "  rotated_from TEXT,\n"
            "  rotated_to TEXT\n"
            ");";
        // Times are milliseconds since the epoch: compared on every request, in both dialects.
        context.migration({1, "create api_keys",
                           "CREATE TABLE api_keys (\n  id INTEGER PRIMARY KEY AUTOINCREMENT,\n" + columns,
                           "DROP TABLE api_keys;", "sqlite"});
        context.migration({1, "create api_keys",
                           "CREATE TABLE api_keys (\n  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n" + columns,
                           "DROP TABLE api_keys;", "postgresql"});
        context.migration({2, "index api_keys by principal",
                           "CREATE INDEX api_keys_principal ON api_keys (principal_id, id);",
                           "DROP INDEX api_keys_principal;", ""});
    }

    // The bootstrap key lives in a file the admin controls, never in the database: it is
    // accepted while configured, as an api_keys.admin principal, to create the first keys.
    void read_bootstrap(trellis::Context& context, const json& config) {
        const std::string path = config["bootstrap_key_file"].get<std::string>();
        std::ifstream in(path);
        if (!in) throw std::invalid_argument("bootstrap_key_file '" + path + "' cannot be read");
        std::stringstream content;
        content << in.rdbuf();
        const std::string text = trim(content.str());
        const auto prefix = parse_key(text);
        if (!prefix)
            throw std::invalid_argument("bootstrap_key_file '" + path +
                                        "' does not hold a key of the form trk_<16 hex digits>_<43 base64url "
                                        "characters of 32 random bytes>; see the api_keys README section");
        struct stat info {};
        if (::stat(path.c_str(), &info) == 0 && (info.st_mode & (S_IRWXG | S_IRWXO)) != 0)
            context.log().warn("bootstrap_key_file '" + path +
                               "' is readable by group or others; restrict it to the server's user (chmod 600)");
        bootstrap_prefix_ = *prefix;
        bootstrap_hash_ = key_hash(text);
        bootstrap_scopes_ = {kAdminScope};
        for (const auto& scope : config.value("bootstrap_scopes", std::vector<std::string>{}))
            if (scope != kAdminScope) bootstrap_scopes_.push_back(scope);
        context.log().warn("audit event=api_key_bootstrap_enabled key=" + bootstrap_prefix_ + " scopes=" +
                           joined(bootstrap_scopes_) + " (remove bootstrap_key_file once an admin key exists)");
    }

    // ---- the middleware -----------------------------------------------------------------

    // The key this request carries, if any: Authorization: ApiKey <key> or X-API-Key: <key>.
    static std::optional<std::string> presented_key(const trellis::Request& request, bool& conflicting) {
        std::optional<std::string> from_authorization;
        if (auto authorization = request.header("Authorization")) {
            std::string_view value = *authorization;
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            const auto space = value.find(' ');
            std::string scheme(value.substr(0, space));
            std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (scheme == "apikey")
                from_authorization = trim(space == std::string_view::npos ? "" : value.substr(space));
        }
        std::optional<std::string> from_header;
        if (auto header = request.header("X-API-Key")) from_header = trim(*header);
        conflicting = from_authorization && from_header && *from_authorization != *from_header;
        return from_authorization ? from_authorization : from_header;
    }

    void refuse(trellis::Request& request, trellis::Response& response, std::string_view reason,
                std::string_view prefix, std::string_view detail) const {
        log_->warn("audit event=api_key_refused reason=" + std::string(reason) +
                   (prefix.empty() ? std::string() : " key=" + std::string(prefix)) +
                   " request_id=" + std::string(request.request_id()));
        response.problem(401, "invalid_api_key", detail, request.path());
        response.header("WWW-Authenticate", "ApiKey");
    }

    void authenticate(trellis::Request& request, trellis::Response& response, trellis::Next& next) const {
        bool conflicting = false;
        const auto text = presented_key(request, conflicting);
        if (!text) return next();  // not our kind of credential: another authenticator may take it
        constexpr std::string_view invalid = "The API key is not valid.";
        if (conflicting)
            return refuse(request, response, "two_keys", "", "The request carries two different API keys.");
        const auto prefix = parse_key(*text);
        if (!prefix) return refuse(request, response, "malformed", "", invalid);

        Principal principal;
        std::vector<std::string> scopes;
        const std::string hash = key_hash(*text);
        if (!bootstrap_prefix_.empty() && *prefix == bootstrap_prefix_) {
            if (!same_hash(hash, bootstrap_hash_)) return refuse(request, response, "wrong_secret", *prefix, invalid);
            principal = {"bootstrap", "bootstrap"};
            scopes = bootstrap_scopes_;
        } else {
            auto connection = db_->connect();
            auto rows = connection.query(
                "SELECT id, hash, principal_id, principal_name, scopes, expires_at, last_used_at, revoked_at "
                "FROM api_keys WHERE prefix = :prefix",
                {{"prefix", *prefix}});
            if (rows.empty()) return refuse(request, response, "unknown", *prefix, invalid);
            const auto row = rows[0];
            if (!same_hash(hash, row.get<std::string>("hash")))
                return refuse(request, response, "wrong_secret", *prefix, invalid);
            // The secret was right: saying why it is refused helps its owner and tells others nothing.
            const std::int64_t now = now_ms();
            if (row.get_optional<std::int64_t>("revoked_at"))
                return refuse(request, response, "revoked", *prefix, "The API key was revoked.");
            if (now >= row.get<std::int64_t>("expires_at"))
                return refuse(request, response, "expired", *prefix, "The API key has expired.");
            principal = {row.get<std::string>("principal_id"), row.get<std::string>("principal_name")};
            scopes = json::parse(row.get<std::string>("scopes")).get<std::vector<std::string>>();
            // last_used_at moves at most once a minute, so that a busy key is not a write per request;
            // the condition keeps several instances from all writing in the same minute.
            const auto last_used = row.get_optional<std::int64_t>("last_used_at");
            if (!last_used || now - *last_used >= kLastUsedResolutionMs)
                connection.execute(
                    "UPDATE api_keys SET last_used_at = :now WHERE id = :id AND "
                    "(last_used_at IS NULL OR last_used_at <= :threshold)",
                    {{"now", now}, {"id", row.get<std::int64_t>("id")}, {"threshold", now - kLastUsedResolutionMs}});
        }
        log_->debug("api key accepted key=" + *prefix + " principal=" + log_value(principal.id) +
                    " request_id=" + std::string(request.request_id()));
        request.set_attribute(
            "auth.principal",
            json{{"id", principal.id}, {"name", principal.name}, {"type", "api_key"}, {"key", *prefix}}.dump());
        request.set_attribute("auth.scopes", json(scopes).dump());
        request.set_attribute("user.id", json(principal.id).dump());
        request.set_attribute("api_key.id", json(*prefix).dump());
        next();
    }

    // ---- the routes ---------------------------------------------------------------------

    static json item(const trellis::Row& row) {
        const auto revoked = row.get_optional<std::int64_t>("revoked_at");
        const std::int64_t expires = row.get<std::int64_t>("expires_at");
        auto optional_text = [&](const char* column) {
            const auto value = row.get_optional<std::string>(column);
            return value ? json(*value) : json(nullptr);
        };
        return {{"id", row.get<std::string>("prefix")},
                {"name", row.get<std::string>("name")},
                {"principal",
                 {{"id", row.get<std::string>("principal_id")}, {"name", row.get<std::string>("principal_name")}}},
                {"scopes", json::parse(row.get<std::string>("scopes"))},
                {"status", revoked               ? "revoked"
                           : now_ms() >= expires ? "expired"
                                                 : "active"},
                {"created_at", iso(row.get<std::int64_t>("created_at"))},
                {"expires_at", iso(expires)},
                {"last_used_at", iso_or_null(row.get_optional<std::int64_t>("last_used_at"))},
                {"revoked_at", iso_or_null(revoked)},
                {"rotated_from", optional_text("rotated_from")},
                {"rotated_to", optional_text("rotated_to")}};
    }

    // Scopes the caller asks to give a key must all be its own: no escalation through keys.
    static void require_subset(const Caller& caller, const std::vector<std::string>& scopes,
                               const trellis::Request& request, const trellis::Logger& log, std::string_view what) {
        std::vector<std::string> missing;
        for (const auto& scope : scopes)
            if (!caller.has(scope)) missing.push_back(scope);
        if (missing.empty()) return;
        log.warn("audit event=api_key_escalation_refused action=" + std::string(what) +
                 " principal=" + log_value(caller.principal.id) + " missing=" + joined(missing) +
                 " request_id=" + std::string(request.request_id()));
        throw HttpError(403, "scope_escalation", "A key cannot carry scopes its creator does not have.",
                        {{"missing_scopes", missing}});
    }

    static std::string collection(const trellis::Request& request, std::size_t drop_segments) {
        std::string path(request.path());
        for (std::size_t i = 0; i < drop_segments; ++i) path.erase(path.rfind('/'));
        return path;
    }

    // Inserts a new key. The prefix is random, so a clash (one in 2^64) is retried outside a
    // transaction; inside one (PostgreSQL aborts it on the error) the SDK answers 409 instead.
    std::pair<NewKey, json> insert_key(trellis::Connection& connection, const Principal& owner, const std::string& name,
                                       const std::vector<std::string>& scopes, std::int64_t expires_at,
                                       const std::string& created_by, const std::optional<std::string>& rotated_from,
                                       bool in_transaction) const {
        for (int attempt = 0;; ++attempt) {
            NewKey key = generate_key();
            const std::int64_t now = now_ms();
            try {
                auto rows = connection.query(
                    std::string("INSERT INTO api_keys (prefix, hash, name, principal_id, principal_name, scopes, "
                                "created_by, created_at, expires_at, rotated_from) VALUES (:prefix, :hash, :name, "
                                ":pid, :pname, :scopes, :by, :now, :expires, :from) RETURNING ") +
                        kColumns,
                    {{"prefix", key.prefix},
                     {"hash", key_hash(key.text)},
                     {"name", name},
                     {"pid", owner.id},
                     {"pname", owner.name},
                     {"scopes", json(scopes).dump()},
                     {"by", created_by},
                     {"now", now},
                     {"expires", expires_at},
                     {"from", rotated_from}});
                return {std::move(key), item(rows[0])};
            } catch (const trellis::DbConflict&) {
                if (in_transaction || attempt >= 2) throw;
            }
        }
    }

    // A key never makes (or rotates into) a key that outlives it, so a leaked short-lived key
    // cannot buy a long-lived one; api_keys.admin may.
    static std::int64_t capped_expiry(trellis::Connection& connection, const Caller& caller, std::int64_t wanted) {
        if (caller.via_key.empty() || caller.admin) return wanted;
        auto own = connection.query("SELECT expires_at FROM api_keys WHERE prefix = :prefix", {{"prefix", caller.via_key}});
        return own.empty() ? wanted : std::min(wanted, own[0].get<std::int64_t>("expires_at"));
    }

    void create(trellis::Request& request, trellis::Response& response) {
        const Caller caller = caller_of(request);
        const json body = request.json_body();  // checked against create_schema by the host
        Principal owner = caller.principal;
        if (body.contains("principal")) {
            const json& p = body["principal"];
            if (!caller.admin && p["id"] != caller.principal.id)
                throw HttpError(403, "forbidden", "Only api_keys.admin may create keys for another principal.");
            if (caller.admin) owner = {p["id"].get<std::string>(), p["name"].get<std::string>()};
        }
        const auto scopes = body["scopes"].get<std::vector<std::string>>();
        require_subset(caller, scopes, request, *log_, "create");
        const std::int64_t expires_in_ms =
            body.contains("expires_in") ? body["expires_in"].get<std::int64_t>() * 1000 : default_expires_ms_;
        auto connection = db_->connect();
        const std::int64_t expires_at = capped_expiry(connection, caller, now_ms() + expires_in_ms);
        auto [key, doc] = insert_key(connection, owner, body.value("name", ""), scopes, expires_at,
                                     caller.principal.id, std::nullopt, false);
        log_->warn("audit event=api_key_created key=" + key.prefix + " principal=" + log_value(owner.id) +
                   " by=" + log_value(caller.principal.id) + " scopes=" + joined(scopes) +
                   " request_id=" + std::string(request.request_id()));
        doc["key"] = key.text;
        response.status(201);
        response.header("Location", collection(request, 0) + "/" + key.prefix);
        response.header("Cache-Control", "no-store");
        response.json(doc);
    }

    struct Found {
        json doc;              // as the API shows it
        std::int64_t row = 0;  // the internal id
        std::int64_t expires_at = 0;
    };

    // The key `id` as the caller may see it: its own, or any for api_keys.admin; 404 otherwise
    // (another principal's key is not confirmed to exist).
    static Found find(trellis::Connection& connection, const trellis::Request& request, const Caller& caller) {
        std::string sql = std::string("SELECT ") + kColumns + " FROM api_keys WHERE prefix = :prefix";
        Params params{{"prefix", std::string(request.param("id").value_or(""))}};
        if (!caller.admin) {
            sql += " AND principal_id = :owner";
            params.emplace_back("owner", caller.principal.id);
        }
        auto rows = connection.query(sql, params);
        if (rows.empty()) throw HttpError(404, "not_found", "There is no API key with this id.");
        return {item(rows[0]), rows[0].get<std::int64_t>("id"), rows[0].get<std::int64_t>("expires_at")};
    }

    void get(trellis::Request& request, trellis::Response& response) {
        const Caller caller = caller_of(request);
        auto connection = db_->connect();
        response.json(find(connection, request, caller).doc);
    }

    void list(trellis::Request& request, trellis::Response& response) {
        const Caller caller = caller_of(request);
        int limit = default_limit_;
        if (auto text = request.query("limit")) limit = std::stoi(std::string(*text));
        std::string sql = std::string("SELECT ") + kColumns + " FROM api_keys WHERE 1 = 1";
        Params params;
        const auto principal = request.query("principal");
        if (principal && !caller.admin && *principal != caller.principal.id)
            throw HttpError(403, "forbidden", "Only api_keys.admin may list another principal's keys.");
        if (!caller.admin || principal) {
            sql += " AND principal_id = :owner";
            params.emplace_back("owner", principal ? std::string(*principal) : caller.principal.id);
        }
        if (auto cursor = request.query("cursor")) {
            const auto decoded = base64url_decode(*cursor, 64);
            std::int64_t after = 0;
            const bool valid =
                decoded && decoded->size() > 2 && decoded->compare(0, 2, "k:") == 0 &&
                decoded->size() <= 20 &&  // 18 digits: no overflow
                std::all_of(decoded->begin() + 2, decoded->end(), [](char c) { return c >= '0' && c <= '9'; });
            if (valid) after = std::stoll(decoded->substr(2));
            if (!valid || after <= 0)
                throw HttpError(400, "invalid_cursor",
                                "The cursor is not one this server gave out; start again without it.");
            sql += " AND id > :after";
            params.emplace_back("after", after);
        }
        sql += " ORDER BY id ASC LIMIT :limit";
        params.emplace_back("limit", limit + 1);
        auto rows = db_->query(sql, params);
        json items = json::array();
        for (std::size_t i = 0; i < rows.size() && i < static_cast<std::size_t>(limit); ++i)
            items.push_back(item(rows[i]));
        json next = nullptr;
        if (rows.size() > static_cast<std::size_t>(limit)) {
            const std::string last =
                "k:" + std::to_string(rows[static_cast<std::size_t>(limit) - 1].get<std::int64_t>("id"));
            std::string query = "?limit=" + std::to_string(limit) + "&cursor=" +
                                base64url(reinterpret_cast<const unsigned char*>(last.data()), last.size());
            if (principal) query += "&principal=" + trellis::url_encode(*principal);
            next = collection(request, 0) + query;
            const std::string base(request.attribute("trellis.base_url").value_or(""));
            response.header("Link", "<" + base + next.get<std::string>() + ">; rel=\"next\"");
        }
        response.json({{"items", items}, {"next", next}});
    }

    void revoke(trellis::Request& request, trellis::Response& response) {
        const Caller caller = caller_of(request);
        auto connection = db_->connect();
        const Found found = find(connection, request, caller);
        const json& key = found.doc;
        // Revoking a revoked key changes nothing and answers the same.
        if (key["status"] != "revoked" &&
            connection.execute("UPDATE api_keys SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL",
                               {{"now", now_ms()}, {"id", found.row}}) == 1) {
            log_->warn("audit event=api_key_revoked key=" + key["id"].get<std::string>() +
                       " principal=" + log_value(key["principal"]["id"].get<std::string>()) +
                       " by=" + log_value(caller.principal.id) + " request_id=" + std::string(request.request_id()));
        }
        response.status(204);
    }

    void rotate(trellis::Request& request, trellis::Response& response) {
        const Caller caller = caller_of(request);
        const json body = request.json_body();  // checked against rotate_schema by the host
        auto connection = db_->connect();
        auto tx = connection.transaction();
        const Found found = find(connection, request, caller);
        const json& old = found.doc;
        if (old["status"] != "active" || !old["rotated_to"].is_null())
            throw HttpError(
                409, "key_not_rotatable",
                old["status"] != "active"
                    ? "Only an active key can be rotated; this one is " + old["status"].get<std::string>() + "."
                    : "This key was rotated already (to " + old["rotated_to"].get<std::string>() + ").");
        const auto scopes = old["scopes"].get<std::vector<std::string>>();
        require_subset(caller, scopes, request, *log_, "rotate");
        const std::int64_t now = now_ms();
        const std::int64_t expires_in_ms =
            body.contains("expires_in") ? body["expires_in"].get<std::int64_t>() * 1000 : default_expires_ms_;
        const Principal owner{old["principal"]["id"].get<std::string>(), old["principal"]["name"].get<std::string>()};
        auto [key, doc] = insert_key(connection, owner, old["name"].get<std::string>(), scopes,
                                     capped_expiry(connection, caller, now + expires_in_ms), caller.principal.id,
                                     old["id"].get<std::string>(), true);
        // The old key keeps working for the overlap (never longer than it would have anyway).
        const std::int64_t overlap_end = now + overlap_ms_;
        const auto changed = connection.execute(
            "UPDATE api_keys SET rotated_to = :to, expires_at = CASE WHEN expires_at < :end THEN expires_at ELSE :end "
            "END "
            "WHERE id = :id AND rotated_to IS NULL AND revoked_at IS NULL",
            {{"to", key.prefix}, {"end", overlap_end}, {"id", found.row}});
        if (changed != 1)
            throw HttpError(409, "key_not_rotatable", "The key changed while it was being rotated; read it again.");
        tx.commit();
        log_->warn("audit event=api_key_rotated key=" + old["id"].get<std::string>() + " new_key=" + key.prefix +
                   " principal=" + log_value(owner.id) + " by=" + log_value(caller.principal.id) + " old_valid_until=" +
                   iso(std::min(overlap_end, found.expires_at)) + " request_id=" + std::string(request.request_id()));
        doc["key"] = key.text;
        response.status(201);
        response.header("Location", collection(request, 2) + "/" + key.prefix);
        response.header("Cache-Control", "no-store");
        response.json(doc);
    }

    std::optional<trellis::Logger> log_;
    std::optional<trellis::Database> db_;
    std::int64_t default_expires_ms_ = 0;
    std::int64_t max_expires_in_ = 0;
    std::int64_t overlap_ms_ = 0;
    int default_limit_ = 20;
    int max_limit_ = 100;
    std::string bootstrap_prefix_;  // empty: no bootstrap key
    std::string bootstrap_hash_;
    std::vector<std::string> bootstrap_scopes_;
};

}  // namespace

TRELLIS_PLUGIN(ApiKeys)
