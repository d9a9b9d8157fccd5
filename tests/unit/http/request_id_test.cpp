// Request ids: which client ids are accepted, and what generated ids look like.
#include <catch2/catch.hpp>

#include <set>

#include "http/request_id.hpp"

using namespace trellis::http;

TEST_CASE("sane client request ids are kept, others replaced", "[request_id]") {
    std::string good = "abc-123_X.y:z";
    CHECK(choose_request_id(&good) == good);
    for (std::string bad : {std::string(), std::string(129, 'a'), std::string("has space"),
                            std::string("line\r\nbreak"), std::string("quote\""), std::string("ünï")}) {
        INFO(bad);
        CHECK_FALSE(is_sane_request_id(bad));
        auto chosen = choose_request_id(&bad);
        CHECK(chosen != bad);
        CHECK(is_sane_request_id(chosen));
    }
    CHECK(is_sane_request_id(std::string(128, 'a')));
}

TEST_CASE("generated request ids are 32 hex digits and distinct", "[request_id]") {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        auto id = generate_request_id();
        REQUIRE(id.size() == 32);
        REQUIRE(id.find_first_not_of("0123456789abcdef") == std::string::npos);
        seen.insert(id);
    }
    CHECK(seen.size() == 1000);
}
