// The request path's edge over real HTTP: trusted and untrusted proxies (Forwarded and
// X-Forwarded-*), the reserved trellis.* attributes, allowed hosts (421), and response
// compression (gzip and brotli decoded back, q-values, Vary, minimum size, no double
// compression, weak ETags, large bodies on the event engine).
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/base_sink.h>

#include "runtime/logging.hpp"
#include "support/decompress.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using Catch::Matchers::Contains;
using test::config_yaml;
using test::gunzip;
using test::unbrotli;
using test::HttpResponse;
using test::TestServer;
using namespace std::chrono_literals;

namespace {

bool on_poco(const TestServer& server) { return server.config().server.engine == config::EngineKind::poco; }

// Collects the access log's messages while it lives; create it before the server and let it
// outlive the server (the sink list changes only while no server thread logs).
class AccessLog {
public:
    AccessLog() : logger_(logging::get("access")), sink_(std::make_shared<Sink>()) { logger_->sinks().push_back(sink_); }
    ~AccessLog() {
        auto& sinks = logger_->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    AccessLog(const AccessLog&) = delete;
    AccessLog& operator=(const AccessLog&) = delete;

    // The line with the request id, waiting up to 2 s for it.
    std::string line_of(const std::string& request_id) const {
        for (int i = 0; i < 400; ++i) {
            {
                std::lock_guard lock(sink_->mutex_);
                for (const auto& line : sink_->lines)
                    if (line.find("id=" + request_id) != std::string::npos) return line;
            }
            std::this_thread::sleep_for(5ms);
        }
        return {};
    }

private:
    struct Sink final : spdlog::sinks::base_sink<std::mutex> {
        std::vector<std::string> lines;
        using spdlog::sinks::base_sink<std::mutex>::mutex_;
        // Sinks run on the thread that logs, so the request context names the request (the
        // payload itself carries no id: the formatters add it).
        void sink_it_(const spdlog::details::log_msg& msg) override {
            lines.emplace_back(std::string(msg.payload.data(), msg.payload.size()) + " id=" +
                               std::string(logging::current_request().request_id));
        }
        void flush_() override {}
    };
    std::shared_ptr<spdlog::logger> logger_;
    std::shared_ptr<Sink> sink_;
};


nlohmann::json attributes(const TestServer& server, const test::Headers& headers) {
    const HttpResponse r = server.get("/alpha/attributes", headers);
    REQUIRE(r.status == 200);
    return r.json()["attributes"];
}

std::string trusting(const std::string& networks) {
    return config_yaml("  alpha: {config: {middleware: []}}\n", "server:\n  trusted_proxies: " + networks + "\n");
}

}  // namespace

TEST_CASE("without trusted proxies the peer is the client and proxy headers are ignored", "[edge]") {
    AccessLog log;
    TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n"));
    const std::string authority = "127.0.0.1:" + std::to_string(server.port());
    for (const test::Headers& spoof :
         {test::Headers{{"X-Forwarded-For", "203.0.113.5"}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "shop.example"}},
          test::Headers{{"Forwarded", "for=203.0.113.5;proto=https;host=shop.example"}}}) {
        const auto attrs = attributes(server, spoof);
        CHECK(attrs["trellis.client_address"] == "127.0.0.1");
        CHECK(attrs["trellis.base_url"] == "http://" + authority);
    }
    const HttpResponse r = server.get("/alpha/count", {{"X-Forwarded-For", "203.0.113.5"}});
    const std::string line = log.line_of(*r.header("X-Request-ID"));
    CHECK_THAT(line, Contains("127.0.0.1 \"GET /alpha/count"));
    CHECK(line.find("203.0.113.5") == std::string::npos);
}

TEST_CASE("an untrusted peer's headers are ignored even when other proxies are trusted", "[edge]") {
    TestServer server(trusting("[10.0.0.0/8, \"fd00::/8\"]"));
    const auto attrs = attributes(server, {{"Forwarded", "for=203.0.113.5;proto=https"}, {"X-Forwarded-For", "203.0.113.6"}});
    CHECK(attrs["trellis.client_address"] == "127.0.0.1");
    CHECK(attrs["trellis.base_url"] == "http://127.0.0.1:" + std::to_string(server.port()));
}

