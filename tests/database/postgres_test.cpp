// PostgreSQL going away under a running Trellis: connections killed by the server, and the
// server stopped and started again. Requests fail with 503 + Retry-After meanwhile and
// succeed again without a restart. Runs its own throwaway server (it has to stop it).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "support/process.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace std::chrono_literals;

namespace {

class OwnPostgres {
public:
    OwnPostgres() : port_(test::free_port()) {
        server_ = run("start " + std::to_string(port_));
        REQUIRE_FALSE(server_.empty());
    }
    ~OwnPostgres() { stop(); }
    void stop() { run("stop"); }
    void start() { run("start " + std::to_string(port_)); }
    const std::string& server() const { return server_; }

private:
    std::string run(const std::string& what) {
        const std::string command = std::string(TRELLIS_TEST_POSTGRES_SCRIPT) + " " + what.substr(0, what.find(' ')) +
                                    " " + dir_.path().string() + what.substr(std::min(what.size(), what.find(' '))) +
                                    " 2>" + (dir_.path() / "script.err").string();
        std::string out;
        if (FILE* pipe = ::popen(command.c_str(), "r")) {
            char buffer[512];
            while (std::fgets(buffer, sizeof buffer, pipe)) out += buffer;
            const int status = ::pclose(pipe);
            INFO(command << "\n" << out << test::read_file(dir_.path() / "script.err"));
            REQUIRE(status == 0);
        }
        while (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }

    test::TempDir dir_;
    std::uint16_t port_;
    std::string server_;
};

// Polls until GET target answers `status` or the time is up; returns the last status.
int eventually(const test::TestServer& server, const std::string& target, int status, std::chrono::seconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    int last = 0;
    while (std::chrono::steady_clock::now() < until) {
        last = server.get(target).status;
        if (last == status) break;
        std::this_thread::sleep_for(100ms);
    }
    return last;
}

}  // namespace

TEST_CASE("a lost PostgreSQL connection gives 503 and recovers when the database is back", "[postgresql]") {
    OwnPostgres pg;
    test::postgres_admin(pg.server(), "CREATE DATABASE dropped");
    test::TestServer server(test::config_yaml(
        "  alpha:\n    config: {middleware: [], migrations: [{version: 1, up: \"CREATE TABLE t (x INTEGER)\"}]}\n",
        "database:\n  url: \"" + pg.server() + "/dropped?connect_timeout=2\"\n  pool_size: 2\n  acquire_timeout: 500ms\n"));
    REQUIRE(server.get("/alpha/db/ping").status == 200);

    SECTION("the server kills every connection") {
        test::postgres_admin(pg.server(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'dropped'");
        int unavailable = 0;
        for (int i = 0; i < 4; ++i) {
            auto r = server.get("/alpha/db/ping");
            INFO(r.body);
            CHECK((r.status == 200 || r.status == 503));  // never 500
            if (r.status == 503) {
                ++unavailable;
                CHECK(r.header("Retry-After") == "1");
                CHECK(r.json()["code"] == "unavailable");
            }
        }
        CHECK(unavailable >= 1);  // the killed connections were noticed ...
        CHECK(unavailable <= 2);  // ... once each, then replaced
        CHECK(server.get("/alpha/db/ping").status == 200);
    }
    SECTION("the server stops and starts again") {
        pg.stop();
        for (int i = 0; i < 3; ++i) {
            auto r = server.get("/alpha/db/ping");
            CHECK(r.status == 503);
            CHECK(r.header("Retry-After") == "1");
        }
        CHECK(server.get("/alpha/count").status == 200);  // routes without the database keep working
        pg.start();
        CHECK(eventually(server, "/alpha/db/ping", 200, 20s) == 200);
        CHECK(server.get("/alpha/db/ping").status == 200);
    }
}

TEST_CASE("a database that is down at start-up fails the plugins that migrate, with the reason", "[postgresql]") {
    const std::uint16_t nobody = test::free_port();
    test::TestServer server(test::config_yaml(
        "  alpha:\n    config: {middleware: [], migrations: [{version: 1, up: \"CREATE TABLE t (x INTEGER)\"}]}\n"
        "  beta:\n    config: {middleware: []}\n",
        "database:\n  url: \"postgresql://trellis:pw@127.0.0.1:" + std::to_string(nobody) + "/x?connect_timeout=2\"\n"));
    const auto* alpha = test::find_report(server.runtime(), "alpha");
    REQUIRE(alpha->status == runtime::PluginStatus::failed);
    CHECK_THAT(alpha->reason, Catch::Matchers::Contains("cannot reach the database") &&
                                  Catch::Matchers::Contains("postgresql://trellis:***@127.0.0.1"));
    CHECK(alpha->reason.find(":pw@") == std::string::npos);
    CHECK(test::find_report(server.runtime(), "beta")->status == runtime::PluginStatus::loaded);
    auto r = server.get("/beta/db/ping");  // no database: 503, not 500
    CHECK(r.status == 503);
}
