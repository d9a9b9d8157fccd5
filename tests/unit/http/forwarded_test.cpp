// Proxy headers (RFC 7239 Forwarded, X-Forwarded-*), CIDR matching and allowed hosts.
#include <catch2/catch.hpp>

#include "http/forwarded.hpp"

using namespace trellis::http;

namespace {

ProxyList proxies(std::initializer_list<const char*> networks) {
    ProxyList list;
    for (const char* network : networks) list.add(network);
    return list;
}

Request from(std::string peer, Fields headers) {
    Request request;
    request.remote_address = std::move(peer);
    request.headers = std::move(headers);
    return request;
}

boost::asio::ip::address ip(const char* text) { return boost::asio::ip::make_address(text); }

}  // namespace

TEST_CASE("trusted proxy networks match IPv4, IPv6 and IPv4-mapped addresses", "[http][forwarded]") {
    const ProxyList list = proxies({"10.0.0.0/8", "192.0.2.7", "fd00::/8", "2001:db8::1/128", "172.16.5.9/12"});
    CHECK(list.contains(ip("10.1.2.3")));
    CHECK(list.contains(ip("10.255.255.255")));
    CHECK_FALSE(list.contains(ip("11.0.0.1")));
    CHECK(list.contains(ip("192.0.2.7")));
    CHECK_FALSE(list.contains(ip("192.0.2.8")));
    CHECK(list.contains(ip("172.31.0.1")));  // host bits in the entry are cleared: 172.16.0.0/12
    CHECK(list.contains(ip("fd12:3456::1")));
    CHECK_FALSE(list.contains(ip("fe80::1")));
    CHECK(list.contains(ip("2001:db8::1")));
    CHECK_FALSE(list.contains(ip("2001:db8::2")));
    CHECK(list.contains(ip("::ffff:10.9.8.7")));
    CHECK(proxies({"0.0.0.0/0"}).contains(ip("203.0.113.1")));
    CHECK_FALSE(proxies({"0.0.0.0/0"}).contains(ip("::1")));
}

TEST_CASE("malformed networks are refused with a reason", "[http][forwarded]") {
    for (const char* bad : {"", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0/8", "example.com",
                            "10.0.0.0/8/8", "::1/abc", "256.1.1.1"}) {
        INFO(bad);
        const auto checked = ProxyList::check(bad);
        REQUIRE_FALSE(checked);
        CHECK_FALSE(checked.error().empty());
    }
    CHECK(ProxyList::check("10.0.0.0/8"));
    CHECK(ProxyList::check("::1"));
}

