// Proxy headers, client address and allowed hosts; see forwarded.hpp.
#include "http/forwarded.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace trellis::http {
namespace {

namespace ip = boost::asio::ip;

bool is_tchar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
    if (text.empty() || text.size() > 5 || !std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    unsigned value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

std::optional<ip::address> ip_of(std::string_view text) {
    boost::system::error_code ec;
    auto address = ip::make_address(std::string(text), ec);
    if (ec) return std::nullopt;
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        return ip::address(ip::make_address_v4(ip::v4_mapped, address.to_v6()));
    return address;
}

// RFC 7239 obfuscated identifiers: "_" followed by ALPHA, DIGIT, ".", "_", "-".
bool is_obfuscated(std::string_view text) {
    return text.size() > 1 && text.front() == '_' && std::ranges::all_of(text.substr(1), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
           });
}

// An RFC 7239 node (the value of for= or by=): an address with an optional (possibly
// obfuscated) port, "unknown", or an obfuscated identifier.
struct Node {
    std::optional<ip::address> address;
    std::string identifier;  // when not an address
};

std::optional<Node> parse_node(std::string_view text) {
    if (text == "unknown" || is_obfuscated(text)) return Node{std::nullopt, std::string(text)};
    std::string_view host = text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = text.substr(1, close - 1);
        const std::string_view rest = text.substr(close + 1);
        if (!rest.empty() && !(rest.starts_with(':') && (parse_port(rest.substr(1)) || is_obfuscated(rest.substr(1)))))
            return std::nullopt;
        auto address = ip_of(host);
        if (!address || !address->is_v6()) return std::nullopt;
        return Node{address, {}};
    }
    if (const auto colon = text.find(':'); colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
        host = text.substr(0, colon);
        const std::string_view port = text.substr(colon + 1);
        if (!parse_port(port) && !is_obfuscated(port)) return std::nullopt;
    }
    auto address = ip_of(host);
    if (!address) return std::nullopt;
    return Node{address, {}};
}

std::string show(const Node& node) { return node.address ? node.address->to_string() : node.identifier; }

bool trusted_node(const Node& node, const ProxyList& trusted) {
    return node.address && trusted.contains(*node.address);
}

// Every value of the fields named `name`, joined with ", " as RFC 9110 allows for lists.
std::optional<std::string> joined(const Fields& headers, std::string_view name) {
    std::optional<std::string> out;
    for (const auto& [key, value] : headers) {
        if (!iequals(key, name)) continue;
        if (out)
            *out += ", " + value;
        else
            out = value;
    }
    return out;
}

// A copy, not a view: callers pass the temporary joined() returns.
std::optional<std::string> rightmost(const std::optional<std::string>& list) {
    if (!list) return std::nullopt;
    std::string_view text = *list;
    const auto comma = text.rfind(',');
    if (comma != std::string_view::npos) text = text.substr(comma + 1);
    text = trim(text);
    if (text.empty()) return std::nullopt;
    return std::string(text);
}

std::optional<std::string> checked_proto(std::string_view proto) {
    std::string value = lower(trim(proto));
    if (value == "http" || value == "https") return value;
    return std::nullopt;
}

std::string show(const Authority& authority) {
    return authority.port ? authority.host + ":" + std::to_string(*authority.port) : authority.host;
}

}  // namespace

// ---- ProxyList --------------------------------------------------------------------------

tl::expected<void, std::string> ProxyList::check(std::string_view cidr) {
    try {
        ProxyList probe;
        probe.add(cidr);
        return {};
    } catch (const std::invalid_argument& e) {
        return tl::unexpected(std::string(e.what()));
    }
}

void ProxyList::add(std::string_view cidr) {
    const std::string text(cidr);
    const auto slash = text.find('/');
    const auto address = ip_of(text.substr(0, slash));
    if (!address)
        throw std::invalid_argument("expected an IPv4 or IPv6 network such as 10.0.0.0/8, 192.0.2.7 or fd00::/8");
    int bits = address->is_v4() ? 32 : 128;
    if (slash != std::string::npos) {
        const std::string_view prefix = std::string_view(text).substr(slash + 1);
        const int max = bits;
        bits = -1;
        if (!prefix.empty() && prefix.size() <= 3 && std::ranges::all_of(prefix, [](char c) { return c >= '0' && c <= '9'; }))
            std::from_chars(prefix.data(), prefix.data() + prefix.size(), bits);
        if (bits < 0 || bits > max)
            throw std::invalid_argument("the prefix length after '/' must be from 0 to " + std::to_string(max));
    }
    // The network of the address (host bits cleared), so that "10.1.2.3/8" means 10.0.0.0/8.
    if (address->is_v4())
        v4_.push_back(ip::network_v4(address->to_v4(), static_cast<unsigned short>(bits)).canonical());
    else
        v6_.push_back(ip::network_v6(address->to_v6(), static_cast<unsigned short>(bits)).canonical());
}

