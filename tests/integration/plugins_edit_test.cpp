// `trellis plugins enable|disable NAME [--reload]` as an admin runs it (the real binary): the
// conf.d/90-disabled-NAME.yaml file, the check before any change, the reload through the
// admin API, and `plugins list` showing why the running server refused an upgrade.
#include <catch2/catch.hpp>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <thread>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

struct Result {
    int code = -1;
    std::string output;
};

// A configuration folder (trellis.yaml, conf.d/) and the trellis binary run against it.
struct Admin {
    TempDir dir;
    fs::path main = dir.path() / "trellis.yaml";
    fs::path marker(const std::string& name) const { return dir.path() / "conf.d" / ("90-disabled-" + name + ".yaml"); }
    std::vector<std::string> env = minimal_environment();

    explicit Admin(const std::string& yaml, const std::string& server_lines = "") {
        dir.write("trellis.yaml", "server:\n  data_dir: .\n" + server_lines + yaml);
    }

    Result run(std::vector<std::string> words) const {
        std::vector<std::string> argv{TRELLIS_TEST_BINARY};
        argv.insert(argv.end(), words.begin(), words.end());
        argv.insert(argv.end(), {"-c", main.string()});
        static int runs = 0;
        Process p(argv, env, dir.path() / ("cli-" + std::to_string(++runs) + ".log"));
        auto code = p.wait(60s);
        REQUIRE(code);
        return {*code, p.output()};
    }

    // Every file under the folder and its content, to show that a refusal changed nothing.
    std::map<std::string, std::string> files() const {
        std::map<std::string, std::string> out;
        for (const auto& entry : fs::recursive_directory_iterator(dir.path()))
            if (entry.is_regular_file() && entry.path().extension() == ".yaml")
                out[entry.path().string()] = read_file(entry.path());
        return out;
    }
};

std::string expected_marker(const std::string& name) {
    const passwd* pw = ::getpwuid(::geteuid());
    const std::string user = pw ? pw->pw_name : "uid " + std::to_string(::geteuid());
    return "# Written by `trellis plugins disable " + name + "` (user " + user + ").\n" + "# Disables plugin '" +
           name + "' whatever the files before it say. No package owns\n" +
           "# this file, so package upgrades keep it. Undo: `trellis plugins enable " + name + "`\n" +
           "# (or delete this file), then reload: `systemctl reload trellis`.\n" + "plugins:\n  " + name +
           ":\n    enabled: false\n";
}

}  // namespace

