// The ABI version table: every released ABI version with the SHA-256 of its abi.h. Changing
// abi.h without adding a row (and bumping TRELLIS_ABI_MINOR or _MAJOR) fails here, so that
// every change to the contract is deliberate. Frozen copies of released headers live in
// tests/abi/frozen/<version>/ and fixtures built from them must load in every later host.
#include <catch2/catch.hpp>

#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>

#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis;

namespace {

struct Released {
    int major;
    int minor;
    const char* sha256;
};

// Append a row for every new ABI version; never edit a released row.
constexpr Released released[] = {
    {1, 0, "25d5eb1742c31cdb0ff316664a419f6b32c407ebef554c0fb18cabf28d95612d"},
    {1, 1, "8d6e5344908d5fa57625747c665ce3a4bd77b57173928ac92a0288120622a6b9"},
    {1, 2, "13431ac56a17ac5d93a5de33d3695c8cc25083372f20e232382118c5a8f16d1d"},
    {1, 3, "7e9cb8c89901bc834741110debbd89f97c39c5385f85db2e66e566a797f3ac36"},
    {1, 4, "64372a5feae7cfe089cd4513e786ff647a8e0d0bf667587ca3857d5fd21ab39a"},
};

std::string sha256_of(const std::string& path) {
    Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
    engine.update(test::read_file(path));
    return Poco::DigestEngine::digestToHex(engine.digest());
}

}  // namespace

TEST_CASE("abi.h matches the table row of the version it declares", "[abi]") {
    const Released& latest = released[std::size(released) - 1];
    CHECK(latest.major == TRELLIS_ABI_MAJOR);
    CHECK(latest.minor == TRELLIS_ABI_MINOR);
    INFO(
        "abi.h changed: add a row for the new ABI version (append-only change: minor + 1; "
        "anything else: major + 1) and freeze a copy under tests/abi/frozen/");
    CHECK(sha256_of(TRELLIS_TEST_SOURCE_DIR "/sdk/include/trellis/abi.h") == latest.sha256);
}

TEST_CASE("every released header is frozen unchanged", "[abi]") {
    for (const auto& row : released) {
        std::string path = std::string(TRELLIS_TEST_SOURCE_DIR "/tests/abi/frozen/") + std::to_string(row.major) + "." +
                           std::to_string(row.minor) + "/trellis/abi.h";
        INFO(path);
        CHECK(sha256_of(path) == row.sha256);
    }
}

TEST_CASE("a plugin built against the frozen 1.0 header loads and serves", "[abi]") {
    test::TestServer server(test::config_yaml("  frozen_v1_0: {}\n"));
    const auto* report = test::find_report(server.runtime(), "frozen_v1_0");
    REQUIRE(report->status == runtime::PluginStatus::loaded);
    CHECK(report->abi == "1.0");
    auto r = server.get("/frozen_v1_0/still-works");
    CHECK(r.status == 200);
    CHECK(r.body == "still-works");
}

TEST_CASE("a plugin built against the frozen 1.1 header loads and serves", "[abi]") {
    test::TestServer server(test::config_yaml("  frozen_v1_1: {}\n"));
    const auto* report = test::find_report(server.runtime(), "frozen_v1_1");
    REQUIRE(report->status == runtime::PluginStatus::loaded);
    CHECK(report->abi == "1.1");
    auto r = server.get("/frozen_v1_1/still-works");
    CHECK(r.status == 200);
    CHECK(r.body == "still-works");
}

TEST_CASE("a plugin built against the frozen 1.2 header loads and serves on a later host", "[abi]") {
    test::TestServer server(test::config_yaml("  frozen_v1_2: {}\n"));
    const auto* report = test::find_report(server.runtime(), "frozen_v1_2");
    REQUIRE(report->status == runtime::PluginStatus::loaded);
    CHECK(report->abi == "1.2");
    REQUIRE(server.runtime().targets().size() == 1);
    CHECK(server.runtime().targets()[0].runs_inline);  // its 1.2 route flag is read
    auto r = server.get("/frozen_v1_2/still-works");
    CHECK(r.status == 200);
    CHECK(r.body == "still-works");
    // It registered no readiness check: none to run.
    CHECK(server.runtime().instances().at(0)->run_health_checks().empty());
}

TEST_CASE("a plugin written in C against bare abi.h loads and serves", "[abi]") {
    test::TestServer server(test::config_yaml("  bare_c: {}\n"));
    auto r = server.get("/bare_c/w%C3%B6rd");
    CHECK(r.status == 200);
    CHECK(r.header("Content-Type") == "text/plain");
    CHECK(r.body == "w\xC3\xB6rd");
}
