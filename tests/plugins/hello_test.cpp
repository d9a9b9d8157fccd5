// The bundled hello plugin through the in-process harness, as a plugin author tests theirs.
#include <catch2/catch.hpp>

#include <trellis/testing.hpp>

namespace {
const std::string search = "plugins:\n  search_paths: [\"" TRELLIS_TEST_PLUGIN_DIR "\"]\n";
}

TEST_CASE("hello greets whoever the path names, with the configured greeting", "[plugins][hello]") {
    trellis::testing::Host host(search + "  hello:\n    config: {greeting: Hi}\n");
    auto r = host.get("/hello/world");
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.json() == nlohmann::json({{"greeting", "Hi, world!"}, {"name", "world"}}));
    // Decoded path parameter, escaped back into JSON.
    CHECK(host.get("/hello/%22quoted%22").json()["name"] == "\"quoted\"");
}

TEST_CASE("hello's default greeting, and its mount from config", "[plugins][hello]") {
    trellis::testing::Host host(search + "  hello:\n    mount: /greet\n");
    CHECK(host.get("/greet/you").json()["greeting"] == "Hello, you!");
    CHECK(host.get("/hello/you").status == 404);
    CHECK(host.post("/greet/you", "").status == 405);
}

TEST_CASE("hello refuses a greeting its schema does not allow", "[plugins][hello]") {
    CHECK_THROWS_WITH(trellis::testing::Host(search + "  hello:\n    config: {greeting: \"\"}\n"),
                      Catch::Matchers::Contains("plugin 'hello'"));
}
