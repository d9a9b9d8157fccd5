// rate_limit: one middleware (`rate_limit`, or `rate_limit.limit`) that limits requests per
// client address, principal, API key or route with GCRA, in memory or shared through Redis,
// and answers 429 problem+json with Retry-After and the RateLimit / RateLimit-Policy fields
// of draft-ietf-httpapi-ratelimit-headers-11. Built only through the SDK.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <trellis/plugin.hpp>

#include "memory_store.hpp"
#include "policy.hpp"
#include "redis_store.hpp"

namespace {

constexpr const char* config_schema = R"json({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "backend": {"enum": ["memory", "redis"], "description": "memory: per instance; redis: one budget shared by every instance"},
    "on_backend_error": {"enum": ["open", "closed"], "description": "Redis unreachable: let requests through (open) or answer 503 (closed)"},
    "headers": {"type": "boolean", "description": "RateLimit and RateLimit-Policy on allowed answers too (always on 429)"},
    "memory": {
      "type": "object",
      "additionalProperties": false,
      "properties": {"max_keys": {"type": "integer", "minimum": 1000, "maximum": 2000000}}
    },
    "redis": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "database": {"type": "integer", "minimum": 0, "maximum": 1000},
        "username": {"type": "string"},
        "password_file": {"type": "string", "minLength": 1},
        "key_prefix": {"type": "string", "maxLength": 200},
        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 10000},
        "pool_size": {"type": "integer", "minimum": 1, "maximum": 64}
      }
    },
    "policies": {
      "type": "array",
      "maxItems": 32,
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "key", "limit", "window"],
        "properties": {
          "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
          "key": {"enum": ["client_address", "principal", "api_key", "route"]},
          "limit": {"type": "integer", "minimum": 1, "maximum": 1000000000},
          "window": {
            "description": "seconds (an integer), or a string such as 1s, 60s, 15m, 1h, 1d",
            "type": ["integer", "string"], "minimum": 1, "maximum": 31622400, "pattern": "^[1-9][0-9]{0,7}[smhd]?$"
          },
          "burst": {"type": "integer", "minimum": 1, "maximum": 1000000000},
          "routes": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[A-Z]+ /[^ ]*$"}},
          "advertise": {"type": "boolean", "description": "list the policy in RateLimit-Policy and RateLimit; default true, false for key: route"}
        }
      }
    }
  }
})json";

std::int64_t monotonic_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

class RateLimit final : public trellis::Plugin {
public:
    static trellis::PluginInfo info() {
        return {"rate_limit",
                RATE_LIMIT_VERSION,
                "Rate limits per client address, principal, API key or route (GCRA, in memory or Redis)",
                {},
                config_schema};
    }

    void init(trellis::Context& context) override {
        try {
            settings_ = rate_limit::parse_settings(context.config());
        } catch (const std::exception& e) {
            throw std::invalid_argument(std::string("config: ") + e.what());
        }
        log_ = std::make_unique<trellis::Logger>(context.log());
        if (settings_.redis)
            redis_ = std::make_unique<rate_limit::RedisStore>(settings_.redis_settings);
        else
            memory_ = std::make_unique<rate_limit::MemoryStore>(settings_.max_keys);

        if (context.host_has_metrics()) {
            rejected_ =
                context.counter("rate_limit_rejected_total", "Requests refused with 429, by policy", {"policy"});
            backend_errors_ = context.counter("rate_limit_backend_errors_total",
                                              "Requests the backend could not decide (Redis unreachable, memory full)");
            metrics_ = true;
            if (redis_)
                context.add_readiness_check("redis", [this]() -> trellis::CheckResult {
                    try {
                        redis_->ping();
                        return {true, ""};
                    } catch (const std::exception& e) {
                        // Failing open, the instance still serves: it stays ready and says why.
                        return {
                            settings_.fail_open,
                            std::string(e.what()) + (settings_.fail_open ? " (failing open: requests are not limited)"
                                                                         : " (failing closed: requests get 503)")};
                    }
                });
        }

        auto limit = [this](trellis::Request& request, trellis::Response& response, trellis::Next& next) {
            handle(request, response, next);
        };
        // The memory backend never blocks (short mutex holds): keep inline chains inline.
        // Redis is a network round trip: run on the worker pool.
        if (redis_)
            context.middleware("limit", limit);
        else
            context.non_blocking().middleware("limit", limit);

        if (settings_.policies.empty())
            context.log().info("no policies configured: the rate_limit middleware lets every request through");
        else
            context.log().info("backend " + std::string(redis_ ? "redis" : "memory") + ", " +
                               std::to_string(settings_.policies.size()) +
                               (settings_.policies.size() == 1 ? " policy" : " policies") + ", on backend error " +
                               (settings_.fail_open ? "open" : "closed"));
    }

