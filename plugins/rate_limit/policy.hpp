// rate_limit: policies read from config, which policies and keys apply to a request, the
// GCRA decision over several policies at once, and the RateLimit header fields. Pure logic
// (no I/O, no SDK call), shared by both backends and unit-tested directly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace rate_limit {

// What a policy counts requests by.
enum class KeyKind { client_address, principal, api_key, route };

struct Policy {
    std::string name;  // the item name in RateLimit-Policy / RateLimit ([A-Za-z0-9_.-])
    KeyKind key = KeyKind::client_address;
    std::int64_t limit = 0;           // requests per window
    std::int64_t window_seconds = 0;  // w=
    std::int64_t burst = 0;           // requests that may arrive at once; the limit by default
    std::vector<std::string> routes;  // "GET /notes/{id}" labels; empty: every route
    bool advertise = true;            // listed in RateLimit-Policy / RateLimit

    // GCRA: one request is "worth" interval_us; a client may run up to tolerance_us ahead.
    std::int64_t interval_us() const { return std::max<std::int64_t>(1, window_seconds * 1000000 / limit); }
    std::int64_t tolerance_us() const { return interval_us() * burst; }
};

struct RedisSettings {
    std::string host = "127.0.0.1";
    int port = 6379;
    int database = 0;
    std::string username;
    std::string password_file;
    std::string key_prefix = "trellis:rate_limit:";
    int timeout_ms = 100;
    int pool_size = 4;
};

struct Settings {
    bool redis = false;             // backend: redis (else memory)
    bool fail_open = true;          // on_backend_error: open
    bool headers = true;            // RateLimit / RateLimit-Policy on allowed answers too
    std::size_t max_keys = 100000;  // memory backend cap
    RedisSettings redis_settings;
    std::vector<Policy> policies;
};

inline const char* key_name(KeyKind kind) {
    switch (kind) {
        case KeyKind::client_address: return "client_address";
        case KeyKind::principal: return "principal";
        case KeyKind::api_key: return "api_key";
        case KeyKind::route: return "route";
    }
    return "?";
}

inline constexpr std::int64_t kMaxWindowSeconds = 366 * 86400;
// Times are integer microseconds, also inside Redis's Lua (doubles): stay well within 2^53.
inline constexpr std::int64_t kMaxToleranceUs = std::int64_t{1} << 50;

// "90", 90, "90s", "15m", "2h", "1d" -> seconds. Throws std::invalid_argument.
inline std::int64_t parse_window(const nlohmann::json& value, const std::string& where) {
    if (value.is_number_integer()) {
        if (value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > kMaxWindowSeconds)
            throw std::invalid_argument(where + ": the window must be 1 second to 366 days");
        return value.get<std::int64_t>();
    }
    const std::string text = value.is_string() ? value.get<std::string>() : std::string();
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    const std::string unit = text.substr(digits);
    const std::int64_t scale = unit.empty() || unit == "s" ? 1
                               : unit == "m"               ? 60
                               : unit == "h"               ? 3600
                               : unit == "d"               ? 86400
                                                           : 0;
    if (digits == 0 || digits > 9 || scale == 0 || std::stoll(text.substr(0, digits)) < 1)
        throw std::invalid_argument(where + ": expected a window such as 1s, 60s, 15m, 1h or 1d, got '" + text + "'");
    const std::int64_t seconds = std::stoll(text.substr(0, digits)) * scale;
    if (seconds > kMaxWindowSeconds) throw std::invalid_argument(where + ": the window is longer than 366 days");
    return seconds;
}

