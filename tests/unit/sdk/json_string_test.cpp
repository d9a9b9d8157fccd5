// The SDK's append_json_string: byte for byte what nlohmann's dump writes for a string.
#include <catch2/catch.hpp>

#include <string>

#include <trellis/plugin.hpp>

TEST_CASE("append_json_string writes what nlohmann::json::dump writes", "[sdk]") {
    const std::string samples[] = {
        "",         "world",    "Hello, world!", "a\"b",          "back\\slash",   "tab\there",
        "nl\ncr\r", "\x01\x1f", "del\x7f",       "J\xC3\xBCrgen", "\xE2\x9C\x93",  "bad\xC3",
        "bad\xFFx", "\xC0\xAF", "{\"x\":[1,2]}", "%2F stays",     "~!@#$^&*()_+`",
    };
    for (const auto& sample : samples) {
        std::string out = "prefix:";
        trellis::append_json_string(out, sample);
        CHECK(out == "prefix:" + trellis::json(sample).dump(-1, ' ', false, trellis::json::error_handler_t::replace));
    }
}
