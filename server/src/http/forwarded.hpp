// The edge of the request path: who the client is behind trusted reverse proxies
// (RFC 7239 `Forwarded`, or X-Forwarded-For/-Proto/-Host), the URL base it used, and which
// Host names a listener answers (DNS rebinding protection).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <tl/expected.hpp>

#include "http/message.hpp"

namespace trellis::http {

// A set of networks ("10.0.0.0/8", "fd00::/8", or a single address).
class ProxyList {
public:
    // The network written as CIDR or as one address; the error says what is wrong.
    static tl::expected<void, std::string> check(std::string_view cidr);
    // Adds one entry; throws std::invalid_argument for what check() refuses.
    void add(std::string_view cidr);

    bool contains(const boost::asio::ip::address& address) const;
    bool empty() const { return v4_.empty() && v6_.empty(); }

private:
    std::vector<boost::asio::ip::network_v4> v4_;
    std::vector<boost::asio::ip::network_v6> v6_;
};

// An IP address from "1.2.3.4", "1.2.3.4:80", "::1", "[::1]" or "[::1]:80"; an IPv4-mapped
// IPv6 address becomes IPv4.
std::optional<boost::asio::ip::address> parse_node_address(std::string_view text);

// What the host believes about the client of one request.
struct ClientView {
    std::string address;   // IP address without port, or an RFC 7239 identifier ("unknown", "_hidden")
    std::string base_url;   // "https://example.com" or "http://127.0.0.1:8080", as the client sees it
    bool forwarded = false; // a trusted proxy's header was believed
};

// Only when the TCP peer is in `trusted` are the proxy headers read. `Forwarded` wins over
// the X-Forwarded-* headers; the client is the right-most address that is not a trusted
// proxy. Malformed headers are ignored (the peer is the client). `fallback_authority` is
// used when the request has no usable Host.
ClientView resolve_client(const Request& request, const ProxyList& trusted, std::string_view scheme,
                          std::string_view fallback_authority);

// One `Forwarded` element's pairs (lower-case names, unquoted values); nullopt when the
// header does not follow RFC 7239's grammar.
struct ForwardedElement {
    std::optional<std::string> for_node, by, proto, host;
};
std::optional<std::vector<ForwardedElement>> parse_forwarded(std::string_view value);

// A Host value: "name", "name:port", "[v6]" or "[v6]:port"; nullopt when malformed.
struct Authority {
    std::string host;  // lower case; IPv6 in brackets
    std::optional<std::uint16_t> port;
};
std::optional<Authority> parse_authority(std::string_view text);

// `server.allowed_hosts`. Entries: "example.com" (any port), "example.com:8080",
// "[::1]", ".example.com" or "*.example.com" (every subdomain, not the name itself), "*"
// (any host). Without entries, a listener on a loopback address allows localhost,
// 127.0.0.1 and [::1] on any port, and any other listener allows every host.
class AllowedHosts {
public:
    static tl::expected<void, std::string> check(std::string_view entry);
    // `entries` as configured (each passed check()); `bound_to` the listener's address.
    AllowedHosts(const std::vector<std::string>& entries, std::string_view bound_to);

    // A request without Host (HTTP/1.0) is allowed: browsers always send one.
    bool allows(const std::string* host_header) const;

private:
    struct Entry {
        std::string host;  // without the wildcard
        bool subdomains = false;
        std::optional<std::uint16_t> port;
    };
    bool any_ = false;
    std::vector<Entry> entries_;
};

}  // namespace trellis::http
