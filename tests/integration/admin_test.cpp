// The admin API on the admin listener (plugins, routes, config, migrations, version, reload), its
// token and its refusal of cross-site requests, and readiness: the checks of /readyz, the
// database check, and server.shutdown_delay on SIGTERM with the real binary.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "config/config.hpp"
#include "host/admin.hpp"
#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

const std::string kSqlite = "server:\n  data_dir: .\ndatabase:\n  url: sqlite://admin.db\n";
const Headers kJson{{"Content-Type", "application/json"}};

HttpResponse admin(const TestServer& server, const std::string& method, const std::string& target,
                   const std::string& body = {}, const Headers& headers = {}) {
    return http_request(server.admin_port(), method, target, body, headers);
}

void check_problem(const HttpResponse& r, int status, const std::string& code) {
    INFO(r.body);
    CHECK(r.status == status);
    CHECK(r.header("Content-Type") == "application/problem+json");
    CHECK(r.json()["status"] == status);
    CHECK(r.json()["code"] == code);
}

// The first item whose `key` is `value`, or null.
nlohmann::json find_by(const nlohmann::json& array, const std::string& key, const std::string& value) {
    for (const auto& item : array)
        if (item.value(key, std::string()) == value) return item;
    return nullptr;
}

// The /readyz check of that name, as the admin listener reports it.
nlohmann::json check_named(const HttpResponse& r, const std::string& name) {
    INFO(r.body);
    const auto check = find_by(r.json()["checks"], "name", name);
    REQUIRE(check != nullptr);
    return check;
}

// Polls the admin /readyz until the database check has a result (the prober's first probe).
HttpResponse readyz_after_probe(const TestServer& server) {
    HttpResponse r;
    for (int i = 0; i < 60; ++i) {
        r = admin(server, "GET", "/readyz");
        if (check_named(r, "database")["message"] != "not probed yet") break;
        std::this_thread::sleep_for(50ms);
    }
    return r;
}

