// Instances, not globals: two runtimes built from one config share the loaded library but
// each has its own plugin instance and state; the old one stops when released.
#include <catch2/catch.hpp>

#include "support/test_server.hpp"

using namespace trellis;
using test::config_yaml;
using test::TestServer;

TEST_CASE("two instances of one plugin live side by side with separate state", "[instances]") {
    test::TempDir events_dir;
    auto events = (events_dir.path() / "events").string();
    TestServer server(config_yaml("  alpha:\n    config: {events_file: \"" + events + "\"}\n"));
    CHECK(server.get("/alpha/count").json()["count"] == 1);
    CHECK(server.get("/alpha/count").json()["count"] == 2);

    // A reload: a second runtime from the same config, the same library cache.
    std::shared_ptr<const runtime::Runtime> first = server.pipeline().current();
    auto second = runtime::Runtime::build(std::make_shared<config::Config>(first->config()), server.libraries());
    REQUIRE(second);
    server.pipeline().replace(*second);

    CHECK(first->plugins()[0].file == (*second)->plugins()[0].file);
    // One loaded library, two instances.
    CHECK(&first->targets()[0].instance->library() == &(*second)->targets()[0].instance->library());
    CHECK(first->targets()[0].instance != (*second)->targets()[0].instance);

    CHECK(server.get("/alpha/count").json()["count"] == 1);  // the new instance starts at zero
    CHECK(test::read_file(events) == "init alpha\ninit alpha\n");

    // Both alive: the old one still answers for whoever holds it.
    http::Request request;
    request.method = "GET";
    request.path = "/alpha/count";
    http::Response response;
    runtime::Pipeline old_pipeline(first);
    old_pipeline.handle(request, response, runtime::ListenerRoutes("public", true));
    CHECK(nlohmann::json::parse(response.body)["count"] == 3);

    // Releasing the last holder of the old runtime shuts down only its instance.
    first.reset();
    old_pipeline.replace(nullptr);
    CHECK(test::read_file(events) == "init alpha\ninit alpha\nshutdown alpha\n");
    CHECK(server.get("/alpha/count").json()["count"] == 2);
}
