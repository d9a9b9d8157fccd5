// Hardening: limits on JSON bodies, 400 instead of 500 for bad numbers and cursors, 415 for
// bodies not sent as JSON, short validation answers, no open redirect, headers a plugin
// cannot set, and 1xx/204/304 without a body. Each test fails without its fix.
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <string>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using nlohmann::json;
using test::config_yaml;
using test::Headers;
using test::HttpResponse;
using test::TestDatabase;
using test::TestServer;

namespace {

const Headers kJson{{"Content-Type", "application/json"}};

bool is_problem(const HttpResponse& r, int status, const std::string& code) {
    INFO(r.status << " " << r.body.substr(0, 500));
    return r.status == status && r.header("Content-Type") == "application/problem+json" &&
           r.json().value("code", "") == code;
}

std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// The peak resident set of a process, in KiB, from /proc/PID/status.
long peak_rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

std::string base64url(const std::string& in) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    unsigned value = 0;
    int bits = 0;
    for (unsigned char c : in) {
        value = (value << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += alphabet[(value >> bits) & 0x3f];
        }
    }
    if (bits > 0) out += alphabet[(value << (6 - bits)) & 0x3f];
    return out;
}

// The head of a raw answer (up to the blank line) and what came after it.
std::pair<std::string, std::string> split_answer(const std::string& raw) {
    const auto end = raw.find("\r\n\r\n");
    if (end == std::string::npos) return {raw, ""};
    return {raw.substr(0, end + 2), raw.substr(end + 4)};
}

struct NotesAt {
    TestDatabase db;
    TestServer server;
    explicit NotesAt(const std::string& mount)
        : server(config_yaml("  notes: {mount: \"" + mount + "\"}\n", db.yaml())) {}
};

}  // namespace

// ---- JSON bodies through the SDK ----

TEST_CASE("json_body refuses nesting deeper than 64 and more than 100000 values", "[hardening]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    CHECK(server.request("POST", "/alpha/echo/1", nested(64), kJson).status == 201);
    CHECK(is_problem(server.request("POST", "/alpha/echo/1", nested(65), kJson), 400, "json_too_deep"));
    CHECK(is_problem(server.request("POST", "/alpha/echo/1", "{\"a\":" + nested(70) + "}", kJson), 400,
                     "json_too_deep"));

    // An array of n zeros is n + 1 values.
    auto zeros = [](std::size_t n) {
        std::string text = "[0";
        for (std::size_t i = 1; i < n; ++i) text += ",0";
        return text + "]";
    };
    CHECK(server.request("POST", "/alpha/echo/1", zeros(99999), kJson).status == 201);
    auto many = server.request("POST", "/alpha/echo/1", zeros(100000), kJson);
    CHECK(is_problem(many, 400, "json_too_many_values"));
    CHECK_THAT(many.json().value("detail", ""), Contains("100000"));
}

TEST_CASE("a number out of range in a JSON body answers 400, not 500", "[hardening]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    for (const char* body : {R"({"title":1e999})", "[-1e400]", "1E+99999"}) {
        INFO(body);
        CHECK(is_problem(server.request("POST", "/alpha/echo/1", body, kJson), 400, "invalid_json"));
    }
}

TEST_CASE("1 MiB of nested brackets costs the real server little memory", "[hardening]") {
    test::TempDir dir;
    const std::uint16_t port = test::free_port();
    dir.write("trellis.yaml", config_yaml("  alpha: {}\n", "server:\n  max_body_bytes: 4MiB\n"));
    auto env = test::minimal_environment();
    env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
    env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(test::free_port()));
    test::Process process({TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / "trellis.yaml").string()}, env,
                          dir.path() / "output.log");
    REQUIRE(test::wait_until_listening(port, 10s));

    // Warm up with a flat body of the same size, so that buffers for 1 MiB are counted
    // before the measurement: what is left is the cost of the parse.
    const std::size_t size = 1024 * 1024;
    const std::string flat = "\"" + std::string(size - 2, 'x') + "\"";
    for (int i = 0; i < 3; ++i) REQUIRE(test::http_request(port, "POST", "/alpha/echo/1", flat, kJson).status == 201);
    const long before = peak_rss_kib(process.pid());
    REQUIRE(before > 0);

    const std::string deep = std::string(size, '[');
    auto r = test::http_request(port, "POST", "/alpha/echo/1", deep, kJson);
    CHECK(is_problem(r, 400, "json_too_deep"));
    const long after = peak_rss_kib(process.pid());
    INFO("VmHWM before " << before << " KiB, after " << after << " KiB");
    CHECK(after - before < 8 * 1024);
    CHECK(test::http_request(port, "GET", "/alpha/count").status == 200);  // still serving
    process.signal(SIGTERM);
    CHECK(process.wait(20s) == 0);
}

// ---- 415 unless the body is sent as JSON ----

