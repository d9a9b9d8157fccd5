// `trellis new-plugin`: the project it writes builds with g++ against the installed SDK alone,
// its plugin loads and serves (route, middleware, migration), its own test passes through the
// harness, and it packages as trellis-plugin-NAME depending on this SDK's ABI. Also the
// command's refusals: bad names and a folder that is not empty.
#include <catch2/catch.hpp>

#include <trellis/abi.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

struct Ran {
    int code;
    std::string output;
};

Ran run_in(const test::TempDir& dir, const std::vector<std::string>& argv, std::vector<std::string> extra_env = {}) {
    auto env = test::minimal_environment();
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    const auto log = dir.path() / "step.log";
    test::Process p(argv, env, log);
    auto code = p.wait(300s);
    return {code.value_or(-1), p.output()};
}

void run(const test::TempDir& dir, const std::vector<std::string>& argv, std::vector<std::string> extra_env = {}) {
    auto ran = run_in(dir, argv, std::move(extra_env));
    INFO(ran.output);
    REQUIRE(ran.code == 0);
}

std::vector<std::string> sorted_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(line);
    std::sort(lines.begin(), lines.end());
    return lines;
}

// Paths in a deb as `dpkg-deb -c` lists them, without "./" and the trailing "/".
std::vector<std::string> deb_paths(const test::TempDir& dir, const fs::path& deb) {
    auto listing = run_in(dir, {"/usr/bin/dpkg-deb", "-c", deb.string()});
    REQUIRE(listing.code == 0);
    std::string paths;
    std::istringstream in(listing.output);
    for (std::string line; std::getline(in, line);) {
        auto at = line.find(" ./");
        if (at == std::string::npos) continue;
        std::string path = line.substr(at + 2);
        if (path.size() > 1 && path.back() == '/') path.pop_back();
        if (path != "/") paths += path + "\n";
    }
    return sorted_lines(paths);
}

const std::string abi = std::to_string(TRELLIS_ABI_MAJOR) + "." + std::to_string(TRELLIS_ABI_MINOR);

}  // namespace

TEST_CASE("a new-plugin project builds against the installed SDK alone and serves and tests and packages", "[packaging]") {
    test::TempDir dir;
    const auto prefix = (dir.path() / "prefix").string();
    const auto project = dir.path() / "demo";
    const auto build = (dir.path() / "demo-build").string();
    // What trellis-dev installs: the sdk component, and libtrellis1 for the harness's library.
    run(dir, {TRELLIS_TEST_CMAKE, "--install", TRELLIS_TEST_BUILD_DIR, "--prefix", prefix, "--component", "sdk"});
    run(dir, {TRELLIS_TEST_CMAKE, "--install", TRELLIS_TEST_BUILD_DIR, "--prefix", prefix, "--component",
              "libtrellis1"});

    run(dir, {TRELLIS_TEST_BINARY, "new-plugin", "demo", "--dir", project.string()},
        {"DEBFULLNAME=Ada Lovelace", "DEBEMAIL=ada@example.org"});
    for (const char* file : {"CMakeLists.txt", "src/demo.cpp", "tests/demo_test.cpp", "config/50-demo.yaml",
                             "README.md", ".gitignore"}) {
        INFO(file);
        CHECK(fs::is_regular_file(project / file));
    }

    std::vector<std::string> configure{TRELLIS_TEST_CMAKE,      "-S", project.string(), "-B", build,
                                       "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_CXX_COMPILER=g++",
                                       "-DCMAKE_BUILD_TYPE=RelWithDebInfo"};
    if (fs::exists("/usr/bin/ccache")) configure.push_back("-DCMAKE_CXX_COMPILER_LAUNCHER=/usr/bin/ccache");
    run(dir, configure);
    run(dir, {TRELLIS_TEST_CMAKE, "--build", build});
    REQUIRE(fs::exists(fs::path(build) / "demo.so"));

    {
        // Its plugin in the real host: the route, the middleware's header, the migration's table.
        test::TestDatabase db;
        test::TestServer server(db.yaml() + "plugins:\n  search_paths: [\"" + build +
                                "\"]\n  demo:\n    middleware: [demo.stamp]\n    config: {greeting: Hi}\n");
        const auto* report = test::find_report(server.runtime(), "demo");
        REQUIRE(report->status == runtime::PluginStatus::loaded);
        CHECK_THAT(report->file, Contains("demo-build/demo.so"));
        auto first = server.get("/demo/ada");
        INFO(first.body);
        REQUIRE(first.status == 200);
        CHECK(first.json()["greeting"] == "Hi, ada!");
        CHECK(first.json()["visits"] == 1);
        CHECK(first.header("X-Plugin") == "demo/0.1.0");
        CHECK(server.get("/demo/ada").json()["visits"] == 2);
        CHECK(db.rows("SELECT count FROM demo_visits WHERE name = 'ada'") ==
              std::vector<std::vector<std::string>>{{"2"}});
    }

#ifdef TRELLIS_TEST_HARNESS
    // The generated test runs through trellis/testing.hpp against the installed SDK.
    run(dir, {"/usr/bin/ctest", "--test-dir", build, "--output-on-failure", "--no-tests=error"});
#endif

    run(dir, {TRELLIS_TEST_CMAKE, "--build", build, "--target", "package-demo"});
    const auto deb = fs::path(build) / "packages" / "trellis-plugin-demo_0.1.0_amd64.deb";
    REQUIRE(fs::exists(deb));
    auto depends = run_in(dir, {"/usr/bin/dpkg-deb", "-f", deb.string(), "Depends", "Maintainer"});
    CHECK_THAT(depends.output, Contains("trellis-abi-" + abi));
    CHECK_THAT(depends.output, Contains("Maintainer: Ada Lovelace <ada@example.org>"));
    CHECK(deb_paths(dir, deb) == std::vector<std::string>{
                                     "/etc", "/etc/trellis", "/etc/trellis/conf.d", "/etc/trellis/conf.d/50-demo.yaml",
                                     "/usr", "/usr/lib", "/usr/lib/trellis", "/usr/lib/trellis/plugins",
                                     "/usr/lib/trellis/plugins/demo.so", "/usr/share", "/usr/share/doc",
                                     "/usr/share/doc/trellis-plugin-demo",
                                     "/usr/share/doc/trellis-plugin-demo/changelog.gz",
                                     "/usr/share/doc/trellis-plugin-demo/copyright"});
    auto conffiles = run_in(dir, {"/bin/sh", "-c", "dpkg-deb --ctrl-tarfile \"$0\" | tar -xO ./conffiles", deb.string()});
    CHECK(conffiles.output == "/etc/trellis/conf.d/50-demo.yaml\n");
}