bool ProxyList::contains(const ip::address& address) const {
    if (address.is_v4()) {
        const auto host = ip::network_v4(address.to_v4(), 32);
        return std::ranges::any_of(v4_, [&](const auto& net) { return host == net || host.is_subnet_of(net); });
    }
    const auto v6 = address.to_v6();
    if (v6.is_v4_mapped()) return contains(ip::address(ip::make_address_v4(ip::v4_mapped, v6)));
    const auto host = ip::network_v6(v6, 128);
    return std::ranges::any_of(v6_, [&](const auto& net) { return host == net || host.is_subnet_of(net); });
}

std::optional<ip::address> parse_node_address(std::string_view text) {
    auto node = parse_node(text);
    if (!node) return std::nullopt;
    return node->address;
}

// ---- Forwarded ------------------------------------------------------------------------

std::optional<std::vector<ForwardedElement>> parse_forwarded(std::string_view value) {
    std::vector<ForwardedElement> elements;
    std::size_t pos = 0;
    const auto at_end = [&] { return pos >= value.size(); };
    const auto skip_ows = [&] {
        while (!at_end() && (value[pos] == ' ' || value[pos] == '\t')) ++pos;
    };
    while (true) {
        skip_ows();
        if (at_end()) break;
        if (value[pos] == ',') {
            ++pos;
            continue;
        }
        ForwardedElement element;
        bool any = false;
        while (true) {
            skip_ows();
            if (at_end() || value[pos] == ',') break;
            if (value[pos] == ';') {
                ++pos;
                continue;
            }
            const std::size_t name_start = pos;
            while (!at_end() && is_tchar(value[pos])) ++pos;
            if (pos == name_start || at_end() || value[pos] != '=') return std::nullopt;
            const std::string name = lower(value.substr(name_start, pos - name_start));
            ++pos;
            std::string text;
            if (!at_end() && value[pos] == '"') {
                ++pos;
                bool closed = false;
                while (!at_end()) {
                    const char c = value[pos++];
                    if (c == '"') {
                        closed = true;
                        break;
                    }
                    if (c == '\\') {
                        if (at_end()) return std::nullopt;
                        text += value[pos++];
                    } else if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
                        return std::nullopt;
                    } else {
                        text += c;
                    }
                }
                if (!closed) return std::nullopt;
            } else {
                // A token; ':' and brackets are accepted too, as some proxies send
                // for=[2001:db8::1] or for=192.0.2.1:80 without the quotes RFC 7239 asks for.
                const std::size_t start = pos;
                while (!at_end() && (is_tchar(value[pos]) || value[pos] == ':' || value[pos] == '[' || value[pos] == ']'))
                    ++pos;
                if (pos == start) return std::nullopt;
                text = std::string(value.substr(start, pos - start));
            }
            std::optional<std::string>* slot = name == "for"     ? &element.for_node
                                               : name == "by"    ? &element.by
                                               : name == "proto" ? &element.proto
                                               : name == "host"  ? &element.host
                                                                 : nullptr;
            if (slot) {
                if (*slot) return std::nullopt;  // a parameter given twice in one element
                *slot = std::move(text);
            }
            any = true;
            skip_ows();
            if (!at_end() && value[pos] != ';' && value[pos] != ',') return std::nullopt;
        }
        if (any) elements.push_back(std::move(element));
    }
    return elements;
}

std::optional<Authority> parse_authority(std::string_view text) {
    Authority out;
    std::string_view rest;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        const auto address = ip_of(text.substr(1, close - 1));
        if (!address || !address->is_v6() || text.substr(1, close - 1).find('%') != std::string_view::npos)
            return std::nullopt;
        out.host = lower(text.substr(0, close + 1));
        rest = text.substr(close + 1);
    } else {
        const auto colon = text.find(':');
        const std::string_view host = text.substr(0, colon);
        if (host.empty() || !std::ranges::all_of(host, [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~';
            }))
            return std::nullopt;
        out.host = lower(host);
        if (colon != std::string_view::npos) rest = text.substr(colon);
    }
    if (!rest.empty()) {
        if (!rest.starts_with(':')) return std::nullopt;
        out.port = parse_port(rest.substr(1));
        if (!out.port) return std::nullopt;
    }
    return out;
}

