// The bundled rate_limit plugin: its policy logic unit-tested (keys, GCRA, header fields, the
// memory backend's bound), the memory backend over real HTTP (429 problem+json, Retry-After,
// RateLimit / RateLimit-Policy, keys, refill, inline chains; principal and API key budgets with
// the real auth and api_keys plugins), config errors refused at load,
// and the Redis backend against a real redis-server with real `trellis serve` processes: one
// shared budget, one EVALSHA per request, Redis stopped or hung mid-run (fail open / closed),
// and a password file.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <regex>
#include <thread>

#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

// The plugin's pure logic, header-only, tested without a server.
#include "../../plugins/rate_limit/memory_store.hpp"
#include "../../plugins/rate_limit/policy.hpp"

using namespace trellis;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using test::config_yaml;
using test::find_report;
using test::http_request;
using test::Process;
using test::TempDir;
using test::TestServer;

namespace {

rate_limit::Settings settings_from(const std::string& json_text) {
    return rate_limit::parse_settings(nlohmann::json::parse(json_text));
}

rate_limit::AttributeLookup lookup_in(const std::map<std::string, std::string>& attributes) {
    return [&attributes](std::string_view name) -> std::optional<std::string_view> {
        auto it = attributes.find(std::string(name));
        if (it == attributes.end()) return std::nullopt;
        return std::string_view(it->second);
    };
}

std::vector<std::string> names_and_keys(const std::vector<rate_limit::Applicable>& list) {
    std::vector<std::string> out;
    for (const auto& a : list) out.push_back(a.policy->name + "=" + a.key);
    return out;
}

constexpr std::int64_t kSecond = 1000000;

}  // namespace

// ---------------------------------------------------------------------------------------
// Unit: the policy logic.

TEST_CASE("each key type takes its partition from its attribute and is skipped when absent", "[rate_limit][unit]") {
    const auto settings = settings_from(R"({"policies": [
        {"name": "per_address", "key": "client_address", "limit": 10, "window": "1m"},
        {"name": "per_user", "key": "principal", "limit": 10, "window": 60},
        {"name": "per_key", "key": "api_key", "limit": 10, "window": "1h"},
        {"name": "per_route", "key": "route", "limit": 10, "window": "1s"},
        {"name": "note_reads", "key": "principal", "limit": 5, "window": "1d", "routes": ["GET /notes/{id}"]}]})");
    REQUIRE(settings.policies.size() == 5);
    CHECK(settings.policies[0].window_seconds == 60);
    CHECK(settings.policies[2].window_seconds == 3600);
    CHECK(settings.policies[4].window_seconds == 86400);

    SECTION("an anonymous request: address and route only") {
        std::map<std::string, std::string> attributes{{"trellis.client_address", "203.0.113.7"},
                                                      {"trellis.route", "GET /notes/{id}"}};
        CHECK(names_and_keys(rate_limit::applicable(settings.policies, lookup_in(attributes))) ==
              std::vector<std::string>{"per_address=203.0.113.7", "per_route=GET /notes/{id}"});
    }
    SECTION("a bearer token's principal and an API key, as auth and api_keys set them") {
        std::map<std::string, std::string> attributes{
            {"trellis.client_address", "203.0.113.7"},
            {"trellis.route", "GET /notes/{id}"},
            {"auth.principal", R"({"id": "42", "name": "ada", "type": "api_key", "key": "tk_abc"})"},
            {"api_key.id", R"("tk_abc")"}};
        CHECK(names_and_keys(rate_limit::applicable(settings.policies, lookup_in(attributes))) ==
              std::vector<std::string>{"per_address=203.0.113.7", "per_user=42", "per_key=tk_abc",
                                       "per_route=GET /notes/{id}", "note_reads=42"});
    }
    SECTION("a route-restricted policy is skipped on other routes and when no route matched") {
        std::map<std::string, std::string> attributes{{"trellis.client_address", "198.51.100.1"},
                                                      {"trellis.route", "POST /notes"},
                                                      {"auth.principal", R"({"id": 7, "type": "user"})"}};
        CHECK(names_and_keys(rate_limit::applicable(settings.policies, lookup_in(attributes))) ==
              std::vector<std::string>{"per_address=198.51.100.1", "per_user=7", "per_route=POST /notes"});
        attributes.erase("trellis.route");
        CHECK(names_and_keys(rate_limit::applicable(settings.policies, lookup_in(attributes))) ==
              std::vector<std::string>{"per_address=198.51.100.1", "per_user=7"});
    }
    SECTION("a principal without an id, or not JSON, counts as no principal") {
        std::map<std::string, std::string> attributes{{"auth.principal", R"({"name": "x"})"}, {"api_key.id", "\"\""}};
        CHECK(rate_limit::applicable(settings.policies, lookup_in(attributes)).empty());
        attributes["auth.principal"] = "not json";
        CHECK(rate_limit::applicable(settings.policies, lookup_in(attributes)).empty());
    }
}

