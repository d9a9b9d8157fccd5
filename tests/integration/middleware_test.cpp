// Plugin middleware: order from config (global, then per plugin), per-request attributes
// passed from a middleware plugin to a handler, short-circuits and resolution errors.
#include <catch2/catch.hpp>

#include "support/test_server.hpp"

using namespace trellis;
using Catch::Matchers::Contains;
using test::config_yaml;
using test::find_report;
using test::TestServer;

TEST_CASE("global middleware runs in config order, then the plugin's own", "[middleware]") {
    TestServer server(config_yaml("  alpha: {}\n  beta: {}\n  gamma:\n    middleware: [gamma.mark]\n",
                                  "middleware: [beta.mark, alpha.mark]\n"));
    auto r = server.get("/gamma/attributes");
    REQUIRE(r.status == 200);
    auto attributes = r.json()["attributes"];
    CHECK(attributes["trace"] == "beta,alpha,gamma");              // inbound order
    CHECK(r.header("X-Trace") == "gamma,alpha,beta");              // outbound: innermost first
    CHECK(attributes["principal"] == R"({"user":"gamma-user"})");  // set by middleware, read by the handler
    CHECK(attributes["trellis.request_id"] == *r.header("X-Request-ID"));

    // Other plugins' routes get only the global chain.
    auto other = server.get("/alpha/attributes");
    CHECK(other.json()["attributes"]["trace"] == "beta,alpha");
    // Global middleware also wraps the host's own answers.
    auto missing = server.get("/nothing");
    CHECK(missing.status == 404);
    CHECK(missing.header("X-Trace") == "alpha,beta");
}

TEST_CASE("reversing the config list reverses the chain", "[middleware]") {
    TestServer server(config_yaml("  alpha: {}\n  beta: {}\n", "middleware: [alpha.mark, beta.mark]\n"));
    CHECK(server.get("/beta/attributes").json()["attributes"]["trace"] == "alpha,beta");
}

TEST_CASE("a middleware can answer without calling next", "[middleware]") {
    TestServer server(config_yaml("  alpha:\n    config: {middleware: [deny]}\n  beta:\n    middleware: [alpha]\n"));
    auto denied = server.get("/beta/count", {{"X-Deny", "1"}});
    CHECK(denied.status == 403);
    CHECK(denied.json()["code"] == "denied");
    CHECK(server.get("/beta/count").json()["count"] == 1);  // the denied call never reached it
}

TEST_CASE("an error below a middleware propagates as 500 through it", "[middleware]") {
    TestServer server(config_yaml("  alpha: {}\n", "middleware: [alpha.mark]\n"));
    auto r = server.get("/alpha/boom");
    CHECK(r.status == 500);
    CHECK(r.json()["code"] == "internal_error");
}

TEST_CASE("a plugin name alone is ambiguous when it registers several middleware", "[middleware]") {
    TestServer server(
        config_yaml("  alpha:\n    config: {middleware: [mark, deny]}\n  beta:\n    middleware: [alpha]\n"));
    const auto* beta = find_report(server.runtime(), "beta");
    REQUIRE(beta->status == runtime::PluginStatus::failed);
    CHECK_THAT(beta->reason, Contains("plugin 'alpha' registers 2 middleware (alpha.mark, alpha.deny)"));
}

TEST_CASE("per-plugin middleware of a disabled plugin refuses the plugin", "[middleware]") {
    TestServer server(config_yaml("  alpha: {enabled: false}\n  beta:\n    middleware: [alpha.mark]\n  hello: {}\n"));
    CHECK(find_report(server.runtime(), "beta")->reason ==
          "uses middleware 'alpha.mark' of plugin 'alpha', which is disabled");
    CHECK(server.get("/hello/x").status == 200);
}

TEST_CASE("global middleware that is not available stops the build", "[middleware]") {
    test::TempDir dir;
    auto config =
        test::load_config(dir, config_yaml("  alpha: {enabled: false}\n  hello: {}\n", "middleware: [alpha.mark]\n"));
    plugin::LibraryCache libraries;
    auto built = runtime::Runtime::build(config, libraries);
    REQUIRE_FALSE(built);
    CHECK_THAT(built.error().at(0), Contains("middleware 'alpha.mark' is not available: plugin 'alpha' is disabled"));
}

TEST_CASE("an unknown middleware name of a loaded plugin is refused", "[middleware]") {
    TestServer server(config_yaml("  alpha: {}\n  beta:\n    middleware: [alpha.nope]\n"));
    CHECK(find_report(server.runtime(), "beta")->reason ==
          "key 'plugins.beta.middleware': plugin 'alpha' registers no middleware named 'nope'");
}
