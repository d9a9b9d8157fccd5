// HTTP message helpers: header lookup, percent-decoding, query parsing, header editing.
#include <catch2/catch.hpp>

#include "http/message.hpp"

using namespace trellis::http;

TEST_CASE("percent_decode handles escapes, plus and malformed input", "[http]") {
    CHECK(percent_decode("a%20b", false) == "a b");
    CHECK(percent_decode("a+b", false) == "a+b");
    CHECK(percent_decode("a+b", true) == "a b");
    CHECK(percent_decode("%E2%9C%93", false) == "\xE2\x9C\x93");
    CHECK_FALSE(percent_decode("%", false));
    CHECK_FALSE(percent_decode("%4", false));
    CHECK_FALSE(percent_decode("%g0", false));
}

TEST_CASE("parse_query keeps order, decodes, and tolerates odd input", "[http]") {
    auto q = parse_query("a=1&b=x%20y&&c&a=2&bad=%zz");
    REQUIRE(q.size() == 5);
    CHECK(q[0] == Fields::value_type{"a", "1"});
    CHECK(q[1] == Fields::value_type{"b", "x y"});
    CHECK(q[2] == Fields::value_type{"c", ""});
    CHECK(q[3] == Fields::value_type{"a", "2"});
    CHECK(q[4] == Fields::value_type{"bad", "%zz"});
}

TEST_CASE("response headers: set replaces case-insensitively, add appends, empty removes", "[http]") {
    Response r;
    r.set_header("Content-Type", "text/plain");
    r.set_header("content-type", "application/json");
    REQUIRE(r.headers.size() == 1);
    CHECK(*r.header("CONTENT-TYPE") == "application/json");
    r.add_header("Vary", "Origin");
    r.add_header("Vary", "Accept");
    CHECK(r.headers.size() == 3);
    r.set_header("vary", "");
    CHECK(r.headers.size() == 1);
    CHECK(r.header("Vary") == nullptr);
}