std::string read_text(const std::filesystem::path& file) {
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("GET /admin/plugins and /admin/routes describe the runtime as the CLI does", "[admin]") {
    TestServer server(config_yaml("  hello: {}\n  alpha:\n    middleware: [alpha.mark]\n  beta:\n    enabled: false\n"));
    auto plugins = admin(server, "GET", "/admin/plugins");
    REQUIRE(plugins.status == 200);
    CHECK(plugins.header("Content-Type") == "application/json");
    const auto list = plugins.json()["plugins"];
    REQUIRE(find_by(list, "name", "hello") != nullptr);
    CHECK(find_by(list, "name", "hello")["state"] == "loaded");
    CHECK(find_by(list, "name", "alpha")["abi"].is_string());
    CHECK(find_by(list, "name", "beta")["state"] == "disabled");

    auto routes = admin(server, "GET", "/admin/routes");
    REQUIRE(routes.status == 200);
    const auto rows = routes.json()["routes"];
    CHECK(find_by(rows, "path", "/readyz")["plugin"] == "(host)");
    const auto hello = find_by(rows, "plugin", "hello");
    REQUIRE(hello != nullptr);
    CHECK(hello["method"] == "GET");
    const auto count = find_by(rows, "path", "/alpha/count");
    REQUIRE(count != nullptr);
    CHECK(count["middleware"] == nlohmann::json::array({"alpha.mark"}));
    CHECK(rows.size() == server.runtime().targets().size() + 2);
}

TEST_CASE("GET /admin/version answers the product version, the ABI and the ABIs accepted", "[admin]") {
    TestServer server(config_yaml("  hello: {}\n"));
    const auto r = admin(server, "GET", "/admin/version");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type") == "application/json");
    const auto doc = r.json();
    CHECK(doc["version"] == TRELLIS_VERSION);
    CHECK(doc["abi"] == "1.4");
    CHECK(doc["abi_accepted"] == nlohmann::json{"1.0", "1.1", "1.2", "1.3", "1.4"});
    CHECK_THAT(doc["build"]["compiler"].get<std::string>(), Contains("g++") || Contains("clang"));
    CHECK(doc["build"]["build_type"].is_string());
    CHECK(doc["build"]["engines"] == nlohmann::json{"event", "poco"});
    // The same document as `trellis version --json`; never on the public listener.
    TempDir dir;
    Process cli({TRELLIS_TEST_BINARY, "version", "--json"}, minimal_environment(), dir.path() / "out");
    REQUIRE(cli.wait(10s) == 0);
    CHECK(nlohmann::json::parse(cli.output()) == doc);
    CHECK(server.get("/admin/version").status == 404);
}

TEST_CASE("GET /admin/migrations lists applied and failed migrations with checksums", "[admin]") {
    TestServer server(config_yaml(
        "  alpha:\n    config:\n      migrations:\n"
        "        - {version: 1, name: create, up: \"CREATE TABLE alpha_items (id INTEGER)\"}\n"
        "  beta:\n    config:\n      migrations:\n"
        "        - {version: 1, name: broken, up: \"THIS IS NOT SQL\"}\n",
        kSqlite));
    const auto before = server.pipeline().counts();
    auto r = admin(server, "GET", "/admin/migrations");
    INFO(r.body);
    REQUIRE(r.status == 200);
    // It reads the database, so on the event engine it ran on the worker pool, not on a loop.
    if (server.config().server.engine == config::EngineKind::event)
        CHECK(server.pipeline().counts().worker_runs == before.worker_runs + 1);
    const auto list = r.json()["migrations"];
    const auto applied = find_by(list, "plugin", "alpha");
    REQUIRE(applied != nullptr);
    CHECK(applied["version"] == 1);
    CHECK(applied["name"] == "create");
    CHECK(applied["state"] == "applied");
    CHECK(applied["checksum"].get<std::string>().size() == 64);
    CHECK(applied["checksum"] == applied["recorded_checksum"]);
    const auto failed = find_by(list, "plugin", "beta");
    REQUIRE(failed != nullptr);
    CHECK(failed["state"] == "failed");
    CHECK(failed["error"].get<std::string>().size() > 0);
    CHECK(r.json()["database"].get<std::string>().ends_with("admin.db"));
}

TEST_CASE("GET /admin/config shows the effective config with every secret redacted", "[admin]") {
    TempDir files;
    auto token = files.write("admin.token", "tok-abcdef\n");
    TestServer server(
        config_yaml("  alpha:\n    config:\n      passphrase: open-sesame\n      label: \"https://bob:swordfish@example.com/x\"\n"
                    "      upstream: {host: upstream.example, pin: pin-7781}\n"
                    "  gamma:\n    enabled: false\n    config:\n      api_key: k-123\n"
                    "      nested: {Private_Key: pk-9, note: plain}\n",
                    "server:\n  admin_token_file: " + token.string() +
                        "\n  shutdown_delay: 7s\ndatabase:\n  url: postgresql://app:hunter2@127.0.0.1:1/appdb\n"));
    auto r = admin(server, "GET", "/admin/config", {}, {{"Authorization", "Bearer tok-abcdef"}});
    INFO(r.body);
    REQUIRE(r.status == 200);
    for (const char* secret : {"tok-abcdef", "open-sesame", "swordfish", "pin-7781", "k-123", "pk-9", "hunter2"})
        CHECK_THAT(r.body, !Contains(secret));
    const auto config = r.json()["config"];
    CHECK(config["server"]["shutdown_delay"] == "7000ms");
    CHECK(config["server"]["admin_token_file"] == "***");
    CHECK(config["database"]["url"] == "postgresql://app:***@127.0.0.1:1/appdb");
    const auto alpha = config["plugins"]["alpha"]["config"];
    CHECK(alpha["passphrase"] == "***");                    // writeOnly in the schema
    CHECK(alpha["upstream"]["pin"] == "***");               // writeOnly, nested
    CHECK(alpha["upstream"]["host"] == "upstream.example");  // not a secret
    CHECK(alpha["label"] == "https://bob:***@example.com/x");
    const auto gamma = config["plugins"]["gamma"]["config"];
    CHECK(gamma["api_key"] == "***");
    CHECK(gamma["nested"]["Private_Key"] == "***");
    CHECK(gamma["nested"]["note"] == "plain");
    CHECK(config["plugins"]["gamma"]["enabled"] == false);
}

TEST_CASE("redacted_config redacts by name inside arrays too", "[admin]") {
    TempDir dir;
    auto config = load_config(dir, config_yaml("  alpha:\n    config:\n      migrations: []\n"));
    auto copy = std::make_shared<config::Config>(*config);
    copy->plugins[0].config = {{"list", {{{"secret_free", "a"}, {"hidden", "b"}}}}};
    auto out = host::redacted_config(*copy, nullptr);
    // No runtime: no schema, only names count.
    CHECK(out["plugins"]["alpha"]["config"]["list"][0]["hidden"] == "b");
    CHECK(out["plugins"]["alpha"]["config"]["list"][0]["secret_free"] == "***");
}

TEST_CASE("POST /admin/reload swaps the runtime, or returns every error and keeps the old one", "[admin]") {
    TestServer server(config_yaml("  hello:\n    config: {greeting: One}\n"));
    CHECK(server.get("/hello/x").json()["greeting"] == "One, x!");

    server.dir().write("trellis.yaml", config_yaml("  hello:\n    config: {greeting: Two}\n"));
    auto good = admin(server, "POST", "/admin/reload", "{}", kJson);
    INFO(good.body);
    REQUIRE(good.status == 200);
    CHECK(good.json()["reloaded"] == true);
    CHECK(find_by(good.json()["plugins"], "name", "hello")["state"] == "loaded");
    CHECK(server.get("/hello/x").json()["greeting"] == "Two, x!");

    // Two errors in one file: both come back.
    server.dir().write("trellis.yaml", config_yaml("  hello:\n    config: {greeting: Three}\n", "server:\n  workers: 0\n  bogus: 1\n"));
    auto bad = admin(server, "POST", "/admin/reload", "", kJson);
    check_problem(bad, 422, "reload_failed");
    const auto errors = bad.json()["errors"];
    REQUIRE(errors.is_array());
    std::string all = errors.dump();
    CHECK_THAT(all, Contains("server.workers") && Contains("server.bogus") && Contains("reload aborted"));
    CHECK(server.get("/hello/x").json()["greeting"] == "Two, x!");

    // A plugin that fails to start in a required role: the runtime build's error comes back.
    server.dir().write("trellis.yaml", config_yaml("  hello:\n    config: {greeting: Four}\n"
                                                   "  alpha:\n    required: true\n    config: {fail_init: true}\n"));
    auto failed = admin(server, "POST", "/admin/reload", "{}", kJson);
    check_problem(failed, 422, "reload_failed");
    CHECK_THAT(failed.json()["errors"].dump(), Contains("fixture was told to fail in init"));
    CHECK(server.get("/hello/x").json()["greeting"] == "Two, x!");

    check_problem(admin(server, "POST", "/admin/reload", "{not json", kJson), 400, "bad_json");
}

TEST_CASE("a second reload while one runs gets 409", "[admin]") {
    const std::string yaml = config_yaml("  alpha:\n    config: {init_sleep_ms: 1500}\n");
    TestServer server(yaml);
    auto first = std::async(std::launch::async, [&] { return admin(server, "POST", "/admin/reload", "{}", kJson); });
    std::this_thread::sleep_for(400ms);
    auto second = admin(server, "POST", "/admin/reload", "{}", kJson);
    check_problem(second, 409, "reload_in_progress");
    CHECK(first.get().status == 200);
    // Once it is done, the next one runs.
    CHECK(admin(server, "POST", "/admin/reload", "{}", kJson).status == 200);
}

TEST_CASE("with server.admin_token_file every /admin request needs the bearer token", "[admin]") {
    TempDir files;
    auto token = files.write("admin.token", "  s3cr3t-token-1\n");
    TestServer server(config_yaml("  hello: {}\n", "server:\n  admin_token_file: " + token.string() + "\n"));

    auto none = admin(server, "GET", "/admin/plugins");
    check_problem(none, 401, "unauthorized");
    CHECK(none.header("WWW-Authenticate") == "Bearer realm=\"trellis-admin\"");
    auto wrong = admin(server, "GET", "/admin/plugins", {}, {{"Authorization", "Bearer s3cr3t-token-2"}});
    check_problem(wrong, 401, "unauthorized");
    CHECK_THAT(*wrong.header("WWW-Authenticate"), Contains("invalid_token"));
    CHECK_THAT(wrong.body, !Contains("s3cr3t"));
    check_problem(admin(server, "GET", "/admin/config", {}, {{"Authorization", "Basic czNjcjN0LXRva2VuLTE="}}), 401,
                  "unauthorized");
    check_problem(admin(server, "POST", "/admin/reload", "{}", kJson), 401, "unauthorized");
    const Headers right{{"Authorization", "Bearer s3cr3t-token-1"}};
    CHECK(admin(server, "GET", "/admin/plugins", {}, right).status == 200);
    CHECK(admin(server, "GET", "/admin/routes", {}, {{"Authorization", "bearer s3cr3t-token-1"}}).status == 200);
    check_problem(admin(server, "GET", "/admin/version"), 401, "unauthorized");
    CHECK(admin(server, "GET", "/admin/version", {}, right).status == 200);
    // Health stays open.
    CHECK(admin(server, "GET", "/livez").status == 200);
    CHECK(admin(server, "GET", "/readyz").status == 200);

    // With the token, a reload needs no JSON body; it reads the token file again.
    files.write("admin.token", "s3cr3t-token-2");
    auto reloaded = admin(server, "POST", "/admin/reload", {}, right);
    INFO(reloaded.body);
    CHECK(reloaded.status == 200);
    check_problem(admin(server, "GET", "/admin/plugins", {}, right), 401, "unauthorized");
    CHECK(admin(server, "GET", "/admin/plugins", {}, {{"Authorization", "Bearer s3cr3t-token-2"}}).status == 200);
}

TEST_CASE("a missing or empty admin token file is a config error naming the file", "[admin]") {
    TempDir dir;
    auto empty = dir.write("empty.token", " \n");
    for (const auto& [file, reason] : {std::pair{(dir.path() / "absent.token").string(), std::string("cannot read")},
                                       std::pair{empty.string(), std::string("is empty")}}) {
        auto main = dir.write("trellis.yaml", "server:\n  admin_token_file: " + file + "\n");
        auto loaded = config::load({main, {}});
        REQUIRE_FALSE(loaded.has_value());
        REQUIRE(loaded.error().size() == 1);
        CHECK_THAT(loaded.error()[0], Contains("trellis.yaml:2:") && Contains("server.admin_token_file") &&
                                          Contains(file) && Contains(reason));
    }
}

TEST_CASE("token_matches compares whole tokens", "[admin]") {
    CHECK(host::token_matches("abc", "abc"));
    CHECK_FALSE(host::token_matches("abc", "abd"));
    CHECK_FALSE(host::token_matches("ab", "abc"));
    CHECK_FALSE(host::token_matches("", "abc"));
}

TEST_CASE("without a token, a state-changing admin request needs a JSON body", "[admin]") {
    TempDir events_dir;
    auto events = events_dir.path() / "events";
    TestServer server(config_yaml("  alpha:\n    config: {events_file: \"" + events.string() + "\"}\n"));
    REQUIRE(read_text(events) == "init alpha\n");
    // What a cross-site form or fetch without preflight can send.
    for (const std::string type : {"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"}) {
        auto r = admin(server, "POST", "/admin/reload", "a=1", {{"Content-Type", type}});
        check_problem(r, 415, "unsupported_media_type");
    }
    check_problem(admin(server, "POST", "/admin/reload"), 415, "unsupported_media_type");
    CHECK(read_text(events) == "init alpha\n");  // nothing was reloaded
    CHECK(admin(server, "POST", "/admin/reload", "{}", {{"Content-Type", "application/json; charset=utf-8"}}).status ==
          200);
    CHECK_THAT(read_text(events), Contains("init alpha\ninit alpha\n"));
}

TEST_CASE("the public listener serves neither /admin nor /metrics", "[admin]") {
    TestServer server(config_yaml("  hello: {}\n"));
    for (const char* path :
         {"/admin/plugins", "/admin/routes", "/admin/config", "/admin/migrations", "/admin/version", "/metrics"}) {
        INFO(path);
        check_problem(server.get(path), 404, "not_found");
    }
    check_problem(server.request("POST", "/admin/reload", "{}", kJson), 404, "not_found");
    CHECK(admin(server, "GET", "/admin/plugins").status == 200);  // where they are served
}

TEST_CASE("/readyz: each check on the admin listener, only the status on the public one", "[admin][readiness]") {
    TestServer server(config_yaml("  hello: {}\n  alpha:\n    required: true\n", kSqlite));
    auto pub = server.get("/readyz");
    REQUIRE(pub.status == 200);
    CHECK(pub.json() == nlohmann::json{{"status", "ready"}});

    auto detailed = readyz_after_probe(server);
    REQUIRE(detailed.status == 200);
    CHECK(detailed.json()["status"] == "ready");
    for (const char* name : {"runtime", "required_plugins", "not_draining", "database"}) {
        INFO(name);
        CHECK(check_named(detailed, name)["ok"] == true);
    }
    CHECK(check_named(detailed, "database")["required"] == false);

    // Shutting down: not ready on both listeners, while requests are still served.
    server.host().begin_shutdown();
    auto draining = server.get("/readyz");
    CHECK(draining.status == 503);
    CHECK(draining.json() == nlohmann::json{{"status", "not ready"}});
    auto why = admin(server, "GET", "/readyz");
    CHECK(why.status == 503);
    CHECK(check_named(why, "not_draining")["ok"] == false);
    CHECK(check_named(why, "runtime")["ok"] == true);
    CHECK(server.get("/hello/x").status == 200);
    CHECK(server.get("/livez").status == 200);
}

TEST_CASE("a database outage turns /readyz 503 only with health.readyz_requires_database", "[admin][readiness]") {
    const std::string down = "database:\n  url: postgresql://app:pw@127.0.0.1:" + std::to_string(free_port()) + "/app\n";
    SECTION("not required (the default): still ready, the check says why") {
        TestServer server(config_yaml("  hello: {}\n", down));
        auto r = readyz_after_probe(server);
        CHECK(r.status == 200);
        const auto database = check_named(r, "database");
        CHECK(database["ok"] == false);
        CHECK(database["required"] == false);
        CHECK_THAT(database["message"].get<std::string>(), !Contains(":pw@"));
        CHECK(server.get("/readyz").status == 200);
        CHECK(server.get("/livez").status == 200);
    }
    SECTION("required: 503") {
        TestServer server(config_yaml("  hello: {}\n", down + "health:\n  readyz_requires_database: true\n"));
        auto r = readyz_after_probe(server);
        CHECK(r.status == 503);
        CHECK(check_named(r, "database")["ok"] == false);
        CHECK(check_named(r, "database")["required"] == true);
        CHECK(server.get("/readyz").status == 503);
        CHECK(server.get("/livez").status == 200);  // /livez never asks the database
        CHECK(server.get("/hello/x").status == 200);
    }
    SECTION("required and reachable: ready") {
        TestServer server(config_yaml("  hello: {}\n", kSqlite + "health:\n  readyz_requires_database: true\n"));
        std::filesystem::path file = server.dir().path() / "admin.db";
        { std::ofstream touch(file); }  // an existing (empty) SQLite file: the probe opens it
        HttpResponse r;
        for (int i = 0; i < 60 && !(r.status == 200 && check_named(r, "database")["message"] == "reachable"); ++i) {
            r = admin(server, "GET", "/readyz");
            std::this_thread::sleep_for(50ms);
        }
        INFO(r.body);
        CHECK(r.status == 200);
        CHECK(check_named(r, "database")["ok"] == true);
        CHECK(check_named(r, "database")["message"] == "reachable");
    }
}

namespace {

struct Serving {
    TempDir dir;
    std::uint16_t port = free_port();
    std::uint16_t admin_port = free_port();
    std::unique_ptr<Process> process;

    explicit Serving(const std::string& delay) {
        dir.write("trellis.yaml", config_yaml("  hello: {}\n"));
        std::vector<std::string> env;
        for (auto& entry : minimal_environment())
            if (!entry.starts_with(std::string(shutdown_delay_variable) + "=")) env.push_back(entry);
        env.push_back(std::string(shutdown_delay_variable) + "=" + delay);
        env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
        env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(admin_port));
        process = std::make_unique<Process>(
            std::vector<std::string>{TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / "trellis.yaml").string()}, env,
            dir.path() / "output.log");
    }
};

}  // namespace