TEST_CASE("plugins disable writes conf.d/90-disabled-NAME.yaml, enable removes it", "[cli][plugins-edit]") {
    Admin a(config_yaml("  hello: {}\n  alpha: {}\n"));
    auto disabled = a.run({"plugins", "disable", "hello"});
    INFO(disabled.output);
    REQUIRE(disabled.code == 0);
    CHECK_THAT(disabled.output, Contains("plugin 'hello' disabled") && Contains(a.marker("hello").string()));
    CHECK(read_file(a.marker("hello")) == expected_marker("hello"));
    struct stat st {};
    REQUIRE(::stat(a.marker("hello").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& entry : fs::directory_iterator(a.dir.path() / "conf.d")) ++entries;
    CHECK(entries == 1);  // no temporary file left behind

    auto list = a.run({"plugins", "list", "--json"});
    REQUIRE(list.code == 0);
    for (const auto& plugin : nlohmann::json::parse(list.output))
        CHECK(plugin["state"] == (plugin["name"] == "hello" ? "disabled" : "loaded"));
    CHECK(a.run({"check"}).code == 0);

    // Idempotent.
    auto again = a.run({"plugins", "disable", "hello"});
    CHECK(again.code == 0);
    CHECK_THAT(again.output, Contains("already disabled"));
    CHECK(read_file(a.marker("hello")) == expected_marker("hello"));

    auto enabled = a.run({"plugins", "enable", "hello"});
    INFO(enabled.output);
    CHECK(enabled.code == 0);
    CHECK_THAT(enabled.output, Contains("plugin 'hello' enabled") && Contains("removed"));
    CHECK_FALSE(fs::exists(a.marker("hello")));
    auto enabled_again = a.run({"plugins", "enable", "hello"});
    CHECK(enabled_again.code == 0);
    CHECK_THAT(enabled_again.output, Contains("already enabled"));
}

TEST_CASE("plugins enable refuses a plugin that is not installed, naming the folders searched", "[cli][plugins-edit]") {
    Admin a(config_yaml("  hello: {}\n  ghost: {enabled: false}\n"));
    a.dir.write("conf.d/90-disabled-ghost.yaml", "plugins:\n  ghost:\n    enabled: false\n");
    const auto before = a.files();
    auto r = a.run({"plugins", "enable", "ghost"});
    CHECK(r.code == 1);
    CHECK_THAT(r.output, Contains("not enabling plugin 'ghost'") && Contains("not installed") &&
                             Contains("no ghost.so") && Contains(TRELLIS_TEST_FIXTURE_DIR));
    CHECK(a.files() == before);
}

TEST_CASE("plugins disable refuses when global middleware or another plugin needs the plugin", "[cli][plugins-edit]") {
    SECTION("the global middleware list") {
        Admin a(config_yaml("  alpha: {}\n", "middleware: [alpha.mark]\n"));
        const auto before = a.files();
        auto r = a.run({"plugins", "disable", "alpha"});
        CHECK(r.code == 1);
        CHECK_THAT(r.output, Contains("not disabling plugin 'alpha'") && Contains("would not pass `trellis check`") &&
                                 Contains("key 'middleware'") && Contains("alpha.mark") && Contains("nothing was changed"));
        CHECK(a.files() == before);
        CHECK_FALSE(fs::exists(a.dir.path() / "conf.d"));
    }
    SECTION("a plugin that depends on it") {
        Admin a(config_yaml("  alpha: {}\n  gamma: {}\n"));
        const auto before = a.files();
        auto r = a.run({"plugins", "disable", "alpha"});
        CHECK(r.code == 1);
        CHECK_THAT(r.output, Contains("plugin 'gamma'") && Contains("depends on plugin 'alpha', which is disabled"));
        CHECK(a.files() == before);
    }
}

TEST_CASE("plugins enable refuses a plugin that would fail to load, and says when another file keeps it disabled",
          "[cli][plugins-edit]") {
    SECTION("fails to load") {
        Admin a(config_yaml("  alpha: {config: {fail_init: true}}\n"));
        a.dir.write("conf.d/90-disabled-alpha.yaml", expected_marker("alpha"));
        const auto before = a.files();
        auto r = a.run({"plugins", "enable", "alpha"});
        CHECK(r.code == 1);
        CHECK_THAT(r.output, Contains("not enabling plugin 'alpha'") && Contains("fixture was told to fail in init"));
        CHECK(a.files() == before);
    }
    SECTION("disabled in the main file as well") {
        Admin a(config_yaml("  alpha: {enabled: false}\n"));
        a.dir.write("conf.d/90-disabled-alpha.yaml", expected_marker("alpha"));
        auto r = a.run({"plugins", "enable", "alpha"});
        CHECK(r.code == 1);
        CHECK_THAT(r.output, Contains("removed") && Contains("stays disabled") && Contains(a.main.string()) &&
                                 Contains("enabled: false"));
        CHECK_FALSE(fs::exists(a.marker("alpha")));
    }
    SECTION("an environment variable enables it again") {
        Admin a(config_yaml("  alpha: {}\n"));
        a.env.push_back("TRELLIS_PLUGINS__ALPHA__ENABLED=true");
        auto r = a.run({"plugins", "disable", "alpha"});
        CHECK(r.code == 1);
        CHECK_THAT(r.output, Contains("TRELLIS_PLUGINS__ALPHA__ENABLED") && Contains("would stay enabled"));
        CHECK_FALSE(fs::exists(a.marker("alpha")));
    }
}

TEST_CASE("plugins disable/enable --reload reload the running server: the route goes and comes back",
          "[cli][plugins-edit]") {
    TempDir secrets;
    const auto token = secrets.write("admin.token", "s3cret-token\n");
    ::chmod(token.c_str(), 0600);
    // With a token: the CLI reads it from server.admin_token_file as the server does.
    Admin a(config_yaml("  hello: {}\n"), "  admin_token_file: " + token.string() + "\n");
    const auto port = free_port();
    const auto admin_port = free_port();
    a.env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
    a.env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(admin_port));
    Process server({TRELLIS_TEST_BINARY, "serve", "-c", a.main.string()}, a.env, a.dir.path() / "serve.log");
    REQUIRE(wait_until_listening(port, 10s));
    REQUIRE(http_request(port, "GET", "/hello/world").status == 200);

    auto disabled = a.run({"plugins", "disable", "hello", "--reload"});
    INFO(disabled.output << server.output());
    CHECK(disabled.code == 0);
    CHECK_THAT(disabled.output, Contains("reloaded the server") && Contains("plugin 'hello' is disabled"));
    CHECK(http_request(port, "GET", "/hello/world").status == 404);

    auto enabled = a.run({"plugins", "enable", "hello", "--reload"});
    INFO(enabled.output);
    CHECK(enabled.code == 0);
    CHECK_THAT(enabled.output, Contains("plugin 'hello' is loaded"));
    CHECK(http_request(port, "GET", "/hello/world").status == 200);

    server.signal(SIGTERM);
    CHECK(server.wait(20s) == 0);

    // No server any more: the change is made, the reload is reported as failed.
    auto offline = a.run({"plugins", "disable", "hello", "--reload"});
    CHECK(offline.code == 1);
    CHECK_THAT(offline.output, Contains("wrote") && Contains("cannot reload") &&
                                   Contains("127.0.0.1:" + std::to_string(admin_port)));
    CHECK(fs::exists(a.marker("hello")));
}

