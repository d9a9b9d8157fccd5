// The ABI promise across toolchains: a plugin built with clang++ and libc++ against
// sdk/include alone is loaded by this g++/libstdc++ host and serves real requests.
#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis;

TEST_CASE("a clang++/libc++ SDK plugin serves a route with a path parameter and a JSON body", "[abi]") {
    test::TestServer server(test::config_yaml("  libcxx: {}\n"));
    const auto* report = test::find_report(server.runtime(), "libcxx");
    REQUIRE(report->status == runtime::PluginStatus::loaded);

    // The library really runs on libc++, inside a process whose host uses libstdc++.
    auto maps = test::read_file("/proc/self/maps");
    CHECK(maps.find("libc++.so") != std::string::npos);
    CHECK(maps.find("libstdc++.so") != std::string::npos);

    auto r = server.request("POST", "/libcxx/items/42", R"({"name":"widget","tags":["a","b","a"]})",
                            {{"Content-Type", "application/json"}});
    REQUIRE(r.status == 201);
    auto doc = r.json();
    CHECK(doc["id"] == "42");
    CHECK(doc["name"] == "widget");
    CHECK(doc["tag_counts"] == nlohmann::json{{"a", 2}, {"b", 1}});
    CHECK(doc["caught"] == "thrown and caught inside the plugin");
    CHECK(doc["stdlib"] == "libc++");

    auto invalid = server.get("/libcxx/invalid");
    CHECK(invalid.status == 422);
    CHECK(invalid.json()["code"] == "invalid");

    auto bad_json = server.request("POST", "/libcxx/items/1", "[1,", {{"Content-Type", "application/json"}});
    CHECK(bad_json.status == 400);
    CHECK(server.get("/livez").status == 200);
}

TEST_CASE("a clang++/libc++ SDK plugin's non_blocking() reaches the host as the 1.2 route flag", "[abi]") {
    test::TestServer server(test::config_yaml("  libcxx: {}\n"));
    const plugin::Instance* libcxx = nullptr;
    for (const auto& instance : server.runtime().instances())
        if (instance->name() == "libcxx") libcxx = instance.get();
    REQUIRE(libcxx);
    for (const auto& route : libcxx->routes()) {
        INFO(route.method << " " << route.path);
        CHECK(route.non_blocking == (route.path == "/invalid"));
    }
}