TEST_CASE("after SIGTERM /readyz answers 503 for server.shutdown_delay while requests still succeed",
          "[admin][readiness][shutdown]") {
    Serving s("2s");
    REQUIRE(wait_until_listening(s.port, 10s));
    REQUIRE(http_request(s.port, "GET", "/readyz").status == 200);
    const auto signalled = std::chrono::steady_clock::now();
    s.process->signal(SIGTERM);
    int readyz = 200;
    for (int i = 0; i < 40 && readyz != 503; ++i) {
        std::this_thread::sleep_for(25ms);
        readyz = http_request(s.port, "GET", "/readyz").status;
    }
    CHECK(readyz == 503);
    // Within the delay the listeners serve as before, on new connections too.
    for (int i = 0; i < 5; ++i) {
        CHECK(http_request(s.port, "GET", "/hello/x").status == 200);
        std::this_thread::sleep_for(100ms);
    }
    auto why = http_request(s.admin_port, "GET", "/readyz");
    CHECK(why.status == 503);
    CHECK(find_by(why.json()["checks"], "name", "not_draining").at("ok") == false);
    CHECK(std::chrono::steady_clock::now() - signalled < 1800ms);
    CHECK_FALSE(s.process->wait(0ms).has_value());
    REQUIRE(s.process->wait(20s) == 0);
    CHECK(std::chrono::steady_clock::now() - signalled >= 2s);
    CHECK_THAT(s.process->output(), Contains("server.shutdown_delay") && Contains("drained"));
}