TEST_CASE("plugins list shows why the running server refused an upgraded plugin", "[cli][plugins-edit][upgrade]") {
    TempDir plugins;
    const fs::path fixtures = TRELLIS_TEST_FIXTURE_DIR;
    fs::copy_file(fixtures / "upgradable_v1.so", plugins.path() / "upgradable.so");
    Admin a("plugins:\n  search_paths: [\"" + plugins.path().string() + "\"]\n  upgradable: {}\n");
    const auto port = free_port();
    const auto admin_port = free_port();
    a.env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
    a.env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(admin_port));
    Process server({TRELLIS_TEST_BINARY, "serve", "-c", a.main.string()}, a.env, a.dir.path() / "serve.log");
    REQUIRE(wait_until_listening(port, 10s));

    // The new version's migration fails: the CLI's own check (no migrations) loads it, the
    // server refuses it. dpkg's way: a new file renamed over the old one, then SIGHUP.
    fs::copy_file(fixtures / "upgradable_bad_sql.so", plugins.path() / "upgradable.so.new");
    fs::rename(plugins.path() / "upgradable.so.new", plugins.path() / "upgradable.so");
    server.signal(SIGHUP);
    bool refused = false;
    for (int i = 0; i < 100 && !refused; ++i) {
        std::this_thread::sleep_for(100ms);
        refused = server.output().find("reload aborted") != std::string::npos;
    }
    INFO(server.output());
    REQUIRE(refused);
    CHECK(http_request(port, "GET", "/upgradable/version").json()["version"] == "1.0.0");
    CHECK_THAT(server.output(), Contains("plugin 'upgradable'") && Contains("loading the new file"));

    auto list = a.run({"plugins", "list"});
    CHECK(list.code == 0);
    CHECK_THAT(list.output, Contains("2.0.0-bad-sql") && Contains("refused it at its last reload") &&
                                Contains("127.0.0.1:" + std::to_string(admin_port)));
    auto json = a.run({"plugins", "list", "--json"});
    CHECK_THAT(nlohmann::json::parse(json.output)[0].value("reload_error", ""), Contains("2.0.0-bad-sql"));

    server.signal(SIGTERM);
    CHECK(server.wait(20s) == 0);
}
