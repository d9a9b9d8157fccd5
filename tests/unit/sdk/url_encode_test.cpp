// trellis::url_encode, the SDK's percent-encoder for values in query strings and path
// segments (notes and api_keys build their `next` links with it).
#include <catch2/catch.hpp>

#include <string>

#include <trellis/plugin.hpp>

TEST_CASE("url_encode keeps RFC 3986's unreserved characters and percent-encodes every other byte", "[sdk]") {
    CHECK(trellis::url_encode("AZaz09-._~") == "AZaz09-._~");
    CHECK(trellis::url_encode("a b&c=d/e?f#g%h+i") == "a%20b%26c%3Dd%2Fe%3Ff%23g%25h%2Bi");
    CHECK(trellis::url_encode("\xC3\xA9") == "%C3%A9");                   // UTF-8 bytes, upper-case hex
    CHECK(trellis::url_encode(std::string("\0\x7F\xFF", 3)) == "%00%7F%FF");  // NUL and the ends of the range
    CHECK(trellis::url_encode("").empty());
}
