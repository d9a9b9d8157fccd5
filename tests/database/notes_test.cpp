// The bundled notes plugin over real HTTP on the test database: create, get, list, replace,
// patch and delete, keyset pagination (every sort, both directions, ties, filters, cursors),
// ETag with If-None-Match and If-Match, the 400/404/409/412/415/422 answers, and SQL
// injection attempts through every parameter.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using Catch::Matchers::Contains;
using nlohmann::json;
using test::config_yaml;
using test::Headers;
using test::HttpResponse;
using test::TestDatabase;
using test::TestServer;

namespace {

const Headers kJson{{"Content-Type", "application/json"}};

// Percent-encodes everything except unreserved characters, for query values and path segments.
std::string encode(const std::string& in) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : in) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// base64url without padding, as the plugin writes its cursors (to forge some).
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

std::string lower_ascii(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool is_problem(const HttpResponse& r, int status, const std::string& code) {
    if (r.status != status || r.header("Content-Type") != "application/problem+json") return false;
    const json doc = json::parse(r.body, nullptr, false);
    return doc.is_object() && doc.value("code", "") == code && doc.value("status", 0) == status;
}

// A server with only the notes plugin on a fresh database.
struct Notes {
    TestDatabase db;
    TestServer server;

    Notes() : server(config_yaml("  notes: {}\n", db.yaml())) {}

    HttpResponse post(const json& note, const Headers& headers = kJson) const {
        return server.request("POST", "/notes", note.dump(), headers);
    }
    HttpResponse send(const std::string& method, std::int64_t id, const json& note, Headers headers = kJson) const {
        return server.request(method, "/notes/" + std::to_string(id), note.dump(), headers);
    }
    HttpResponse get(std::int64_t id, const Headers& headers = {}) const {
        return server.get("/notes/" + std::to_string(id), headers);
    }
    // Creates a note and returns it as the server answered it.
    json create(const std::string& title, const std::string& body = "", bool pinned = false) const {
        auto r = post({{"title", title}, {"body", body}, {"pinned", pinned}});
        INFO(r.body);
        REQUIRE(r.status == 201);
        return r.json();
    }
    long count() { return std::stol(db.rows("SELECT COUNT(*) FROM notes").at(0).at(0)); }
};

struct Walk {
    std::vector<std::int64_t> ids;
    std::vector<json> items;
    int pages = 0;
};

// Follows `next` from `target` until it is null, checking each page's size and that the Link
// header carries the same link as the body.
Walk walk(const TestServer& server, const std::string& target, std::size_t limit) {
    Walk out;
    std::string next = target;
    while (true) {
        INFO("page " << out.pages << ": " << next);
        auto r = server.get(next);
        REQUIRE(r.status == 200);
        const json page = r.json();
        REQUIRE(page["items"].is_array());
        ++out.pages;
        REQUIRE(out.pages <= 200);  // a loop would never end otherwise
        for (const auto& item : page["items"]) {
            out.ids.push_back(item["id"].get<std::int64_t>());
            out.items.push_back(item);
        }
        if (page["next"].is_null()) {
            CHECK(page["items"].size() <= limit);
            CHECK_FALSE(r.header("Link"));
            return out;
        }
        CHECK(page["items"].size() == limit);
        next = page["next"].get<std::string>();
        CHECK(r.header("Link") == "<http://127.0.0.1:" + std::to_string(server.port()) + next + ">; rel=\"next\"");
    }
}

// The order a sort must produce: by the key, ties broken by id, both in the sort's direction.
std::vector<std::int64_t> expected_order(std::vector<json> notes, const std::string& sort) {
    const bool descending = sort.front() == '-';
    const std::string key = descending ? sort.substr(1) : sort;
    // Text keys compare byte by byte, as SQLite and PostgreSQL with the C locale do.
    std::sort(notes.begin(), notes.end(), [&](const json& a, const json& b) {
        if (key == "id") return descending ? a["id"] > b["id"] : a["id"] < b["id"];
        const auto ka = std::make_pair(a[key].get<std::string>(), a["id"].get<std::int64_t>());
        const auto kb = std::make_pair(b[key].get<std::string>(), b["id"].get<std::int64_t>());
        return descending ? kb < ka : ka < kb;
    });
    std::vector<std::int64_t> ids;
    for (const auto& n : notes) ids.push_back(n["id"].get<std::int64_t>());
    return ids;
}

// Every note as the server has it now, fetched one by one.
std::vector<json> all_notes(const Notes& n, const std::vector<std::int64_t>& ids) {
    std::vector<json> out;
    for (auto id : ids) {
        auto r = n.get(id);
        REQUIRE(r.status == 200);
        out.push_back(r.json());
    }
    return out;
}

const std::vector<std::string> kInjections{
    "'); DROP TABLE notes; --",
    "' OR '1'='1",
    "1 OR 1=1",
    "%' --",
    "\"",
    ";",
    "\\\"",
    "\\",
    "'",
    "--",
    "/* */",
    "%_%",
    "Robert'); DELETE FROM notes WHERE ('1'='1",
    "' UNION SELECT id, owner, title, body, pinned, version, created_at, updated_at FROM notes --",
    "1; UPDATE notes SET title = 'pwned'",
    "' || (SELECT COUNT(*) FROM notes) || '",
    "admin'--",
    ":owner",
    "$1",
    "?",
    "1' AND SLEEP(5) --",
    "Ωμέγα ünïcödé 日本 🙂 ' OR 1=1 --",
};

}  // namespace