TEST_CASE("settings refuse what the schema cannot say", "[rate_limit][unit]") {
    CHECK_THROWS_WITH(settings_from(R"({"policies": [{"name": "a", "key": "route", "limit": 1, "window": 1},
                                                    {"name": "a", "key": "route", "limit": 2, "window": 1}]})"),
                      Contains("'a' is used twice"));
    CHECK_THROWS_WITH(settings_from(R"({"policies": [{"name": "a", "key": "user", "limit": 1, "window": 1}]})"),
                      Contains("unknown key 'user'"));
    CHECK_THROWS_WITH(settings_from(R"({"policies": [{"name": "a", "key": "route", "limit": 0, "window": 1}]})"),
                      Contains("at least 1"));
    CHECK_THROWS_WITH(settings_from(R"({"policies": [{"name": "a", "key": "route", "limit": 1, "window": "5w"}]})"),
                      Contains("expected a window such as"));
    CHECK_THROWS_WITH(settings_from(R"({"policies": [{"name": "a", "key": "route", "limit": 2000000, "window": 1}]})"),
                      Contains("per microsecond"));
    CHECK_THROWS_WITH(settings_from(R"({"policies": [{"name": "a", "key": "route", "limit": 1, "window": "400d"}]})"),
                      Contains("longer than 366 days"));
    CHECK_THROWS_WITH(settings_from(R"({"policies": [{"name": "a", "key": "route", "limit": 1, "window": "366d",
                                                      "burst": 1000000}]})"),
                      Contains("at most 35 years"));
}

TEST_CASE("GCRA allows the limit at once, then one request per interval", "[rate_limit][unit]") {
    const auto settings = settings_from(R"({"policies": [{"name": "p", "key": "route", "limit": 4, "window": 2}]})");
    const rate_limit::Policy* p = &settings.policies[0];
    CHECK(p->interval_us() == kSecond / 2);
    std::int64_t tat = 0;
    const std::int64_t t0 = 1000 * kSecond;
    for (int i = 0; i < 4; ++i) {
        auto d = rate_limit::decide(t0, {p}, {tat});
        REQUIRE(d.allowed);
        CHECK(d.outcomes[0].remaining == 3 - i);
        tat = d.new_tats[0];
    }
    auto refused = rate_limit::decide(t0, {p}, {tat});
    CHECK_FALSE(refused.allowed);
    CHECK(refused.outcomes[0].remaining == 0);
    CHECK(refused.outcomes[0].retry_after_us == kSecond / 2);
    CHECK(rate_limit::retry_after_seconds(refused) == 1);
    CHECK(refused.new_tats.empty());  // nothing to store: a refused request consumes nothing
    // Half a second later exactly one more fits.
    auto later = rate_limit::decide(t0 + kSecond / 2, {p}, {tat});
    CHECK(later.allowed);
    CHECK(later.outcomes[0].remaining == 0);
    CHECK_FALSE(rate_limit::decide(t0 + kSecond / 2, {p}, {later.new_tats[0]}).allowed);
    // After the whole window, the whole burst is back.
    auto full = rate_limit::decide(t0 + 10 * kSecond, {p}, {later.new_tats[0]});
    CHECK(full.outcomes[0].remaining == 3);
}

TEST_CASE("a request refused by one policy consumes from none", "[rate_limit][unit]") {
    const auto settings = settings_from(R"({"policies": [
        {"name": "wide", "key": "route", "limit": 100, "window": 60},
        {"name": "narrow", "key": "route", "limit": 1, "window": 60}]})");
    std::vector<const rate_limit::Policy*> both{&settings.policies[0], &settings.policies[1]};
    const std::int64_t now = 50 * kSecond;
    auto first = rate_limit::decide(now, both, {0, 0});
    REQUIRE(first.allowed);
    auto second = rate_limit::decide(now, both, first.new_tats);
    CHECK_FALSE(second.allowed);
    CHECK(second.outcomes[0].allowed);
    CHECK(second.outcomes[0].remaining == 99);  // wide was not charged for the refused request
    CHECK_FALSE(second.outcomes[1].allowed);
    CHECK(rate_limit::retry_after_seconds(second) == 60);
}

TEST_CASE("RateLimit-Policy and RateLimit are structured-field lists of draft -11", "[rate_limit][unit]") {
    const auto settings = settings_from(R"({"policies": [
        {"name": "per_address", "key": "client_address", "limit": 100, "window": 60},
        {"name": "per_route", "key": "route", "limit": 2, "window": 10, "advertise": true},
        {"name": "hidden", "key": "route", "limit": 2, "window": 10}]})");
    CHECK_FALSE(settings.policies[2].advertise);  // a route budget is not shown unless asked for
    std::vector<rate_limit::Applicable> list{
        {&settings.policies[0], "a"}, {&settings.policies[1], "r"}, {&settings.policies[2], "r"}};
    CHECK(rate_limit::policy_field(list) == R"("per_address";q=100;w=60, "per_route";q=2;w=10)");
    const std::int64_t now = 7 * kSecond;
    auto d = rate_limit::decide(now, rate_limit::policies_of(list), {0, 0, 0});
    // per_address: 99 left, all back in 0.6 s -> t=1; per_route: 1 left, all back in 5 s.
    CHECK(rate_limit::limit_field(list, d) == R"("per_address";r=99;t=1, "per_route";r=1;t=5)");
    d = rate_limit::decide(now, rate_limit::policies_of(list), d.new_tats);
    CHECK(rate_limit::limit_field(list, d) == R"("per_address";r=98;t=2, "per_route";r=0;t=5)");
    d = rate_limit::decide(now, rate_limit::policies_of(list), d.new_tats);
    CHECK_FALSE(d.allowed);
    // Refused (by per_route and hidden): only the advertised policy that refused.
    CHECK(rate_limit::limit_field(list, d) == R"("per_route";r=0;t=5)");
    CHECK(rate_limit::retry_after_seconds(d) == 5);
    // Nothing advertised: empty values, which remove the fields.
    const std::vector<rate_limit::Applicable> hidden{{&settings.policies[2], "r"}};
    CHECK(rate_limit::policy_field(hidden).empty());
    CHECK(rate_limit::limit_field(hidden, rate_limit::decide(now, {&settings.policies[2]}, {0})).empty());
}