TEST_CASE("Forwarded elements: quoted values, IPv6 in brackets, ports and obfuscated nodes", "[http][forwarded]") {
    auto parsed = parse_forwarded(
        R"(for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711";HOST="a.example:8443", for=_hidden, for=unknown)");
    REQUIRE(parsed);
    REQUIRE(parsed->size() == 4);
    CHECK((*parsed)[0].for_node == "192.0.2.60");
    CHECK((*parsed)[0].proto == "http");
    CHECK((*parsed)[0].by == "203.0.113.43");
    CHECK((*parsed)[1].for_node == "[2001:db8:cafe::17]:4711");
    CHECK((*parsed)[1].host == "a.example:8443");
    CHECK((*parsed)[2].for_node == "_hidden");
    CHECK((*parsed)[3].for_node == "unknown");
    CHECK(parse_forwarded(R"(for="quoted \"escape\"")")->front().for_node == R"(quoted "escape")");

    for (const char* bad : {"for", "for=", "for=\"unterminated", "for=1.2.3.4;for=5.6.7.8", "for=1.2.3.4 junk",
                            "=x", "for=a b"}) {
        INFO(bad);
        CHECK_FALSE(parse_forwarded(bad));
    }
}

TEST_CASE("an untrusted peer's proxy headers are ignored", "[http][forwarded]") {
    const ProxyList trusted = proxies({"10.0.0.0/8"});
    const auto view = resolve_client(from("198.51.100.7:40000", {{"Host", "shop.example"},
                                                                 {"X-Forwarded-For", "203.0.113.5"},
                                                                 {"X-Forwarded-Proto", "https"},
                                                                 {"Forwarded", "for=203.0.113.5;proto=https"}}),
                                     trusted, "http", "127.0.0.1:8080");
    CHECK(view.address == "198.51.100.7");
    CHECK(view.base_url == "http://shop.example");
    CHECK_FALSE(view.forwarded);
}

TEST_CASE("X-Forwarded-For from a trusted proxy: the right-most untrusted address is the client", "[http][forwarded]") {
    const ProxyList trusted = proxies({"10.0.0.0/8", "fd00::/8"});
    SECTION("one proxy") {
        const auto view = resolve_client(from("10.0.0.2:5000", {{"Host", "127.0.0.1:8080"},
                                                                {"X-Forwarded-For", "203.0.113.5"},
                                                                {"X-Forwarded-Proto", "https"},
                                                                {"X-Forwarded-Host", "shop.example"}}),
                                         trusted, "http", "x");
        CHECK(view.address == "203.0.113.5");
        CHECK(view.base_url == "https://shop.example");
        CHECK(view.forwarded);
    }
    SECTION("a spoofed left part and two proxies") {
        const auto view = resolve_client(
            from("[fd00::2]:5000", {{"X-Forwarded-For", "1.1.1.1, 198.51.100.9"}, {"X-Forwarded-For", "10.1.1.1"}}),
            trusted, "http", "127.0.0.1:8080");
        CHECK(view.address == "198.51.100.9");
        CHECK(view.base_url == "http://127.0.0.1:8080");
    }
    SECTION("IPv6 and ports in entries") {
        CHECK(resolve_client(from("10.0.0.2:1", {{"X-Forwarded-For", "[2001:db8::5]:1234"}}), trusted, "http", "h")
                  .address == "2001:db8::5");
        CHECK(resolve_client(from("10.0.0.2:1", {{"X-Forwarded-For", "2001:db8::5"}}), trusted, "http", "h").address ==
              "2001:db8::5");
        CHECK(resolve_client(from("10.0.0.2:1", {{"X-Forwarded-For", "192.0.2.1:80"}}), trusted, "http", "h").address ==
              "192.0.2.1");
    }
    SECTION("malformed values fall back") {
        const auto view = resolve_client(from("10.0.0.2:5000", {{"Host", "localhost:8080"},
                                                                {"X-Forwarded-For", "not an address"},
                                                                {"X-Forwarded-Proto", "gopher"},
                                                                {"X-Forwarded-Host", "bad host/with path"}}),
                                         trusted, "http", "x");
        CHECK(view.address == "10.0.0.2");
        CHECK(view.base_url == "http://localhost:8080");
        // A garbage entry left of a trusted hop stops the walk at the last trusted address.
        CHECK(resolve_client(from("10.0.0.2:1", {{"X-Forwarded-For", "garbage, 10.0.0.9"}}), trusted, "http", "h")
                  .address == "10.0.0.9");
    }
}

TEST_CASE("Forwarded from a trusted proxy wins over X-Forwarded-For", "[http][forwarded]") {
    const ProxyList trusted = proxies({"10.0.0.0/8", "::1"});
    SECTION("both forms present") {
        const auto view = resolve_client(from("10.0.0.2:5000", {{"Host", "internal:8080"},
                                                                {"X-Forwarded-For", "198.51.100.1"},
                                                                {"X-Forwarded-Host", "wrong.example"},
                                                                {"Forwarded", R"(for=203.0.113.5;proto=https;host="shop.example:8443")"}}),
                                         trusted, "http", "x");
        CHECK(view.address == "203.0.113.5");
        CHECK(view.base_url == "https://shop.example:8443");
    }
    SECTION("walking several proxies from the right") {
        const auto view = resolve_client(
            from("[::1]:5000", {{"Forwarded", R"(for=198.51.100.1, for="[2001:db8::7]:99";proto=https, for=10.2.3.4)"}}),
            trusted, "http", "localhost:1");
        CHECK(view.address == "2001:db8::7");
        CHECK(view.base_url == "https://localhost:1");
    }
    SECTION("obfuscated and unknown nodes are the client") {
        CHECK(resolve_client(from("10.0.0.2:1", {{"Forwarded", "for=_gazonk"}}), trusted, "http", "h").address ==
              "_gazonk");
        CHECK(resolve_client(from("10.0.0.2:1", {{"Forwarded", "for=unknown"}}), trusted, "http", "h").address ==
              "unknown");
    }
    SECTION("a malformed Forwarded header is ignored, X-Forwarded-For included") {
        const auto view = resolve_client(
            from("10.0.0.2:1", {{"Host", "a.example"}, {"Forwarded", "for=\"1.2.3.4"}, {"X-Forwarded-For", "5.6.7.8"}}),
            trusted, "http", "h");
        CHECK(view.address == "10.0.0.2");
        CHECK(view.base_url == "http://a.example");
    }
}

TEST_CASE("Host values are parsed as authorities", "[http][forwarded]") {
    CHECK(parse_authority("Example.COM")->host == "example.com");
    CHECK(parse_authority("example.com:8080")->port == 8080);
    CHECK(parse_authority("[::1]:9")->host == "[::1]");
    for (const char* bad : {"", ":80", "a b", "example.com:99999", "example.com:x", "[::1", "[zz]", "a/b", "a@b"}) {
        INFO(bad);
        CHECK_FALSE(parse_authority(bad));
    }
}

TEST_CASE("allowed hosts: loopback defaults, exact names, ports and subdomain wildcards", "[http][forwarded]") {
    const auto allows = [](const AllowedHosts& hosts, std::string host) { return hosts.allows(&host); };
    const AllowedHosts loopback({}, "127.0.0.1");
    CHECK(allows(loopback, "localhost"));
    CHECK(allows(loopback, "localhost:8080"));
    CHECK(allows(loopback, "127.0.0.1:8080"));
    CHECK(allows(loopback, "[::1]:8080"));
    CHECK(allows(loopback, "LOCALHOST"));
    CHECK_FALSE(allows(loopback, "evil.example"));
    CHECK_FALSE(allows(loopback, "evil.example:8080"));
    CHECK_FALSE(allows(loopback, "localhost.evil.example"));
    CHECK_FALSE(allows(loopback, "bad host"));
    CHECK(loopback.allows(nullptr));  // HTTP/1.0 without Host
    CHECK_FALSE(allows(AllowedHosts({}, "::1"), "evil.example"));

    const AllowedHosts open({}, "0.0.0.0");
    CHECK(allows(open, "evil.example"));

    const AllowedHosts listed({"example.com", "api.example.com:8443", ".internal.example", "*.svc.example"}, "127.0.0.1");
    CHECK(allows(listed, "example.com"));
    CHECK(allows(listed, "example.com:80"));
    CHECK(allows(listed, "example.com."));
    CHECK_FALSE(allows(listed, "www.example.com"));
    CHECK(allows(listed, "api.example.com:8443"));
    CHECK_FALSE(allows(listed, "api.example.com"));
    CHECK_FALSE(allows(listed, "api.example.com:443"));
    CHECK(allows(listed, "a.internal.example"));
    CHECK(allows(listed, "a.b.internal.example:1"));
    CHECK_FALSE(allows(listed, "internal.example"));
    CHECK_FALSE(allows(listed, "xinternal.example"));
    CHECK(allows(listed, "db.svc.example"));
    CHECK_FALSE(allows(listed, "localhost"));  // a list replaces the loopback default

    CHECK(allows(AllowedHosts({"*"}, "127.0.0.1"), "anything.example"));
    CHECK(AllowedHosts::check("*.example.com"));
    CHECK(AllowedHosts::check("[::1]:80"));
    for (const char* bad : {"", ".", "*.", "*.[::1]", "a b", "http://x", "x:port", "..x"}) {
        INFO(bad);
        CHECK_FALSE(AllowedHosts::check(bad));
    }
}
