// The bundled security plugin through the in-process harness: its headers and CORS
// middleware around another plugin's routes.
#include <catch2/catch.hpp>

#include <trellis/testing.hpp>

using Catch::Matchers::Contains;

namespace {
const std::string config =
    "middleware: [security.cors, security.headers]\n"
    "plugins:\n  search_paths: [\"" TRELLIS_TEST_PLUGIN_DIR "\"]\n"
    "  hello: {}\n"
    "  security:\n    config:\n      cors: {allowed_origins: [\"https://app.example\"], max_age: 60}\n"
    "      headers: {X-Frame-Options: SAMEORIGIN, Referrer-Policy: \"\"}\n";
}

TEST_CASE("security headers wrap every answer, as configured", "[plugins][security]") {
    trellis::testing::Host host(config);
    for (const auto& target : {"/hello/x", "/no/such/route"}) {
        auto r = host.get(target);
        INFO(target);
        CHECK(r.header("X-Content-Type-Options") == "nosniff");
        CHECK(r.header("X-Frame-Options") == "SAMEORIGIN");
        CHECK(r.header("Referrer-Policy").empty());  // turned off
    }
}

TEST_CASE("CORS: an allowed preflight is answered 204 before routing, others 403", "[plugins][security]") {
    trellis::testing::Host host(config);
    auto allowed = host.request("OPTIONS", "/hello/x", "",
                                {{"Origin", "https://app.example"}, {"Access-Control-Request-Method", "GET"}});
    CHECK(allowed.status == 204);
    CHECK(allowed.header("Access-Control-Allow-Origin") == "https://app.example");
    CHECK(allowed.header("Access-Control-Max-Age") == "60");

    auto refused = host.request("OPTIONS", "/hello/x", "",
                                {{"Origin", "https://evil.example"}, {"Access-Control-Request-Method", "GET"}});
    CHECK(refused.status == 403);
    CHECK(refused.header("Content-Type") == "application/problem+json");
    CHECK_THAT(refused.json()["detail"].get<std::string>(), Contains("https://evil.example"));

    auto simple = host.get("/hello/x", {{"Origin", "https://app.example"}});
    CHECK(simple.status == 200);
    CHECK(simple.header("Access-Control-Allow-Origin") == "https://app.example");
    CHECK_THAT(simple.header("Vary"), Contains("Origin"));
    CHECK(host.get("/hello/x", {{"Origin", "https://evil.example"}}).header("Access-Control-Allow-Origin").empty());
}

TEST_CASE("security refuses credentials with a wildcard origin at start", "[plugins][security]") {
    CHECK_THROWS_WITH(
        trellis::testing::Host("plugins:\n  search_paths: [\"" TRELLIS_TEST_PLUGIN_DIR "\"]\n"
                               "  security:\n    config: {cors: {allowed_origins: [\"*\"], allow_credentials: true}}\n"),
        Contains("allow_credentials cannot be combined"));
}