// The plugin's config (already checked by its JSON Schema) as Settings; throws
// std::invalid_argument for what a schema cannot say (duplicate names, impossible rates).
inline Settings parse_settings(const nlohmann::json& config) {
    Settings s;
    s.redis = config.value("backend", std::string("memory")) == "redis";
    s.fail_open = config.value("on_backend_error", std::string("open")) == "open";
    s.headers = config.value("headers", true);
    if (config.contains("memory")) s.max_keys = config["memory"].value("max_keys", std::size_t{100000});
    if (config.contains("redis")) {
        const auto& r = config["redis"];
        auto& out = s.redis_settings;
        out.host = r.value("host", out.host);
        out.port = r.value("port", out.port);
        out.database = r.value("database", out.database);
        out.username = r.value("username", out.username);
        out.password_file = r.value("password_file", out.password_file);
        out.key_prefix = r.value("key_prefix", out.key_prefix);
        out.timeout_ms = r.value("timeout_ms", out.timeout_ms);
        out.pool_size = r.value("pool_size", out.pool_size);
    }
    std::set<std::string> names;
    const auto policies = config.value("policies", nlohmann::json::array());
    for (std::size_t i = 0; i < policies.size(); ++i) {
        const auto& p = policies[i];
        const std::string where = "policies[" + std::to_string(i) + "]";
        Policy policy;
        policy.name = p.at("name").get<std::string>();
        if (!names.insert(policy.name).second)
            throw std::invalid_argument(where + ": the policy name '" + policy.name + "' is used twice");
        const std::string key = p.at("key").get<std::string>();
        if (key == "client_address")
            policy.key = KeyKind::client_address;
        else if (key == "principal")
            policy.key = KeyKind::principal;
        else if (key == "api_key")
            policy.key = KeyKind::api_key;
        else if (key == "route")
            policy.key = KeyKind::route;
        else
            throw std::invalid_argument(where + " (" + policy.name + "): unknown key '" + key +
                                        "'; use client_address, principal, api_key or route");
        policy.limit = p.at("limit").get<std::int64_t>();
        if (policy.limit < 1)
            throw std::invalid_argument(where + " (" + policy.name + "): the limit must be at least 1");
        policy.window_seconds = parse_window(p.at("window"), where + " (" + policy.name + ")");
        if (policy.limit > policy.window_seconds * 1000000)
            throw std::invalid_argument(where + " (" + policy.name +
                                        "): more than one request per microsecond cannot be tracked");
        policy.burst = p.value("burst", policy.limit);
        if (policy.burst < 1 || policy.burst > kMaxToleranceUs / policy.interval_us())
            throw std::invalid_argument(where + " (" + policy.name +
                                        "): the burst must be at least 1, and burst x window / limit at most 35 years");
        policy.routes = p.value("routes", std::vector<std::string>{});
        // A route budget is shared by every client: its state would tell anyone how busy the
        // route is (the draft's "information disclosure"), so it is not advertised by default.
        policy.advertise = p.value("advertise", policy.key != KeyKind::route);
        s.policies.push_back(std::move(policy));
    }
    return s;
}

// A policy that applies to a request, with the partition it counts against.
struct Applicable {
    const Policy* policy = nullptr;
    std::string key;  // the value of the policy's key for this request (an address, an id...)
};

// Looks up a request attribute (JSON text by convention, host attributes plain text).
using AttributeLookup = std::function<std::optional<std::string_view>(std::string_view)>;

namespace detail {
// An attribute as text: a JSON string is unquoted, anything else is taken as it is.
inline std::optional<std::string> text_attribute(const AttributeLookup& lookup, std::string_view name) {
    auto value = lookup(name);
    if (!value || value->empty()) return std::nullopt;
    if (value->front() != '"') return std::string(*value);
    auto parsed = nlohmann::json::parse(*value, nullptr, false);
    if (!parsed.is_string() || parsed.get<std::string>().empty()) return std::nullopt;
    return parsed.get<std::string>();
}

// The id of auth.principal ({"id": "42", ...}); a numeric id is accepted as its decimal text.
inline std::optional<std::string> principal_id(const AttributeLookup& lookup) {
    auto value = lookup("auth.principal");
    if (!value) return std::nullopt;
    auto parsed = nlohmann::json::parse(*value, nullptr, false);
    if (!parsed.is_object() || !parsed.contains("id")) return std::nullopt;
    const auto& id = parsed["id"];
    if (id.is_string() && !id.get<std::string>().empty()) return id.get<std::string>();
    if (id.is_number_integer()) return id.dump();
    return std::nullopt;
}
}  // namespace detail

// The policies that apply to a request, each with its key. A policy is skipped when the
// request's route is not among its routes, or when its key is absent (no principal, no API
// key, no matched route).
inline std::vector<Applicable> applicable(const std::vector<Policy>& policies, const AttributeLookup& lookup) {
    std::vector<Applicable> out;
    if (policies.empty()) return out;
    const std::optional<std::string> route = detail::text_attribute(lookup, "trellis.route");
    // Each attribute is read (and parsed) once, however many policies use it.
    std::optional<std::optional<std::string>> address, principal, api_key;
    const auto once = [](std::optional<std::optional<std::string>>& memo, auto read) {
        if (!memo) memo = read();
        return *memo;
    };
    for (const auto& policy : policies) {
        if (!policy.routes.empty() &&
            (!route || std::find(policy.routes.begin(), policy.routes.end(), *route) == policy.routes.end()))
            continue;
        std::optional<std::string> key;
        switch (policy.key) {
            case KeyKind::client_address:
                key = once(address, [&] { return detail::text_attribute(lookup, "trellis.client_address"); });
                break;
            case KeyKind::principal: key = once(principal, [&] { return detail::principal_id(lookup); }); break;
            case KeyKind::api_key:
                key = once(api_key, [&] { return detail::text_attribute(lookup, "api_key.id"); });
                break;
            case KeyKind::route: key = route; break;
        }
        if (key) out.push_back(Applicable{&policy, std::move(*key)});
    }
    return out;
}

