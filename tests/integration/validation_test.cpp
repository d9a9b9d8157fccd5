// Request validation by the host (ABI 1.4): the SDK fixture's validated routes declare body,
// query and path schemas; the host answers requests that do not match them and the handler,
// which counts its calls, never runs for those.
#include <catch2/catch.hpp>

#include <string>

#include "support/test_server.hpp"

using namespace trellis;
using namespace trellis::test;
using Catch::Matchers::Contains;

namespace {

const Headers json_type{{"Content-Type", "application/json"}};
// GET /alpha/items requires the scope items:read; the fixture's `scopes` middleware grants it.
const Headers reader{{"X-Test-Scopes", "items:read"}};

int handler_calls(const TestServer& server) { return server.get("/alpha/validated-calls").json()["calls"].get<int>(); }

TestServer validated_server(const std::string& alpha_extra = {}) {
    return TestServer(
        config_yaml("  alpha:\n    config: {validation: true, middleware: [deny, scopes]}\n"
                    "    middleware: [alpha.deny, alpha.scopes]\n" +
                    alpha_extra));
}

// The `field` of every listed error.
std::vector<std::string> fields(const HttpResponse& response) {
    std::vector<std::string> out;
    const auto doc = response.json();
    for (const auto& error : doc["errors"]) out.push_back(error["field"].get<std::string>());
    return out;
}

}  // namespace

TEST_CASE("a body that violates its route's schema gets 422 with JSON pointers and the handler never runs",
          "[validation]") {
    TestServer server = validated_server();
    auto ok = server.request("POST", "/alpha/items", R"({"name": "abc", "count": 2, "when": "2026-11-26"})", json_type);
    REQUIRE(ok.status == 201);
    CHECK(ok.json()["calls"] == 1);

    auto bad = server.request("POST", "/alpha/items",
                              R"({"name": "ABC", "count": -1, "tags": ["ok", "too long"], "when": "2026-13-01",
                                  "extra": 1})",
                              json_type);
    CHECK(bad.status == 422);
    CHECK(bad.header("Content-Type") == "application/problem+json");
    auto doc = bad.json();
    CHECK(doc["code"] == "validation_failed");
    auto listed = fields(bad);
    CHECK_THAT(bad.body, Contains("/name") && Contains("/count") && Contains("/tags/1") && Contains("/when"));
    CHECK(std::find(listed.begin(), listed.end(), "/name") != listed.end());
    CHECK(std::find(listed.begin(), listed.end(), "/tags/1") != listed.end());

    auto missing = server.request("POST", "/alpha/items", R"({"count": 1})", json_type);
    CHECK(missing.status == 422);
    CHECK_THAT(missing.body, Contains("name"));
    CHECK(server.request("POST", "/alpha/items", R"(["name"])", json_type).status == 422);
    // Not JSON, not declared as JSON, nested too deep: the SDK's codes, from the host.
    auto not_json = server.request("POST", "/alpha/items", "{name", json_type);
    CHECK(not_json.status == 400);
    CHECK(not_json.json()["code"] == "invalid_json");
    auto form = server.request("POST", "/alpha/items", "name=abc", {{"Content-Type", "application/x-www-form-urlencoded"}});
    CHECK(form.status == 415);
    CHECK(server.request("POST", "/alpha/items", std::string(100, '[') + std::string(100, ']'), json_type).status == 400);
    CHECK(handler_calls(server) == 1);
}

TEST_CASE("validation errors are capped at 20 and the rest counted", "[validation]") {
    TestServer server = validated_server();
    std::string tags = "[";
    for (int i = 0; i < 30; ++i) tags += std::string(i ? "," : "") + "\"too long " + std::to_string(i) + "\"";
    tags += "]";
    auto bad = server.request("POST", "/alpha/items", R"({"name": "abc", "tags": )" + tags + "}", json_type);
    REQUIRE(bad.status == 422);
    CHECK(bad.json()["errors"].size() == 20);
    CHECK(bad.json()["errors_omitted"] == 10);
    CHECK(handler_calls(server) == 0);
}

