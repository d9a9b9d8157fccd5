// Several Trellis processes started at the same moment against one fresh database (how
// Trellis scales out): every migration is applied exactly once and every process serves.
#include <catch2/catch.hpp>

#include <csignal>
#include <chrono>
#include <memory>

#include "support/process.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace std::chrono_literals;
using test::TestDatabase;

TEST_CASE("4 processes starting at once apply each migration exactly once and all serve", "[concurrency]") {
    TestDatabase db;
    test::TempDir dir;
    std::string migrations;
    for (int v = 1; v <= 6; ++v)
        migrations += "        - {version: " + std::to_string(v) + ", up: \"CREATE TABLE race_" + std::to_string(v) +
                      " (x INTEGER); INSERT INTO race_" + std::to_string(v) + " (x) VALUES (" + std::to_string(v) +
                      ")\"}\n";
    const auto config = dir.write(
        "trellis.yaml", test::config_yaml("  notes: {}\n  alpha:\n    config:\n      middleware: []\n      migrations:\n" +
                                              migrations,
                                          "server:\n  admin_enabled: false\n" + db.yaml("  busy_timeout: 30s\n")));

    std::vector<std::uint16_t> ports;
    std::vector<std::unique_ptr<test::Process>> processes;
    for (int i = 0; i < 4; ++i) {
        ports.push_back(test::free_port());
        auto env = test::minimal_environment();
        env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(ports.back()));
        processes.push_back(std::make_unique<test::Process>(
            std::vector<std::string>{TRELLIS_TEST_BINARY, "serve", "-c", config.string()}, env,
            dir.path() / ("trellis-" + std::to_string(i) + ".log")));
    }
    for (int i = 0; i < 4; ++i) {
        const bool listening = test::wait_until_listening(ports[i], 60s);
        const int notes = listening ? test::http_request(ports[i], "GET", "/notes").status : 0;
        const int alpha = listening ? test::http_request(ports[i], "GET", "/alpha/count").status : 0;
        // The output as it is after the requests (captured earlier, it would be empty).
        INFO("process " << i << " output:\n" << processes[i]->output());
        REQUIRE(listening);
        CHECK(notes == 200);
        CHECK(alpha == 200);
    }
    // Exactly one history row per migration, all successful, and each ran once.
    auto counts = db.rows("SELECT plugin, COUNT(*), SUM(success) FROM trellis_schema_history GROUP BY plugin ORDER BY plugin");
    REQUIRE(counts.size() == 2);
    CHECK(counts[0] == std::vector<std::string>{"alpha", "6", "6"});
    CHECK(counts[1] == std::vector<std::string>{"notes", "2", "2"});
    for (int v = 1; v <= 6; ++v)
        CHECK(db.rows("SELECT COUNT(*) FROM race_" + std::to_string(v))[0][0] == "1");

    // Notes written through one process are read through another.
    auto created = test::http_request(ports[0], "POST", "/notes", R"({"title":"shared"})",
                                      {{"Content-Type", "application/json"}});
    REQUIRE(created.status == 201);
    CHECK(test::http_request(ports[3], "GET", *created.header("Location")).status == 200);

    for (auto& p : processes) p->signal(SIGTERM);
    for (auto& p : processes) CHECK(p->wait(30s) == 0);
}
