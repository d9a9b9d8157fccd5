// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header a
// request carried is accepted when valid, otherwise a new trace is started. Never echoes
// a malformed header.
#pragma once

#include <string>
#include <string_view>

namespace trellis::http {

inline constexpr std::string_view traceparent_header = "traceparent";

struct TraceContext {
    std::string trace_id;  // 32 lower-case hex digits, not all zero
    std::string span_id;   // 16 lower-case hex digits, not all zero (this server's span)
    std::string flags;     // 2 lower-case hex digits

    // "00-<trace_id>-<span_id>-<flags>"
    std::string traceparent() const;
};

// True for a version 00 header: "00-" 32 hex "-" 16 hex "-" 2 hex, lower case, ids not
// all zero.
bool is_valid_traceparent(std::string_view header);

// The trace this request belongs to: the incoming trace id and flags when `incoming` is a
// valid traceparent (nullptr when absent), otherwise a new trace id with flags 00; the span
// id is always new, since this server's work is a new span of the trace.
TraceContext choose_trace_context(const std::string* incoming);

}  // namespace trellis::http
