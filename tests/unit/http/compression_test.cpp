// Response compression: Accept-Encoding negotiation, eligibility, Vary, weak ETags, and
// round trips through zlib's and brotli's decoders.
#include <catch2/catch.hpp>

#include "http/compression.hpp"
#include "support/decompress.hpp"

using namespace trellis::http;
using trellis::test::gunzip;
using trellis::test::unbrotli;

namespace {


std::string text_body(std::size_t size) {
    std::string body;
    for (int i = 0; body.size() < size; ++i) body += "{\"id\":" + std::to_string(i) + ",\"title\":\"note\"},";
    body.resize(size);
    return body;
}

Coding choose(const char* header) {
    const std::string value(header);
    return choose_coding(&value);
}

}  // namespace

TEST_CASE("Accept-Encoding q-values choose the coding", "[http][compression]") {
    CHECK(choose_coding(nullptr) == Coding::identity);
    CHECK(choose("") == Coding::identity);
    CHECK(choose("gzip") == Coding::gzip);
    CHECK(choose("br") == Coding::br);
    CHECK(choose("gzip, deflate, br") == Coding::br);  // a tie prefers br
    CHECK(choose("gzip;q=1.0, br;q=0.5") == Coding::gzip);
    CHECK(choose("br;q=0, gzip") == Coding::gzip);
    CHECK(choose("br;q=0, gzip;q=0") == Coding::identity);
    CHECK(choose("*") == Coding::br);
    CHECK(choose("*;q=0.5, gzip;q=0.8") == Coding::gzip);
    CHECK(choose("*;q=0") == Coding::identity);
    CHECK(choose("identity") == Coding::identity);
    CHECK(choose("deflate") == Coding::identity);
    CHECK(choose("GZIP;Q=0.5") == Coding::gzip);
    CHECK(choose("x-gzip") == Coding::gzip);
    CHECK(choose("gzip;q=0.5, identity;q=1") == Coding::identity);  // the client prefers identity
    CHECK(choose("gzip;q=1, identity;q=0") == Coding::gzip);
    CHECK(choose("br;q=2, gzip;q=abc") == Coding::identity);  // malformed q: the item is ignored
    CHECK(choose(" , br ;q=0.9 ,gzip; q=0.1") == Coding::br);
}

TEST_CASE("content types: exact media types and type wildcards", "[http][compression]") {
    const CompressionSettings settings;
    CHECK(compressible_type("text/html; charset=utf-8", settings.content_types));
    CHECK(compressible_type("TEXT/CSS", settings.content_types));
    CHECK(compressible_type("application/json", settings.content_types));
    CHECK(compressible_type("application/problem+json", settings.content_types));
    CHECK(compressible_type("image/svg+xml", settings.content_types));
    CHECK_FALSE(compressible_type("image/png", settings.content_types));
    CHECK_FALSE(compressible_type("application/octet-stream", settings.content_types));
    CHECK_FALSE(compressible_type("text/", settings.content_types));
    CHECK_FALSE(compressible_type("", settings.content_types));
}

TEST_CASE("gzip and brotli round trip through their decoders", "[http][compression]") {
    const std::string body = text_body(300'000);
    const std::string gz = gzip(body, 6);
    CHECK(gz.size() < body.size() / 5);
    CHECK(gunzip(gz) == body);
    const std::string br = brotli(body, 4);
    CHECK(br.size() < body.size() / 5);
    CHECK(unbrotli(br) == body);
    CHECK(gunzip(gzip("", 6)).empty());
}

TEST_CASE("compression applies to eligible responses only", "[http][compression]") {
    const CompressionSettings settings;
    Request request;
    request.headers = {{"Accept-Encoding", "gzip"}};
    const auto response_with = [](int status, std::string type, std::size_t size) {
        Response response;
        response.status = status;
        response.set_header("Content-Type", type);
        response.body = text_body(size);
        return response;
    };

    SECTION("compressed, with Vary and a weak ETag") {
        Response response = response_with(200, "application/json", 5000);
        response.set_header("ETag", "\"v1\"");
        response.set_header("Vary", "Origin");
        const std::string original = response.body;
        apply_compression(response, plan_compression(request, response, settings), settings);
        REQUIRE(response.header("Content-Encoding"));
        CHECK(*response.header("Content-Encoding") == "gzip");
        CHECK(*response.header("Vary") == "Origin, Accept-Encoding");
        CHECK(*response.header("ETag") == "W/\"v1\"");
        CHECK(gunzip(response.body) == original);
    }
    SECTION("below the minimum size: Vary only") {
        Response response = response_with(200, "application/json", 1023);
        apply_compression(response, plan_compression(request, response, settings), settings);
        CHECK_FALSE(response.header("Content-Encoding"));
        CHECK(*response.header("Vary") == "Accept-Encoding");
        CHECK(response.body.size() == 1023);
    }
    SECTION("not for other types, 204, 304, already encoded bodies or no-transform") {
        for (Response response : {response_with(200, "image/png", 5000), response_with(204, "text/plain", 5000),
                                  response_with(304, "text/plain", 5000)}) {
            CHECK(plan_compression(request, response, settings).plan == Plan::none);
        }
        Response encoded = response_with(200, "text/plain", 5000);
        encoded.set_header("Content-Encoding", "gzip");
        CHECK(plan_compression(request, encoded, settings).plan == Plan::none);
        Response no_transform = response_with(200, "text/plain", 5000);
        no_transform.set_header("Cache-Control", "public, no-transform");
        CHECK(plan_compression(request, no_transform, settings).plan == Plan::none);
    }
    SECTION("a weak ETag stays as it is; Vary: * and an existing Accept-Encoding are kept") {
        Response response = response_with(200, "text/plain", 5000);
        response.set_header("ETag", "W/\"v2\"");
        response.set_header("Vary", "accept-encoding");
        apply_compression(response, plan_compression(request, response, settings), settings);
        CHECK(*response.header("ETag") == "W/\"v2\"");
        CHECK(*response.header("Vary") == "accept-encoding");
    }
    SECTION("a body that does not shrink is sent as is") {
        Response response = response_with(200, "text/plain", 0);
        std::uint32_t x = 12345;
        for (int i = 0; i < 4000; ++i) {
            x = x * 1664525u + 1013904223u;
            response.body += static_cast<char>(x >> 24);
        }
        const std::string original = response.body;
        apply_compression(response, plan_compression(request, response, settings), settings);
        CHECK_FALSE(response.header("Content-Encoding"));
        CHECK(response.body == original);
        CHECK(*response.header("Vary") == "Accept-Encoding");
    }
    SECTION("disabled") {
        CompressionSettings off;
        off.enabled = false;
        Response response = response_with(200, "text/plain", 5000);
        CHECK(plan_compression(request, response, off).plan == Plan::none);
    }
}
