// The in-process harness (trellis/testing.hpp over libtrellis.so.1): real fixture plugins
// through the real host without a listener — routing, middleware order, problem+json,
// the worker pool, migrations on a temporary SQLite file, start-up errors, concurrency, reload,
// and the library's exported symbols.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <trellis/testing.hpp>

using Catch::Matchers::Contains;
using trellis::testing::Host;

namespace fs = std::filesystem;

namespace {

// The fixture plugins and the bundled ones, then the given plugin entries (under plugins:).
std::string config(const std::string& plugins, const std::string& top = "") {
    return top + "plugins:\n  search_paths: [\"" TRELLIS_TEST_FIXTURE_DIR "\", \"" TRELLIS_TEST_PLUGIN_DIR "\"]\n" +
           plugins;
}

std::string error_of(const std::string& yaml, const std::string& base_dir = ".") {
    try {
        Host host(yaml, base_dir);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    FAIL("the host started although it should not have");
    return {};
}

std::string run(const std::string& command) {
    std::string output;
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
    REQUIRE(::pclose(pipe) == 0);
    return output;
}

}  // namespace

TEST_CASE("a route with a path parameter, a query and a JSON body answers through the plugin", "[embed]") {
    Host host(config("  alpha: {}\n  hello:\n    config: {greeting: Hi}\n"));
    auto echoed = host.post("/alpha/echo/42?x=1&y=two", R"({"a":[1,2],"b":"c"})",
                            {{"Content-Type", "application/json"}});
    REQUIRE(echoed.status == 201);
    const auto body = echoed.json();
    CHECK(body["id"] == "42");
    CHECK(body["body"] == nlohmann::json({{"a", {1, 2}}, {"b", "c"}}));
    CHECK(body["query"] == nlohmann::json({{"x", "1"}, {"y", "two"}}));
    CHECK(echoed.header("content-type") == "application/json");

    auto hello = host.get("/hello/w%C3%B6rld");
    REQUIRE(hello.status == 200);
    CHECK(hello.json()["greeting"] == "Hi, w\xC3\xB6rld!");
    // Host middleware ran: a request id and a trace context on every answer.
    CHECK(hello.header("X-Request-ID").size() >= 16);
    CHECK(hello.header("traceparent").rfind("00-", 0) == 0);
    CHECK(hello.header("X-Not-There").empty());
}

TEST_CASE("the harness sends PUT, PATCH and DELETE and the given headers", "[embed]") {
    Host host(config("  alpha: {}\n"));
    // Unknown methods on a known path: 405 with Allow, as over HTTP.
    auto put = host.put("/alpha/count", "{}");
    CHECK(put.status == 405);
    CHECK_THAT(put.header("Allow"), Contains("GET"));
    CHECK(host.patch("/alpha/count", "{}").status == 405);
    CHECK(host.del("/alpha/count").status == 405);
    auto attributes = host.get("/alpha/attributes", {{"X-Request-ID", "given-request-id-1234"}});
    CHECK(attributes.header("X-Request-ID") == "given-request-id-1234");
    CHECK(attributes.json()["attributes"]["trellis.request_id"] == "given-request-id-1234");
}

TEST_CASE("global middleware runs in config order around the plugin's own", "[embed]") {
    Host host(config("  alpha: {}\n  beta: {}\n  gamma:\n    middleware: [gamma.mark]\n",
                     "middleware: [beta.mark, alpha.mark]\n"));
    auto r = host.get("/gamma/attributes");
    REQUIRE(r.status == 200);
    CHECK(r.json()["attributes"]["trace"] == "beta,alpha,gamma");
    CHECK(r.header("X-Trace") == "gamma,alpha,beta");
    // A middleware that answers without calling next.
    Host denying(config("  alpha:\n    config: {middleware: [deny]}\n  beta:\n    middleware: [alpha.deny]\n"));
    auto denied = denying.get("/beta/count", {{"X-Deny", "1"}});
    CHECK(denied.status == 403);
    CHECK(denied.json()["code"] == "denied");
    CHECK(denying.get("/beta/count").json()["count"] == 1);
}

TEST_CASE("errors are answered as problem+json: 404, 400, 413, 500", "[embed]") {
    Host host(config("  alpha: {}\n", "server:\n  max_body_bytes: 1KiB\n"));
    auto missing = host.get("/nothing/here");
    CHECK(missing.status == 404);
    CHECK(missing.header("Content-Type") == "application/problem+json");
    CHECK(missing.json()["code"] == "not_found");
    CHECK(missing.json()["request_id"] == missing.header("X-Request-ID"));

    auto bad_path = host.get("/alpha/%zz");
    CHECK(bad_path.status == 400);
    CHECK(bad_path.json()["code"] == "bad_path");
    auto bad_json = host.post("/alpha/echo/1", "{not json", {{"Content-Type", "application/json"}});
    CHECK(bad_json.status == 400);
    CHECK(bad_json.header("Content-Type") == "application/problem+json");
    CHECK(bad_json.json()["code"] == "invalid_json");

    auto too_large = host.post("/alpha/echo/1", std::string(2048, 'x'), {{"Content-Type", "application/json"}});
    CHECK(too_large.status == 413);
    CHECK(too_large.json()["code"] == "payload_too_large");
    const std::string within = "[" + std::string(1000, ' ') + "]";
    CHECK(host.post("/alpha/echo/1", within, {{"Content-Type", "application/json"}}).status == 201);

    auto boom = host.get("/alpha/boom");
    CHECK(boom.status == 500);
    CHECK(boom.json()["code"] == "internal_error");
    CHECK(boom.body.find("boom from") == std::string::npos);  // no internals
}

TEST_CASE("limits of the request head are answered 414 and 431", "[embed]") {
    Host host(config("  alpha: {}\n", "server:\n  max_uri_bytes: 1KiB\n  max_headers: 10\n"));
    CHECK(host.get("/alpha/count?q=" + std::string(1100, 'a')).status == 414);
    trellis::testing::Headers many;
    for (int i = 0; i < 12; ++i) many.emplace_back("X-Header-" + std::to_string(i), "v");
    auto refused = host.get("/alpha/count", many);
    CHECK(refused.status == 431);
    CHECK(refused.header("Content-Type") == "application/problem+json");
    CHECK(host.get("/alpha/count").status == 200);
}

TEST_CASE("a Host the server does not serve is refused with 421, as on a loopback listener", "[embed]") {
    Host host(config("  alpha: {}\n"));
    CHECK(host.get("/alpha/count", {{"Host", "evil.example"}}).status == 421);
    CHECK(host.get("/alpha/count", {{"Host", "127.0.0.1:8080"}}).status == 200);
}

TEST_CASE("a blocking handler completes on the worker pool and the caller waits for it", "[embed]") {
    Host host(config("  alpha: {}\n"));
    // The database is refused on an event loop: /db/ping answering proves it ran on a worker,
    // and /inline/db (declared non-blocking) is refused as under the event engine.
    auto ping = host.get("/alpha/db/ping");
    REQUIRE(ping.status == 200);
    CHECK(ping.json()["one"] == 1);
    CHECK(host.get("/alpha/inline/db").status == 500);
    auto slept = host.get("/alpha/sleep?ms=150");
    CHECK(slept.status == 200);
    CHECK(slept.json()["slept_ms"] == 150);

    // server.engine: poco has no worker pool: everything runs on the caller's thread.
    Host poco(config("  alpha: {}\n", "server:\n  engine: poco\n"));
    CHECK(poco.get("/alpha/inline/db").status == 200);
}

TEST_CASE("migrations run on a temporary SQLite file that goes away with the host", "[embed][database]") {
    fs::path data_dir;
    {
        Host host(config("  notes: {}\n"));
        data_dir = host.data_dir();
        REQUIRE(!data_dir.empty());
        CHECK(fs::is_directory(data_dir));
        CHECK(fs::exists(data_dir / "trellis.db"));
        CHECK(data_dir.string().rfind(fs::temp_directory_path().string(), 0) == 0);

        auto created = host.post("/notes", R"({"title":"first","body":"in the temporary database"})",
                                 {{"Content-Type", "application/json"}});
        REQUIRE(created.status == 201);
        const auto id = created.json()["id"];
        auto listed = host.get("/notes");
        REQUIRE(listed.status == 200);
        CHECK(listed.json()["items"].size() == 1);
        CHECK(host.get("/notes/" + id.dump()).json()["title"] == "first");
    }
    CHECK_FALSE(fs::exists(data_dir));

    // A second host starts from an empty database of its own.
    Host fresh(config("  notes: {}\n"));
    CHECK(fs::path(fresh.data_dir()) != data_dir);
    CHECK(fresh.get("/notes").json()["items"].empty());
}

TEST_CASE("a configured data_dir is used and kept, relative paths resolve against base_dir", "[embed][database]") {
    const fs::path base = fs::temp_directory_path() / ("trellis-embed-base-" + std::to_string(::getpid()));
    fs::remove_all(base);
    fs::create_directories(base / "state");
    {
        Host host("server:\n  data_dir: state\nplugins:\n  search_paths: [\"" TRELLIS_TEST_PLUGIN_DIR "\"]\n  notes: {}\n",
                  base.string());
        CHECK(fs::path(host.data_dir()) == base / "state");
        CHECK(host.post("/notes", R"({"title":"kept"})", {{"Content-Type", "application/json"}}).status == 201);
    }
    CHECK(fs::exists(base / "state" / "trellis.db"));
    fs::remove_all(base);
}

TEST_CASE("configuration errors surface through create with their line", "[embed]") {
    const auto unknown = error_of("server:\n  listn: 127.0.0.1:1\n");
    CHECK_THAT(unknown, Contains("config:2:3"));
    CHECK_THAT(unknown, Contains("listen"));  // did you mean
    CHECK_THAT(error_of("server: [unclosed\n"), Contains("invalid YAML"));
    CHECK_THAT(error_of("server:\n  max_body_bytes: lots\n"), Contains("config:2:"));
}

TEST_CASE("plugin errors surface through create with the plugin's name, file and reason", "[embed]") {
    const auto missing = error_of(config("  absent_plugin: {}\n"));
    CHECK_THAT(missing, Contains("plugin 'absent_plugin'"));
    CHECK_THAT(missing, Contains(TRELLIS_TEST_FIXTURE_DIR));  // where it was looked for

    const auto failing = error_of(config("  alpha:\n    config: {fail_init: true}\n"));
    CHECK_THAT(failing, Contains("plugin 'alpha' (" TRELLIS_TEST_FIXTURE_DIR "/alpha.so)"));
    CHECK_THAT(failing, Contains("fixture was told to fail in init"));

    const auto bad_schema = error_of(config("  hello:\n    config: {greeting: 7}\n"));
    CHECK_THAT(bad_schema, Contains("plugins.hello.config.greeting"));

    const auto wrong_abi = error_of(config("  abi_major_two: {}\n"));
    CHECK_THAT(wrong_abi, Contains("abi_major_two.so"));
    CHECK_THAT(wrong_abi, Contains("2.0"));
}

TEST_CASE("requests from several threads at once are all answered", "[embed]") {
    Host host(config("  alpha: {}\n"));
    constexpr int threads = 8;
    constexpr int each = 40;
    std::atomic<int> failures{0};
    std::vector<std::vector<int>> counts(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            for (int i = 0; i < each; ++i) {
                auto r = host.get(i % 2 ? "/alpha/count" : "/alpha/db/ping");
                if (r.status != 200) ++failures;
                if (i % 2) counts[static_cast<std::size_t>(t)].push_back(r.json()["count"].get<int>());
            }
        });
    for (auto& worker : workers) worker.join();
    CHECK(failures == 0);
    std::set<int> seen;
    for (const auto& list : counts) seen.insert(list.begin(), list.end());
    CHECK(seen.size() == threads * each / 2);  // every counted request got its own number
    CHECK(*seen.rbegin() == threads * each / 2);
}