ClientView resolve_client(const Request& request, const ProxyList& trusted, std::string_view scheme,
                          std::string_view fallback_authority) {
    ClientView view;
    const auto peer = parse_node(request.remote_address);
    view.address = peer ? show(*peer) : request.remote_address;
    std::string proto(scheme);
    std::string authority(fallback_authority);
    if (const std::string* host = request.header("Host"))
        if (auto parsed = parse_authority(*host)) authority = show(*parsed);

    const auto finish = [&] {
        view.base_url = proto + "://" + authority;
        return view;
    };
    if (!peer || trusted.empty() || !trusted_node(*peer, trusted)) return finish();

    if (const auto forwarded = joined(request.headers, "Forwarded")) {
        const auto elements = parse_forwarded(*forwarded);
        if (!elements || elements->empty()) return finish();
        // Right to left: each element was appended by the proxy that the next address
        // (further right, or the peer) belongs to. Stop at the first untrusted address.
        for (auto it = elements->rbegin(); it != elements->rend(); ++it) {
            const auto node = it->for_node ? parse_node(*it->for_node) : std::nullopt;
            if (!node) break;  // no usable for=: the last trusted address is the client
            view.forwarded = true;
            view.address = show(*node);
            if (it->proto) {
                if (auto checked = checked_proto(*it->proto)) proto = *checked;
            }
            if (it->host) {
                if (auto parsed = parse_authority(*it->host)) authority = show(*parsed);
            }
            if (!trusted_node(*node, trusted)) break;
        }
        return finish();
    }

    if (const auto list = joined(request.headers, "X-Forwarded-For")) {
        std::string_view rest = *list;
        while (!rest.empty()) {
            const auto comma = rest.rfind(',');
            const std::string_view entry = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(0, comma);
            const auto node = parse_node(entry);
            if (!node || !node->address) break;  // malformed: the last trusted address is the client
            view.forwarded = true;
            view.address = show(*node);
            if (!trusted.contains(*node->address)) break;
        }
    }
    if (const auto value = rightmost(joined(request.headers, "X-Forwarded-Proto"))) {
        if (auto checked = checked_proto(*value)) {
            proto = *checked;
            view.forwarded = true;
        }
    }
    if (const auto value = rightmost(joined(request.headers, "X-Forwarded-Host"))) {
        if (auto parsed = parse_authority(*value)) {
            authority = show(*parsed);
            view.forwarded = true;
        }
    }
    return finish();
}

// ---- AllowedHosts -----------------------------------------------------------------------

tl::expected<void, std::string> AllowedHosts::check(std::string_view entry) {
    if (entry == "*") return {};
    std::string_view name = entry;
    if (name.starts_with("*.")) name.remove_prefix(2);
    else if (name.starts_with('.')) name.remove_prefix(1);
    if (name.empty() || name.starts_with('.') || !parse_authority(name) || (name != entry && name.starts_with('[')))
        return tl::unexpected(std::string(
            "expected a host name or address with an optional port (example.com, example.com:8080, [::1]), "
            ".example.com or *.example.com for its subdomains, or * for any host"));
    return {};
}

AllowedHosts::AllowedHosts(const std::vector<std::string>& entries, std::string_view bound_to) {
    if (entries.empty()) {
        const auto address = ip_of(bound_to);
        const bool loopback = bound_to == "localhost" || (address && address->is_loopback());
        if (!loopback) {
            any_ = true;
            return;
        }
        entries_ = {Entry{"localhost", false, {}}, Entry{"127.0.0.1", false, {}}, Entry{"[::1]", false, {}}};
        return;
    }
    for (const std::string& text : entries) {
        if (text == "*") {
            any_ = true;
            continue;
        }
        std::string_view name = text;
        Entry entry;
        if (name.starts_with("*.")) name.remove_prefix(2), entry.subdomains = true;
        else if (name.starts_with('.')) name.remove_prefix(1), entry.subdomains = true;
        const auto authority = parse_authority(name);
        if (!authority) throw std::invalid_argument("server.allowed_hosts: '" + text + "' is not a host");
        entry.host = authority->host;
        if (entry.host.size() > 1 && entry.host.ends_with('.')) entry.host.pop_back();
        entry.port = authority->port;
        entries_.push_back(std::move(entry));
    }
}

bool AllowedHosts::allows(const std::string* host_header) const {
    if (any_ || !host_header) return true;
    auto authority = parse_authority(*host_header);
    if (!authority) return false;
    std::string& host = authority->host;
    if (host.size() > 1 && host.ends_with('.')) host.pop_back();  // "example.com." is the same name
    return std::ranges::any_of(entries_, [&](const Entry& entry) {
        if (entry.port && entry.port != authority->port) return false;
        if (!entry.subdomains) return host == entry.host;
        return host.size() > entry.host.size() + 1 && host.ends_with(entry.host) &&
               host[host.size() - entry.host.size() - 1] == '.';
    });
}

}  // namespace trellis::http
