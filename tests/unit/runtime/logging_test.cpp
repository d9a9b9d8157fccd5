// Log line formatting: the text formatter writes what spdlog's pattern formatter wrote.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include <spdlog/pattern_formatter.h>

#include "runtime/logging.hpp"

namespace {

std::string format_with(spdlog::formatter& formatter, const spdlog::details::log_msg& msg) {
    spdlog::memory_buf_t out;
    formatter.format(msg, out);
    return std::string(out.data(), out.size());
}

}  // namespace

TEST_CASE("the text log format matches spdlog's pattern for it", "[logging]") {
    spdlog::pattern_formatter reference("%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v", spdlog::pattern_time_type::utc);
    auto text = trellis::logging::make_formatter("text");
    using namespace std::chrono;
    const spdlog::log_clock::time_point times[] = {
        spdlog::log_clock::time_point{seconds(1700000000) + milliseconds(7)},
        spdlog::log_clock::time_point{seconds(1700000000) + milliseconds(999) + microseconds(999)},
        spdlog::log_clock::time_point{seconds(1700000001) + milliseconds(42)},
        spdlog::log_clock::time_point{seconds(951782400) + milliseconds(500)},  // 2000-02-29
        spdlog::log_clock::now(),
    };
    const spdlog::level::level_enum levels[] = {spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
                                                spdlog::level::warn,  spdlog::level::err,   spdlog::level::critical};
    for (auto time : times) {
        for (auto level : levels) {
            spdlog::details::log_msg msg(time, spdlog::source_loc{}, "access", level, "127.0.0.1:1 \"GET / HTTP/1.1\"");
            CHECK(format_with(*text, msg) == format_with(reference, msg));
        }
    }
}