TEST_CASE("a JSON resource answers 415 to any other Content-Type, an absent one included", "[hardening]") {
    NotesAt n("/notes");
    const std::string body = R"({"title":"Sneaky"})";
    // A cross-site form post needs no preflight: form types and none at all.
    for (const Headers& headers : {Headers{}, Headers{{"Content-Type", "application/x-www-form-urlencoded"}},
                                   Headers{{"Content-Type", "multipart/form-data; boundary=x"}},
                                   Headers{{"Content-Type", "text/plain"}}, Headers{{"Content-Type", "json"}},
                                   Headers{{"Content-Type", "application/+json"}}}) {
        INFO((headers.empty() ? "(none)" : headers[0].second));
        CHECK(is_problem(n.server.request("POST", "/notes", body, headers), 415, "unsupported_media_type"));
    }
    CHECK(n.db.rows("SELECT COUNT(*) FROM notes")[0][0] == "0");

    // JSON with parameters, in any case, and +json types are taken.
    int created = 0;
    for (const char* type : {"application/json", "application/json; charset=utf-8", "Application/JSON ;charset=UTF-8",
                             "application/merge-patch+json", "application/vnd.example+json"}) {
        INFO(type);
        auto r = n.server.request("POST", "/notes", R"({"title":"t)" + std::to_string(created) + "\"}",
                                  {{"Content-Type", type}});
        CHECK(r.status == 201);
        created += r.status == 201;
    }
    CHECK(n.db.rows("SELECT COUNT(*) FROM notes")[0][0] == std::to_string(created));

    // The check is the SDK's: the fixture's echo route gets it too.
    TestServer fixture(config_yaml("  alpha: {}\n"));
    CHECK(is_problem(fixture.request("POST", "/alpha/echo/1", "{}"), 415, "unsupported_media_type"));
    CHECK(fixture.request("POST", "/alpha/echo/1", "{}", {{"Content-Type", "application/json"}}).status == 201);
}

// ---- notes: 400, never 500; short validation answers ----

TEST_CASE("notes answers 400 to a number out of range and to malformed cursors", "[hardening]") {
    NotesAt n("/notes");
    CHECK(is_problem(n.server.request("POST", "/notes", R"({"title":1e999})", kJson), 400, "invalid_json"));
    REQUIRE(n.server.request("POST", "/notes", R"({"title":"one"})", kJson).status == 201);
    CHECK(is_problem(n.server.request("PATCH", "/notes/1", R"({"pinned":-1e999})", kJson), 400, "invalid_json"));
    for (const char* state :
         {R"({"s":1,"id":1,"v":1})", R"({"s":null,"id":1,"v":1})", R"({"s":["id"],"id":1,"v":1})",
          R"({"s":"id","id":"1","v":1})", R"({"s":"id","id":1.5,"v":1})", R"({"s":"title","id":1,"v":1})",
          R"([1,2,3])", R"("s")", R"({"s":"id","id":1e999,"v":1})", "{\"s\":\"id\",\"id\":1,\"v\":1,\"x\":\"\xff\"}"}) {
        INFO(state);
        const std::string sort = std::string(state).find("title") != std::string::npos ? "&sort=title" : "";
        CHECK(is_problem(n.server.get("/notes?cursor=" + base64url(state) + sort), 400, "invalid_cursor"));
    }
    CHECK(is_problem(n.server.get("/notes?cursor=%ff%fe"), 400, "invalid_cursor"));
}

TEST_CASE("validation answers list at most 20 errors", "[hardening]") {
    NotesAt n("/notes");
    std::string query = "?p0";  // about 7 KiB: under max_uri_bytes (8 KiB by default)
    std::size_t parameters = 1;
    while (query.size() < 7 * 1024) query += "&p" + std::to_string(parameters++);
    auto r = n.server.get("/notes" + query);
    REQUIRE(is_problem(r, 400, "invalid_query"));
    CHECK(r.json()["errors"].size() == 20);
    CHECK(r.json()["errors_omitted"] == parameters - 20);
    CHECK(r.body.size() < 4096);

    json fields = json::object();
    for (int i = 0; i < 500; ++i) fields["field" + std::to_string(i)] = i;
    auto body = n.server.request("POST", "/notes", fields.dump(), kJson);
    REQUIRE(is_problem(body, 422, "validation_failed"));
    CHECK(body.json()["errors"].size() == 20);
    CHECK(body.json()["errors_omitted"] == 481);  // 500 unknown fields and the missing title
    CHECK(body.body.size() < 4096);
}

// ---- redirects and Location ----

