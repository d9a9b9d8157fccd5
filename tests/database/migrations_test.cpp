// Per-plugin migrations on a real database (SQLite here, PostgreSQL in the second pass):
// applied once and recorded, failures rolled back and recorded and fatal to their plugin
// only, drift refused, and the migrate CLI (status, up, down, repair) as an admin uses it.
#include <catch2/catch.hpp>

#include <chrono>

#include "db/migrations.hpp"
#include "support/process.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using test::config_yaml;
using test::find_report;
using test::TestDatabase;
using test::TestServer;

namespace {

// A fixture plugin section with migrations given as YAML flow items.
std::string plugin_with(const std::string& name, const std::vector<std::string>& migrations) {
    std::string out = "  " + name + ":\n    config:\n      middleware: []\n      migrations:\n";
    for (const auto& m : migrations) out += "        - " + m + "\n";
    return out;
}

std::string migration(int version, const std::string& up, const std::string& down = "") {
    std::string out = "{version: " + std::to_string(version) + ", name: \"step " + std::to_string(version) +
                      "\", up: \"" + up + "\"";
    if (!down.empty()) out += ", down: \"" + down + "\"";
    return out + "}";
}

bool table_exists(TestDatabase& db, const std::string& table) {
    const std::string sql =
        db.postgresql() ? "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '" + table + "'"
                        : "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '" + table + "'";
    return db.rows(sql)[0][0] == "1";
}

// plugin history as "version:success" strings, ascending.
std::vector<std::string> history(TestDatabase& db, const std::string& plugin) {
    std::vector<std::string> out;
    for (const auto& row : db.rows("SELECT version, success FROM trellis_schema_history WHERE plugin = '" + plugin +
                                   "' ORDER BY version"))
        out.push_back(row[0] + ":" + row[1]);
    return out;
}

struct Cli {
    int code;
    std::string output;
};

// Runs `trellis ARGS -c FILE` with the given config and returns exit code and output.
Cli trellis_cli(const test::TempDir& dir, const std::string& yaml, std::vector<std::string> args) {
    auto file = dir.write("cli.yaml", yaml);
    std::vector<std::string> argv{TRELLIS_TEST_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("-c");
    argv.push_back(file.string());
    test::Process p(argv, test::minimal_environment(), dir.path() / "cli.out");
    auto code = p.wait(60s);
    REQUIRE(code.has_value());
    return {*code, p.output()};
}

}  // namespace

TEST_CASE("checksums ignore line endings and trailing white space, nothing else", "[migrations]") {
    const auto base = db::checksum("CREATE TABLE t (\n  x INTEGER\n);");
    CHECK(db::checksum("CREATE TABLE t (\r\n  x INTEGER\r\n);") == base);
    CHECK(db::checksum("CREATE TABLE t (   \n  x INTEGER\t\n);  \n\n\n") == base);
    CHECK(db::checksum("CREATE TABLE t (\r  x INTEGER\r);") == base);
    CHECK(db::checksum("CREATE TABLE t (\n  x INTEGER\n);") == base);
    CHECK(db::checksum("CREATE TABLE t (\n x INTEGER\n);") != base);  // leading white space counts
    CHECK(db::checksum("CREATE TABLE t (\n  x BIGINT\n);") != base);
    CHECK(base.size() == 64);
}

TEST_CASE("dialect variants replace the common migration of their version", "[migrations]") {
    const std::vector<db::Migration> registered{{1, "a", "common 1", "", ""},
                                                {2, "b", "common 2", "", ""},
                                                {2, "b", "sqlite 2", "", "sqlite"},
                                                {3, "c", "postgresql 3", "", "postgresql"}};
    auto sqlite = db::for_dialect(registered, config::Dialect::sqlite);
    REQUIRE(sqlite.size() == 2);
    CHECK(sqlite[0].up == "common 1");
    CHECK(sqlite[1].up == "sqlite 2");
    auto pg = db::for_dialect(registered, config::Dialect::postgresql);
    REQUIRE(pg.size() == 3);
    CHECK(pg[1].up == "common 2");
    CHECK(pg[2].up == "postgresql 3");
}

TEST_CASE("pending migrations are applied once, in order, and recorded", "[migrations]") {
    TestDatabase db;
    const std::string yaml = config_yaml(
        plugin_with("alpha", {migration(1, "CREATE TABLE alpha_items (id INTEGER PRIMARY KEY, name TEXT)"),
                              migration(2, "INSERT INTO alpha_items (id, name) VALUES (1, 'seeded'); "
                                           "CREATE TABLE alpha_more (x INTEGER)")}),
        db.yaml());
    std::string first_applied_at;
    {
        TestServer server(yaml);
        REQUIRE(find_report(server.runtime(), "alpha")->status == runtime::PluginStatus::loaded);
        CHECK(server.get("/alpha/db/ping").status == 200);
        first_applied_at = db.rows("SELECT applied_at FROM trellis_schema_history WHERE version = 1")[0][0];
    }
    TestServer again(yaml);  // a restart applies nothing twice
    REQUIRE(find_report(again.runtime(), "alpha")->status == runtime::PluginStatus::loaded);
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:1", "2:1"});
    CHECK(db.rows("SELECT COUNT(*) FROM alpha_items")[0][0] == "1");
    CHECK(db.rows("SELECT applied_at FROM trellis_schema_history WHERE version = 1")[0][0] == first_applied_at);
    auto row = db.rows("SELECT name, checksum, execution_ms, error FROM trellis_schema_history WHERE version = 2")[0];
    CHECK(row[0] == "step 2");
    CHECK(row[1] == db::checksum("INSERT INTO alpha_items (id, name) VALUES (1, 'seeded'); "
                                 "CREATE TABLE alpha_more (x INTEGER)"));
    CHECK(std::stoll(row[2]) >= 0);
    CHECK(row[3] == "NULL");
}

TEST_CASE("a failing migration is rolled back and recorded and fails only its plugin", "[migrations]") {
    TestDatabase db;
    const std::string bad = "CREATE TABLE alpha_two (x INTEGER); INSERT INTO no_such_table VALUES (1)";
    const auto yaml = [&](const std::string& second) {
        return config_yaml(plugin_with("alpha", {migration(1, "CREATE TABLE alpha_one (x INTEGER)"),
                                                 migration(2, second), migration(3, "CREATE TABLE alpha_three (x INTEGER)")}) +
                               plugin_with("beta", {migration(1, "CREATE TABLE beta_one (x INTEGER)")}),
                           db.yaml());
    };
    {
        TestServer server(yaml(bad));
        const auto* alpha = find_report(server.runtime(), "alpha");
        REQUIRE(alpha->status == runtime::PluginStatus::failed);
        CHECK_THAT(alpha->reason, Contains("migration 2 (step 2) failed and was rolled back") &&
                                      Contains("no_such_table"));
        CHECK(find_report(server.runtime(), "beta")->status == runtime::PluginStatus::loaded);
        CHECK(server.get("/beta/count").status == 200);
        CHECK(server.get("/alpha/count").status == 404);  // a failed plugin serves nothing
    }
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:1", "2:0"});
    CHECK_THAT(db.rows("SELECT error FROM trellis_schema_history WHERE plugin = 'alpha' AND version = 2")[0][0],
               Contains("no_such_table"));
    CHECK(table_exists(db, "alpha_one"));
    CHECK_FALSE(table_exists(db, "alpha_two"));    // its first statement was rolled back too
    CHECK_FALSE(table_exists(db, "alpha_three"));  // later migrations did not run
    CHECK(history(db, "beta") == std::vector<std::string>{"1:1"});

    // Fixed, the migration still does not run by itself at start-up: no silent retry.
    const std::string fixed = "CREATE TABLE alpha_two (x INTEGER)";
    {
        TestServer server(yaml(fixed));
        const auto* alpha = find_report(server.runtime(), "alpha");
        REQUIRE(alpha->status == runtime::PluginStatus::failed);
        CHECK_THAT(alpha->reason, Contains("migration 2 (step 2) failed at") &&
                                      Contains("trellis migrate up --plugin alpha"));
    }
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:1", "2:0"});

    // The admin runs it again explicitly.
    test::TempDir dir;
    auto up = trellis_cli(dir, yaml(fixed), {"migrate", "up", "--plugin", "alpha"});
    INFO(up.output);
    CHECK(up.code == 0);
    CHECK_THAT(up.output, Contains("alpha: applied 2 migration(s)"));
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:1", "2:1", "3:1"});
    TestServer server(yaml(fixed));
    CHECK(find_report(server.runtime(), "alpha")->status == runtime::PluginStatus::loaded);
    CHECK(table_exists(db, "alpha_three"));
}

TEST_CASE("repair forgets a failed migration so that the next start applies the fixed one", "[migrations]") {
    TestDatabase db;
    test::TempDir dir;
    const auto yaml = [&](const std::string& up) {
        return config_yaml(plugin_with("alpha", {migration(1, up)}), db.yaml());
    };
    { TestServer server(yaml("CREATE TABLE")); }
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:0"});
    auto repaired = trellis_cli(dir, yaml("CREATE TABLE repaired (x INTEGER)"), {"migrate", "repair", "--plugin", "alpha"});
    INFO(repaired.output);
    CHECK(repaired.code == 0);
    CHECK_THAT(repaired.output, Contains("removed the failed record of migration 1"));
    CHECK(history(db, "alpha").empty());
    TestServer server(yaml("CREATE TABLE repaired (x INTEGER)"));
    CHECK(find_report(server.runtime(), "alpha")->status == runtime::PluginStatus::loaded);
    CHECK(table_exists(db, "repaired"));
}

TEST_CASE("an applied migration whose SQL changed is refused with both checksums", "[migrations]") {
    TestDatabase db;
    const std::string original = "CREATE TABLE drifted (x INTEGER)";
    const std::string changed = "CREATE TABLE drifted (x INTEGER, y INTEGER)";
    const auto yaml = [&](const std::string& up) {
        return config_yaml(plugin_with("alpha", {migration(1, up)}), db.yaml());
    };
    { TestServer server(yaml(original)); }
    {
        // Line endings and trailing spaces are not a change.
        TestServer server(yaml(original + "   \\r\\n"));
        CHECK(find_report(server.runtime(), "alpha")->status == runtime::PluginStatus::loaded);
    }
    {
        TestServer server(yaml(changed));
        const auto* alpha = find_report(server.runtime(), "alpha");
        REQUIRE(alpha->status == runtime::PluginStatus::failed);
        CHECK_THAT(alpha->reason, Contains("was changed after it was applied") &&
                                      Contains(db::checksum(original)) && Contains(db::checksum(changed)));
    }
    test::TempDir dir;
    auto status = trellis_cli(dir, yaml(changed), {"migrate", "status", "--json"});
    CHECK(status.code == 1);  // drift is trouble
    auto doc = nlohmann::json::parse(status.output);
    CHECK(doc["migrations"][0]["state"] == "drift");
    CHECK(doc["migrations"][0]["recorded_checksum"] == db::checksum(original));

    auto repaired = trellis_cli(dir, yaml(changed), {"migrate", "repair", "--plugin", "alpha"});
    CHECK(repaired.code == 0);
    CHECK_THAT(repaired.output, Contains("accepted the changed SQL of migration 1"));
    TestServer server(yaml(changed));
    CHECK(find_report(server.runtime(), "alpha")->status == runtime::PluginStatus::loaded);
}

TEST_CASE("migrate status, down and up move a plugin between versions", "[migrations]") {
    TestDatabase db;
    test::TempDir dir;
    const std::string yaml = config_yaml(
        plugin_with("alpha", {migration(1, "CREATE TABLE m_one (x INTEGER)", "DROP TABLE m_one"),
                              migration(2, "CREATE TABLE m_two (x INTEGER)", "DROP TABLE m_two"),
                              migration(3, "CREATE TABLE m_three (x INTEGER)", "DROP TABLE m_three")}),
        db.yaml("  migrate_on_start: false\n"));

    auto pending = trellis_cli(dir, yaml, {"migrate", "status"});
    CHECK(pending.code == 0);
    CHECK_THAT(pending.output, Contains("alpha") && Contains("pending"));
    {
        // Without migrate_on_start a plugin behind its schema does not serve.
        TestServer server(yaml);
        const auto* alpha = find_report(server.runtime(), "alpha");
        REQUIRE(alpha->status == runtime::PluginStatus::failed);
        CHECK_THAT(alpha->reason, Contains("1 (step 1) pending") && Contains("trellis migrate up --plugin alpha"));
    }
    CHECK(trellis_cli(dir, yaml, {"migrate", "up"}).code == 0);
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:1", "2:1", "3:1"});

    auto down = trellis_cli(dir, yaml, {"migrate", "down", "--plugin", "alpha", "--to", "1"});
    INFO(down.output);
    CHECK(down.code == 0);
    CHECK_THAT(down.output, Contains("reverted 2 migration(s)"));
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:1"});
    CHECK(table_exists(db, "m_one"));
    CHECK_FALSE(table_exists(db, "m_two"));
    CHECK_FALSE(table_exists(db, "m_three"));

    auto status = trellis_cli(dir, yaml, {"migrate", "status", "--json"});
    auto doc = nlohmann::json::parse(status.output);
    REQUIRE(doc["migrations"].size() == 3);
    CHECK(doc["migrations"][0]["state"] == "applied");
    CHECK(doc["migrations"][1]["state"] == "pending");

    CHECK(trellis_cli(dir, yaml, {"migrate", "up", "--plugin", "alpha"}).code == 0);
    CHECK(table_exists(db, "m_three"));
    TestServer server(yaml);
    CHECK(find_report(server.runtime(), "alpha")->status == runtime::PluginStatus::loaded);
}

TEST_CASE("migrate down refuses a migration without down SQL and reverts nothing", "[migrations]") {
    TestDatabase db;
    test::TempDir dir;
    const std::string yaml = config_yaml(
        plugin_with("alpha", {migration(1, "CREATE TABLE k_one (x INTEGER)"),
                              migration(2, "CREATE TABLE k_two (x INTEGER)", "DROP TABLE k_two")}),
        db.yaml());
    CHECK(trellis_cli(dir, yaml, {"migrate", "up"}).code == 0);
    auto down = trellis_cli(dir, yaml, {"migrate", "down", "--plugin", "alpha", "--to", "0"});
    CHECK(down.code == 1);
    CHECK_THAT(down.output, Contains("migration 1 (step 1) has no down SQL; nothing was reverted"));
    CHECK(history(db, "alpha") == std::vector<std::string>{"1:1", "2:1"});
    CHECK(table_exists(db, "k_two"));

    auto missing = trellis_cli(dir, yaml, {"migrate", "down", "--plugin", "alpha"});
    CHECK(missing.code == 1);
    CHECK_THAT(missing.output, Contains("needs --to VERSION"));
    auto unknown = trellis_cli(dir, yaml, {"migrate", "repair", "--plugin", "nobody"});
    CHECK(unknown.code == 1);
    CHECK_THAT(unknown.output, Contains("plugin 'nobody' is not configured"));
}

TEST_CASE("a database password is never shown by the CLI", "[migrations]") {
    test::TempDir dir;
    // Nothing listens on port 1: connecting fails, and the message must not carry the secret.
    const std::string yaml =
        config_yaml(plugin_with("alpha", {migration(1, "CREATE TABLE p (x INTEGER)")}),
                    "database:\n  url: \"postgresql://trellis:s3cr3t-pw@127.0.0.1:1/trellis?connect_timeout=2\"\n");
    for (const std::vector<std::string>& args : {std::vector<std::string>{"migrate", "status", "--json"},
                                                 std::vector<std::string>{"migrate", "up"},
                                                 std::vector<std::string>{"check"}}) {
        auto out = trellis_cli(dir, yaml, args);
        INFO(out.output);
        CHECK_FALSE(out.output.find("s3cr3t-pw") != std::string::npos);
        if (args[0] == "migrate") {
            CHECK(out.code == 1);
            CHECK_THAT(out.output, Contains("postgresql://trellis:***@127.0.0.1:1/trellis"));
        }
    }
    CHECK(config::redact_database_url("host=db user=u password='a b' dbname=x") ==
          "host=db user=u password=*** dbname=x");
    CHECK(config::redact_database_url("postgresql://u:p@h/db?password=q&sslmode=require") ==
          "postgresql://u:***@h/db?password=***&sslmode=require");
}

TEST_CASE("a migration that cannot start for a lock is not recorded as failed", "[migrations]") {
    // SQLite whatever the pass: its write lock is what a second runner waits for.
    test::TempDir dir;
    auto settings = config::parse_database_url("sqlite://" + (dir.path() / "locked.db").string(), "/");
    REQUIRE(settings);
    settings->busy_timeout = std::chrono::milliseconds(200);
    auto pool = db::Pool::create(*settings);
    db::Migrator migrator(*pool);
    const std::vector<db::Migration> first{{1, "one", "CREATE TABLE one (x INTEGER)", "", ""}};
    REQUIRE(migrator.up("alpha", first, false) == 1);

    auto holder = pool->acquire();
    REQUIRE(holder);
    REQUIRE(holder->begin());  // BEGIN IMMEDIATE: the write lock
    REQUIRE(holder->execute("INSERT INTO one (x) VALUES (1)", {}, false));

    const std::vector<db::Migration> both{first[0], {2, "two", "CREATE TABLE two (x INTEGER)", "", ""}};
    auto blocked = migrator.up("alpha", both, false);
    REQUIRE_FALSE(blocked);
    CHECK_THAT(blocked.error(), Contains("migration 2 (two) could not start, nothing was changed") &&
                                    Contains("locked"));
    REQUIRE(holder->rollback());

    auto states = migrator.status("alpha", both);
    REQUIRE(states);
    REQUIRE(states->size() == 2);
    CHECK((*states)[1].state == db::State::pending);  // not failed: the next start simply runs it
    CHECK(migrator.up("alpha", both, false) == 1);
}