// ---- create and read ------------------------------------------------------------------------

TEST_CASE("POST /notes answers 201 with Location, ETag and the stored note", "[notes]") {
    Notes n;
    auto r = n.post({{"title", "First"}, {"body", "Hello"}, {"pinned", true}});
    REQUIRE(r.status == 201);
    CHECK_THAT(r.header("Content-Type").value_or(""), Contains("application/json"));
    CHECK(r.header("Location") == "/notes/1");
    CHECK(r.header("ETag") == "\"1-1\"");
    const json note = r.json();
    CHECK(note["id"] == 1);
    CHECK(note["title"] == "First");
    CHECK(note["body"] == "Hello");
    CHECK(note["pinned"] == true);
    CHECK(note["version"] == 1);
    const std::regex iso(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
    CHECK(std::regex_match(note["created_at"].get<std::string>(), iso));
    CHECK(note["updated_at"] == note["created_at"]);

    auto got = n.server.get("/notes/1");
    CHECK(got.status == 200);
    CHECK(got.header("ETag") == "\"1-1\"");
    CHECK(got.json() == note);
    CHECK(n.db.rows("SELECT title, body, pinned, version FROM notes") ==
          std::vector<std::vector<std::string>>{{"First", "Hello", "1", "1"}});
}

TEST_CASE("POST /notes defaults body and pinned and accepts JSON media types with parameters", "[notes]") {
    Notes n;
    auto r = n.post({{"title", "Only a title"}});
    REQUIRE(r.status == 201);
    CHECK(r.json()["body"] == "");
    CHECK(r.json()["pinned"] == false);

    CHECK(n.post({{"title", "charset"}}, {{"Content-Type", "application/json; charset=utf-8"}}).status == 201);
    CHECK(n.post({{"title", "merge"}}, {{"Content-Type", "application/merge-patch+json"}}).status == 201);
    // No Content-Type at all is refused (a cross-site form post must not create a note).
    CHECK(n.post({{"title", "no type"}}, {}).status == 415);
    auto second = n.post({{"title", "next id"}});
    CHECK(second.header("Location") == "/notes/4");
    CHECK(second.header("ETag") == "\"4-1\"");
    CHECK(n.count() == 4);
}

TEST_CASE("titles and bodies keep their length limits in characters, not bytes", "[notes]") {
    Notes n;
    CHECK(n.post({{"title", std::string(200, 'a')}}).status == 201);
    // 200 two-byte characters are 400 bytes but still 200 characters.
    std::string umlauts;
    for (int i = 0; i < 200; ++i) umlauts += "\xC3\xBC";
    auto r = n.post({{"title", umlauts}, {"body", std::string(10000, 'b')}});
    REQUIRE(r.status == 201);
    CHECK(r.json()["title"] == umlauts);
    CHECK(r.json()["body"].get<std::string>().size() == 10000);

    CHECK(is_problem(n.post({{"title", std::string(201, 'c')}}), 422, "validation_failed"));
    CHECK(is_problem(n.post({{"title", "long body"}, {"body", std::string(10001, 'd')}}), 422, "validation_failed"));
    CHECK(n.count() == 2);
}

TEST_CASE("GET /notes/{id} answers 404 for unknown and non-numeric ids", "[notes]") {
    Notes n;
    n.create("Exists");
    for (const char* target : {"/notes/2", "/notes/0", "/notes/-1", "/notes/abc", "/notes/1.5", "/notes/1e3",
                               "/notes/%201", "/notes/1%20", "/notes/0x1", "/notes/99999999999999999999999"}) {
        INFO(target);
        auto r = n.server.get(target);
        CHECK(is_problem(r, 404, "not_found"));
    }
    for (const char* method : {"PUT", "PATCH", "DELETE"}) {
        INFO(method);
        CHECK(is_problem(n.server.request(method, "/notes/2", R"({"title":"x"})", kJson), 404, "not_found"));
        CHECK(is_problem(n.server.request(method, "/notes/abc", R"({"title":"x"})", kJson), 404, "not_found"));
    }
    CHECK(n.count() == 1);
}

// ---- ETag and If-None-Match -------------------------------------------------------------------

TEST_CASE("GET with If-None-Match answers 304 for the current ETag, weak or in a list", "[notes]") {
    Notes n;
    n.create("Cached");
    for (const char* tag : {"\"1-1\"", "W/\"1-1\"", "\"9-9\", \"1-1\"", "\"x\",W/\"1-1\"", "*"}) {
        INFO(tag);
        auto r = n.get(1, {{"If-None-Match", tag}});
        CHECK(r.status == 304);
        CHECK(r.body.empty());
        CHECK(r.header("ETag") == "\"1-1\"");
    }
    for (const char* tag : {"\"1-2\"", "\"2-1\"", "\"1-1", "1-1", "W/\"1-2\""}) {
        INFO(tag);
        auto r = n.get(1, {{"If-None-Match", tag}});
        CHECK(r.status == 200);
        CHECK(r.json()["title"] == "Cached");
    }

    REQUIRE(n.send("PATCH", 1, {{"body", "changed"}}).status == 200);
    auto stale = n.get(1, {{"If-None-Match", "\"1-1\""}});
    CHECK(stale.status == 200);
    CHECK(stale.header("ETag") == "\"1-2\"");
    CHECK(stale.json()["body"] == "changed");
    CHECK(n.get(1, {{"If-None-Match", "\"1-2\""}}).status == 304);
    CHECK(is_problem(n.get(2, {{"If-None-Match", "*"}}), 404, "not_found"));
}

// ---- PUT, PATCH, DELETE -----------------------------------------------------------------------

TEST_CASE("PUT replaces the whole note and bumps its version", "[notes]") {
    Notes n;
    const json before = n.create("Original", "text", true);
    auto r = n.send("PUT", 1, {{"title", "Replaced"}});
    REQUIRE(r.status == 200);
    CHECK(r.header("ETag") == "\"1-2\"");
    const json after = r.json();
    CHECK(after["id"] == 1);
    CHECK(after["title"] == "Replaced");
    CHECK(after["body"] == "");        // not sent: back to the default
    CHECK(after["pinned"] == false);  // likewise
    CHECK(after["version"] == 2);
    CHECK(after["created_at"] == before["created_at"]);
    CHECK(after["updated_at"].get<std::string>() >= before["updated_at"].get<std::string>());
    CHECK(n.get(1).json() == after);

    auto full = n.send("PUT", 1, {{"title", "Again"}, {"body", "b"}, {"pinned", true}});
    REQUIRE(full.status == 200);
    CHECK(full.json()["version"] == 3);
    CHECK(full.json()["pinned"] == true);

    auto missing = n.send("PUT", 1, {{"body", "no title"}});
    REQUIRE(is_problem(missing, 422, "validation_failed"));
    CHECK(missing.json()["errors"] == json::array({{{"field", "/title"}, {"message", "is required"}}}));
    CHECK(n.get(1).json()["version"] == 3);
}

TEST_CASE("PATCH changes only the fields it names and bumps the version", "[notes]") {
    Notes n;
    n.create("Patch me", "keep", false);
    auto r = n.send("PATCH", 1, {{"pinned", true}});
    REQUIRE(r.status == 200);
    CHECK(r.header("ETag") == "\"1-2\"");
    CHECK(r.json()["title"] == "Patch me");
    CHECK(r.json()["body"] == "keep");
    CHECK(r.json()["pinned"] == true);
    CHECK(r.json()["version"] == 2);

    auto merge = n.send("PATCH", 1, {{"title", "Renamed"}}, {{"Content-Type", "application/merge-patch+json"}});
    REQUIRE(merge.status == 200);
    CHECK(merge.json()["title"] == "Renamed");
    CHECK(merge.json()["body"] == "keep");
    CHECK(merge.json()["pinned"] == true);
    CHECK(merge.json()["version"] == 3);

    auto bad = n.send("PATCH", 1, {{"title", ""}});
    REQUIRE(is_problem(bad, 422, "validation_failed"));
    CHECK(bad.json()["errors"][0]["field"] == "/title");
    CHECK(n.db.rows("SELECT title, body, pinned, version FROM notes WHERE id = 1") ==
          std::vector<std::vector<std::string>>{{"Renamed", "keep", "1", "3"}});
}

TEST_CASE("DELETE answers 204 and the note is gone", "[notes]") {
    Notes n;
    n.create("Doomed");
    n.create("Survivor");
    auto r = n.server.request("DELETE", "/notes/1");
    CHECK(r.status == 204);
    CHECK(r.body.empty());
    CHECK(is_problem(n.get(1), 404, "not_found"));
    CHECK(is_problem(n.server.request("DELETE", "/notes/1"), 404, "not_found"));
    CHECK(is_problem(n.send("PATCH", 1, {{"body", "x"}}), 404, "not_found"));
    CHECK(n.count() == 1);
    CHECK(n.get(2).status == 200);
    // A deleted note's title is free again, and ids are not reused.
    auto again = n.post({{"title", "Doomed"}});
    CHECK(again.status == 201);
    CHECK(again.header("Location") == "/notes/3");
}

// ---- If-Match ---------------------------------------------------------------------------------

TEST_CASE("If-Match with the current ETag updates and deletes, bumping the version", "[notes]") {
    Notes n;
    n.create("Guarded");
    auto put = n.send("PUT", 1, {{"title", "Guarded 2"}}, {{"Content-Type", "application/json"}, {"If-Match", "\"1-1\""}});
    REQUIRE(put.status == 200);
    CHECK(put.header("ETag") == "\"1-2\"");
    CHECK(put.json()["version"] == 2);

    auto patch = n.send("PATCH", 1, {{"body", "b"}}, {{"Content-Type", "application/json"}, {"If-Match", "\"1-2\""}});
    REQUIRE(patch.status == 200);
    CHECK(patch.header("ETag") == "\"1-3\"");

    auto listed = n.send("PATCH", 1, {{"pinned", true}},
                         {{"Content-Type", "application/json"}, {"If-Match", "\"1-1\", \"1-3\""}});
    REQUIRE(listed.status == 200);
    CHECK(listed.header("ETag") == "\"1-4\"");

    auto star = n.send("PATCH", 1, {{"pinned", false}}, {{"Content-Type", "application/json"}, {"If-Match", "*"}});
    REQUIRE(star.status == 200);
    CHECK(star.json()["version"] == 5);

    auto del = n.server.request("DELETE", "/notes/1", {}, {{"If-Match", "\"1-5\""}});
    CHECK(del.status == 204);
    CHECK(n.count() == 0);
}

TEST_CASE("If-Match with another ETag answers 412 with the current one and changes nothing", "[notes]") {
    Notes n;
    n.create("Contested");
    n.create("Other");
    REQUIRE(n.send("PATCH", 1, {{"body", "v2"}}).status == 200);  // now at version 2

    // A stale version, a weak tag (If-Match compares strongly), another note's tag, garbage.
    for (const char* tag : {"\"1-1\"", "W/\"1-2\"", "\"2-1\"", "\"1-3\"", "1-2", "\"1-2", "\"nonsense\""}) {
        INFO(tag);
        const Headers headers{{"Content-Type", "application/json"}, {"If-Match", tag}};
        for (const char* method : {"PUT", "PATCH"}) {
            INFO(method);
            auto r = n.send(method, 1, {{"title", "Lost update"}}, headers);
            REQUIRE(is_problem(r, 412, "precondition_failed"));
            CHECK(r.json()["etag"] == "\"1-2\"");
        }
        auto del = n.server.request("DELETE", "/notes/1", {}, headers);
        REQUIRE(is_problem(del, 412, "precondition_failed"));
        CHECK(del.json()["etag"] == "\"1-2\"");
    }
    CHECK(n.db.rows("SELECT title, body, version FROM notes WHERE id = 1") ==
          std::vector<std::vector<std::string>>{{"Contested", "v2", "2"}});
    CHECK(n.count() == 2);

    // On a note that does not exist, If-Match cannot make it exist: 404.
    CHECK(is_problem(n.send("PATCH", 9, {{"body", "x"}}, {{"Content-Type", "application/json"}, {"If-Match", "\"9-1\""}}),
                     404, "not_found"));
    CHECK(is_problem(n.server.request("DELETE", "/notes/9", {}, {{"If-Match", "*"}}), 404, "not_found"));
}

TEST_CASE("PUT, PATCH and DELETE without If-Match apply whatever the version", "[notes]") {
    Notes n;
    n.create("Free");
    for (int i = 0; i < 3; ++i) REQUIRE(n.send("PATCH", 1, {{"body", std::to_string(i)}}).status == 200);
    auto put = n.send("PUT", 1, {{"title", "Free still"}});
    REQUIRE(put.status == 200);
    CHECK(put.json()["version"] == 5);
    CHECK(n.server.request("DELETE", "/notes/1").status == 204);
    CHECK(n.count() == 0);
}

// ---- 400, 415, 422, 409 -----------------------------------------------------------------------

TEST_CASE("a body that is not JSON answers 400 invalid_json", "[notes]") {
    Notes n;
    n.create("Target");
    for (const char* body : {"{not json", "", "{\"title\": \"x\"", "title=x", "{\"title\": 'x'}"}) {
        INFO("body: " << body);
        CHECK(is_problem(n.server.request("POST", "/notes", body, kJson), 400, "invalid_json"));
        CHECK(is_problem(n.server.request("PUT", "/notes/1", body, kJson), 400, "invalid_json"));
        CHECK(is_problem(n.server.request("PATCH", "/notes/1", body, kJson), 400, "invalid_json"));
    }
    CHECK(n.count() == 1);
    CHECK(n.get(1).json()["version"] == 1);
}

TEST_CASE("a body that is not sent as JSON answers 415", "[notes]") {
    Notes n;
    n.create("Target");
    const std::string body = R"({"title":"Sneaky"})";
    for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "application/xml", "text/json"}) {
        INFO(type);
        const Headers headers{{"Content-Type", type}};
        CHECK(is_problem(n.server.request("POST", "/notes", body, headers), 415, "unsupported_media_type"));
        CHECK(is_problem(n.server.request("PUT", "/notes/1", body, headers), 415, "unsupported_media_type"));
        CHECK(is_problem(n.server.request("PATCH", "/notes/1", body, headers), 415, "unsupported_media_type"));
    }
    CHECK(n.count() == 1);
    CHECK(n.get(1).json()["title"] == "Target");
}

