// Builds problem+json bodies (RFC 9457).
#include "http/problem.hpp"

#include <nlohmann/json.hpp>

namespace trellis::http {

void set_problem(Response& response, const Request& request, int status, std::string_view code,
                 std::string_view detail) {
    set_problem(response, request, status, code, detail, nlohmann::json::object());
}

void set_problem(Response& response, const Request& request, int status, std::string_view code,
                 std::string_view detail, const nlohmann::json& extensions) {
    nlohmann::json doc = {
        {"type", "about:blank"},
        {"title", reason_phrase(status)},
        {"status", status},
        {"code", code},
    };
    if (!detail.empty()) doc["detail"] = detail;
    doc["instance"] = request.path;
    if (!request.request_id.empty()) doc["request_id"] = request.request_id;
    if (extensions.is_object())
        for (const auto& [key, value] : extensions.items())
            if (!doc.contains(key)) doc[key] = value;
    response.status = status;
    response.set_header("Content-Type", problem_content_type);
    response.body = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace trellis::http