TEST_CASE("the memory backend sweeps expired partitions and caps live ones", "[rate_limit][unit]") {
    const auto settings =
        settings_from(R"({"policies": [{"name": "p", "key": "client_address", "limit": 1, "window": 1}]})");
    rate_limit::MemoryStore store(3200);  // 100 per shard
    std::int64_t now = 100 * kSecond;
    // 20 000 distinct clients over 20 s: the live ones of the last second at most, never all.
    std::size_t most = 0;
    for (int i = 0; i < 20000; ++i) {
        if (i % 1000 == 0) now += kSecond + 1;
        auto d = store.check({{&settings.policies[0], "client-" + std::to_string(i)}}, now);
        REQUIRE(d);
        CHECK(d->allowed);
        most = std::max(most, store.size());
    }
    CHECK(most <= 3200);
    CHECK(store.size() <= 1000);
    // Within one second, more live clients than the cap: the overflow is refused as a backend error.
    std::size_t full = 0;
    now += 5 * kSecond;
    for (int i = 0; i < 5000; ++i)
        if (!store.check({{&settings.policies[0], "burst-" + std::to_string(i)}}, now)) ++full;
    CHECK(full > 0);
    CHECK(store.size() <= 3200);
    // A known partition is still decided while its shard is full.
    auto again = store.check({{&settings.policies[0], "burst-0"}}, now);
    REQUIRE(again);
    CHECK_FALSE(again->allowed);
}

// ---------------------------------------------------------------------------------------
// The memory backend over real HTTP (in-process host, real engine and sockets).

namespace {

std::string memory_config(const std::string& policies, const std::string& extra = "") {
    return config_yaml("  hello: {}\n  rate_limit:\n    config:\n      policies:\n" + policies + extra,
                       "middleware: [rate_limit]\nserver:\n  trusted_proxies: [127.0.0.1/32]\n");
}

}  // namespace

TEST_CASE("over the limit: 429 problem+json with Retry-After and RateLimit fields - the budget refills",
          "[rate_limit][memory]") {
    TestServer server(memory_config("        - {name: per_address, key: client_address, limit: 3, window: 1s}\n"));
    for (int i = 0; i < 3; ++i) {
        auto r = server.get("/hello/x");
        REQUIRE(r.status == 200);
        CHECK(r.header("RateLimit-Policy") == "\"per_address\";q=3;w=1");
        CHECK(r.header("RateLimit").value_or("").rfind("\"per_address\";r=" + std::to_string(2 - i) + ";t=", 0) == 0);
        CHECK_FALSE(r.header("Retry-After"));
    }
    auto refused = server.get("/hello/x");
    REQUIRE(refused.status == 429);
    CHECK(refused.header("Content-Type") == "application/problem+json");
    CHECK(refused.header("Retry-After") == "1");
    CHECK(refused.header("RateLimit-Policy") == "\"per_address\";q=3;w=1");
    CHECK(refused.header("RateLimit") == "\"per_address\";r=0;t=1");
    auto problem = refused.json();
    CHECK(problem["status"] == 429);
    CHECK(problem["code"] == "rate_limited");
    CHECK(problem["violated-policies"] == nlohmann::json::array({"per_address"}));
    CHECK(problem["instance"] == "/hello/x");
    CHECK(problem["retry_after"] == 1);

    std::this_thread::sleep_for(1100ms);  // the whole window: all three back
    for (int i = 0; i < 3; ++i) CHECK(server.get("/hello/x").status == 200);
    CHECK(server.get("/hello/x").status == 429);
}

