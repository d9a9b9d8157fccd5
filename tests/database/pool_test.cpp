// The connection pool: bounded waits that end in 503 + Retry-After, recovery afterwards, no
// connection lost on error paths, and values that only ever travel as bound parameters.
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <thread>

#include <Poco/URI.h>

#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using test::config_yaml;
using test::TestDatabase;
using test::TestServer;

namespace {

std::string encode(const std::string& text) {
    std::string out;
    Poco::URI::encode(text, "&=+?#/:;%' \"", out);
    return out;
}

}  // namespace

TEST_CASE("a lease waits at most the acquire timeout and a returned connection is reused", "[pool]") {
    TestDatabase db;
    auto parsed = config::parse_database_url(db.url(), "/");
    REQUIRE(parsed);
    parsed->pool_size = 2;
    auto pool = db::Pool::create(*parsed);
    auto first = pool->acquire(100ms);
    auto second = pool->acquire(100ms);
    REQUIRE(first);
    REQUIRE(second);
    const auto started = std::chrono::steady_clock::now();
    auto third = pool->acquire(300ms);
    const auto waited = std::chrono::steady_clock::now() - started;
    REQUIRE_FALSE(third);
    CHECK(third.error().status == TRELLIS_ERROR_UNAVAILABLE);
    CHECK_THAT(third.error().message, Contains("no database connection became free within 300 ms (pool of 2)"));
    CHECK(waited >= 250ms);
    CHECK(waited < 5s);
    { auto released = std::move(*first); }  // given back here
    auto again = pool->acquire(100ms);
    REQUIRE(again);
    // SQLite reports expression columns without a declared type as text; the SDK converts.
    const db::Value one = again->execute("SELECT 1 AS one", {}, true)->cells.at(0);
    CHECK((one.type == TRELLIS_VALUE_INT ? std::to_string(one.integer) : one.text) == "1");
}

TEST_CASE("connections opened at once on a new SQLite file all get one", "[pool]") {
    // Several pools (as several processes, or a pool and the readiness probe) open the same
    // new file at the same moment: each turns it to WAL, and none may see "database is locked".
    for (int round = 0; round < 20; ++round) {
        TestDatabase db;
        if (db.postgresql()) return;  // a SQLite matter; PostgreSQL runs the other cases
        auto parsed = config::parse_database_url(db.url(), "/");
        REQUIRE(parsed);
        std::vector<std::shared_ptr<db::Pool>> pools;
        for (int i = 0; i < 6; ++i) pools.push_back(db::Pool::create(*parsed));
        std::vector<std::future<std::string>> opened;
        for (auto& pool : pools)
            opened.push_back(std::async(std::launch::async, [&pool] {
                auto lease = pool->acquire(2s);
                return lease ? std::string("ok") : lease.error().message;
            }));
        for (auto& result : opened) CHECK(result.get() == "ok");
    }
}

TEST_CASE("an open transaction is rolled back when its connection is given back", "[pool]") {
    TestDatabase db;
    auto parsed = config::parse_database_url(db.url(), "/");
    REQUIRE(parsed);
    parsed->pool_size = 1;
    auto pool = db::Pool::create(*parsed);
    {
        auto c = pool->acquire();
        REQUIRE(c);
        REQUIRE(c->execute("CREATE TABLE rolled (x INTEGER)", {}, false));
        REQUIRE(c->begin());
        REQUIRE(c->execute("INSERT INTO rolled (x) VALUES (:x)", {{"x", {TRELLIS_VALUE_INT, 7, 0, {}}}}, false));
    }
    auto c = pool->acquire();
    REQUIRE(c);
    CHECK_FALSE(c->in_transaction());
    CHECK(c->execute("SELECT COUNT(*) AS n FROM rolled", {}, true)->cells.at(0).integer == 0);
}