TEST_CASE("validation answers 422 validation_failed listing every bad field", "[notes]") {
    Notes n;
    auto r = n.post({{"title", 5},
                     {"body", json::array()},
                     {"pinned", "yes"},
                     {"id", 7},
                     {"version", 3},
                     {"created_at", "2000-01-01"},
                     {"color", "red"}});
    REQUIRE(is_problem(r, 422, "validation_failed"));
    std::set<std::string> fields;
    for (const auto& e : json(r.json()["errors"])) {
        CHECK_FALSE(e["message"].get<std::string>().empty());
        fields.insert(e["field"].get<std::string>());
    }
    CHECK(fields == std::set<std::string>{"/title", "/body", "/pinned", "/id", "/version", "/created_at", "/color"});
    CHECK(r.json()["errors"].size() == 7);

    auto missing = n.post({{"body", "no title"}, {"pinned", 1}});
    REQUIRE(is_problem(missing, 422, "validation_failed"));
    fields.clear();
    for (const auto& e : json(missing.json()["errors"])) fields.insert(e["field"].get<std::string>());
    CHECK(fields == std::set<std::string>{"/title", "/pinned"});

    for (const json& bad : {json{{"title", ""}}, json{{"title", nullptr}}, json{{"title", true}},
                            json{{"title", "ok"}, {"body", nullptr}}, json{{"title", "ok"}, {"pinned", "true"}},
                            json{{"title", "ok"}, {"pinned", 0}}}) {
        INFO(bad.dump());
        CHECK(is_problem(n.post(bad), 422, "validation_failed"));
    }
    for (const char* body : {"[]", "\"title\"", "42", "null"}) {
        INFO(body);
        auto not_object = n.server.request("POST", "/notes", body, kJson);
        CHECK(is_problem(not_object, 422, "validation_failed"));
    }
    CHECK(n.count() == 0);

    n.create("Valid");
    auto patch = n.send("PATCH", 1, {{"title", 1}, {"pinned", "no"}, {"updated_at", "now"}});
    REQUIRE(is_problem(patch, 422, "validation_failed"));
    CHECK(patch.json()["errors"].size() == 3);
    CHECK(n.get(1).json()["version"] == 1);
}

