// The real trellis binary as an admin runs it: serve with environment overrides, refusal
// to start, reload on SIGHUP, clean stop on SIGTERM.
#include <catch2/catch.hpp>

#include <csignal>
#include <thread>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

struct Served {
    TempDir dir;
    std::uint16_t port = free_port();
    std::uint16_t admin_port = free_port();
    std::unique_ptr<Process> process;

    Served(const std::string& yaml, std::vector<std::string> extra_env = {}) {
        dir.write("trellis.yaml", yaml);
        auto env = minimal_environment();
        env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
        env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(admin_port));
        env.insert(env.end(), extra_env.begin(), extra_env.end());
        process = std::make_unique<Process>(
            std::vector<std::string>{TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / "trellis.yaml").string()}, env,
            dir.path() / "output.log");
    }
};

}  // namespace

TEST_CASE("trellis version prints the product and the ABI version", "[cli]") {
    TempDir dir;
    Process p({TRELLIS_TEST_BINARY, "version"}, minimal_environment(), dir.path() / "out");
    REQUIRE(p.wait(10s) == 0);
    CHECK(p.output() == "trellis " TRELLIS_VERSION "\nplugin ABI 1.0\n");
}

TEST_CASE("an unknown command or option exits 2 with usage", "[cli]") {
    TempDir dir;
    Process p({TRELLIS_TEST_BINARY, "frobnicate"}, minimal_environment(), dir.path() / "out");
    REQUIRE(p.wait(10s) == 2);
    CHECK_THAT(p.output(), Contains("unknown command 'frobnicate'") && Contains("usage: trellis"));
}

TEST_CASE("serve answers, honours environment overrides, and stops cleanly on SIGTERM", "[cli]") {
    Served s(config_yaml("  hello: {}\n"), {"TRELLIS_PLUGINS__HELLO__CONFIG__GREETING=Howdy"});
    REQUIRE(wait_until_listening(s.port, 10s));
    auto r = http_request(s.port, "GET", "/hello/world");
    CHECK(r.status == 200);
    CHECK(r.json()["greeting"] == "Howdy, world!");
    CHECK(http_request(s.admin_port, "GET", "/readyz").status == 200);
    CHECK(http_request(s.admin_port, "GET", "/hello/world").status == 404);  // plugins only on the public port
    s.process->signal(SIGTERM);
    REQUIRE(s.process->wait(20s) == 0);
    CHECK_THAT(s.process->output(), Contains("received SIGTERM, stopping") && Contains("[access]"));
}

TEST_CASE("serve with TRELLIS_PLUGINS__HELLO__ENABLED=false answers 404 problem+json", "[cli]") {
    Served s(config_yaml("  hello: {}\n"), {"TRELLIS_PLUGINS__HELLO__ENABLED=false"});
    REQUIRE(wait_until_listening(s.port, 10s));
    auto r = http_request(s.port, "GET", "/hello/world");
    CHECK(r.status == 404);
    CHECK(r.header("Content-Type") == "application/problem+json");
    s.process->signal(SIGTERM);
    CHECK(s.process->wait(20s) == 0);
}

TEST_CASE("a required plugin that fails stops start-up with exit 1 and the reason", "[cli]") {
    Served s(config_yaml("  hello: {}\n  ghost: {required: true}\n"));
    REQUIRE(s.process->wait(20s) == 1);
    CHECK_THAT(s.process->output(), Contains("plugin 'ghost' is required but no ghost.so in the plugin search paths") &&
                                        Contains("start-up failed"));
}

TEST_CASE("malformed YAML stops start-up naming file and line", "[cli]") {
    Served s("server:\n  listen: 127.0.0.1:1\n  bad: [unclosed\n");
    REQUIRE(s.process->wait(20s) == 1);
    CHECK_THAT(s.process->output(), Contains("trellis.yaml:") && Contains("invalid YAML"));
}

TEST_CASE("SIGHUP reloads the configuration - a broken file keeps the old one", "[cli]") {
    Served s(config_yaml("  hello:\n    config: {greeting: One}\n"));
    REQUIRE(wait_until_listening(s.port, 10s));
    CHECK(http_request(s.port, "GET", "/hello/x").json()["greeting"] == "One, x!");

    s.dir.write("trellis.yaml", config_yaml("  hello:\n    config: {greeting: Two}\n"));
    s.process->signal(SIGHUP);
    std::string greeting;
    for (int i = 0; i < 100 && greeting != "Two, x!"; ++i) {
        std::this_thread::sleep_for(50ms);
        greeting = http_request(s.port, "GET", "/hello/x").json()["greeting"];
    }
    CHECK(greeting == "Two, x!");

    s.dir.write("trellis.yaml", "plugins: [this is: not valid\n");
    s.process->signal(SIGHUP);
    std::this_thread::sleep_for(500ms);
    CHECK(http_request(s.port, "GET", "/hello/x").json()["greeting"] == "Two, x!");
    s.process->signal(SIGTERM);
    REQUIRE(s.process->wait(20s) == 0);
    CHECK_THAT(s.process->output(), Contains("reload aborted"));
}