TEST_CASE("a long string under a pattern is checked without exhausting the stack", "[validation]") {
    // std::regex (valijson's own engine) overflows an 8 MiB stack on 50 000 characters here.
    TestServer server = validated_server();
    auto good = server.request("POST", "/alpha/items", R"({"name": ")" + std::string(99999, 'a') + R"("})", json_type);
    CHECK(good.status == 201);
    auto bad = server.request("POST", "/alpha/items", R"({"name": ")" + std::string(99999, 'a') + R"(B"})", json_type);
    CHECK(bad.status == 422);
    CHECK_THAT(bad.body, Contains("pattern"));
}

TEST_CASE("query parameters are converted by their schema's types and a bad query gets 400 invalid_query",
          "[validation]") {
    TestServer server = validated_server();
    auto ok = server.get("/alpha/items?limit=10&ratio=0.5&flag=true&tag=a&tag=b&q=x", reader);
    REQUIRE(ok.status == 200);
    CHECK(ok.json()["query"]["tag"].size() == 2);

    auto bad = server.get("/alpha/items?limit=0&ratio=abc&flag=yes&tag=c&unknown=1&q=x&q=y", reader);
    CHECK(bad.status == 400);
    CHECK(bad.json()["code"] == "invalid_query");
    auto listed = fields(bad);
    for (const char* field : {"/limit", "/ratio", "/flag", "/tag/0", "/q", "/unknown"})
        CHECK(std::find(listed.begin(), listed.end(), field) != listed.end());
    CHECK_THAT(bad.body, Contains("must be given at most once") && Contains("not a listed property"));
    CHECK(server.get("/alpha/items?limit=12abc", reader).status == 400);
    CHECK(server.get("/alpha/items?limit=99999999999999999999999", reader).status == 400);
    CHECK(handler_calls(server) == 1);
}

TEST_CASE("a path parameter that violates its schema gets 404", "[validation]") {
    TestServer server = validated_server();
    CHECK(server.get("/alpha/items/7").status == 200);
    for (const char* target : {"/alpha/items/0", "/alpha/items/seven", "/alpha/items/-3"}) {
        auto r = server.get(target);
        INFO(target);
        CHECK(r.status == 404);
        CHECK(r.json()["code"] == "not_found");
        CHECK(fields(r) == std::vector<std::string>{"/id"});
    }
    // valijson's "1.000000" is written as the schema has it.
    CHECK(server.get("/alpha/items/0").json()["errors"][0]["message"] == "Expected number greater than or equal to 1");
    CHECK(handler_calls(server) == 1);
}

TEST_CASE("validation runs after the middleware: a refused client never sees schema errors", "[validation]") {
    TestServer server = validated_server();
    auto denied = server.request("POST", "/alpha/items", R"({"bad": true})",
                                 {{"Content-Type", "application/json"}, {"X-Deny", "1"}});
    CHECK(denied.status == 403);
    CHECK(denied.json()["code"] == "denied");
    CHECK_FALSE(denied.json().contains("errors"));
}

TEST_CASE("the matched route and its declared scopes reach middleware and handler as attributes", "[validation]") {
    TestServer server = validated_server();
    auto r = server.get("/alpha/items", reader);
    REQUIRE(r.status == 200);
    CHECK(r.json()["route"] == "GET /alpha/items");
    CHECK(r.json()["scopes"] == R"(["items:read"])");
}

TEST_CASE("a schema the host cannot check refuses the plugin at load, naming the route and the keyword",
          "[validation]") {
    struct Case {
        const char* kind;
        const char* says;
    };
    for (const Case& c : {Case{"format", "format \"email\" is not checked by the host"},
                          Case{"keyword", "keyword 'propertiez' is not one the host checks"},
                          Case{"lookahead", "the pattern cannot be checked (RE2"},
                          Case{"remote_ref", "a $ref must point into the same schema"},
                          Case{"pattern_properties", "patternProperties is not supported"},
                          Case{"not_json", "is not a schema"},
                          Case{"reserved", "keywords starting with x-trellis- are the host's own"}}) {
        INFO(c.kind);
        TestServer server(config_yaml("  alpha: {}\n  beta:\n    config: {bad_schema: " + std::string(c.kind) + "}\n"));
        const auto* beta = find_report(server.runtime(), "beta");
        REQUIRE(beta != nullptr);
        CHECK(beta->status == runtime::PluginStatus::failed);
        CHECK_THAT(beta->reason, Contains("on_init failed") && Contains("the host refused route POST /bad") &&
                                     Contains(c.says));
        // The others keep serving.
        CHECK(server.get("/alpha/count").status == 200);
    }
}

