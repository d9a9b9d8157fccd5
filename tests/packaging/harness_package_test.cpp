// The test harness as a plugin author gets it: install trellis-dev's and libtrellis1's files,
// build a test project with find_package(Trellis) and Trellis::testing alone, and run it.
#include <catch2/catch.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {
std::string run(const std::vector<std::string>& argv, const trellis::test::TempDir& dir) {
    trellis::test::Process p(argv, trellis::test::minimal_environment(), dir.path() / "step.log");
    auto code = p.wait(300s);
    INFO(p.output());
    REQUIRE(code == 0);
    return p.output();
}
}  // namespace

TEST_CASE("a plugin's test links Trellis::testing from the installed packages and passes", "[packaging]") {
    trellis::test::TempDir dir;
    const auto prefix = (dir.path() / "prefix").string();
    const auto build = (dir.path() / "test-build").string();
    for (const char* component : {"sdk", "libtrellis1"})
        run({TRELLIS_TEST_CMAKE, "--install", TRELLIS_TEST_BUILD_DIR, "--prefix", prefix, "--component", component},
            dir);
    run({TRELLIS_TEST_CMAKE, "-S", TRELLIS_TEST_SOURCE_DIR "/tests/packaging/harness_project", "-B", build,
         "-DCMAKE_PREFIX_PATH=" + prefix, "-DCMAKE_BUILD_TYPE=Release",
         "-DTEST_SOURCES=" TRELLIS_TEST_SOURCE_DIR "/tests/support/catch_main.cpp;" TRELLIS_TEST_SOURCE_DIR
         "/tests/plugins/hello_test.cpp",
         "-DPLUGIN_DIR=" TRELLIS_TEST_PLUGIN_DIR},
        dir);
    run({TRELLIS_TEST_CMAKE, "--build", build}, dir);

    // It runs against the installed library, not the build tree's.
    const auto needed = run({"/usr/bin/readelf", "-d", build + "/hello_test"}, dir);
    CHECK_THAT(needed, Contains("[libtrellis.so.1]"));
    CHECK_THAT(needed, Contains(prefix));
    CHECK_THAT(run({build + "/hello_test"}, dir), Contains("All tests passed"));
}
