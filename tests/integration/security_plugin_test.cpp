// The bundled security plugin: security headers and CORS (preflight, simple requests,
// credentials, max-age), applied globally or per plugin through config.
#include <catch2/catch.hpp>

#include "support/test_server.hpp"

using namespace trellis;
using Catch::Matchers::Contains;
using test::config_yaml;
using test::find_report;
using test::TestServer;

namespace {
const std::string cors_config =
    "  security:\n"
    "    config:\n"
    "      cors:\n"
    "        allowed_origins: [\"https://app.example.com\"]\n"
    "        allowed_methods: [GET, POST]\n"
    "        allowed_headers: [Content-Type, X-Custom]\n"
    "        allow_credentials: true\n"
    "        max_age: 900\n"
    "  hello: {}\n";
const std::string global = "middleware: [security.cors, security.headers]\n";
}  // namespace

TEST_CASE("security headers are added to every answer when applied globally", "[security]") {
    TestServer server(config_yaml(cors_config, global));
    for (const char* path : {"/hello/x", "/missing"}) {
        INFO(path);
        auto r = server.get(path);
        CHECK(r.header("X-Content-Type-Options") == "nosniff");
        CHECK(r.header("X-Frame-Options") == "DENY");
        CHECK(r.header("Referrer-Policy") == "no-referrer");
        CHECK(r.header("Content-Security-Policy") == "default-src 'none'; frame-ancestors 'none'");
        CHECK_FALSE(r.header("Strict-Transport-Security"));
    }
}

TEST_CASE("security headers can be changed, added and turned off", "[security]") {
    TestServer server(
        config_yaml("  security:\n    config:\n      headers:\n"
                    "        x-frame-options: SAMEORIGIN\n"
                    "        Strict-Transport-Security: max-age=31536000\n"
                    "        Content-Security-Policy: \"\"\n  hello: {}\n",
                    "middleware: [security.headers]\n"));
    auto r = server.get("/hello/x");
    CHECK(r.header("X-Frame-Options") == "SAMEORIGIN");
    CHECK(r.header("Strict-Transport-Security") == "max-age=31536000");
    CHECK_FALSE(r.header("Content-Security-Policy"));
}

TEST_CASE("an allowed CORS preflight is answered 204 before routing", "[security]") {
    TestServer server(config_yaml(cors_config, global));
    auto r = server.request("OPTIONS", "/hello/x", {},
                            {{"Origin", "https://app.example.com"},
                             {"Access-Control-Request-Method", "POST"},
                             {"Access-Control-Request-Headers", "content-type, x-custom"}});
    CHECK(r.status == 204);
    CHECK(r.header("Access-Control-Allow-Origin") == "https://app.example.com");
    CHECK(r.header("Access-Control-Allow-Methods") == "GET, POST");
    CHECK(r.header("Access-Control-Allow-Headers") == "content-type, x-custom");
    CHECK(r.header("Access-Control-Allow-Credentials") == "true");
    CHECK(r.header("Access-Control-Max-Age") == "900");
    CHECK_THAT(r.header("Vary").value_or(""), Contains("Origin") && Contains("Access-Control-Request-Method"));
}

TEST_CASE("a refused CORS preflight names what was refused", "[security]") {
    TestServer server(config_yaml(cors_config, global));
    auto origin = server.request("OPTIONS", "/hello/x", {},
                                 {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "GET"}});
    CHECK(origin.status == 403);
    CHECK(origin.json()["code"] == "cors_rejected");
    CHECK_THAT(origin.json()["detail"].get<std::string>(), Contains("origin 'https://evil.example'"));
    CHECK_FALSE(origin.header("Access-Control-Allow-Origin"));

    auto method = server.request("OPTIONS", "/hello/x", {},
                                 {{"Origin", "https://app.example.com"}, {"Access-Control-Request-Method", "DELETE"}});
    CHECK(method.status == 403);
    CHECK_THAT(method.json()["detail"].get<std::string>(), Contains("method 'DELETE'"));

    auto header = server.request("OPTIONS", "/hello/x", {},
                                 {{"Origin", "https://app.example.com"},
                                  {"Access-Control-Request-Method", "GET"},
                                  {"Access-Control-Request-Headers", "X-Secret"}});
    CHECK(header.status == 403);
    CHECK_THAT(header.json()["detail"].get<std::string>(), Contains("X-Secret"));
}

TEST_CASE("simple CORS requests get CORS headers only for allowed origins", "[security]") {
    TestServer server(config_yaml(cors_config, global));
    auto allowed = server.get("/hello/x", {{"Origin", "https://app.example.com"}});
    CHECK(allowed.status == 200);
    CHECK(allowed.header("Access-Control-Allow-Origin") == "https://app.example.com");
    CHECK(allowed.header("Access-Control-Allow-Credentials") == "true");
    CHECK(allowed.header("Access-Control-Expose-Headers") == "X-Request-ID");
    CHECK(allowed.header("Vary") == "Origin, Accept-Encoding");  // the host adds Accept-Encoding to JSON answers

    auto other = server.get("/hello/x", {{"Origin", "https://evil.example"}});
    CHECK(other.status == 200);
    CHECK_FALSE(other.header("Access-Control-Allow-Origin"));
    CHECK(other.header("Vary") == "Origin, Accept-Encoding");

    auto same_origin = server.get("/hello/x");
    CHECK_FALSE(same_origin.header("Access-Control-Allow-Origin"));
    CHECK(same_origin.header("Vary") == "Accept-Encoding");  // no Origin from the plugin
}

TEST_CASE("a wildcard origin without credentials answers with *", "[security]") {
    TestServer server(config_yaml("  security:\n    config: {cors: {allowed_origins: [\"*\"]}}\n  hello: {}\n",
                                  "middleware: [security.cors]\n"));
    CHECK(server.get("/hello/x", {{"Origin", "https://any.example"}}).header("Access-Control-Allow-Origin") == "*");
}

TEST_CASE("credentials with a wildcard origin are refused at start", "[security]") {
    TestServer server(config_yaml(
        "  security:\n    config: {cors: {allowed_origins: [\"*\"], allow_credentials: true}}\n  hello: {}\n"));
    const auto* report = find_report(server.runtime(), "security");
    REQUIRE(report->status == runtime::PluginStatus::failed);
    CHECK_THAT(report->reason, Contains("allow_credentials cannot be combined with '*'"));
}

TEST_CASE("a bad origin pattern is rejected by the schema", "[security]") {
    TestServer server(config_yaml("  security:\n    config: {cors: {allowed_origins: [\"app.example.com/\"]}}\n"));
    CHECK_THAT(find_report(server.runtime(), "security")->reason,
               Contains("plugins.security.config.cors.allowed_origins.0"));
}

TEST_CASE("applied per plugin the middleware covers only that plugin's routes", "[security]") {
    TestServer server(config_yaml("  security: {}\n  hello:\n    middleware: [security.headers]\n  alpha: {}\n"));
    CHECK(server.get("/hello/x").header("X-Content-Type-Options") == "nosniff");
    CHECK_FALSE(server.get("/alpha/count").header("X-Content-Type-Options"));
}