TEST_CASE("constraint violations, bad SQL and NULLs come back as typed results", "[pool]") {
    TestDatabase db;
    auto parsed = config::parse_database_url(db.url(), "/");
    REQUIRE(parsed);
    auto pool = db::Pool::create(*parsed);
    auto c = pool->acquire();
    REQUIRE(c);
    REQUIRE(c->execute("CREATE TABLE typed (id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL)", {}, false));
    auto insert = [&](std::int64_t id, db::Value name) {
        return c->execute("INSERT INTO typed (id, name, score) VALUES (:id, :name, :score)",
                          {{"id", {TRELLIS_VALUE_INT, id, 0, {}}}, {"name", name}, {"score", {TRELLIS_VALUE_REAL, 0, 1.5, {}}}},
                          false);
    };
    REQUIRE(insert(1, {TRELLIS_VALUE_TEXT, 0, 0, "a"}));
    REQUIRE(insert(2, {}));  // NULL
    auto duplicate = insert(3, {TRELLIS_VALUE_TEXT, 0, 0, "a"});
    REQUIRE_FALSE(duplicate);
    CHECK(duplicate.error().status == TRELLIS_ERROR_CONFLICT);
    auto rows = c->execute("SELECT id, name, score FROM typed ORDER BY id", {}, true);
    REQUIRE(rows);
    REQUIRE(rows->rows() == 2);
    CHECK(rows->columns == std::vector<std::string>{"id", "name", "score"});
    CHECK(rows->cells[0].type == TRELLIS_VALUE_INT);
    CHECK(rows->cells[1].text == "a");
    CHECK(rows->cells[2].real == Approx(1.5));
    CHECK(rows->cells[4].type == TRELLIS_VALUE_NULL);
    auto broken = c->execute("SELEC nonsense", {}, true);
    REQUIRE_FALSE(broken);
    CHECK_FALSE(broken.error().message.empty());
    auto updated = c->execute("UPDATE typed SET score = 2 WHERE id >= 1", {}, false);
    REQUIRE(updated);
    CHECK(updated->affected == 2);
}

TEST_CASE("a pool exhausted by slow requests answers 503 with Retry-After, then recovers", "[pool]") {
    TestDatabase db;
    TestServer server(config_yaml("  alpha:\n    config: {middleware: []}\n",
                                  db.yaml("  pool_size: 2\n  acquire_timeout: 200ms\n")));
    REQUIRE(server.get("/alpha/db/ping").status == 200);
    auto hold = [&] { return server.get("/alpha/db/hold?ms=1500").status; };
    auto first = std::async(std::launch::async, hold);
    auto second = std::async(std::launch::async, hold);
    std::this_thread::sleep_for(400ms);  // both holders have their connection by now

    auto busy = server.get("/alpha/db/ping");
    CHECK(busy.status == 503);
    CHECK(busy.header("Content-Type") == "application/problem+json");
    CHECK(busy.header("Retry-After") == "1");
    CHECK(busy.json()["code"] == "unavailable");
    CHECK(server.get("/alpha/count").status == 200);  // routes without the database are unaffected

    CHECK(first.get() == 200);
    CHECK(second.get() == 200);
    CHECK(server.get("/alpha/db/ping").status == 200);
}

TEST_CASE("requests that fail while holding a connection give it back", "[pool]") {
    TestDatabase db;
    TestServer server(config_yaml("  alpha:\n    config: {middleware: []}\n",
                                  db.yaml("  pool_size: 1\n  acquire_timeout: 500ms\n")));
    for (int i = 0; i < 10; ++i) {
        auto r = server.get("/alpha/db/query?sql=" + encode("SELECT * FROM no_such_table"));
        CHECK(r.status == 500);
        CHECK(r.header("Content-Type") == "application/problem+json");
        CHECK(r.body.find("no_such_table") == std::string::npos);  // internals stay in the log
    }
    CHECK(server.get("/alpha/db/ping").status == 200);  // the one connection is still free
}

TEST_CASE("bound parameters are data, never SQL", "[pool]") {
    TestDatabase db;
    TestServer server(config_yaml(
        "  alpha:\n    config: {middleware: [], migrations: [{version: 1, up: \"CREATE TABLE kept (x INTEGER)\"}]}\n",
        db.yaml()));
    for (const std::string evil : {"x'); DROP TABLE kept; --", "' OR '1'='1", "1; SELECT 2",
                                   ":other", "\\'\"", "unicode ünïcødé ✓"}) {
        INFO(evil);
        auto r = server.get("/alpha/db/query?sql=" + encode("SELECT :value AS value") + "&value=" + encode(evil));
        REQUIRE(r.status == 200);
        CHECK(r.json()["rows"][0]["value"] == evil);
    }
    CHECK(db.rows("SELECT COUNT(*) FROM kept")[0][0] == "0");  // still there
}