TEST_CASE("a duplicate title answers 409 duplicate_title on create and update", "[notes]") {
    Notes n;
    n.create("Unique", "first");
    n.create("Another");
    CHECK(is_problem(n.post({{"title", "Unique"}, {"body", "second"}}), 409, "duplicate_title"));
    CHECK(n.count() == 2);
    CHECK(is_problem(n.send("PUT", 2, {{"title", "Unique"}}), 409, "duplicate_title"));
    CHECK(is_problem(n.send("PATCH", 2, {{"title", "Unique"}}), 409, "duplicate_title"));
    CHECK(n.db.rows("SELECT title, version FROM notes ORDER BY id") ==
          std::vector<std::vector<std::string>>{{"Unique", "1"}, {"Another", "1"}});
    // Keeping its own title is not a conflict.
    CHECK(n.send("PUT", 1, {{"title", "Unique"}, {"body", "same title"}}).status == 200);
    // After a 409 the server still works normally.
    CHECK(n.post({{"title", "Third"}}).status == 201);
}

// ---- listing ----------------------------------------------------------------------------------

TEST_CASE("GET /notes lists by id with the default page size and a next link", "[notes]") {
    Notes n;
    auto empty = n.server.get("/notes");
    REQUIRE(empty.status == 200);
    CHECK(empty.json() == json{{"items", json::array()}, {"next", nullptr}});
    CHECK_FALSE(empty.header("Link"));

    for (int i = 1; i <= 25; ++i) n.create("Note " + std::to_string(i));
    auto first = n.server.get("/notes");
    REQUIRE(first.status == 200);
    const json page = first.json();
    REQUIRE(page["items"].size() == 20);
    for (int i = 0; i < 20; ++i) CHECK(page["items"][i]["id"] == i + 1);
    REQUIRE(page["next"].is_string());
    CHECK_THAT(page["next"].get<std::string>(), Contains("/notes?") && Contains("cursor="));
    CHECK(first.header("Link") ==
          "<http://127.0.0.1:" + std::to_string(n.server.port()) + page["next"].get<std::string>() + ">; rel=\"next\"");
    auto second = n.server.get(page["next"]);
    REQUIRE(second.status == 200);
    REQUIRE(second.json()["items"].size() == 5);
    CHECK(second.json()["items"][0]["id"] == 21);
    CHECK(second.json()["next"].is_null());
    CHECK_FALSE(second.header("Link"));

    auto exact = n.server.get("/notes?limit=25");
    CHECK(exact.json()["items"].size() == 25);
    CHECK(exact.json()["next"].is_null());
    CHECK(n.server.get("/notes?limit=100").json()["items"].size() == 25);
}