TEST_CASE("the trailing-slash redirect never sends a Location for another host", "[hardening]") {
    NotesAt n("/");  // GET /{id} at the root: any first segment matches
    REQUIRE(n.server.request("POST", "/", R"({"title":"root"})", kJson).status == 201);
    CHECK(n.server.get("/1/").header("Location") == "/1");  // the rule itself still holds

    for (const char* target : {"/\\evil.example/", "/\\\\evil.example/", "//evil.example/", "/%5Cevil.example/",
                                     "/%2F%2Fevil.example/", "/%09/evil.example/"}) {
        INFO(target);
        const std::string raw =
            test::raw_request(n.server.port(), std::string("GET ") + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        const auto [head, body] = split_answer(raw);
        INFO(head);
        REQUIRE(head.rfind("HTTP/1.1 ", 0) == 0);
        const auto at = head.find("\r\nLocation: ");
        if (at == std::string::npos) continue;
        const std::string location = head.substr(at + 12, head.find("\r\n", at + 12) - at - 12);
        CHECK(location.rfind("//", 0) != 0);
        CHECK(location.rfind("/\\", 0) != 0);
    }
    // The backslash path matches /{id} without its slash: today's rule would send /\evil.example.
    const std::string raw =
        test::raw_request(n.server.port(), "GET /\\evil.example/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    CHECK(raw.rfind("HTTP/1.1 308", 0) != 0);
}

TEST_CASE("notes mounted at / gives a Location without a double slash", "[hardening]") {
    NotesAt n("/");
    auto r = n.server.request("POST", "/", R"({"title":"at the root"})", kJson);
    REQUIRE(r.status == 201);
    CHECK(r.header("Location") == "/1");
    CHECK(n.server.get(*r.header("Location")).json()["title"] == "at the root");

    NotesAt mounted("/notes");
    CHECK(mounted.server.request("POST", "/notes", R"({"title":"x"})", kJson).header("Location") == "/notes/1");
}

// ---- headers a plugin sets, and bodies that must not be sent ----

TEST_CASE("plugins cannot set framing headers or control characters", "[hardening]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    auto attempt = [&](const std::string& name, const std::string& value, bool add = false) {
        std::string encoded_value;
        static constexpr char hex[] = "0123456789ABCDEF";
        for (unsigned char c : value) {
            encoded_value += '%';
            encoded_value += hex[c >> 4];
            encoded_value += hex[c & 15];
        }
        std::string encoded_name;
        for (unsigned char c : name) {
            encoded_name += '%';
            encoded_name += hex[c >> 4];
            encoded_name += hex[c & 15];
        }
        auto r = server.get("/alpha/header?name=" + encoded_name + "&value=" + encoded_value + (add ? "&add" : ""));
        REQUIRE(r.status == 200);
        CHECK(!r.header("X-Injected"));
        return r.json();
    };
    for (const char* name : {"Content-Length", "content-length", "Transfer-Encoding", "TRANSFER-ENCODING",
                             "Connection", "connection"}) {
        for (bool add : {false, true}) {
            INFO(name << (add ? " (add)" : " (set)"));
            auto answer = attempt(name, name[0] == 'C' || name[0] == 'c' ? "0" : "chunked", add);
            CHECK(answer["accepted"] == false);
            CHECK_THAT(answer.value("error", ""), Contains(name) && Contains("Content-Length, Transfer-Encoding and Connection"));
        }
    }
    for (const std::string& value : {std::string("a\r\nX-Injected: 1"), std::string("a\nX-Injected: 1"),
                                    std::string("a\rb"), std::string("a\0b", 3), std::string("a\x01" "b"),
                                    std::string("a\x1f" "b"), std::string("a\x7f" "b")}) {
        for (bool add : {false, true}) {
            INFO(json(value).dump() << (add ? " (add)" : " (set)"));
            auto answer = attempt("X-Value", value, add);
            CHECK(answer["accepted"] == false);
            CHECK_THAT(answer.value("error", ""), Contains("control characters"));
        }
    }
    CHECK(attempt("X\x01Name", "v")["accepted"] == false);
    CHECK(attempt("X Name", "v")["accepted"] == false);
    // HTAB and text are fine.
    CHECK(attempt("X-Value", "a\tb c")["accepted"] == true);
    auto fine = server.get("/alpha/header?name=X-Fine&value=yes");
    CHECK(fine.header("X-Fine") == "yes");
}

TEST_CASE("1xx, 204 and 304 answers go out without a body or Content-Length", "[hardening]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    for (int status : {103, 204, 304}) {
        INFO(status);
        const std::string raw = test::raw_request(
            server.port(), "GET /alpha/status/" + std::to_string(status) + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        const auto [head, rest] = split_answer(raw);
        INFO(head);
        CHECK(head.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0);
        CHECK_THAT(head, !Contains("Content-Length", Catch::CaseSensitive::No));
        CHECK_THAT(head, !Contains("Transfer-Encoding", Catch::CaseSensitive::No));
        CHECK(rest.empty());
    }
    // Other statuses keep their body and length.
    const std::string raw =
        test::raw_request(server.port(), "GET /alpha/status/200 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    const auto [head, rest] = split_answer(raw);
    CHECK_THAT(head, Contains("Content-Length: 47"));
    CHECK(rest == "this body must not be sent for 1xx, 204 and 304");
}