TEST_CASE("per-address budgets are separate - a per-route budget is one across clients", "[rate_limit][memory]") {
    SECTION("client_address") {
        TestServer server(memory_config("        - {name: per_address, key: client_address, limit: 2, window: 60}\n"));
        const test::Headers a{{"X-Forwarded-For", "203.0.113.1"}}, b{{"X-Forwarded-For", "203.0.113.2"}};
        CHECK(server.get("/hello/x", a).status == 200);
        CHECK(server.get("/hello/x", a).status == 200);
        CHECK(server.get("/hello/x", a).status == 429);
        CHECK(server.get("/hello/y", b).status == 200);  // another client, its own budget
        CHECK(server.get("/hello/y", b).status == 200);
        CHECK(server.get("/hello/y", b).status == 429);
    }
    SECTION("route: one budget for GET /hello/{name}, whoever asks and whatever the name") {
        TestServer server(memory_config("        - {name: per_route, key: route, limit: 2, window: 60}\n"));
        auto first = server.get("/hello/x", {{"X-Forwarded-For", "203.0.113.1"}});
        CHECK(first.status == 200);
        // A shared budget is not advertised by default: it would show everyone the route's traffic.
        CHECK_FALSE(first.header("RateLimit-Policy"));
        CHECK_FALSE(first.header("RateLimit"));
        CHECK(server.get("/hello/y", {{"X-Forwarded-For", "203.0.113.2"}}).status == 200);
        auto r = server.get("/hello/z", {{"X-Forwarded-For", "203.0.113.3"}});
        CHECK(r.status == 429);
        CHECK(r.header("Retry-After") == "30");
        CHECK_FALSE(r.header("RateLimit"));
        CHECK(r.json()["violated-policies"] == nlohmann::json::array({"per_route"}));
        // No route matched: a route policy has no key, so a 404 is not limited by it.
        for (int i = 0; i < 4; ++i) CHECK(server.get("/nowhere").status == 404);
    }
    SECTION("routes: a policy limited to other routes does not apply") {
        TestServer server(memory_config(
            "        - {name: writes, key: client_address, limit: 1, window: 60, routes: [\"POST /hello/{name}\"]}\n"
            "        - {name: reads, key: client_address, limit: 3, window: 60, routes: [\"GET /hello/{name}\"]}\n"));
        auto r = server.get("/hello/x");
        CHECK(r.header("RateLimit-Policy") == "\"reads\";q=3;w=60");
        CHECK(server.get("/hello/x").status == 200);
        CHECK(server.get("/hello/x").status == 200);
        CHECK(server.get("/hello/x").json()["violated-policies"] == nlohmann::json::array({"reads"}));
    }
    SECTION("principal and api_key: skipped for anonymous requests (no auth.principal, no api_key.id)") {
        TestServer server(
            memory_config("        - {name: per_user, key: principal, limit: 1, window: 60}\n"
                          "        - {name: per_key, key: api_key, limit: 1, window: 60}\n"));
        for (int i = 0; i < 3; ++i) {
            auto r = server.get("/hello/x");
            CHECK(r.status == 200);
            CHECK_FALSE(r.header("RateLimit"));
        }
    }
}

TEST_CASE("with the memory backend the middleware is non-blocking and the chain stays inline", "[rate_limit][memory]") {
    TestServer server(memory_config("        - {name: per_address, key: client_address, limit: 1000, window: 60}\n"));
    REQUIRE(server.runtime().targets().size() == 1);
    CHECK(server.runtime().targets()[0].runs_inline);
    const auto before = server.pipeline().counts();
    for (int i = 0; i < 5; ++i) REQUIRE(server.get("/hello/x").status == 200);
    const auto after = server.pipeline().counts();
    CHECK(after.inline_runs - before.inline_runs == 5);
    CHECK(after.worker_runs == before.worker_runs);

    // The Redis backend blocks (a network round trip): its chain goes to the worker pool.
    TestServer redis(
        config_yaml("  hello: {}\n  rate_limit:\n    config: {backend: redis, policies: "
                    "[{name: p, key: route, limit: 1, window: 1}]}\n",
                    "middleware: [rate_limit.limit]\n"));
    REQUIRE(redis.runtime().targets().size() == 1);
    CHECK_FALSE(redis.runtime().targets()[0].runs_inline);
}

TEST_CASE("without policies nothing is limited and no field is sent", "[rate_limit][memory]") {
    TestServer server(config_yaml("  hello: {}\n  rate_limit: {}\n", "middleware: [rate_limit]\n"));
    for (int i = 0; i < 20; ++i) {
        auto r = server.get("/hello/x");
        REQUIRE(r.status == 200);
        CHECK_FALSE(r.header("RateLimit-Policy"));
    }
}

TEST_CASE("headers: false keeps the fields off allowed answers - a 429 still carries them", "[rate_limit][memory]") {
    TestServer server(memory_config("        - {name: per_address, key: client_address, limit: 1, window: 60}\n",
                                    "      headers: false\n"));
    auto allowed = server.get("/hello/x");
    CHECK(allowed.status == 200);
    CHECK_FALSE(allowed.header("RateLimit"));
    CHECK_FALSE(allowed.header("RateLimit-Policy"));
    auto refused = server.get("/hello/x");
    CHECK(refused.status == 429);
    CHECK(refused.header("RateLimit-Policy") == "\"per_address\";q=1;w=60");
    CHECK(refused.header("RateLimit") == "\"per_address\";r=0;t=60");
    CHECK(refused.header("Retry-After") == "60");
}