TEST_CASE("pagination visits every note exactly once for every sort, direction and page size", "[notes]") {
    Notes n;
    // Titles out of id order, half pinned, created as fast as possible.
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 30; ++i) {
        const int scrambled = (i * 7) % 30;
        ids.push_back(n.create("title " + std::to_string(100 + scrambled), "", i % 2 == 0)["id"].get<std::int64_t>());
    }
    // Make sure of ties in created_at and updated_at: three values each, in different groups.
    n.db.rows("UPDATE notes SET created_at = '2030-01-01T00:00:00.000Z' WHERE id % 3 = 0");
    n.db.rows("UPDATE notes SET created_at = '2030-01-02T00:00:00.000Z' WHERE id % 3 = 1");
    n.db.rows("UPDATE notes SET created_at = '2029-12-31T00:00:00.000Z' WHERE id % 3 = 2");
    n.db.rows("UPDATE notes SET updated_at = '2031-05-05T00:00:00.000Z' WHERE id % 4 < 2");
    n.db.rows("UPDATE notes SET updated_at = '2031-05-04T00:00:00.000Z' WHERE id % 4 >= 2");
    const auto notes = all_notes(n, ids);

    for (const std::string sort :
         {"id", "-id", "title", "-title", "created_at", "-created_at", "updated_at", "-updated_at"}) {
        const auto expected = expected_order(notes, sort);
        for (std::size_t limit : {1u, 3u, 7u, 30u, 100u}) {
            INFO("sort=" << sort << " limit=" << limit);
            auto w = walk(n.server, "/notes?sort=" + encode(sort) + "&limit=" + std::to_string(limit), limit);
            CHECK(w.ids == expected);
            CHECK(std::set<std::int64_t>(w.ids.begin(), w.ids.end()).size() == w.ids.size());
            CHECK(w.pages == static_cast<int>(std::max<std::size_t>(1, (30 + limit - 1) / limit)));
        }
    }
    // The default sort is id ascending.
    auto w = walk(n.server, "/notes?limit=4", 4);
    CHECK(w.ids == expected_order(notes, "id"));
}