TEST_CASE("reload swaps the plugins in, a bad configuration keeps the old ones serving", "[embed]") {
    Host host(config("  alpha:\n    config: {label: one}\n"));
    CHECK(host.get("/alpha/count").json()["label"] == "one");
    host.reload(config("  alpha:\n    config: {label: two}\n"));
    CHECK(host.get("/alpha/count").json()["label"] == "two");
    CHECK_THROWS_WITH(host.reload(config("  alpha:\n    config: {fail_init: true}\n")),
                      Contains("fixture was told to fail in init"));
    CHECK(host.get("/alpha/count").json()["label"] == "two");
}

TEST_CASE("arguments that form no request are refused with a message", "[embed]") {
    Host host(config("  alpha: {}\n"));
    CHECK_THROWS_WITH(host.get("alpha/count"), Contains("must be a path starting with '/'"));
    CHECK_THROWS_WITH(host.request("G E T", "/alpha/count"), Contains("not an HTTP token"));
    CHECK_THROWS_WITH(host.get("/alpha/count", {{"Bad Name", "x"}}), Contains("not a token"));
    CHECK(host.request("HEAD", "/alpha/count").body.empty());
}

TEST_CASE("libtrellis.so.1 exports the embedding API and nothing else", "[embed][abi]") {
    const std::string library = TRELLIS_EMBED_LIBRARY;
    const std::string symbols = run("nm -D --defined-only '" + library + "'");
    std::set<std::string> exported;
    std::istringstream lines(symbols);
    for (std::string line; std::getline(lines, line);) {
        INFO(line);
        const auto name = line.substr(line.rfind(' ') + 1);
        if (name == "TRELLIS_EMBED_1") continue;  // the version node of exports.map
        CHECK(name.rfind("trellis_embed_", 0) == 0);
        exported.insert(name.substr(0, name.find('@')));
    }
    for (const char* function :
         {"trellis_embed_api_version", "trellis_embed_create", "trellis_embed_destroy", "trellis_embed_reload",
          "trellis_embed_data_dir", "trellis_embed_request", "trellis_embed_response_status",
          "trellis_embed_response_header_count", "trellis_embed_response_header", "trellis_embed_response_body",
          "trellis_embed_response_free", "trellis_embed_free_string"}) {
        INFO(function);
        CHECK(exported.count(function) == 1);
    }
    const std::string dynamic = run("readelf -d '" + library + "'");
    CHECK_THAT(dynamic, Contains("Library soname: [libtrellis.so.1]"));
    CHECK_THAT(dynamic, Contains("BIND_NOW"));
    CHECK_THAT(run("readelf -l '" + library + "'"), Contains("GNU_RELRO"));
    CHECK(trellis_embed_api_version() == TRELLIS_EMBED_API_VERSION);
}