TEST_CASE("per principal with the real auth plugin: each signed-in user has a budget, anonymous calls none",
          "[rate_limit][memory][auth]") {
    TempDir keys;
    test::TestDatabase db;
    const auto key = (keys.path() / "k1.pem").string();
    Process genpkey({"/usr/bin/openssl", "genpkey", "-algorithm", "ed25519", "-out", key}, test::minimal_environment(),
                    keys.path() / "openssl.log");
    REQUIRE(genpkey.wait(30s) == 0);
    const auto admin = keys.write("admin.token", "admin-token-0123456789abcdef\n");
    TestServer server(config_yaml("  auth:\n    config:\n      keys: [{kid: k1, private_key: \"" + key +
                                      "\"}]\n      admin_token_file: \"" + admin.string() +
                                      "\"\n      password: {opslimit: 1, memlimit_kib: 8192}\n"
                                      "  hello: {}\n  rate_limit:\n    config:\n      policies:\n"
                                      "        - {name: per_user, key: principal, limit: 2, window: 1h}\n",
                                  "middleware: [auth, rate_limit]\n" + db.yaml()));
    const auto* auth = find_report(server.runtime(), "auth");
    REQUIRE(auth);
    INFO(auth->reason);
    REQUIRE(auth->status == runtime::PluginStatus::loaded);

    const test::Headers json_type{{"Content-Type", "application/json"}};
    auto token_of = [&](const std::string& name) {
        auto made = server.request(
            "POST", "/auth/users", nlohmann::json{{"name", name}, {"password", name + "'s long password"}}.dump(),
            {{"Content-Type", "application/json"}, {"X-Admin-Token", "admin-token-0123456789abcdef"}});
        INFO(made.body);
        REQUIRE(made.status == 201);
        auto login =
            server.request("POST", "/auth/login",
                           nlohmann::json{{"name", name}, {"password", name + "'s long password"}}.dump(), json_type);
        INFO(login.body);
        REQUIRE(login.status == 200);
        return login.json()["access_token"].get<std::string>();
    };
    const test::Headers alice{{"Authorization", "Bearer " + token_of("alice")}};
    const test::Headers bob{{"Authorization", "Bearer " + token_of("bob")}};

    CHECK(server.get("/hello/x", alice).status == 200);
    CHECK(server.get("/hello/x", alice).status == 200);
    auto refused = server.get("/hello/x", alice);
    CHECK(refused.status == 429);
    CHECK(refused.header("RateLimit") == "\"per_user\";r=0;t=1800");
    auto other = server.get("/hello/x", bob);  // same address, another principal: its own budget
    CHECK(other.status == 200);
    CHECK(other.header("RateLimit") == "\"per_user\";r=1;t=1800");
    for (int i = 0; i < 4; ++i) CHECK(server.get("/hello/x").status == 200);  // anonymous: the policy is skipped
}

