// The plugin author's path: install the SDK (as trellis-dev does), build a plugin project
// on its own with find_package(Trellis) + trellis_add_plugin(), and load the result.
#include <catch2/catch.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {
void run(const std::vector<std::string>& argv, const test::TempDir& dir) {
    test::Process p(argv, test::minimal_environment(), dir.path() / "step.log");
    auto code = p.wait(300s);
    INFO(p.output());
    REQUIRE(code == 0);
}
}  // namespace

TEST_CASE("a plugin project builds against the installed SDK alone and loads", "[packaging]") {
    test::TempDir dir;
    auto prefix = (dir.path() / "prefix").string();
    auto build = (dir.path() / "hello-build").string();
    run({TRELLIS_TEST_CMAKE, "--install", TRELLIS_TEST_BUILD_DIR, "--prefix", prefix, "--component", "sdk"}, dir);
    run({TRELLIS_TEST_CMAKE, "-S", TRELLIS_TEST_SOURCE_DIR "/plugins/hello", "-B", build,
         "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Release"},
        dir);
    run({TRELLIS_TEST_CMAKE, "--build", build}, dir);

    // Only the entry symbol is exported.
    test::Process nm({"/usr/bin/nm", "-D", "--defined-only", build + "/hello.so"}, test::minimal_environment(),
                     dir.path() / "nm.log");
    REQUIRE(nm.wait(30s) == 0);
    CHECK(nm.output().find("trellis_plugin_entry") != std::string::npos);
    for (const char* leaked : {"nlohmann", "Hello", "trellis6detail"}) {
        INFO(leaked);
        CHECK(nm.output().find(leaked) == std::string::npos);
    }

    test::TestServer server("plugins:\n  search_paths: [\"" + build + "\"]\n  hello:\n    config: {greeting: Hi}\n");
    const auto* report = test::find_report(server.runtime(), "hello");
    REQUIRE(report->status == runtime::PluginStatus::loaded);
    CHECK_THAT(report->file, Contains("hello-build/hello.so"));
    CHECK(server.get("/hello/there").json()["greeting"] == "Hi, there!");
}
