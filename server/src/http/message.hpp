// Trellis's own HTTP request and response types: what the router, the middleware chain
// and the plugin host see. Engines (server/src/engine) translate to and from them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trellis::http {

using Fields = std::vector<std::pair<std::string, std::string>>;

bool iequals(std::string_view a, std::string_view b);

// First value named `name` (case-insensitive), if any.
const std::string* find_field(const Fields& fields, std::string_view name);

// Percent-decodes a URL component; '+' becomes ' ' only when `plus_is_space`.
// Returns nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space);

// Splits "a=1&b=x%20y" into decoded pairs; malformed escapes are kept verbatim.
Fields parse_query(std::string_view query);

struct Request {
    std::string method;
    std::string path;   // as received, percent-encoded, without the query
    std::string query;  // without '?'
    std::string version = "HTTP/1.1";
    Fields headers;
    std::string body;
    std::string remote_address;
    bool body_too_large = false;  // set by the engine; the body was not read
    bool secure = false;          // set by the engine: the request came over TLS

    // Filled by the host while the request flows.
    Fields query_params;
    Fields path_params;
    std::map<std::string, std::string, std::less<>> attributes;
    std::string request_id;

    const std::string* header(std::string_view name) const { return find_field(headers, name); }
};

struct Response {
    int status = 200;
    Fields headers;
    std::string body;
    bool close_connection = false;  // e.g. after a body that was not read

    const std::string* header(std::string_view name) const { return find_field(headers, name); }
    void set_header(std::string_view name, std::string_view value);  // empty value removes
    void add_header(std::string_view name, std::string_view value);
};

std::string_view reason_phrase(int status);

}  // namespace trellis::http
