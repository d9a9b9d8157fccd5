// Fuzzes what the host does with client-controlled header and URL text: request id choice,
// percent-decoding, query parsing, header editing and problem+json rendering.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http/message.hpp"
#include "http/problem.hpp"
#include "http/request_id.hpp"

using namespace trellis::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string input(reinterpret_cast<const char*>(data), size);

    std::string id = choose_request_id(&input);
    if (!is_sane_request_id(id)) std::abort();
    if (is_sane_request_id(input) && id != input) std::abort();

    auto decoded = percent_decode(input, false);
    if (decoded && decoded->size() > input.size()) std::abort();
    (void)percent_decode(input, true);
    for (const auto& [name, value] : parse_query(input))
        if (name.size() + value.size() > input.size()) std::abort();

    Response response;
    auto colon = input.find(':');
    std::string name = input.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : input.substr(colon + 1);
    response.set_header(name, value);
    response.add_header(name, value);
    response.set_header(name, "");
    if (response.header(name) != nullptr && !name.empty()) std::abort();

    // Whatever the path and request id hold, the problem document stays valid JSON.
    Request request;
    request.path = input;
    request.request_id = id;
    set_problem(response, request, 404, "not_found", value);
    auto doc = nlohmann::json::parse(response.body, nullptr, false);
    if (doc.is_discarded() || doc["status"] != 404) std::abort();
    return 0;
}
