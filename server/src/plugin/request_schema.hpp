// The JSON Schemas a route declares for its body, query and path parameters (ABI 1.4),
// checked when the plugin registers the route and enforced by the host before the handler.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "http/message.hpp"

namespace trellis::plugin {

// Why a request does not match its route's schemas: the problem the client gets.
struct SchemaFailure {
    int status = 0;
    std::string code;    // validation_failed, invalid_query, not_found, invalid_json, ...
    std::string detail;
    nlohmann::json errors = nlohmann::json::array();  // [{field, message}], at most 20
    std::size_t omitted = 0;                          // errors beyond the 20 listed
};

class RequestSchemas {
public:
    // Compiles the non-empty schemas. The error names the schema ("query schema") and the
    // JSON pointer of what the host cannot check.
    static tl::expected<std::shared_ptr<const RequestSchemas>, std::string> compile(std::string_view body_schema,
                                                                                    std::string_view query_schema,
                                                                                    std::string_view path_schema);
    ~RequestSchemas();
    RequestSchemas(const RequestSchemas&) = delete;
    RequestSchemas& operator=(const RequestSchemas&) = delete;

    // Path parameters first (404), then the query (400), then the body (415/400/422).
    std::optional<SchemaFailure> check(const http::Request& request) const;

    struct Compiled;  // one schema, compiled

private:
    RequestSchemas();
    std::unique_ptr<Compiled> body_, query_, path_;
};

// The security schemes a route may name in its security requirements (ABI 1.4), as OpenAPI
// Security Scheme Objects: "bearer" (a JWT) and "apiKey".
const nlohmann::json& known_security_schemes();

}  // namespace trellis::plugin
