// The real trellis binary as an admin runs it: serve with environment overrides, refusal
// to start, reload on SIGHUP, clean stop on SIGTERM.
#include <catch2/catch.hpp>

#include <csignal>
#include <map>
#include <thread>

#include <Poco/Net/StreamSocket.h>

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
    CHECK(p.output() == "trellis " TRELLIS_VERSION "\nplugin ABI 1.4\naccepts plugins built for ABI 1.0, 1.1, 1.2, 1.3, 1.4\n");
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

namespace {

struct Ran {
    int code;
    std::string output;
};

// Runs `trellis ARGS... -c <dir>/trellis.yaml` on a config and waits for it.
Ran run_cli(const std::string& yaml, std::vector<std::string> args) {
    TempDir dir;
    dir.write("trellis.yaml", yaml);
    std::vector<std::string> argv{TRELLIS_TEST_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("-c");
    argv.push_back((dir.path() / "trellis.yaml").string());
    Process p(argv, minimal_environment(), dir.path() / "out");
    auto code = p.wait(60s);
    REQUIRE(code.has_value());
    return {*code, p.output()};
}

// Table output with runs of spaces squeezed to one, so column widths do not matter.
std::string squeeze(const std::string& text) {
    std::string out;
    for (char c : text)
        if (!(c == ' ' && !out.empty() && out.back() == ' ')) out += c;
    return out;
}

const std::string mixed = config_yaml(
    "  hello: {}\n  ghost: {}\n  abi_major_two: {}\n  alpha: {enabled: false}\n  beta:\n    middleware: [beta.mark]\n",
    "middleware: [beta.mark]\n");

}  // namespace

TEST_CASE("check passes a good configuration with exit 0", "[cli]") {
    auto ran = run_cli(config_yaml("  hello: {}\n  beta: {}\n"), {"check"});
    CHECK(ran.code == 0);
    CHECK_THAT(ran.output, Contains("is valid; 2 plugin(s) loaded, 21 route(s)"));
}

TEST_CASE("check fails with exit 1 and every reason", "[cli]") {
    auto ran = run_cli(mixed, {"check"});
    CHECK(ran.code == 1);
    CHECK_THAT(ran.output, Contains("plugin 'ghost': no ghost.so in the plugin search paths") &&
                               Contains("abi_major_two.so): built for ABI 2.0") && Contains("2 problem(s)"));

    auto json_run = run_cli(mixed, {"check", "--json"});
    CHECK(json_run.code == 1);
    auto doc = nlohmann::json::parse(json_run.output);
    CHECK(doc["ok"] == false);
    CHECK(doc["errors"].size() == 2);
    CHECK(doc["plugins"].size() == 5);
}

TEST_CASE("check reports configuration errors with file and line", "[cli]") {
    auto ran = run_cli("server:\n  max_threads: lots\n", {"check"});
    CHECK(ran.code == 1);
    CHECK_THAT(ran.output, Contains("trellis.yaml:2:16: key 'server.max_threads'"));
}

TEST_CASE("plugins list shows each plugin's state and a failed plugin's reason", "[cli]") {
    auto ran = run_cli(mixed, {"plugins", "list"});
    CHECK(ran.code == 0);
    auto text = squeeze(ran.output);
    CHECK_THAT(text, Contains("NAME STATE VERSION ABI FILE / REASON\n"));
    CHECK_THAT(text, Contains("ghost failed - - no ghost.so in the plugin search paths"));
    CHECK_THAT(text, Contains("alpha disabled - - -\n"));
    CHECK_THAT(text, Contains("hello loaded 1.0.0 1.4 ") && Contains("/hello.so\n"));

    auto doc = nlohmann::json::parse(run_cli(mixed, {"plugins", "list", "--json"}).output);
    REQUIRE(doc.size() == 5);
    std::map<std::string, nlohmann::json> by_name;
    for (const auto& p : doc) by_name[p["name"]] = p;
    CHECK(by_name["hello"]["state"] == "loaded");
    CHECK(by_name["hello"]["abi"] == "1.4");
    CHECK(by_name["ghost"]["state"] == "failed");
    CHECK_THAT(by_name["abi_major_two"]["reason"].get<std::string>(), Contains("built for ABI 2.0"));
    CHECK(by_name["alpha"]["state"] == "disabled");
}

TEST_CASE("routes lists method, full path, plugin and middleware chain", "[cli]") {
    auto ran = run_cli(mixed, {"routes"});
    CHECK(ran.code == 0);
    auto text = squeeze(ran.output);
    CHECK_THAT(text, Contains("METHOD PATH PLUGIN MIDDLEWARE\n"));
    CHECK_THAT(text, Contains("GET /hello/{name} hello beta.mark\n"));
    CHECK_THAT(text, Contains("POST /beta/echo/{id} beta beta.mark, beta.mark\n"));
    CHECK_THAT(text, Contains("GET /livez (host) -\n"));

    auto doc = nlohmann::json::parse(run_cli(mixed, {"routes", "--json"}).output);
    bool found = false;
    for (const auto& route : doc)
        if (route["path"] == "/beta/count") {
            found = true;
            CHECK(route["method"] == "GET");
            CHECK(route["plugin"] == "beta");
            CHECK(route["middleware"] == nlohmann::json{"beta.mark", "beta.mark"});
        }
    CHECK(found);
}

TEST_CASE("version --json", "[cli]") {
    TempDir dir;
    Process p({TRELLIS_TEST_BINARY, "version", "--json"}, minimal_environment(), dir.path() / "out");
    REQUIRE(p.wait(10s) == 0);
    auto doc = nlohmann::json::parse(p.output());
    CHECK(doc["version"] == TRELLIS_VERSION);
    CHECK(doc["abi"] == "1.4");
    CHECK(doc["abi_accepted"] == nlohmann::json{"1.0", "1.1", "1.2", "1.3", "1.4"});
    CHECK(doc["build"]["compiler"].get<std::string>().size() > 0);
}

namespace {
// Sends GET target on its own thread and keeps what came back.
struct InFlight {
    std::thread thread;
    HttpResponse response;
    std::string error;
    InFlight(std::uint16_t port, std::string target) {
        thread = std::thread([this, port, target] {
            try {
                response = http_request(port, "GET", target);
            } catch (const std::exception& e) {
                error = e.what();
            }
        });
    }
    ~InFlight() {
        if (thread.joinable()) thread.join();
    }
};

bool can_connect(std::uint16_t port) {
    try {
        Poco::Net::StreamSocket socket(Poco::Net::SocketAddress("127.0.0.1", port));
        return true;
    } catch (const Poco::Exception&) {
        return false;
    }
}
}  // namespace

TEST_CASE("SIGTERM drains: the request in flight completes and new connections are refused", "[cli][shutdown]") {
    TempDir events_dir;
    auto events = (events_dir.path() / "events").string();
    Served s(config_yaml("  apex:\n    config: {events_file: \"" + events +
                         "\"}\n  omega:\n    config: {events_file: \"" + events + "\"}\n"));
    REQUIRE(wait_until_listening(s.port, 10s));

    // An idle keep-alive connection: one request answered, then nothing.
    Poco::Net::StreamSocket idle(Poco::Net::SocketAddress("127.0.0.1", s.port));
    idle.setReceiveTimeout(Poco::Timespan(5, 0));
    std::string hello = "GET /omega/count HTTP/1.1\r\nHost: localhost\r\n\r\n";
    idle.sendBytes(hello.data(), static_cast<int>(hello.size()));
    char buffer[4096];
    REQUIRE(idle.receiveBytes(buffer, sizeof buffer) > 0);

    InFlight slow(s.port, "/apex/sleep?ms=2500");
    std::this_thread::sleep_for(300ms);
    s.process->signal(SIGTERM);
    // The accept loop notices within its 250 ms poll; from then on connections are refused.
    bool refused = false;
    for (int i = 0; i < 40 && !refused; ++i) {
        std::this_thread::sleep_for(50ms);
        refused = !can_connect(s.port);
    }
    CHECK(refused);
    REQUIRE_FALSE(slow.response.status);                   // and the slow request is still running
    CHECK(idle.receiveBytes(buffer, sizeof buffer) == 0);  // the idle one was closed

    slow.thread.join();
    INFO(slow.error);
    CHECK(slow.response.status == 200);
    CHECK(slow.response.json()["slept_ms"] == 2500);
    CHECK_THAT(slow.response.header("Connection").value_or(""),
               Catch::Matchers::Equals("close", Catch::CaseSensitive::No));

    REQUIRE(s.process->wait(20s) == 0);
    CHECK_THAT(s.process->output(), Contains("drained: every request in flight finished") && Contains("stopped"));
    CHECK(read_file(events) == "init omega\ninit apex\nshutdown apex\nshutdown omega\n");
}

TEST_CASE("a second signal during the drain stops at once", "[cli][shutdown]") {
    Served s(config_yaml("  alpha: {}\n"));
    REQUIRE(wait_until_listening(s.port, 10s));
    InFlight slow(s.port, "/alpha/sleep?ms=8000");
    std::this_thread::sleep_for(300ms);
    s.process->signal(SIGTERM);
    std::this_thread::sleep_for(300ms);
    REQUIRE_FALSE(s.process->wait(0ms).has_value());  // still draining
    s.process->signal(SIGINT);
    REQUIRE(s.process->wait(3s) == 1);
    CHECK_THAT(s.process->output(), Contains("second SIGINT, stopping at once"));
}

TEST_CASE("the drain timeout ends a drain that takes too long", "[cli][shutdown]") {
    Served s(config_yaml("  alpha: {}\n", "server:\n  drain_timeout: 500ms\n"));
    REQUIRE(wait_until_listening(s.port, 10s));
    InFlight slow(s.port, "/alpha/sleep?ms=6000");
    std::this_thread::sleep_for(300ms);
    auto signalled = std::chrono::steady_clock::now();
    s.process->signal(SIGTERM);
    REQUIRE(s.process->wait(4s) == 1);
    CHECK(std::chrono::steady_clock::now() - signalled < 3s);
    CHECK_THAT(s.process->output(), Contains("drain timeout of 500 ms passed"));
}