TEST_CASE("per API key and per principal with the real api_keys plugin", "[rate_limit][memory][api_keys]") {
    TempDir files;
    test::TestDatabase db;
    const std::string bootstrap = "trk_0123456789abcdef_Qx7vN2pL9sK4mR8tW1yZ3bC6dF0gH5jE2aU7iO9eX4c";
    const auto bootstrap_file = files.write("bootstrap.key", bootstrap + "\n");
    std::filesystem::permissions(bootstrap_file,
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    // Only GET /hello/{name} is limited, so that creating keys draws on no budget.
    TestServer server(config_yaml("  api_keys:\n    config:\n      bootstrap_key_file: \"" + bootstrap_file.string() +
                                      "\"\n      bootstrap_scopes: [notes.read]\n"
                                      "  hello: {}\n  rate_limit:\n    config:\n      policies:\n"
                                      "        - {name: per_key, key: api_key, limit: 2, window: 1h, routes: [\"GET "
                                      "/hello/{name}\"]}\n"
                                      "        - {name: per_user, key: principal, limit: 3, window: 1h, routes: [\"GET "
                                      "/hello/{name}\"]}\n",
                                  "middleware: [api_keys, rate_limit]\n" + db.yaml()));
    const auto* report = find_report(server.runtime(), "api_keys");
    REQUIRE(report);
    INFO(report->reason);
    REQUIRE(report->status == runtime::PluginStatus::loaded);
    auto create = [&] {
        auto r = server.request(
            "POST", "/api_keys/keys",
            nlohmann::json{
                {"name", "k"}, {"scopes", {"notes.read"}}, {"principal", {{"id", "carol"}, {"name", "Carol"}}}}
                .dump(),
            {{"Content-Type", "application/json"}, {"X-API-Key", bootstrap}});
        INFO(r.body);
        REQUIRE(r.status == 201);
        return r.json()["key"].get<std::string>();
    };
    const std::string first = create(), second = create();

    CHECK(server.get("/hello/x", {{"X-API-Key", first}}).status == 200);
    CHECK(server.get("/hello/x", {{"X-API-Key", first}}).status == 200);
    auto per_key = server.get("/hello/x", {{"X-API-Key", first}});
    CHECK(per_key.status == 429);
    CHECK(per_key.json()["violated-policies"] == nlohmann::json::array({"per_key"}));
    CHECK(per_key.header("RateLimit-Policy") == "\"per_key\";q=2;w=3600, \"per_user\";q=3;w=3600");
    CHECK(per_key.header("RateLimit") == "\"per_key\";r=0;t=1800");  // on a 429: the policies that refused
    CHECK(per_key.header("Retry-After") == "1800");
    // Carol's second key has its own key budget but shares her principal budget (2 of 3 used).
    auto other_key = server.get("/hello/x", {{"X-API-Key", second}});
    CHECK(other_key.status == 200);
    CHECK(other_key.header("RateLimit").value_or("").find("\"per_user\";r=0;") != std::string::npos);
    auto per_user = server.get("/hello/x", {{"X-API-Key", second}});
    CHECK(per_user.status == 429);
    CHECK(per_user.json()["violated-policies"] == nlohmann::json::array({"per_user"}));
}

TEST_CASE("a bad rate_limit config is refused at load with a message naming what is wrong", "[rate_limit][config]") {
    struct Case {
        std::string config, expected;
    };
    const std::vector<Case> cases{
        {"{policies: [{name: p, key: user, limit: 1, window: 1}]}",
         "config.policies.0.key': Failed to match against any enum values"},
        {"{policies: [{name: p, key: route, limit: 0, window: 1}]}",
         "config.policies.0.limit': Expected number greater than or equal to 1"},
        {"{policies: [{name: p, key: route, limit: 5, window: 0}]}",
         "config.policies.0.window': Expected number greater than or equal to 1"},
        {"{policies: [{name: p, key: route, limit: 5}]}", "config.policies.0.window': is required"},
        {"{backend: memcached}", "config.backend': Failed to match against any enum values"},
        {"{policies: [{name: p, key: route, limit: 5, window: 2w}]}",
         "config.policies.0.window': Failed to match regex"},
        {"{policies: [{name: p, key: route, limit: 1, window: 1}, {name: p, key: route, limit: 2, window: 1}]}",
         "'p' is used twice"},
        {"{backend: redis, redis: {password_file: /nonexistent/redis.password}}", "cannot read redis.password_file"},
    };
    for (const auto& c : cases) {
        INFO(c.config);
        TestServer server(config_yaml("  rate_limit:\n    config: " + c.config + "\n"));
        const auto* report = find_report(server.runtime(), "rate_limit");
        REQUIRE(report);
        CHECK(report->status == runtime::PluginStatus::failed);
        CHECK_THAT(report->reason, Contains(c.expected));
    }
}

// ---------------------------------------------------------------------------------------
// The Redis backend: a real redis-server, real `trellis serve` processes.

namespace {

// RESP over a plain socket: enough for PING, INFO, CONFIG RESETSTAT, SCRIPT FLUSH, KEYS.
class Resp {
public:
    explicit Resp(std::uint16_t port) : socket_(Poco::Net::SocketAddress("127.0.0.1", port)) {
        socket_.setReceiveTimeout(Poco::Timespan(5, 0));
    }
    // The reply: a status or error line with its first byte, an integer, or a bulk string.
    std::string command(const std::vector<std::string>& args) {
        std::string out = "*" + std::to_string(args.size()) + "\r\n";
        for (const auto& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
        socket_.sendBytes(out.data(), static_cast<int>(out.size()));
        const std::string head = line();
        if (head.empty()) throw std::runtime_error("empty reply from redis");
        if (head[0] == '$') {
            const long size = std::stol(head.substr(1));
            if (size < 0) return {};
            std::string body = take(static_cast<std::size_t>(size) + 2);
            return body.substr(0, body.size() - 2);
        }
        if (head[0] == '*') {  // an array of bulk strings (KEYS): joined by newlines
            const long count = std::stol(head.substr(1));
            std::string all;
            for (long i = 0; i < count; ++i) {
                const long size = std::stol(line().substr(1));
                std::string item = take(static_cast<std::size_t>(size) + 2);
                all += item.substr(0, item.size() - 2) + "\n";
            }
            return all;
        }
        return head;
    }

private:
    std::string take(std::size_t n) {
        while (buffer_.size() < n) fill();
        std::string out = buffer_.substr(0, n);
        buffer_.erase(0, n);
        return out;
    }
    std::string line() {
        std::size_t end;
        while ((end = buffer_.find("\r\n")) == std::string::npos) fill();
        std::string out = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        return out;
    }
    void fill() {
        char chunk[4096];
        const int n = socket_.receiveBytes(chunk, sizeof chunk);
        if (n <= 0) throw std::runtime_error("redis closed the connection");
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
    Poco::Net::StreamSocket socket_;
    std::string buffer_;
};

// redis-server in a temporary folder on a free loopback port, stopped by its PID.
class RedisServer {
public:
    explicit RedisServer(const std::string& password = "")
        : port_(test::free_port()),
          process_(arguments(port_, dir_.path().string(), password), test::minimal_environment(),
                   dir_.path() / "redis.log") {
        for (int i = 0; i < 100; ++i) {
            try {
                Resp client(port_);
                if (!password.empty()) client.command({"AUTH", password});
                if (client.command({"PING"}) == "+PONG") return;
            } catch (...) {
            }
            std::this_thread::sleep_for(50ms);
        }
        FAIL("redis-server did not start: " << process_.output());
    }
    ~RedisServer() { stop(); }
    void stop() {
        process_.signal(SIGTERM);
        process_.wait(10s);
    }
    std::uint16_t port() const { return port_; }
    void signal(int number) const { process_.signal(number); }
    // calls of one command from INFO commandstats ("evalsha"), 0 when never called.
    long calls(const std::string& name) {
        const std::string info = Resp(port_).command({"INFO", "commandstats"});
        std::smatch m;
        if (std::regex_search(info, m, std::regex("cmdstat_" + name + ":calls=([0-9]+)"))) return std::stol(m[1]);
        return 0;
    }

private:
    static std::vector<std::string> arguments(std::uint16_t port, const std::string& dir, const std::string& password) {
        std::vector<std::string> argv{"/usr/bin/redis-server",
                                      "--port",
                                      std::to_string(port),
                                      "--bind",
                                      "127.0.0.1",
                                      "--save",
                                      "",
                                      "--appendonly",
                                      "no",
                                      "--dir",
                                      dir};
        if (!password.empty()) argv.insert(argv.end(), {"--requirepass", password});
        return argv;
    }

    TempDir dir_;
    std::uint16_t port_;
    Process process_;
};

// A real `trellis serve` on its own ports with hello and rate_limit (backend redis).
class Trellis {
public:
    Trellis(std::uint16_t redis_port, const std::string& policies, const std::string& on_error = "open",
            const std::string& redis_extra = "")
        : port_(test::free_port()), admin_port_(test::free_port()) {
        dir_.write("trellis.yaml", "server:\n  data_dir: .\n  listen: 127.0.0.1:" + std::to_string(port_) +
                                       "\n  admin_listen: 127.0.0.1:" + std::to_string(admin_port_) +
                                       "\nmiddleware: [rate_limit]\n" +
                                       config_yaml("  hello: {}\n  rate_limit:\n    config:\n      backend: redis\n"
                                                   "      on_backend_error: " +
                                                   on_error + "\n      redis: {port: " + std::to_string(redis_port) +
                                                   ", timeout_ms: 200, key_prefix: \"test:\"" + redis_extra +
                                                   "}\n"
                                                   "      policies:\n" +
                                                   policies));
        process_ = std::make_unique<Process>(
            std::vector<std::string>{TRELLIS_TEST_BINARY, "serve", "-c", (dir_.path() / "trellis.yaml").string()},
            test::minimal_environment(), dir_.path() / "serve.log");
        if (!test::wait_until_listening(port_, 15s)) FAIL("trellis did not start: " << process_->output());
    }
    ~Trellis() {
        process_->signal(SIGTERM);
        process_->wait(20s);
    }
    test::HttpResponse get(const std::string& target) const { return http_request(port_, "GET", target); }
    std::uint16_t admin_port() const { return admin_port_; }
    std::string output() const { return process_->output(); }
    // The log once it holds `text` (it reaches the file a little after the request), or as it is after 5 s.
    std::string output_with(const std::string& text) const {
        std::string out = output();
        for (int i = 0; i < 50 && out.find(text) == std::string::npos; ++i) {
            std::this_thread::sleep_for(100ms);
            out = output();
        }
        return out;
    }
    // A counter's value from /metrics on the admin listener (0 when not there yet).
    double metric(const std::string& series) const {
        const auto body = http_request(admin_port_, "GET", "/metrics").body;
        const auto at = body.find("\n" + series + " ");
        return at == std::string::npos ? 0.0 : std::stod(body.substr(at + series.size() + 2));
    }

private:
    TempDir dir_;
    std::uint16_t port_, admin_port_;
    std::unique_ptr<Process> process_;
};

}  // namespace

TEST_CASE("two Trellis processes on one Redis share one budget", "[rate_limit][redis]") {
    RedisServer redis;
    // 40 per hour: GCRA refills one request every 90 s, so the runs below see only the burst.
    const std::string policy = "        - {name: shared, key: route, limit: 40, window: 1h}\n";
    Trellis a(redis.port(), policy), b(redis.port(), policy);
    std::atomic<int> allowed{0}, refused{0}, other{0};
    auto offer = [&](const Trellis& server) {
        for (int i = 0; i < 120; ++i) {  // 3 x the limit from each instance
            const int status = server.get("/hello/x").status;
            (status == 200 ? allowed : status == 429 ? refused : other)++;
        }
    };
    std::thread ta(offer, std::cref(a)), tb(offer, std::cref(b));
    ta.join();
    tb.join();
    INFO(a.output() << b.output());
    CHECK(other == 0);
    CHECK(allowed >= 40);
    CHECK(allowed <= 42);  // the limit + 5 %
    CHECK(allowed + refused == 240);
    // Each instance saw refusals: they really drew on one budget.
    CHECK(a.get("/hello/x").status == 429);
    CHECK(b.get("/hello/x").status == 429);
}

TEST_CASE("one EVALSHA per request covers all of its policies - NOSCRIPT falls back to EVAL", "[rate_limit][redis]") {
    RedisServer redis;
    Trellis server(redis.port(),
                   "        - {name: per_address, key: client_address, limit: 5, window: 1h}\n"
                   "        - {name: per_route, key: route, limit: 1000, window: 1h}\n");
    REQUIRE(server.get("/hello/warm").status == 200);  // the script is loaded once per process
    REQUIRE(Resp(redis.port()).command({"CONFIG", "RESETSTAT"}) == "+OK");
    int statuses[600] = {};
    for (int i = 0; i < 20; ++i) ++statuses[server.get("/hello/x").status];
    CHECK(statuses[200] == 4);
    CHECK(statuses[429] == 16);
    CHECK(redis.calls("evalsha") == 20);  // allowed and refused alike: one round trip each
    CHECK(redis.calls("eval") == 0);
    // Both policies' partitions live in Redis under the key prefix, with an expiry.
    const std::string keys = Resp(redis.port()).command({"KEYS", "test:*"});
    CHECK_THAT(keys, Contains("test:per_address:127.0.0.1") && Contains("test:per_route:GET /hello/{name}"));
    CHECK(Resp(redis.port()).command({"PTTL", "test:per_route:GET /hello/{name}"}).rfind(":", 0) == 0);

    // Redis lost its scripts (a restart, SCRIPT FLUSH): EVAL once, then EVALSHA again.
    REQUIRE(Resp(redis.port()).command({"SCRIPT", "FLUSH"}) == "+OK");
    REQUIRE(Resp(redis.port()).command({"CONFIG", "RESETSTAT"}) == "+OK");
    CHECK(server.get("/hello/x").status == 429);
    CHECK(server.get("/hello/x").status == 429);
    CHECK(redis.calls("eval") == 1);
    CHECK(redis.calls("evalsha") == 2);
}

TEST_CASE("Redis stopped mid-run: fail open lets requests through and counts - fail closed answers 503",
          "[rate_limit][redis]") {
    RedisServer redis;
    const std::string policy = "        - {name: per_route, key: route, limit: 2, window: 1h, advertise: true}\n";
    Trellis open(redis.port(), policy, "open"), closed(redis.port(), policy, "closed");
    // Both share the budget while Redis is up.
    CHECK(open.get("/hello/x").status == 200);
    CHECK(closed.get("/hello/x").status == 200);
    CHECK(open.get("/hello/x").status == 429);
    CHECK(closed.get("/hello/x").status == 429);
    CHECK(http_request(open.admin_port(), "GET", "/readyz").status == 200);
    CHECK(http_request(closed.admin_port(), "GET", "/readyz").status == 200);
    CHECK(open.metric("rate_limit_rejected_total{policy=\"per_route\"}") == 1);

    redis.stop();
    for (int i = 0; i < 5; ++i) {
        auto r = open.get("/hello/x");
        CHECK(r.status == 200);
        CHECK_FALSE(r.header("RateLimit"));  // nothing decided: no fields
    }
    CHECK(open.metric("rate_limit_backend_errors_total") == 5);
    for (int i = 0; i < 3; ++i) {
        auto r = closed.get("/hello/x");
        REQUIRE(r.status == 503);
        CHECK(r.header("Content-Type") == "application/problem+json");
        CHECK(r.header("Retry-After") == "1");
        CHECK(r.json()["code"] == "rate_limit_unavailable");
    }
    CHECK(closed.metric("rate_limit_backend_errors_total") == 3);
    // Readiness: failing closed the instance cannot serve and says so; failing open it can.
    // (the host probes readiness in the background, once a second)
    auto ready_closed = http_request(closed.admin_port(), "GET", "/readyz");
    for (int i = 0; i < 40 && ready_closed.status == 200; ++i) {
        std::this_thread::sleep_for(100ms);
        ready_closed = http_request(closed.admin_port(), "GET", "/readyz");
    }
    CHECK(ready_closed.status == 503);
    CHECK_THAT(ready_closed.body, Contains("Redis"));
    CHECK(http_request(open.admin_port(), "GET", "/readyz").status == 200);
    CHECK_THAT(open.output_with("backend error, failing open"), Contains("backend error, failing open"));
}

TEST_CASE("a Redis that stops answering costs about redis.timeout_ms - the pool reconnects afterwards",
          "[rate_limit][redis]") {
    RedisServer redis;
    Trellis server(redis.port(), "        - {name: per_address, key: client_address, limit: 5, window: 1h}\n");
    CHECK(server.get("/hello/x").status == 200);
    CHECK(server.get("/hello/x").status == 200);

    redis.signal(SIGSTOP);  // accepts connections (the kernel does), answers nothing
    const auto start = std::chrono::steady_clock::now();
    auto r = server.get("/hello/x");
    const auto took = std::chrono::steady_clock::now() - start;
    redis.signal(SIGCONT);
    CHECK(r.status == 200);  // failing open
    CHECK_FALSE(r.header("RateLimit"));
    CHECK(took >= 150ms);  // it did wait for Redis (timeout_ms 200)...
    CHECK(took < 1500ms);  // ...but not for long
    CHECK(server.metric("rate_limit_backend_errors_total") == 1);

    // Redis answers again: the broken connection was dropped, a new one decides. (The
    // timed-out EVALSHA may still have run once Redis resumed: 1 or 2 left.)
    std::this_thread::sleep_for(600ms);  // past the reconnect pause
    auto back = server.get("/hello/x");
    CHECK(back.status == 200);
    CHECK_THAT(back.header("RateLimit").value_or(""),
               Contains("\"per_address\";r=1;t=") || Contains("\"per_address\";r=2;t="));
    CHECK(server.metric("rate_limit_backend_errors_total") == 1);
}

TEST_CASE("redis.password_file authenticates - a wrong password is a backend error", "[rate_limit][redis]") {
    RedisServer redis("s3cret-redis");
    TempDir secrets;
    const auto good = secrets.write("good", "s3cret-redis\n");
    const auto bad = secrets.write("bad", "not-the-password-42\n");
    Trellis ok(redis.port(), "        - {name: p, key: route, limit: 1, window: 1h}\n", "closed",
               ", password_file: \"" + good.string() + "\"");
    CHECK(ok.get("/hello/x").status == 200);
    CHECK(ok.get("/hello/x").status == 429);
    Trellis refused(redis.port(), "        - {name: p, key: route, limit: 1, window: 1h}\n", "closed",
                    ", password_file: \"" + bad.string() + "\"");
    CHECK(refused.get("/hello/x").status == 503);
    // The reason is logged, never the password.
    CHECK_THAT(refused.output_with("AUTH refused"), Contains("AUTH refused"));
    CHECK(refused.output().find("not-the-password-42") == std::string::npos);
    CHECK(ok.output().find("s3cret") == std::string::npos);
}
