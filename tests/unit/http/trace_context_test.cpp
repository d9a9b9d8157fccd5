// W3C traceparent: accepted when valid, replaced (never echoed) otherwise.
#include <catch2/catch.hpp>

#include <string>

#include "http/trace_context.hpp"

using trellis::http::choose_trace_context;
using trellis::http::is_valid_traceparent;

namespace {
const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
}

TEST_CASE("a valid traceparent is accepted and its trace id kept", "[trace]") {
    CHECK(is_valid_traceparent(valid));
    auto context = choose_trace_context(&valid);
    CHECK(context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(context.flags == "01");
    CHECK(context.span_id.size() == 16);
    CHECK(context.span_id != "00f067aa0ba902b7");  // this server's own span
    CHECK(is_valid_traceparent(context.traceparent()));
    CHECK(context.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
}

TEST_CASE("a malformed traceparent is replaced by a new trace", "[trace]") {
    const std::string bad[] = {
        "",
        "garbage",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // unknown version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  // trailing data
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   // not hex
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\r",
    };
    for (const auto& header : bad) {
        INFO(header);
        CHECK_FALSE(is_valid_traceparent(header));
        auto context = choose_trace_context(&header);
        CHECK(is_valid_traceparent(context.traceparent()));
        CHECK(context.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(context.flags == "00");
    }
}

TEST_CASE("without a traceparent each request starts its own trace", "[trace]") {
    auto a = choose_trace_context(nullptr), b = choose_trace_context(nullptr);
    CHECK(is_valid_traceparent(a.traceparent()));
    CHECK(a.trace_id.size() == 32);
    CHECK(a.trace_id != b.trace_id);
}
