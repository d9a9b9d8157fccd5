// A minimal HTTP/1.1 client over loopback for tests (Poco's HTTPClientSession).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace trellis::test {

struct HttpResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    std::optional<std::string> header(const std::string& name) const;
    nlohmann::json json() const { return nlohmann::json::parse(body); }
};

using Headers = std::vector<std::pair<std::string, std::string>>;

HttpResponse http_request(std::uint16_t port, const std::string& method, const std::string& target,
                          const std::string& body = {}, const Headers& headers = {});

// Sends raw bytes and returns everything the server answered until it closed or 5 s passed.
std::string raw_request(std::uint16_t port, const std::string& bytes);

}  // namespace trellis::test
