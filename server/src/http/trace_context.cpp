// Trace context: validation of traceparent and new ids from the request id's generator.
#include "http/trace_context.hpp"

#include "http/request_id.hpp"

namespace trellis::http {
namespace {

bool is_lower_hex(std::string_view text) {
    for (char c : text)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

bool all_zero(std::string_view text) { return text.find_first_not_of('0') == std::string_view::npos; }

std::string new_id(std::size_t digits) {
    std::string id;
    do {
        id = generate_request_id().substr(0, digits);  // 32 random hex digits
    } while (all_zero(id));
    return id;
}

}  // namespace

std::string TraceContext::traceparent() const { return "00-" + trace_id + "-" + span_id + "-" + flags; }

bool is_valid_traceparent(std::string_view header) {
    // 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55 characters.
    if (header.size() != 55 || header[2] != '-' || header[35] != '-' || header[52] != '-') return false;
    const std::string_view version = header.substr(0, 2), trace = header.substr(3, 32), parent = header.substr(36, 16),
                           flags = header.substr(53, 2);
    return version == "00" && is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags) && !all_zero(trace) &&
           !all_zero(parent);
}

TraceContext choose_trace_context(const std::string* incoming) {
    TraceContext context;
    if (incoming && is_valid_traceparent(*incoming)) {
        context.trace_id = incoming->substr(3, 32);
        context.flags = incoming->substr(53, 2);
    } else {
        context.trace_id = new_id(32);
        context.flags = "00";
    }
    context.span_id = new_id(16);
    return context;
}

}  // namespace trellis::http