TEST_CASE("pagination keeps the filters on every page", "[notes]") {
    Notes n;
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 24; ++i) {
        const std::string title = (i % 3 == 0 ? "Shopping " : "Work ") + std::to_string(i);
        ids.push_back(n.create(title, "", i % 4 == 0)["id"].get<std::int64_t>());
    }
    n.db.rows("UPDATE notes SET created_at = '2030-01-01T00:00:00.000Z'");  // all tied
    const auto notes = all_notes(n, ids);

    struct Case {
        std::string query;
        std::function<bool(const json&)> matches;
    };
    const std::vector<Case> cases{
        {"pinned=true", [](const json& x) { return x["pinned"] == true; }},
        {"pinned=false", [](const json& x) { return x["pinned"] == false; }},
        {"q=shop", [](const json& x) { return x["title"].get<std::string>().rfind("Shopping", 0) == 0; }},
        {"q=SHOP&pinned=true",
         [](const json& x) { return x["pinned"] == true && x["title"].get<std::string>().rfind("Shopping", 0) == 0; }},
        {"q=" + encode("work 1"), [](const json& x) { return x["title"].get<std::string>().rfind("Work 1", 0) == 0; }},
        {"title=" + encode("Work 5"), [](const json& x) { return x["title"] == "Work 5"; }},
    };
    for (const auto& c : cases) {
        std::vector<json> matching;
        for (const auto& note : notes)
            if (c.matches(note)) matching.push_back(note);
        REQUIRE_FALSE(matching.empty());
        for (const std::string sort : {"id", "-id", "title", "-title", "created_at", "-created_at"}) {
            for (std::size_t limit : {1u, 2u, 5u}) {
                INFO(c.query << " sort=" << sort << " limit=" << limit);
                auto w = walk(n.server, "/notes?" + c.query + "&sort=" + encode(sort) + "&limit=" + std::to_string(limit),
                              limit);
                CHECK(w.ids == expected_order(matching, sort));
            }
        }
    }
    auto none = n.server.get("/notes?title=Nothing&pinned=true");
    CHECK(none.json() == json{{"items", json::array()}, {"next", nullptr}});
}

TEST_CASE("a cursor only works with the sort it was made for", "[notes]") {
    Notes n;
    for (int i = 0; i < 5; ++i) n.create("Cursor " + std::to_string(i));
    auto first = n.server.get("/notes?sort=title&limit=2");
    REQUIRE(first.status == 200);
    const std::string next = first.json()["next"];
    const auto at = next.find("cursor=");
    REQUIRE(at != std::string::npos);
    const std::string cursor = next.substr(at + 7, next.find('&', at) - at - 7);
    REQUIRE_FALSE(cursor.empty());
    CHECK(n.server.get("/notes?sort=title&limit=2&cursor=" + cursor).status == 200);

    for (const std::string other : {"id", "-title", "created_at", "-updated_at"}) {
        INFO(other);
        CHECK(is_problem(n.server.get("/notes?sort=" + encode(other) + "&cursor=" + cursor), 400, "invalid_cursor"));
    }
    CHECK(is_problem(n.server.get("/notes?cursor=" + cursor), 400, "invalid_cursor"));  // default sort is id

    // Cursors that are not the server's.
    for (const std::string& bad :
         {std::string("abc"), std::string("!!!"), base64url("not json"), base64url("[]"),
          base64url(R"({"s":"title","id":1,"v":5})"), base64url(R"({"s":"id","id":"1","v":1})"),
          base64url(R"({"s":"title","v":"a"})"), std::string("")}) {
        INFO(bad);
        CHECK(is_problem(n.server.get("/notes?sort=title&cursor=" + bad), 400, "invalid_cursor"));
    }
    CHECK(n.count() == 5);
}

TEST_CASE("unknown or invalid list parameters answer 400 invalid_query naming each", "[notes]") {
    Notes n;
    n.create("Listed");
    auto r = n.server.get("/notes?color=red&limit=0&sort=name&pinned=yes");
    REQUIRE(is_problem(r, 400, "invalid_query"));
    std::set<std::string> named;
    for (const auto& e : json(r.json()["errors"])) named.insert(e["field"].get<std::string>());
    CHECK(named == std::set<std::string>{"/color", "/limit", "/sort", "/pinned"});

    for (const char* query : {"limit=101", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=%201", "sort=",
                              "sort=-", "sort=--id", "sort=ID", "sort=owner", "sort=body", "pinned=1", "pinned=TRUE",
                              "pinned=", "page=2", "offset=10", "owner=default"}) {
        INFO(query);
        CHECK(is_problem(n.server.get(std::string("/notes?") + query), 400, "invalid_query"));
    }
    CHECK(n.server.get("/notes?limit=100").status == 200);
    CHECK(n.server.get("/notes?limit=1").status == 200);
}

