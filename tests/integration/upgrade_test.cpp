// A reload after a plugin's file was replaced the way a package upgrade replaces it (a new
// file renamed over the old): the new version serves, the old one until it is up, and a new
// version that fails refuses the reload while the old one keeps serving.
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "support/http_client.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = TRELLIS_TEST_FIXTURE_DIR;

// A plugin folder of its own holding upgradable.so, and a server with the database in its
// own folder too.
struct Upgradable {
    TempDir plugins;
    fs::path file = plugins.path() / "upgradable.so";
    std::unique_ptr<TestServer> server;

    explicit Upgradable(const std::string& first) {
        fs::copy_file(kFixtures / (first + ".so"), file);
        server = std::make_unique<TestServer>("server:\n  data_dir: .\nplugins:\n  search_paths: [\"" +
                                              plugins.path().string() + "\"]\n  upgradable: {}\n");
    }

    // As dpkg does it: the new file beside the old, then renamed over it (a new inode).
    void replace_with(const std::string& build) const {
        const fs::path staged = plugins.path() / "upgradable.so.dpkg-new";
        fs::copy_file(kFixtures / (build + ".so"), staged);
        fs::rename(staged, file);
    }

    std::string version() const {
        auto r = server->get("/upgradable/version");
        REQUIRE(r.status == 200);
        return r.json()["version"];
    }

    nlohmann::json admin_plugin() const {
        auto r = http_request(server->admin_port(), "GET", "/admin/plugins");
        REQUIRE(r.status == 200);
        const auto body = r.json();
        for (const auto& plugin : body["plugins"])
            if (plugin["name"] == "upgradable") return plugin;
        FAIL("upgradable is not in /admin/plugins");
        return {};
    }
};

std::string joined(const std::vector<std::string>& errors) {
    std::string all;
    for (const auto& e : errors) all += e + "\n";
    return all;
}

}  // namespace

TEST_CASE("a reload loads the new file of an upgraded plugin while the old one answers until then", "[upgrade]") {
    Upgradable u("upgradable_v1");
    REQUIRE(u.version() == "1.0.0");

    // A request the old version is serving while the reload happens, and a client loop.
    auto slow = std::async(std::launch::async, [&] { return u.server->get("/upgradable/slow?ms=1500"); });
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::atomic<int> old_answers{0};
    std::atomic<int> new_answers{0};
    std::thread loop([&] {
        while (!stop) {
            auto r = u.server->get("/upgradable/version");
            const std::string version = r.status == 200 ? r.json()["version"].get<std::string>() : "";
            if (version == "1.0.0")
                ++old_answers;
            else if (version == "2.0.0")
                ++new_answers;
            else
                ++failures;
        }
    });
    std::this_thread::sleep_for(200ms);

    u.replace_with("upgradable_v2");
    auto result = u.server->host().reload();
    INFO(joined(result.errors));
    REQUIRE(result.reloaded);
    CHECK(u.version() == "2.0.0");
    for (int i = 0; i < 100 && new_answers == 0; ++i) std::this_thread::sleep_for(20ms);
    stop = true;
    loop.join();
    CHECK(failures == 0);
    CHECK(old_answers > 0);
    CHECK(new_answers > 0);

    auto old = slow.get();
    CHECK(old.status == 200);
    CHECK(old.json()["version"] == "1.0.0");

    // The new version's migration ran as at start-up.
    const auto migrations = http_request(u.server->admin_port(), "GET", "/admin/migrations").json()["migrations"];
    std::set<std::int64_t> applied;
    for (const auto& m : migrations)
        if (m["plugin"] == "upgradable" && m["state"] == "applied") applied.insert(m["version"].get<std::int64_t>());
    CHECK(applied == std::set<std::int64_t>{1, 2});
    const auto plugin = u.admin_plugin();
    CHECK(plugin["version"] == "2.0.0");
    CHECK_FALSE(plugin.contains("reload_error"));

    // And back: a downgrade is a changed file too.
    u.replace_with("upgradable_v1");
    REQUIRE(u.server->host().reload().reloaded);
    CHECK(u.version() == "1.0.0");
}

TEST_CASE("a reload with the same plugin file keeps the loaded library", "[upgrade]") {
    Upgradable u("upgradable_v1");
    const auto* before = &u.server->runtime().instances().front()->library();
    REQUIRE(u.server->host().reload().reloaded);
    CHECK(&u.server->runtime().instances().front()->library() == before);
    CHECK(u.version() == "1.0.0");
}

TEST_CASE("an upgraded plugin whose new version fails in init refuses the reload and the old one serves", "[upgrade]") {
    Upgradable u("upgradable_v1");
    u.replace_with("upgradable_broken");
    auto result = u.server->host().reload();
    CHECK_FALSE(result.reloaded);
    CHECK_THAT(joined(result.errors), Contains("plugin 'upgradable'") && Contains("was upgraded") &&
                                          Contains("fails in init") && Contains("version 1.0.0 keeps serving"));
    CHECK(u.version() == "1.0.0");
    const auto plugin = u.admin_plugin();
    CHECK(plugin["state"] == "loaded");
    CHECK(plugin["version"] == "1.0.0");
    CHECK_THAT(plugin.value("reload_error", ""), Contains("fails in init") && Contains("2.0.0-broken"));

    // POST /admin/reload says the same.
    auto answer = http_request(u.server->admin_port(), "POST", "/admin/reload", "{}",
                               {{"Content-Type", "application/json"}});
    CHECK(answer.status == 422);
    CHECK_THAT(answer.body, Contains("was upgraded"));

    // A fixed version then loads, and the error is gone.
    u.replace_with("upgradable_v2");
    REQUIRE(u.server->host().reload().reloaded);
    CHECK(u.version() == "2.0.0");
    CHECK_FALSE(u.admin_plugin().contains("reload_error"));
}

TEST_CASE("an upgraded plugin whose new migration fails refuses the reload and the old one serves", "[upgrade]") {
    Upgradable u("upgradable_v1");
    u.replace_with("upgradable_bad_sql");
    auto result = u.server->host().reload();
    CHECK_FALSE(result.reloaded);
    CHECK_THAT(joined(result.errors), Contains("was upgraded") && Contains("version 1.0.0 keeps serving"));
    CHECK(u.version() == "1.0.0");
    CHECK_THAT(u.admin_plugin().value("reload_error", ""), Contains("2.0.0-bad-sql"));
}