TEST_CASE("a trusted proxy's X-Forwarded-* headers give the client and the base URL", "[edge]") {
    AccessLog log;
    TestServer server(trusting("[127.0.0.0/8]"));
    const test::Headers headers{{"X-Forwarded-For", "198.51.100.1, 203.0.113.5, 127.0.0.9"},
                                {"X-Forwarded-Proto", "https"},
                                {"X-Forwarded-Host", "shop.example"}};
    const auto attrs = attributes(server, headers);
    CHECK(attrs["trellis.client_address"] == "203.0.113.5");  // right-most untrusted; 198.51.100.1 may be spoofed
    CHECK(attrs["trellis.base_url"] == "https://shop.example");

    const HttpResponse r = server.get("/alpha/count", headers);
    CHECK_THAT(log.line_of(*r.header("X-Request-ID")), Contains("203.0.113.5 \"GET /alpha/count"));

    // Malformed values: the peer, never a 500.
    const auto bad = attributes(server, {{"X-Forwarded-For", "<script>"}, {"X-Forwarded-Proto", "javascript"}});
    CHECK(bad["trellis.client_address"] == "127.0.0.1");
    CHECK(bad["trellis.base_url"] == "http://127.0.0.1:" + std::to_string(server.port()));
}

TEST_CASE("a trusted proxy's Forwarded header wins over X-Forwarded-For", "[edge]") {
    AccessLog log;
    TestServer server(trusting("[127.0.0.1]"));
    const test::Headers headers{{"X-Forwarded-For", "198.51.100.77"},
                                {"Forwarded", R"(for="[2001:db8:cafe::17]:4711";proto=https;host="shop.example:8443")"}};
    const auto attrs = attributes(server, headers);
    CHECK(attrs["trellis.client_address"] == "2001:db8:cafe::17");
    CHECK(attrs["trellis.base_url"] == "https://shop.example:8443");
    const HttpResponse r = server.get("/alpha/count", headers);
    CHECK_THAT(log.line_of(*r.header("X-Request-ID")), Contains("2001:db8:cafe::17 \"GET /alpha/count"));

    const HttpResponse malformed = server.get("/alpha/attributes", {{"Forwarded", "for=\"unterminated"}});
    CHECK(malformed.status == 200);
    CHECK(malformed.json()["attributes"]["trellis.client_address"] == "127.0.0.1");
}

TEST_CASE("plugins read trellis.* attributes but cannot set them", "[edge]") {
    TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n"));
    const HttpResponse r = server.get("/alpha/edge/reserved");
    REQUIRE(r.status == 200);
    const auto body = r.json();
    CHECK_THAT(body["error"].get<std::string>(), Contains("trellis.client_address") && Contains("reserved"));
    CHECK(body["client_address"] == "127.0.0.1");
    CHECK(body["request_id"] == r.header("X-Request-ID").value_or("?"));
}

TEST_CASE("a loopback listener answers 421 to a Host it does not serve", "[edge]") {
    TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n"));
    const HttpResponse evil = server.get("/alpha/count", {{"Host", "evil.example"}});
    CHECK(evil.status == 421);
    CHECK(evil.header("Content-Type") == "application/problem+json");
    CHECK(evil.json()["code"] == "misdirected_request");
    CHECK(server.get("/alpha/count", {{"Host", "evil.example:" + std::to_string(server.port())}}).status == 421);
    CHECK(server.get("/alpha/count", {{"Host", "localhost:" + std::to_string(server.port())}}).status == 200);
    CHECK(server.get("/alpha/count", {{"Host", "localhost"}}).status == 200);
    CHECK(server.get("/alpha/count", {{"Host", "[::1]:" + std::to_string(server.port())}}).status == 200);
    CHECK(server.get("/alpha/count").status == 200);  // the client's own 127.0.0.1:port

    // The admin listener follows the same rule.
    CHECK(test::http_request(server.admin_port(), "GET", "/livez", {}, {{"Host", "evil.example"}}).status == 421);
    CHECK(test::http_request(server.admin_port(), "GET", "/livez", {}, {{"Host", "localhost"}}).status == 200);
}

TEST_CASE("server.allowed_hosts lists the hosts served, with ports and subdomain wildcards", "[edge]") {
    TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n",
                                  "server:\n  allowed_hosts: [app.example, \".svc.example\", \"api.example:9\"]\n"));
    CHECK(server.get("/alpha/count", {{"Host", "app.example"}}).status == 200);
    CHECK(server.get("/alpha/count", {{"Host", "a.svc.example:1234"}}).status == 200);
    CHECK(server.get("/alpha/count", {{"Host", "api.example:9"}}).status == 200);
    CHECK(server.get("/alpha/count", {{"Host", "api.example"}}).status == 421);
    CHECK(server.get("/alpha/count", {{"Host", "localhost"}}).status == 421);
    CHECK(server.get("/alpha/count").status == 421);
}