TEST_CASE("q matches a case-insensitive substring and treats % and _ literally", "[notes]") {
    Notes n;
    for (const char* title : {"100% done", "100 percent", "snake_case", "snakeXcase", "Back\\slash", "Backslash",
                              "Mixed CASE Title", "percent%"})
        n.create(title);
    auto titles = [&](const std::string& q) {
        auto r = n.server.get("/notes?limit=100&q=" + encode(q));
        REQUIRE(r.status == 200);
        std::set<std::string> out;
        for (const auto& item : json(r.json()["items"])) out.insert(item["title"].get<std::string>());
        return out;
    };
    using Set = std::set<std::string>;
    CHECK(titles("%") == Set{"100% done", "percent%"});
    CHECK(titles("0%") == Set{"100% done"});
    CHECK(titles("_") == Set{"snake_case"});
    CHECK(titles("e_c") == Set{"snake_case"});
    CHECK(titles("%%") == Set{});
    CHECK(titles("__") == Set{});
    CHECK(titles("\\") == Set{"Back\\slash"});
    CHECK(titles("case") == Set{"snake_case", "snakeXcase", "Mixed CASE Title"});
    CHECK(titles("MIXED case") == Set{"Mixed CASE Title"});
    CHECK(titles("zzz") == Set{});
    CHECK(titles("").size() == 8);
}

TEST_CASE("title= filters by the exact title", "[notes]") {
    Notes n;
    for (const char* title : {"Alpha", "Alpha 2", "alpha", "The Alpha"}) n.create(title);
    auto r = n.server.get("/notes?title=Alpha");
    REQUIRE(r.status == 200);
    REQUIRE(r.json()["items"].size() == 1);
    CHECK(r.json()["items"][0]["title"] == "Alpha");
    CHECK(n.server.get("/notes?title=Alph").json()["items"].empty());
    CHECK(n.server.get("/notes?title=" + encode("Alpha%")).json()["items"].empty());
    CHECK(n.server.get("/notes?title=Alpha+2").json()["items"][0]["title"] == "Alpha 2");
}

// ---- SQL injection ----------------------------------------------------------------------------

TEST_CASE("injection strings in title and body are stored verbatim", "[notes][injection]") {
    Notes n;
    std::map<std::int64_t, std::string> stored;
    for (const auto& payload : kInjections) {
        INFO(payload);
        auto r = n.post({{"title", payload}, {"body", payload + " " + payload}});
        REQUIRE(r.status == 201);
        const json note = r.json();
        CHECK(note["title"] == payload);
        CHECK(note["body"] == payload + " " + payload);
        stored[note["id"].get<std::int64_t>()] = payload;
    }
    CHECK(n.count() == static_cast<long>(kInjections.size()));
    for (const auto& [id, payload] : stored) {
        INFO(payload);
        const json got = n.get(id).json();
        CHECK(got["title"] == payload);
        CHECK(got["body"] == payload + " " + payload);
        CHECK(n.db.rows("SELECT title, body FROM notes WHERE id = " + std::to_string(id)) ==
              std::vector<std::vector<std::string>>{{payload, payload + " " + payload}});
    }

    // The same through PUT and PATCH (titles made unique by a suffix).
    for (const auto& [id, payload] : stored) {
        INFO(payload);
        auto put = n.send("PUT", id, {{"title", payload + " put"}, {"body", payload}});
        REQUIRE(put.status == 200);
        CHECK(put.json()["title"] == payload + " put");
        auto patch = n.send("PATCH", id, {{"body", "patched " + payload}});
        REQUIRE(patch.status == 200);
        CHECK(patch.json()["body"] == "patched " + payload);
        CHECK(n.db.rows("SELECT title, body, version FROM notes WHERE id = " + std::to_string(id)) ==
              std::vector<std::vector<std::string>>{{payload + " put", "patched " + payload, "3"}});
    }
    // An injection in a field name is just an unknown field.
    auto key = n.server.request("POST", "/notes", R"({"title": "k", "title'; DROP TABLE notes; --": "x"})", kJson);
    REQUIRE(is_problem(key, 422, "validation_failed"));
    CHECK(key.json()["errors"][0]["field"] == "/title'; DROP TABLE notes; --");
    CHECK(n.count() == static_cast<long>(kInjections.size()));
    CHECK(n.db.rows("SELECT COUNT(*) FROM notes WHERE title = 'pwned'")[0][0] == "0");
}

TEST_CASE("injection strings in the title and q filters only match as data", "[notes][injection]") {
    Notes n;
    n.create("plain note");
    n.create("another plain note");
    for (const auto& payload : kInjections) n.create(payload);
    const long total = static_cast<long>(kInjections.size()) + 2;

    for (const auto& payload : kInjections) {
        INFO(payload);
        auto exact = n.server.get("/notes?limit=100&title=" + encode(payload));
        REQUIRE(exact.status == 200);
        REQUIRE(exact.json()["items"].size() == 1);
        CHECK(exact.json()["items"][0]["title"] == payload);

        auto q = n.server.get("/notes?limit=100&q=" + encode(payload));
        REQUIRE(q.status == 200);
        bool found = false;
        for (const auto& item : json(q.json()["items"])) {
            const std::string title = item["title"];
            found = found || title == payload;
            CHECK_THAT(lower_ascii(title), Contains(lower_ascii(payload)));
        }
        CHECK(found);
        CHECK(q.json()["items"].size() < static_cast<std::size_t>(total));
    }
    CHECK(n.count() == total);
}

TEST_CASE("injection strings in sort, limit, pinned and cursor are rejected with 400", "[notes][injection]") {
    Notes n;
    for (int i = 0; i < 3; ++i) n.create("Row " + std::to_string(i));
    for (const auto& payload : kInjections) {
        INFO(payload);
        const std::string value = encode(payload);
        CHECK(is_problem(n.server.get("/notes?sort=" + value), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?sort=id" + value), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?sort=-" + value), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?limit=" + value), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?limit=1" + value), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?pinned=" + value), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?pinned=true" + value), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?" + value + "=1"), 400, "invalid_query"));
        CHECK(is_problem(n.server.get("/notes?cursor=" + value), 400, "invalid_cursor"));
        CHECK(is_problem(n.server.get("/notes?cursor=" + base64url(payload)), 400, "invalid_cursor"));
    }
    CHECK(n.count() == 3);
}