    void shutdown() override {
        redis_.reset();
        memory_.reset();
    }

private:
    void handle(trellis::Request& request, trellis::Response& response, trellis::Next& next) {
        const auto list = rate_limit::applicable(settings_.policies,
                                                 [&request](std::string_view name) { return request.attribute(name); });
        if (list.empty()) return next();

        std::optional<rate_limit::Decision> decision;
        try {
            decision = redis_ ? redis_->check(list) : memory_->check(list, monotonic_us());
        } catch (const rate_limit::BackendError& e) {
            return backend_failed(request, response, next, e.what());
        }
        // The memory backend full of live partitions: a flood of new clients (an IPv6 range)
        // must not get unlimited requests, so a new partition waits as a limited one would.
        if (!decision) {
            if (metrics_) rejected_.inc({"memory_full"});
            response.problem(429, "rate_limited", "Too many clients are being limited; retry in 1 s.", request.path(),
                             {{"retry_after", 1}});
            response.header("Retry-After", "1");
            return;
        }

        if (!decision->allowed) {
            trellis::json violated = trellis::json::array();
            for (std::size_t i = 0; i < list.size(); ++i)
                if (!decision->outcomes[i].allowed) {
                    violated.push_back(list[i].policy->name);
                    if (metrics_) rejected_.inc({list[i].policy->name});
                }
            const auto retry = rate_limit::retry_after_seconds(*decision);
            response.problem(429, "rate_limited",
                             "Too many requests (policy " + violated[0].get<std::string>() + "); retry in " +
                                 std::to_string(retry) + " s.",
                             request.path(), {{"violated-policies", violated}, {"retry_after", retry}});
            response.header("Retry-After", std::to_string(retry));
            add_fields(response, list, *decision);
            return;
        }
        next();
        if (settings_.headers) add_fields(response, list, *decision);
    }

    static void add_fields(trellis::Response& response, const std::vector<rate_limit::Applicable>& list,
                           const rate_limit::Decision& decision) {
        // An empty value removes the field: nothing advertised, nothing sent.
        response.header("RateLimit-Policy", rate_limit::policy_field(list));
        response.header("RateLimit", rate_limit::limit_field(list, decision));
    }

    void backend_failed(trellis::Request& request, trellis::Response& response, trellis::Next& next,
                        const std::string& error) {
        if (metrics_) backend_errors_.inc();
        // One line per 10 s at most: a Redis outage must not flood the log.
        const auto now = monotonic_us();
        auto last = last_error_log_.load(std::memory_order_relaxed);
        if (now - last >= 10000000 && last_error_log_.compare_exchange_strong(last, now))
            log_->warn("backend error, failing " + std::string(settings_.fail_open ? "open" : "closed") + ": " + error +
                       " request_id=" + std::string(request.request_id()));
        if (settings_.fail_open) return next();
        response.problem(503, "rate_limit_unavailable", "The rate limit backend is unavailable; retry later.",
                         request.path());
        response.header("Retry-After", "1");
    }

    rate_limit::Settings settings_;
    std::unique_ptr<trellis::Logger> log_;
    std::unique_ptr<rate_limit::MemoryStore> memory_;
    std::unique_ptr<rate_limit::RedisStore> redis_;
    bool metrics_ = false;
    trellis::Counter rejected_;
    trellis::Counter backend_errors_;
    std::atomic<std::int64_t> last_error_log_{-10000000000};
};

}  // namespace

TRELLIS_PLUGIN(RateLimit)
