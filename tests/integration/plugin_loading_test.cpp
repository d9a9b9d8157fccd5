// Every way loading a plugin can fail, each with a real bad .so: the plugin is refused with
// its name, file and reason, and the host keeps serving the others (unless it is required).
#include <catch2/catch.hpp>

#include "runtime/runtime.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using Catch::Matchers::Contains;
using runtime::PluginStatus;
using test::config_yaml;
using test::find_report;
using test::TestServer;

namespace {

// Starts alpha (healthy) next to `extra`, checks that alpha still serves, and returns the
// report of `name`.
runtime::PluginReport refused(const std::string& extra, const std::string& name) {
    TestServer server(config_yaml("  alpha: {}\n" + extra));
    CHECK(server.get("/alpha/count").status == 200);
    const auto* report = find_report(server.runtime(), name);
    REQUIRE(report != nullptr);
    CHECK(report->status == PluginStatus::failed);
    CHECK(find_report(server.runtime(), "alpha")->status == PluginStatus::loaded);
    return *report;
}

}  // namespace

TEST_CASE("a missing plugin file names the search paths", "[loading]") {
    auto report = refused("  ghost: {}\n", "ghost");
    CHECK_THAT(report.reason, Contains("no ghost.so in the plugin search paths") && Contains(TRELLIS_TEST_FIXTURE_DIR));
}

TEST_CASE("a file that is not a shared library", "[loading]") {
    auto report = refused("  not_a_library: {}\n", "not_a_library");
    CHECK_THAT(report.file, Contains("not_a_library.so"));
    CHECK_THAT(report.reason, Contains("cannot load the library") && Contains("not_a_library.so"));
}

TEST_CASE("a library without the entry symbol", "[loading]") {
    auto report = refused("  no_entry: {}\n", "no_entry");
    CHECK_THAT(report.reason, Contains("does not export 'trellis_plugin_entry'"));
}

TEST_CASE("a plugin built for another ABI major", "[loading]") {
    auto report = refused("  abi_major_two: {}\n", "abi_major_two");
    CHECK_THAT(report.reason, Contains("built for ABI 2.0 but this host implements ABI 1.4"));
}

TEST_CASE("a plugin built for a newer ABI minor", "[loading]") {
    auto report = refused("  abi_minor_newer: {}\n", "abi_minor_newer");
    CHECK_THAT(report.reason, Contains("built for ABI 1.99, newer than this host's ABI 1.4"));
}

TEST_CASE("a file whose descriptor names another plugin", "[loading]") {
    auto report = refused("  impostor: {}\n", "impostor");
    CHECK_THAT(report.reason, Contains("declares the name 'alpha'"));
}

TEST_CASE("config rejected by the plugin's schema names file, line and key", "[loading]") {
    auto report = refused("  hello:\n    config:\n      greeting: 5\n", "hello");
    CHECK_THAT(report.reason, Contains("configuration rejected by the plugin's schema") &&
                                  Contains("trellis.yaml:6:17") && Contains("plugins.hello.config.greeting"));
    auto unknown = refused("  beta:\n    config:\n      colour: red\n", "beta");
    CHECK_THAT(unknown.reason, Contains("plugins.beta.config"));
}

TEST_CASE("instance creation that fails", "[loading]") {
    auto report = refused("  create_fails: {}\n", "create_fails");
    CHECK(report.reason == "on_create failed: fixture refuses to create an instance");
}

TEST_CASE("init that fails", "[loading]") {
    auto report = refused("  beta:\n    config: {fail_init: true}\n", "beta");
    CHECK(report.reason == "on_init failed: fixture was told to fail in init");
}

TEST_CASE("a route conflict refuses the later plugin naming both while the first keeps serving", "[loading]") {
    TestServer server(config_yaml("  alpha: {mount: /shared}\n  beta: {mount: /shared}\n"));
    const auto* beta = find_report(server.runtime(), "beta");
    REQUIRE(beta->status == PluginStatus::failed);
    CHECK_THAT(beta->reason, Contains("route GET /shared/count conflicts with GET /shared/count of plugin 'alpha'") &&
                                 Contains("which keeps serving it"));
    auto response = server.get("/shared/count");
    REQUIRE(response.status == 200);
    CHECK(response.json()["label"] == "alpha");
}

TEST_CASE("a plugin cannot claim the host's own endpoints", "[loading]") {
    TestServer server(config_yaml("  bare_c: {mount: /}\n"));
    // bare_c serves GET /{word}; /livez stays the host's because literals win.
    CHECK(server.get("/livez").json()["status"] == "ok");
    CHECK(server.get("/anything").body == "anything");
}

TEST_CASE("dependencies: missing, disabled, failed", "[loading]") {
    auto missing = refused("  needs_absent: {}\n", "needs_absent");
    CHECK(missing.reason == "depends on plugin 'absent', which is not configured");

    TestServer disabled(config_yaml("  alpha: {enabled: false}\n  gamma: {}\n  beta: {}\n"));
    CHECK(find_report(disabled.runtime(), "alpha")->status == PluginStatus::disabled);
    CHECK(find_report(disabled.runtime(), "gamma")->reason == "depends on plugin 'alpha', which is disabled");
    CHECK(disabled.get("/beta/count").status == 200);

    TestServer failed(config_yaml("  alpha:\n    config: {fail_init: true}\n  gamma: {}\n"));
    CHECK(find_report(failed.runtime(), "gamma")->reason == "depends on plugin 'alpha', which failed to load");
}

TEST_CASE("a dependency cycle refuses every plugin on it", "[loading]") {
    TestServer server(config_yaml("  cycle_a: {}\n  cycle_b: {}\n  alpha: {}\n"));
    for (const char* name : {"cycle_a", "cycle_b"}) {
        const auto* report = find_report(server.runtime(), name);
        REQUIRE(report->status == PluginStatus::failed);
        CHECK_THAT(report->reason, Contains("dependency cycle: cycle_a -> cycle_b -> cycle_a"));
    }
    CHECK(server.get("/alpha/count").status == 200);
}

TEST_CASE("plugins start in dependency order and stop in reverse", "[loading]") {
    test::TempDir events_dir;
    auto events = (events_dir.path() / "events").string();
    auto section = [&](const std::string& name) {
        return "  " + name + ":\n    config: {events_file: \"" + events + "\"}\n";
    };
    {
        // apex depends on omega, which sorts after it by name: omega must start first.
        TestServer server(config_yaml(section("apex") + section("beta") + section("omega")));
        CHECK(test::read_file(events) == "init omega\ninit apex\ninit beta\n");
    }
    CHECK(test::read_file(events) ==
          "init omega\ninit apex\ninit beta\nshutdown beta\nshutdown apex\nshutdown omega\n");
}

TEST_CASE("disabled plugins are not even opened", "[loading]") {
    TestServer server(config_yaml("  not_a_library: {enabled: false}\n  alpha: {}\n"));
    const auto* report = find_report(server.runtime(), "not_a_library");
    CHECK(report->status == PluginStatus::disabled);
    CHECK(report->file.empty());
}

TEST_CASE("a required plugin that fails makes the build fail with the same message", "[loading]") {
    test::TempDir dir;
    auto config = test::load_config(dir, config_yaml("  alpha: {}\n  abi_major_two: {required: true}\n"));
    plugin::LibraryCache libraries;
    auto built = runtime::Runtime::build(config, libraries);
    REQUIRE_FALSE(built);
    REQUIRE(built.error().size() == 1);
    CHECK_THAT(built.error()[0], Contains("plugin 'abi_major_two' (") && Contains("abi_major_two.so") &&
                                     Contains("is required but built for ABI 2.0"));
}