TEST_CASE("a forged cursor with injection strings in its values is bound as data", "[notes][injection]") {
    Notes n;
    for (int i = 0; i < 4; ++i) n.create("Row " + std::to_string(i));
    for (const auto& payload : kInjections) {
        INFO(payload);
        for (const char* sort : {"title", "-title", "created_at", "-updated_at"}) {
            const json state{{"s", sort}, {"id", 1}, {"v", payload}};
            auto r = n.server.get(std::string("/notes?limit=100&sort=") + sort + "&cursor=" + base64url(state.dump()));
            REQUIRE(r.status == 200);
            CHECK(r.json()["items"].size() <= 4);
            // The rows returned are exactly those after the payload in the sort order.
            const bool descending = sort[0] == '-';
            const std::string key = descending ? sort + 1 : sort;
            for (const auto& item : json(r.json()["items"])) {
                const std::string v = item[key];
                CHECK((descending ? v <= payload : v >= payload));
            }
        }
        // A cursor whose "s" itself is an injection does not match any sort.
        const json state{{"s", payload}, {"id", 1}, {"v", 1}};
        CHECK(is_problem(n.server.get("/notes?cursor=" + base64url(state.dump())), 400, "invalid_cursor"));
    }
    CHECK(n.count() == 4);
}

TEST_CASE("injection strings in the id path segment answer 404 and change nothing", "[notes][injection]") {
    Notes n;
    n.create("First");
    n.create("Second");
    std::vector<std::string> payloads = kInjections;
    for (const char* extra : {"1 OR 1=1", "1; DROP TABLE notes", "1--", "1' OR '1'='1", "1)", "1 ", " 1", "1/**/",
                              "(1)", "1,2", "*", "1%"})
        payloads.push_back(extra);
    for (const auto& payload : payloads) {
        INFO(payload);
        const std::string target = "/notes/" + encode(payload);
        CHECK(is_problem(n.server.get(target), 404, "not_found"));
        CHECK(is_problem(n.server.request("PUT", target, R"({"title":"pwned"})", kJson), 404, "not_found"));
        CHECK(is_problem(n.server.request("PATCH", target, R"({"title":"pwned"})", kJson), 404, "not_found"));
        CHECK(is_problem(n.server.request("DELETE", target), 404, "not_found"));
    }
    CHECK(n.count() == 2);
    CHECK(n.db.rows("SELECT title, version FROM notes ORDER BY id") ==
          std::vector<std::vector<std::string>>{{"First", "1"}, {"Second", "1"}});
}

TEST_CASE("injection strings in If-Match and If-None-Match are only compared", "[notes][injection]") {
    Notes n;
    n.create("Guarded");
    for (const auto& payload : kInjections) {
        INFO(payload);
        for (const std::string& tag : {payload, "\"1-" + payload + "\"", "\"1-1" + payload + "\""}) {
            const Headers headers{{"Content-Type", "application/json"}, {"If-Match", tag}};
            CHECK(is_problem(n.send("PATCH", 1, {{"body", "pwned"}}, headers), 412, "precondition_failed"));
            CHECK(is_problem(n.server.request("DELETE", "/notes/1", {}, headers), 412, "precondition_failed"));
            CHECK(n.get(1, {{"If-None-Match", tag}}).status == 200);
        }
    }
    CHECK(n.db.rows("SELECT title, body, version FROM notes") ==
          std::vector<std::vector<std::string>>{{"Guarded", "", "1"}});
}

TEST_CASE("a filter with an injection string pages through its matches with the next link", "[notes][injection]") {
    Notes n;
    const std::string payload = "%' --";
    std::vector<json> matching;
    for (int i = 0; i < 5; ++i) {
        n.create("Decoy " + std::to_string(i));
        matching.push_back(n.create("x" + payload + std::to_string(i)));
    }
    for (const char* sort : {"id", "-title"}) {
        INFO(sort);
        auto w = walk(n.server, "/notes?limit=2&sort=" + encode(sort) + "&q=" + encode(payload), 2);
        CHECK(w.ids == expected_order(matching, sort));
    }
    auto exact = walk(n.server, "/notes?limit=1&title=" + encode("x" + payload + "3"), 1);
    CHECK(exact.ids == std::vector<std::int64_t>{matching[3]["id"].get<std::int64_t>()});
    CHECK(n.count() == 10);
}
