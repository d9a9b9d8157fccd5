// A connection given back to the pool is reset: a transaction, savepoint or (PostgreSQL)
// session setting opened with raw SQL never reaches the next lease. Runs on SQLite, and on
// PostgreSQL in the database pass with TRELLIS_TEST_POSTGRES.
#include <catch2/catch.hpp>

#include <Poco/URI.h>

#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using test::config_yaml;
using test::TestDatabase;
using test::TestServer;

namespace {

// A pool of one connection, so that every lease gets the connection the last one gave back.
std::shared_ptr<db::Pool> single(const TestDatabase& db) {
    auto parsed = config::parse_database_url(db.url(), "/");
    REQUIRE(parsed);
    parsed->pool_size = 1;
    return db::Pool::create(*parsed);
}

// Runs one statement on a lease of its own, as a plugin's raw SQL does.
tl::expected<db::Result, db::Error> run(db::Pool& pool, const std::string& sql, bool want_rows = false) {
    auto connection = pool.acquire();
    REQUIRE(connection);
    return connection->execute(sql, {}, want_rows);
}

std::string text(const db::Value& value) {
    return value.type == TRELLIS_VALUE_INT ? std::to_string(value.integer) : value.text;
}

std::string count(db::Pool& pool, const std::string& table) {
    auto rows = run(pool, "SELECT COUNT(*) AS n FROM " + table, true);
    REQUIRE(rows);
    return text(rows->cells.at(0));
}

std::string encode(const std::string& value) {
    std::string out;
    Poco::URI::encode(value, "&=+?#/:;%' \"", out);
    return out;
}

}  // namespace

TEST_CASE("a transaction opened with raw SQL is rolled back when the lease ends", "[pool][reset]") {
    TestDatabase db;
    auto pool = single(db);
    REQUIRE(run(*pool, "CREATE TABLE leaked (x INTEGER)"));
    REQUIRE(run(*pool, "BEGIN"));
    REQUIRE(run(*pool, "INSERT INTO leaked (x) VALUES (1)"));  // its own lease: not in a transaction now
    // What the next lease wrote is committed: another connection sees it.
    CHECK(db.rows("SELECT COUNT(*) FROM leaked")[0][0] == "1");
    // And a new transaction can start (SQLite refuses BEGIN inside one).
    REQUIRE(run(*pool, "BEGIN"));
    REQUIRE(run(*pool, "BEGIN"));
    CHECK(count(*pool, "leaked") == "1");
}

TEST_CASE("a savepoint opened with raw SQL does not reach the next lease", "[pool][reset]") {
    TestDatabase db;
    auto pool = single(db);
    REQUIRE(run(*pool, "CREATE TABLE saved (x INTEGER)"));
    {
        auto connection = pool->acquire();
        REQUIRE(connection);
        // PostgreSQL allows SAVEPOINT only inside a transaction; SQLite's starts one.
        if (db.postgresql()) REQUIRE(connection->execute("BEGIN", {}, false));
        REQUIRE(connection->execute("SAVEPOINT before_insert", {}, false));
        REQUIRE(connection->execute("INSERT INTO saved (x) VALUES (1)", {}, false));
    }
    CHECK(count(*pool, "saved") == "0");              // rolled back, not carried over
    CHECK_FALSE(run(*pool, "RELEASE SAVEPOINT before_insert"));  // no such savepoint any more
    REQUIRE(run(*pool, "INSERT INTO saved (x) VALUES (2)"));
    CHECK(db.rows("SELECT COUNT(*) FROM saved")[0][0] == "1");
}

TEST_CASE("a failed transaction does not poison the next lease", "[pool][reset]") {
    TestDatabase db;
    auto pool = single(db);
    {
        auto connection = pool->acquire();
        REQUIRE(connection);
        REQUIRE(connection->execute("BEGIN", {}, false));
        REQUIRE_FALSE(connection->execute("SELECT * FROM no_such_table", {}, true));
    }
    auto one = run(*pool, "SELECT 1 AS one", true);  // PostgreSQL: "current transaction is aborted" before
    REQUIRE(one);
    CHECK(text(one->cells.at(0)) == "1");
}

TEST_CASE("PostgreSQL session settings do not reach the next lease", "[pool][reset]") {
    TestDatabase db;
    if (!db.postgresql()) {
        WARN("skipped on SQLite: it has no session settings to reset (runs with TRELLIS_TEST_POSTGRES)");
        return;
    }
    auto pool = single(db);
    REQUIRE(run(*pool, "SET application_name = 'leaked'"));
    REQUIRE(run(*pool, "SELECT set_config('statement_timeout', '1', false)", true));
    REQUIRE(run(*pool, "CREATE TEMPORARY TABLE temp_leaked (x INTEGER)"));
    auto name = run(*pool, "SELECT current_setting('application_name') AS name", true);
    REQUIRE(name);
    CHECK(name->cells.at(0).text != "leaked");
    auto timeout = run(*pool, "SELECT current_setting('statement_timeout') AS t", true);
    REQUIRE(timeout);
    CHECK(timeout->cells.at(0).text == "0");
    CHECK_FALSE(run(*pool, "SELECT COUNT(*) FROM temp_leaked", true));
    // The pool's own setting is applied again after the reset.
    auto level = run(*pool, "SELECT current_setting('client_min_messages') AS level", true);
    REQUIRE(level);
    CHECK(level->cells.at(0).text == "warning");
}

TEST_CASE("a plugin's raw BEGIN through the SDK does not reach the next request", "[pool][reset]") {
    TestDatabase db;
    REQUIRE(db.rows("SELECT 1 AS one").size() == 1);
    {
        auto c = db.pool().acquire();
        REQUIRE(c);
        REQUIRE(c->execute("CREATE TABLE plugin_rows (x INTEGER)", {}, false));
    }
    TestServer server(config_yaml("  alpha: {}\n", db.yaml("  pool_size: 1\n")));
    auto begin = server.get("/alpha/db/query?sql=BEGIN");
    REQUIRE(begin.status == 200);
    auto insert = server.get("/alpha/db/query?sql=" + encode("INSERT INTO plugin_rows (x) VALUES (1)"));
    REQUIRE(insert.status == 200);
    // Committed: the host's other connection sees the row (it would not inside the open BEGIN).
    CHECK(db.rows("SELECT COUNT(*) FROM plugin_rows")[0][0] == "1");
}