TEST_CASE("new-plugin refuses names the host would refuse and reserved ones and writes nothing", "[cli]") {
    test::TempDir dir;
    const auto target = dir.path() / "out";
    for (const std::string name : {"Demo", "9lives", "my-plugin", "_x", "a.b", "search_paths", "all", "test"}) {
        INFO(name);
        auto ran = run_in(dir, {TRELLIS_TEST_BINARY, "new-plugin", name, "--dir", target.string()});
        CHECK(ran.code == 2);
        CHECK_THAT(ran.output, Contains("cannot create plugin '" + name + "'"));
        CHECK_THAT(ran.output, Contains(name == "search_paths" || name == "all" || name == "test"
                                            ? "is reserved"
                                            : "lower case letters, digits and '_', starting with a letter"));
        CHECK_FALSE(fs::exists(target));
    }
    auto missing = run_in(dir, {TRELLIS_TEST_BINARY, "new-plugin"});
    CHECK(missing.code == 2);
    CHECK_THAT(missing.output, Contains("usage: trellis new-plugin NAME [--dir DIR]"));
    auto no_dir = run_in(dir, {TRELLIS_TEST_BINARY, "new-plugin", "demo", "--dir"});
    CHECK(no_dir.code == 2);
    CHECK_THAT(no_dir.output, Contains("--dir needs a folder"));
}

TEST_CASE("new-plugin refuses a folder that is not empty or a file and fills an empty one", "[cli]") {
    test::TempDir dir;
    const auto taken = dir.write("taken/notes.txt", "mine\n").parent_path();
    auto ran = run_in(dir, {TRELLIS_TEST_BINARY, "new-plugin", "demo", "--dir", taken.string()});
    CHECK(ran.code == 1);
    CHECK_THAT(ran.output, Contains("cannot create plugin 'demo' in " + taken.string() + ": the folder is not empty"));
    CHECK(std::distance(fs::directory_iterator(taken), fs::directory_iterator()) == 1);
    CHECK(test::read_file(taken / "notes.txt") == "mine\n");

    const auto file = dir.write("a-file", "x");
    ran = run_in(dir, {TRELLIS_TEST_BINARY, "new-plugin", "demo", "--dir", file.string()});
    CHECK(ran.code == 1);
    CHECK_THAT(ran.output, Contains("it exists and is not a folder"));

    fs::create_directory(dir.path() / "empty");
    ran = run_in(dir, {TRELLIS_TEST_BINARY, "new-plugin", "my_tool", "--dir", (dir.path() / "empty").string()});
    INFO(ran.output);
    CHECK(ran.code == 0);
    CHECK(fs::is_regular_file(dir.path() / "empty" / "src" / "my_tool.cpp"));
    CHECK_THAT(test::read_file(dir.path() / "empty" / "src" / "my_tool.cpp"), Contains("class MyTool final"));
    // A Debian package name has no '_'.
    CHECK_THAT(test::read_file(dir.path() / "empty" / "CMakeLists.txt"), Contains("project(trellis-plugin-my-tool "));

    // Without --dir the project goes to ./NAME.
    ran = run_in(dir, {"/bin/sh", "-c", "cd \"$0\" && exec \"$1\" new-plugin greeter", dir.path().string(),
                       TRELLIS_TEST_BINARY});
    CHECK(ran.code == 0);
    CHECK(fs::is_regular_file(dir.path() / "greeter" / "src" / "greeter.cpp"));
}