TEST_CASE("a second SIGTERM during the shutdown delay starts the drain at once", "[admin][readiness][shutdown]") {
    Serving s("60s");
    REQUIRE(wait_until_listening(s.port, 10s));
    s.process->signal(SIGTERM);
    std::this_thread::sleep_for(300ms);
    CHECK(http_request(s.port, "GET", "/readyz").status == 503);
    REQUIRE_FALSE(s.process->wait(0ms).has_value());
    s.process->signal(SIGTERM);
    REQUIRE(s.process->wait(5s) == 0);
    CHECK_THAT(s.process->output(), Contains("second SIGTERM: draining now") && Contains("stopped"));
}

TEST_CASE("a plugin's own readiness check (ABI 1.3) is reported and can make /readyz 503", "[admin][readiness]") {
    TestServer server(config_yaml("  alpha:\n    config: {unready: true}\n", kSqlite));
    auto r = readyz_after_probe(server);
    CHECK(r.status == 503);
    auto check = check_named(r, "alpha/fixture");
    CHECK(check["ok"] == false);
    CHECK(check["message"] == "told to be unready");
    CHECK(server.get("/readyz").status == 503);
    CHECK(server.get("/livez").status == 200);

    // The plugin turns ready: the prober (once a second) reports it.
    REQUIRE(server.get("/alpha/ready/flip").status == 200);
    for (int i = 0; i < 60 && r.status != 200; ++i) {
        std::this_thread::sleep_for(100ms);
        r = admin(server, "GET", "/readyz");
    }
    CHECK(r.status == 200);
    CHECK(check_named(r, "alpha/fixture")["ok"] == true);
    CHECK(server.get("/readyz").status == 200);
}