TEST_CASE("responses are compressed with gzip or brotli by Accept-Encoding", "[edge][compression]") {
    TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n"));
    const std::string target = "/alpha/edge/body?size=20000&type=application/json&etag=%22v7%22";
    const HttpResponse plain = server.get(target);
    REQUIRE(plain.status == 200);
    CHECK_FALSE(plain.header("Content-Encoding"));
    CHECK(plain.header("Vary") == "Accept-Encoding");
    CHECK(plain.header("ETag") == "\"v7\"");
    REQUIRE(plain.body.size() == 20000);

    const HttpResponse gz = server.get(target, {{"Accept-Encoding", "gzip"}});
    CHECK(gz.header("Content-Encoding") == "gzip");
    CHECK(gz.header("Vary") == "Accept-Encoding");
    CHECK(gz.header("ETag") == "W/\"v7\"");
    CHECK(gz.body.size() < plain.body.size() / 4);
    CHECK(gunzip(gz.body) == plain.body);

    const HttpResponse br = server.get(target, {{"Accept-Encoding", "gzip, deflate, br"}});
    CHECK(br.header("Content-Encoding") == "br");
    CHECK(br.header("ETag") == "W/\"v7\"");
    CHECK(unbrotli(br.body) == plain.body);

    CHECK(server.get(target, {{"Accept-Encoding", "br;q=0.4, gzip;q=0.8"}}).header("Content-Encoding") == "gzip");
    CHECK(server.get(target, {{"Accept-Encoding", "br;q=0, *"}}).header("Content-Encoding") == "gzip");
    const HttpResponse refused = server.get(target, {{"Accept-Encoding", "gzip;q=0, br;q=0"}});
    CHECK_FALSE(refused.header("Content-Encoding"));
    CHECK(refused.body == plain.body);

    // A Vary the plugin set is merged.
    CHECK(server.get(target + "&vary=Origin", {{"Accept-Encoding", "gzip"}}).header("Vary") == "Origin, Accept-Encoding");

    // HEAD answers with the same headers as GET.
    const HttpResponse head = server.request("HEAD", target, {}, {{"Accept-Encoding", "gzip"}});
    CHECK(head.header("Content-Encoding") == "gzip");
    CHECK(head.header("Content-Length") == gz.header("Content-Length"));
}

TEST_CASE("small bodies, other types and encoded bodies are not compressed", "[edge][compression]") {
    TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n"));
    const test::Headers gzip{{"Accept-Encoding", "gzip, br"}};
    const HttpResponse small = server.get("/alpha/edge/body?size=1000", gzip);
    CHECK_FALSE(small.header("Content-Encoding"));
    CHECK(small.header("Vary") == "Accept-Encoding");
    CHECK(small.body.size() == 1000);

    const HttpResponse png = server.get("/alpha/edge/body?size=5000&type=image/png", gzip);
    CHECK_FALSE(png.header("Content-Encoding"));
    CHECK_FALSE(png.header("Vary"));

    // The plugin compressed (or says it did) itself: no second layer.
    const HttpResponse encoded = server.get("/alpha/edge/body?size=5000&encoding=gzip&etag=%22e%22", gzip);
    CHECK(encoded.header("Content-Encoding") == "gzip");
    CHECK(encoded.header("ETag") == "\"e\"");
    CHECK(encoded.body.size() == 5000);
}

TEST_CASE("compression settings: disabled, minimum size and content types", "[edge][compression]") {
    SECTION("disabled") {
        TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n", "compression:\n  enabled: false\n"));
        const HttpResponse r = server.get("/alpha/edge/body?size=5000", {{"Accept-Encoding", "gzip"}});
        CHECK_FALSE(r.header("Content-Encoding"));
        CHECK_FALSE(r.header("Vary"));
    }
    SECTION("min_size and content_types") {
        TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n",
                                      "compression:\n  min_size: 100\n  content_types: [image/png]\n"));
        CHECK(server.get("/alpha/edge/body?size=200&type=image/png", {{"Accept-Encoding", "gzip"}})
                  .header("Content-Encoding") == "gzip");
        CHECK_FALSE(server.get("/alpha/edge/body?size=200", {{"Accept-Encoding", "gzip"}}).header("Content-Encoding"));
    }
}

TEST_CASE("a large body is compressed off the event loop and arrives intact", "[edge][compression]") {
    TestServer server(config_yaml("  alpha: {config: {middleware: []}}\n"));
    const std::string target = "/alpha/edge/body?size=3000000";
    const auto before = server.pipeline().counts().compressions_on_workers;
    const HttpResponse plain = server.get(target, {{"Accept-Encoding", "identity"}});
    REQUIRE(plain.body.size() == 3000000);
    const HttpResponse gz = server.get(target, {{"Accept-Encoding", "gzip"}});
    CHECK(gz.header("Content-Encoding") == "gzip");
    CHECK(gunzip(gz.body) == plain.body);
    const HttpResponse br = server.get(target, {{"Accept-Encoding", "br"}});
    CHECK(br.header("Content-Encoding") == "br");
    CHECK(unbrotli(br.body) == plain.body);
    const auto after = server.pipeline().counts().compressions_on_workers;
    if (on_poco(server))
        CHECK(after == before);  // a Poco connection thread may block: compressed where it ran
    else
        CHECK(after == before + 2);  // the inline route finished on an event loop
}
