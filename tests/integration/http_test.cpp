// Real HTTP over loopback against hello and the fixtures: responses, problem+json errors,
// request ids, HEAD, OPTIONS, redirects, body limits, and a plugin that throws.
#include <catch2/catch.hpp>

#include "support/test_server.hpp"

using namespace trellis;
using Catch::Matchers::Contains;
using test::config_yaml;
using test::TestServer;

namespace {
void check_problem(const test::HttpResponse& r, int status, const std::string& code) {
    INFO(r.body);
    CHECK(r.status == status);
    CHECK(r.header("Content-Type") == "application/problem+json");
    auto doc = r.json();
    CHECK(doc["status"] == status);
    CHECK(doc["code"] == code);
    CHECK(doc["type"] == "about:blank");
    CHECK(doc["title"].is_string());
    CHECK(doc["request_id"] == *r.header("X-Request-ID"));
}
}  // namespace

TEST_CASE("hello answers the configured greeting as JSON", "[http]") {
    TestServer server(config_yaml("  hello:\n    config: {greeting: Bonjour}\n"));
    auto r = server.get("/hello/world");
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.json() == nlohmann::json{{"greeting", "Bonjour, world!"}, {"name", "world"}});
    auto encoded = server.get("/hello/J%C3%BCrgen%20X");
    CHECK(encoded.json()["name"] == "J\xC3\xBCrgen X");
}

TEST_CASE("hello's default greeting and conf.d override", "[http]") {
    TestServer plain(config_yaml("  hello: {}\n"));
    CHECK(plain.get("/hello/ann").json()["greeting"] == "Hello, ann!");
}

TEST_CASE("request ids: sane ones echoed, others replaced by a generated one", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"));
    CHECK(server.get("/hello/a", {{"X-Request-ID", "client-42"}}).header("X-Request-ID") == "client-42");
    auto replaced = server.get("/hello/a", {{"X-Request-ID", "bad id with spaces"}});
    CHECK(replaced.header("X-Request-ID")->size() == 32);
    auto generated = server.get("/hello/a");
    CHECK(generated.header("X-Request-ID")->size() == 32);
    CHECK(generated.header("X-Request-ID") != replaced.header("X-Request-ID"));
}

TEST_CASE("unknown paths get 404 problem+json without internals", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"));
    auto r = server.get("/nope?x=1");
    check_problem(r, 404, "not_found");
    CHECK(r.json()["instance"] == "/nope");
}

TEST_CASE("a known path with another method gets 405 with Allow - OPTIONS gets 204", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"));
    auto r = server.request("DELETE", "/hello/x");
    check_problem(r, 405, "method_not_allowed");
    CHECK(r.header("Allow") == "GET, HEAD, OPTIONS");
    auto options = server.request("OPTIONS", "/hello/x");
    CHECK(options.status == 204);
    CHECK(options.header("Allow") == "GET, HEAD, OPTIONS");
}

TEST_CASE("HEAD is answered from GET without a body", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"));
    auto get = server.get("/hello/head");
    auto head = server.request("HEAD", "/hello/head");
    CHECK(head.status == 200);
    CHECK(head.body.empty());
    CHECK(head.header("Content-Length") == std::to_string(get.body.size()));
    // Raw bytes: the server must not send a body after the headers of a HEAD answer.
    auto raw = test::raw_request(server.port(), "HEAD /hello/head HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    CHECK(raw.substr(raw.find("\r\n\r\n") + 4).empty());
}

TEST_CASE("a trailing slash redirects with 308, keeping the query", "[http]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    auto r = server.get("/alpha/count/?a=1");
    CHECK(r.status == 308);
    CHECK(r.header("Location") == "/alpha/count?a=1");
}

TEST_CASE("a malformed percent-escape in the path is a 400", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"));
    check_problem(server.get("/hello/%zz"), 400, "bad_path");
}

TEST_CASE("a plugin that throws gets 500 problem+json and the server keeps serving", "[http]") {
    TestServer server(config_yaml("  alpha: {}\n  hello: {}\n"));
    for (int i = 0; i < 3; ++i) {
        auto r = server.get("/alpha/boom");
        check_problem(r, 500, "internal_error");
        CHECK_THAT(r.body, !Contains("boom from"));  // the exception text stays in the log
    }
    CHECK(server.get("/alpha/count").status == 200);
    CHECK(server.get("/hello/still").status == 200);
}

TEST_CASE("an HttpError thrown by a plugin becomes its problem document", "[http]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    auto r = server.get("/alpha/conflict");
    CHECK(r.status == 409);
    CHECK(r.header("Content-Type") == "application/problem+json");
    auto doc = r.json();
    CHECK(doc["code"] == "already_exists");
    CHECK(doc["errors"][0]["field"] == "name");
    CHECK(doc["instance"] == "/alpha/conflict");
}

TEST_CASE("path parameters, query parameters and JSON bodies reach the handler", "[http]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    auto r = server.request("POST", "/alpha/echo/a%20b?x=1&y=two%21", R"({"k":[1,2]})",
                            {{"Content-Type", "application/json"}});
    REQUIRE(r.status == 201);
    auto doc = r.json();
    CHECK(doc["id"] == "a b");
    CHECK(doc["body"]["k"][1] == 2);
    CHECK(doc["query"] == nlohmann::json{{"x", "1"}, {"y", "two!"}});
    auto bad = server.request("POST", "/alpha/echo/1", "{not json", {{"Content-Type", "application/json"}});
    CHECK(bad.status == 400);
    CHECK(bad.json()["code"] == "invalid_json");
}

TEST_CASE("a body over max_body_bytes is refused with 413 and the connection closed", "[http]") {
    TestServer server(config_yaml("  alpha: {}\n", "server:\n  max_body_bytes: 1KiB\n"));
    auto r = server.request("POST", "/alpha/echo/1", std::string(2000, 'x'));
    check_problem(r, 413, "payload_too_large");
    CHECK_THAT(r.header("Connection").value_or(""), Catch::Matchers::Equals("close", Catch::CaseSensitive::No));
    CHECK(server.request("POST", "/alpha/echo/1", "{}", {{"Content-Type", "application/json"}}).status == 201);
}

TEST_CASE("a plugin mounted at / serves from the root", "[http]") {
    TestServer server(config_yaml("  alpha: {mount: /}\n"));
    CHECK(server.get("/count").json()["label"] == "alpha");
    CHECK(server.get("/alpha/count").status == 404);
}

TEST_CASE("TRELLIS_PLUGINS__HELLO__ENABLED=false takes hello's route away", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"), {{"TRELLIS_PLUGINS__HELLO__ENABLED", "false"}});
    check_problem(server.get("/hello/world"), 404, "not_found");
}

TEST_CASE("health endpoints answer on the public listener", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"));
    CHECK(server.get("/livez").json()["status"] == "ok");
    CHECK(server.get("/readyz").status == 200);
    server.host().set_ready(false);
    CHECK(server.get("/readyz").status == 503);
    CHECK(server.get("/livez").status == 200);
}

TEST_CASE("a port that is already in use is an error naming the address", "[http]") {
    TestServer server(config_yaml("  hello: {}\n"));
    engine::Options options;
    options.kind = server.config().server.engine == config::EngineKind::poco ? engine::Kind::poco : engine::Kind::event;
    options.port = server.port();
    auto second = engine::make_engine(options, [](engine::Exchange& exchange) { exchange.complete(); });
    REQUIRE_FALSE(second);
    CHECK_THAT(second.error(), Contains("cannot listen on 127.0.0.1:" + std::to_string(server.port())));
}
