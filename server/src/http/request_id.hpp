// Correlation ids: accept a client's X-Request-ID when it is sane, otherwise make one.
#pragma once

#include <string>
#include <string_view>

namespace trellis::http {

inline constexpr std::string_view request_id_header = "X-Request-ID";

// 1..128 characters of [A-Za-z0-9._:-]; anything else could forge log lines or headers.
bool is_sane_request_id(std::string_view candidate);

// A random 128-bit id as 32 lower-case hex digits.
std::string generate_request_id();

// The id to use for a request that carried `incoming` (nullptr when absent).
std::string choose_request_id(const std::string* incoming);

}  // namespace trellis::http