// One policy's state after a decision, for the headers.
struct Outcome {
    bool allowed = true;              // this policy alone would let the request through
    std::int64_t remaining = 0;       // r=
    std::int64_t reset_us = 0;        // until the whole burst is available again
    std::int64_t retry_after_us = 0;  // until one more request fits (0 while r > 0)
};

struct Decision {
    bool allowed = true;
    std::vector<Outcome> outcomes;       // one per applicable policy, in order
    std::vector<std::int64_t> new_tats;  // what to store when allowed (theoretical arrival times)
};

// GCRA over several policies at once: the request passes only if every policy lets it, and
// only then does it consume from each of them. `stored` is each policy's theoretical arrival
// time in microseconds (0 or anything <= now: a fresh partition). The Redis script applies
// the same rule (new_tat - now <= tolerance) so that both backends agree.
inline Decision decide(std::int64_t now, const std::vector<const Policy*>& policies,
                       const std::vector<std::int64_t>& stored) {
    Decision d;
    std::vector<std::int64_t> tats;
    for (std::size_t i = 0; i < policies.size(); ++i) {
        const std::int64_t tat = std::max(stored[i], now);
        const std::int64_t next = tat + policies[i]->interval_us();
        if (next - now > policies[i]->tolerance_us()) d.allowed = false;
        tats.push_back(tat);
        d.new_tats.push_back(next);
    }
    for (std::size_t i = 0; i < policies.size(); ++i) {
        const Policy& p = *policies[i];
        const std::int64_t T = p.interval_us(), tau = p.tolerance_us();
        Outcome o;
        const std::int64_t after = d.allowed ? d.new_tats[i] : tats[i];  // the state the client is left with
        o.allowed = d.new_tats[i] - now <= tau;
        o.remaining = std::max<std::int64_t>(0, (tau - (after - now)) / T);
        o.reset_us = after - now;
        o.retry_after_us = std::max<std::int64_t>(0, after + T - now - tau);
        d.outcomes.push_back(o);
    }
    if (!d.allowed) d.new_tats.clear();
    return d;
}

inline std::vector<const Policy*> policies_of(const std::vector<Applicable>& list) {
    std::vector<const Policy*> out;
    for (const auto& a : list) out.push_back(a.policy);
    return out;
}

inline std::int64_t ceil_seconds(std::int64_t us) { return (std::max<std::int64_t>(0, us) + 999999) / 1000000; }

// RateLimit-Policy, draft-ietf-httpapi-ratelimit-headers-11: "per_address";q=100;w=60.
// Policies with advertise: false are left out of both fields (empty: no field).
inline std::string policy_field(const std::vector<Applicable>& list) {
    std::string out;
    for (const auto& a : list) {
        if (!a.policy->advertise) continue;
        if (!out.empty()) out += ", ";
        out += '"' + a.policy->name + "\";q=" + std::to_string(a.policy->limit) +
               ";w=" + std::to_string(a.policy->window_seconds);
    }
    return out;
}

// RateLimit: "per_address";r=42;t=17. t is the seconds until one request fits again when r
// is 0, else until the whole burst is back. On a refused request only the policies that
// refused are listed: the draft asks that Retry-After not end before any listed window, and
// the others still have room anyway.
inline std::string limit_field(const std::vector<Applicable>& list, const Decision& d) {
    std::string out;
    for (std::size_t i = 0; i < list.size(); ++i) {
        const Outcome& o = d.outcomes[i];
        if ((!d.allowed && o.allowed) || !list[i].policy->advertise) continue;
        if (!out.empty()) out += ", ";
        const std::int64_t t = ceil_seconds(o.remaining == 0 ? o.retry_after_us : o.reset_us);
        out += '"' + list[i].policy->name + "\";r=" + std::to_string(o.remaining) + ";t=" + std::to_string(t);
    }
    return out;
}

// Retry-After of a refused request: whole seconds until every refusing policy has room, >= 1.
inline std::int64_t retry_after_seconds(const Decision& d) {
    std::int64_t us = 0;
    for (const auto& o : d.outcomes)
        if (!o.allowed) us = std::max(us, o.retry_after_us);
    return std::max<std::int64_t>(1, ceil_seconds(us));
}

}  // namespace rate_limit
