// RFC 9457 problem details: every error Trellis itself answers goes through here so that
// clients always get application/problem+json with a stable machine-readable `code`.
#pragma once

#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "http/message.hpp"

namespace trellis::http {

inline constexpr std::string_view problem_content_type = "application/problem+json";

// Replaces status, Content-Type and body of `response` with a problem document:
// {type, title, status, detail, code, instance, request_id}. `detail` is for humans
// and must not carry internals (paths, exception texts, SQL).
void set_problem(Response& response, const Request& request, int status, std::string_view code,
                 std::string_view detail);

// The same with extension members (e.g. {"errors": [...]}) merged into the document; they
// never replace the standard members.
void set_problem(Response& response, const Request& request, int status, std::string_view code,
                 std::string_view detail, const nlohmann::json& extensions);

}  // namespace trellis::http
