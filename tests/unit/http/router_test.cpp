// Router: templates, precedence, 404/405/HEAD/redirect rules, conflicts, decoding.
#include <catch2/catch.hpp>

#include "http/router.hpp"

using trellis::http::RouteMatch;
using trellis::http::Router;
using Kind = RouteMatch::Kind;

namespace {
Router sample() {
    Router router;
    REQUIRE(router.add("GET", "/", 1, "root"));
    REQUIRE(router.add("GET", "/items", 2, "items"));
    REQUIRE(router.add("POST", "/items", 3, "items"));
    REQUIRE(router.add("GET", "/items/{id}", 4, "items"));
    REQUIRE(router.add("GET", "/items/new", 5, "items"));
    REQUIRE(router.add("DELETE", "/items/{id}", 6, "items"));
    REQUIRE(router.add("GET", "/items/{id}/tags/{tag}", 7, "items"));
    REQUIRE(router.add("GET", "/a/{x}/c", 8, "backtrack"));
    REQUIRE(router.add("GET", "/a/b/d", 9, "backtrack"));
    return router;
}
}  // namespace

TEST_CASE("router matches literal and parameter routes", "[router]") {
    Router router = sample();
    auto m = router.match("GET", "/items/42");
    REQUIRE(m.kind == Kind::found);
    CHECK(m.route_id == 4);
    REQUIRE(m.params.size() == 1);
    CHECK(m.params[0] == std::pair<std::string, std::string>{"id", "42"});

    CHECK(router.match("GET", "/").route_id == 1);
    CHECK(router.match("POST", "/items").route_id == 3);
    auto tags = router.match("GET", "/items/7/tags/red");
    REQUIRE(tags.kind == Kind::found);
    CHECK(tags.route_id == 7);
    CHECK(tags.params[1].second == "red");
}

TEST_CASE("a literal segment wins over a parameter, with backtracking", "[router]") {
    Router router = sample();
    CHECK(router.match("GET", "/items/new").route_id == 5);
    // "/a/b/c": the literal "b" leads to a dead end (only "/a/b/d"), so {x} must take it.
    auto m = router.match("GET", "/a/b/c");
    REQUIRE(m.kind == Kind::found);
    CHECK(m.route_id == 8);
    CHECK(m.params[0].second == "b");
    CHECK(router.match("GET", "/a/b/d").route_id == 9);
}

TEST_CASE("unknown paths are 404, known paths with another method 405 with Allow", "[router]") {
    Router router = sample();
    CHECK(router.match("GET", "/nothing").kind == Kind::not_found);
    CHECK(router.match("GET", "/items/1/tags").kind == Kind::not_found);
    auto m = router.match("PUT", "/items/9");
    REQUIRE(m.kind == Kind::method_not_allowed);
    CHECK(m.allow == "DELETE, GET, HEAD, OPTIONS");
    auto post_only = router.match("PATCH", "/items");
    CHECK(post_only.allow == "GET, HEAD, OPTIONS, POST");
}

TEST_CASE("HEAD is served by the GET route unless HEAD is registered", "[router]") {
    Router router = sample();
    auto m = router.match("HEAD", "/items/3");
    REQUIRE(m.kind == Kind::found);
    CHECK(m.route_id == 4);
    REQUIRE(router.add("HEAD", "/items", 10, "items"));
    CHECK(router.match("HEAD", "/items").route_id == 10);
}

TEST_CASE("trailing slash redirects to the route without it", "[router]") {
    Router router = sample();
    auto m = router.match("GET", "/items/");
    REQUIRE(m.kind == Kind::redirect);
    CHECK(m.location == "/items");
    CHECK(router.match("GET", "/items/5/").location == "/items/5");
    CHECK(router.match("GET", "/nothing/").kind == Kind::not_found);
    CHECK(router.match("GET", "/items//").kind == Kind::not_found);
}

TEST_CASE("parameters are percent-decoded per segment - malformed escapes are bad requests", "[router]") {
    Router router = sample();
    auto m = router.match("GET", "/items/a%2Fb%20c");
    REQUIRE(m.kind == Kind::found);
    CHECK(m.params[0].second == "a/b c");
    CHECK(router.match("GET", "/items/%zz").kind == Kind::bad_request);
    CHECK(router.match("GET", "/items/%4").kind == Kind::bad_request);
    CHECK(router.match("GET", "/items//x").kind == Kind::not_found);  // empty segment is not a parameter
}

TEST_CASE("conflicts name the owner - parameter names do not matter", "[router]") {
    Router router = sample();
    auto clash = router.add("GET", "/items/{key}", 11, "other");
    REQUIRE_FALSE(clash);
    CHECK(clash.error() == "GET /items/{key} conflicts with GET /items/{id} of items");
    REQUIRE(router.conflict("GET", "/items/{other}") != nullptr);
    CHECK(router.conflict("GET", "/items/{other}")->owner == "items");
    CHECK(router.conflict("PUT", "/items/{other}") == nullptr);
    CHECK(router.add("PUT", "/items/{key}", 12, "other"));
}

TEST_CASE("malformed templates and methods are refused", "[router]") {
    Router router;
    for (const char* bad :
         {"", "items", "/items/", "//x", "/a/{}", "/a/{1x}", "/a/b{c}", "/a/{x}/{x}", "/a?b", "/a b"}) {
        INFO(bad);
        CHECK_FALSE(router.add("GET", bad, 0, "t"));
    }
    CHECK_FALSE(router.add("get", "/x", 0, "t"));
    CHECK_FALSE(router.add("", "/x", 0, "t"));
    CHECK(router.entries().empty());
}

TEST_CASE("mounts join with route paths", "[router]") {
    using trellis::http::join_mount;
    CHECK(join_mount("/hello", "/{name}") == "/hello/{name}");
    CHECK(join_mount("/", "/{name}") == "/{name}");
    CHECK(join_mount("/hello", "/") == "/hello");
    CHECK(join_mount("/", "/") == "/");
}
