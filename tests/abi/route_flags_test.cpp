// ABI 1.2 registration flags: TRELLIS_ROUTE_NON_BLOCKING and TRELLIS_MIDDLEWARE_NON_BLOCKING are
// read only when the plugin's struct_size covers them (an older plugin reads as 0), unknown
// bits are refused, and the SDK, the bundled plugins and the C fixtures declare what they should.
#include <catch2/catch.hpp>

#include <cstddef>
#include <memory>
#include <sstream>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include "plugin/host_api.hpp"
#include "plugin/instance.hpp"
#include "plugin/loader.hpp"

using namespace trellis;
using Catch::Matchers::Contains;

namespace {

trellis_status ok_handler(void*, trellis_request*, trellis_response*) { return TRELLIS_OK; }
trellis_status ok_middleware(void*, trellis_request*, trellis_response*, trellis_next*) { return TRELLIS_OK; }

trellis_str lit(const char* text) { return trellis_str{text, std::char_traits<char>::length(text)}; }

// A host context open for registration, logging into `log`.
struct Registering {
    std::ostringstream log;
    trellis_host host;
    Registering() {
        host.plugin_name = "probe";
        host.registering = true;
        host.logger = std::make_shared<spdlog::logger>("probe", std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
    }
    trellis_status route(std::uint32_t struct_size, std::uint32_t flags) {
        trellis_route r{};
        r.struct_size = struct_size;
        r.method = lit("GET");
        r.path = lit("/r");
        r.on_request = ok_handler;
        r.response_schema_json = lit("{\"type\":\"object\"}");
        r.flags = flags;
        return plugin::host_api().register_route(&host, &r);
    }
    trellis_status middleware(const char* name, std::uint32_t struct_size, std::uint32_t flags) {
        trellis_middleware m{};
        m.struct_size = struct_size;
        m.name = lit(name);
        m.on_middleware = ok_middleware;
        m.flags = flags;
        return plugin::host_api().register_middleware(&host, &m);
    }
};

// The size of the struct as a plugin built against abi.h 1.1 sees it: it ends where 1.2
// appended flags.
constexpr std::uint32_t route_1_1 = offsetof(trellis_route, flags);
constexpr std::uint32_t middleware_1_1 = offsetof(trellis_middleware, flags);

struct Loaded {
    plugin::LibraryCache cache;
    std::unique_ptr<plugin::Instance> instance;
    std::string init_error;
};

// Loads a plugin file and runs create + init, without a runtime.
std::unique_ptr<Loaded> load(const std::string& file, const std::string& config_json = "{}") {
    auto loaded = std::make_unique<Loaded>();
    auto library = loaded->cache.load(file);
    INFO(file);
    REQUIRE(library);
    auto instance = plugin::Instance::create(*library, config_json, nullptr);
    REQUIRE(instance);
    loaded->instance = std::move(*instance);
    if (auto init = loaded->instance->init(); !init) loaded->init_error = init.error();
    return loaded;
}

const plugin::RouteRegistration& route(const plugin::Instance& instance, const std::string& path) {
    for (const auto& r : instance.routes())
        if (r.path == path) return r;
    FAIL("no route " << path);
    throw;
}

const plugin::MiddlewareRegistration& middleware(const plugin::Instance& instance, const std::string& name) {
    for (const auto& m : instance.middleware())
        if (m.name == name) return m;
    FAIL("no middleware " << name);
    throw;
}

}  // namespace

TEST_CASE("the flags fields are appended at the end of the 1.1 structs", "[abi]") {
    CHECK(offsetof(trellis_route, flags) >= offsetof(trellis_route, response_schema_json) + sizeof(trellis_str));
    CHECK(offsetof(trellis_middleware, flags) >= offsetof(trellis_middleware, user_data) + sizeof(void*));
    CHECK(TRELLIS_ABI_MINOR >= 2);
}

TEST_CASE("route flags are read when struct_size covers them, and as 0 from a 1.1-sized route", "[abi]") {
    Registering r;
    REQUIRE(r.route(sizeof(trellis_route), TRELLIS_ROUTE_NON_BLOCKING) == TRELLIS_OK);
    REQUIRE(r.route(sizeof(trellis_route), 0) == TRELLIS_OK);
    // A 1.1 plugin has no flags field; whatever lies beyond its struct is not read.
    REQUIRE(r.route(route_1_1, TRELLIS_ROUTE_NON_BLOCKING) == TRELLIS_OK);
    REQUIRE(r.host.routes.size() == 3);
    CHECK(r.host.routes[0].non_blocking);
    CHECK_FALSE(r.host.routes[1].non_blocking);
    CHECK_FALSE(r.host.routes[2].non_blocking);
    // ... while the last 1.1 field is still read in full.
    CHECK(r.host.routes[2].response_schema_json == "{\"type\":\"object\"}");
}

TEST_CASE("middleware flags are read when struct_size covers them, and a 1.1-sized middleware still registers",
          "[abi]") {
    Registering r;
    REQUIRE(r.middleware("a", sizeof(trellis_middleware), TRELLIS_MIDDLEWARE_NON_BLOCKING) == TRELLIS_OK);
    REQUIRE(r.middleware("b", sizeof(trellis_middleware), 0) == TRELLIS_OK);
    REQUIRE(r.middleware("c", middleware_1_1, TRELLIS_MIDDLEWARE_NON_BLOCKING) == TRELLIS_OK);
    REQUIRE(r.host.middleware.size() == 3);
    CHECK(r.host.middleware[0].non_blocking);
    CHECK_FALSE(r.host.middleware[1].non_blocking);
    CHECK_FALSE(r.host.middleware[2].non_blocking);
    // Shorter than 1.0's fields: refused as before.
    CHECK(r.middleware("d", offsetof(trellis_middleware, user_data), 0) == TRELLIS_ERROR_INVALID_ARGUMENT);
}

TEST_CASE("unknown flag bits are refused and logged", "[abi]") {
    Registering r;
    CHECK(r.route(sizeof(trellis_route), TRELLIS_ROUTE_NON_BLOCKING | 0x10u) == TRELLIS_ERROR_INVALID_ARGUMENT);
    CHECK(r.middleware("m", sizeof(trellis_middleware), 0x4u) == TRELLIS_ERROR_INVALID_ARGUMENT);
    CHECK(r.host.routes.empty());
    CHECK(r.host.middleware.empty());
    r.host.logger->flush();
    CHECK_THAT(r.log.str(), Contains("route GET /r has unknown flag bits 0x10") && Contains("was the struct zeroed?"));
    CHECK_THAT(r.log.str(), Contains("middleware 'm' has unknown flag bits 0x4"));
    // Unknown bits beyond a 1.1 struct are not there at all.
    CHECK(r.route(route_1_1, 0xFFFFFFFFu) == TRELLIS_OK);
}

TEST_CASE("C plugins: a frozen 1.1 route reads as blocking, a 1.2 one carries its flag, an unknown bit fails init",
          "[abi]") {
    auto frozen = load(TRELLIS_TEST_FIXTURE_DIR "/frozen_v1_1.so");
    CHECK(frozen->instance->library().abi_minor == 1);
    REQUIRE(frozen->init_error.empty());
    CHECK_FALSE(route(*frozen->instance, "/{word}").non_blocking);

    auto frozen_1_0 = load(TRELLIS_TEST_FIXTURE_DIR "/frozen_v1_0.so");
    REQUIRE(frozen_1_0->init_error.empty());
    CHECK_FALSE(route(*frozen_1_0->instance, "/{word}").non_blocking);

    auto flagged = load(TRELLIS_TEST_FIXTURE_DIR "/bare_c_non_blocking.so");
    CHECK(flagged->instance->library().abi_minor == TRELLIS_ABI_MINOR);
    REQUIRE(flagged->init_error.empty());
    CHECK(route(*flagged->instance, "/{word}").non_blocking);

    auto plain = load(TRELLIS_TEST_FIXTURE_DIR "/bare_c.so");
    REQUIRE(plain->init_error.empty());
    CHECK_FALSE(route(*plain->instance, "/{word}").non_blocking);

    auto unknown = load(TRELLIS_TEST_FIXTURE_DIR "/unknown_route_flags.so");
    CHECK_THAT(unknown->init_error, Contains("on_init failed"));
    CHECK(unknown->instance->routes().empty());
}

TEST_CASE("SDK: context.non_blocking() flags the routes and middleware registered through it only", "[abi]") {
    auto fixture = load(TRELLIS_TEST_FIXTURE_DIR "/alpha.so", R"({"middleware": ["mark", "mark_inline", "deny"]})");
    REQUIRE(fixture->init_error.empty());
    const auto& instance = *fixture->instance;
    CHECK(route(instance, "/inline/ping").non_blocking);
    CHECK(route(instance, "/inline/db").non_blocking);
    CHECK(route(instance, "/inline/sleep").non_blocking);
    CHECK_FALSE(route(instance, "/count").non_blocking);
    CHECK_FALSE(route(instance, "/db/ping").non_blocking);
    CHECK(middleware(instance, "mark_inline").non_blocking);
    CHECK_FALSE(middleware(instance, "mark").non_blocking);
    CHECK_FALSE(middleware(instance, "deny").non_blocking);
}

TEST_CASE("bundled plugins: hello and security are non-blocking, notes is not", "[abi]") {
    auto hello = load(TRELLIS_TEST_PLUGIN_DIR "/hello.so");
    REQUIRE(hello->init_error.empty());
    REQUIRE_FALSE(hello->instance->routes().empty());
    for (const auto& r : hello->instance->routes()) CHECK(r.non_blocking);

    auto security = load(TRELLIS_TEST_PLUGIN_DIR "/security.so");
    REQUIRE(security->init_error.empty());
    REQUIRE(security->instance->middleware().size() == 2);
    for (const auto& m : security->instance->middleware()) CHECK(m.non_blocking);

    auto notes = load(TRELLIS_TEST_PLUGIN_DIR "/notes.so");
    REQUIRE(notes->init_error.empty());
    REQUIRE_FALSE(notes->instance->routes().empty());
    for (const auto& r : notes->instance->routes()) CHECK_FALSE(r.non_blocking);
    for (const auto& m : notes->instance->middleware()) CHECK_FALSE(m.non_blocking);
}