TEST_CASE("the host enforces a route's scopes after the middleware: 401 without a principal, 403 without a scope",
          "[validation][scopes]") {
    TestServer server = validated_server();
    auto anonymous = server.get("/alpha/items");
    CHECK(anonymous.status == 401);
    CHECK(anonymous.json()["code"] == "unauthenticated");
    CHECK(anonymous.header("Content-Type") == "application/problem+json");
    CHECK(anonymous.header("WWW-Authenticate") == "Bearer realm=\"trellis\"");

    auto other = server.get("/alpha/items?limit=0", {{"X-Test-Scopes", "items:write other"}});
    CHECK(other.status == 403);  // before validation: limit=0 is never reported
    CHECK(other.json()["code"] == "insufficient_scope");
    CHECK(other.json()["missing_scopes"] == nlohmann::json::array({"items:read"}));
    CHECK_THAT(other.header("WWW-Authenticate").value_or(""), Contains("error=\"insufficient_scope\"") && Contains("scope=\"items:read\""));

    CHECK(server.get("/alpha/items", {{"X-Test-Scopes", "other items:read"}}).status == 200);
    // A route without scopes or security stays public.
    CHECK(server.get("/alpha/items/7").status == 200);
    CHECK(handler_calls(server) == 2);
}

TEST_CASE("plugins.NAME.scopes replaces a route's declared scopes and protects a route that declares none",
          "[validation][scopes]") {
    TestServer server = validated_server(
        "    scopes:\n"
        "      \"GET /alpha/items\": [items:list]\n"
        "      \"GET /alpha/items/{id}\": []\n");
    CHECK(server.get("/alpha/items", reader).status == 403);
    auto listed = server.get("/alpha/items", {{"X-Test-Scopes", "items:list"}});
    REQUIRE(listed.status == 200);
    CHECK(listed.json()["scopes"] == R"(["items:list"])");
    // An empty list: any authenticated caller.
    CHECK(server.get("/alpha/items/7").status == 401);
    CHECK(server.get("/alpha/items/7", {{"X-Test-Scopes", ""}}).status == 200);

    // The OpenAPI document shows what the host enforces.
    const auto doc = server.get("/openapi.json").json();
    CHECK(doc["paths"]["/alpha/items"]["get"]["x-trellis-scopes"] == nlohmann::json::array({"items:list"}));
    CHECK(doc["paths"]["/alpha/items/{id}"]["get"]["security"] == nlohmann::json::parse(R"([{"bearer": []}])"));
    CHECK(doc["paths"]["/alpha/items/{id}"]["get"]["responses"].contains("401"));
}

TEST_CASE("plugins.NAME.scopes naming a route the plugin does not have refuses the plugin", "[validation][scopes]") {
    TestServer server(config_yaml(
        "  alpha:\n    config: {validation: true}\n    scopes:\n      \"GET /alpha/itemz\": [items:read]\n"));
    const auto* alpha = find_report(server.runtime(), "alpha");
    REQUIRE(alpha != nullptr);
    CHECK(alpha->status == runtime::PluginStatus::failed);
    CHECK_THAT(alpha->reason, Contains("plugins.alpha.scopes") && Contains("'GET /alpha/itemz' is not a route") &&
                                  Contains("GET /alpha/items"));
}

TEST_CASE("a malformed plugins.NAME.scopes names the file, the line and the key", "[validation][scopes][config]") {
    TempDir dir;
    auto file = dir.write("trellis.yaml", config_yaml("  alpha:\n    scopes:\n      \"items\": [a]\n"
                                                      "      \"GET /x\": [\"two words\"]\n"));
    auto loaded = config::load({file, {}});
    REQUIRE_FALSE(loaded.has_value());
    std::string all;
    for (const auto& error : loaded.error()) all += error + "\n";
    CHECK_THAT(all, Contains("trellis.yaml:5") && Contains("plugins.alpha.scopes.items") &&
                        Contains("expected a route as METHOD and path template"));
    CHECK_THAT(all, Contains("trellis.yaml:6") && Contains("expected a scope"));
}
