// Log line formatting: the text formatter writes what spdlog's pattern formatter wrote, with
// control characters escaped; JSON lines stay valid for any bytes; the logging config keys.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include <spdlog/pattern_formatter.h>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "runtime/logging.hpp"
#include "support/temp_dir.hpp"

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

namespace {

spdlog::details::log_msg message(const char* logger, std::string_view text) {
    return spdlog::details::log_msg(spdlog::log_clock::now(), spdlog::source_loc{}, logger, spdlog::level::info,
                                    spdlog::string_view_t(text.data(), text.size()));
}

}  // namespace

TEST_CASE("the text format escapes control characters and appends the request's ids", "[logging]") {
    auto text = trellis::logging::make_formatter("text");
    const std::string hostile("a\x1b[31m\r\nb\0c\x7f\t \"q\" \\", 19);
    const std::string plain = format_with(*text, message("alpha", hostile));
    CHECK_THAT(plain, Catch::Matchers::EndsWith("[alpha] a\\x1B[31m\\x0D\\x0Ab\\x00c\\x7F\\x09 \"q\" \\\n"));
    {
        trellis::logging::RequestScope scope("req-7", "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(trellis::logging::current_request().request_id == "req-7");
        CHECK(format_with(*text, message("alpha", "hi"))
                  .ends_with("[alpha] hi id=req-7 trace_id=4bf92f3577b34da6a3ce929d0e0e4736\n"));
    }
    CHECK(trellis::logging::current_request().request_id.empty());
    CHECK(format_with(*text, message("alpha", "hi")).ends_with("[alpha] hi\n"));
}

TEST_CASE("escape_text escapes quotes and backslashes only in quoted fields", "[logging]") {
    std::string out;
    trellis::logging::escape_text("x\"y\\z\x1b", true, out);
    CHECK(out == "x\\x22y\\x5Cz\\x1B");
    out.clear();
    trellis::logging::escape_text("x\"y\\z\n", false, out);
    CHECK(out == "x\"y\\z\\x0A");
}

TEST_CASE("a JSON line is valid JSON for any bytes and carries the request's ids as keys", "[logging]") {
    auto json_formatter = trellis::logging::make_formatter("json");
    const std::string hostile("\xff\xfe\x1b\r\n\0\"}{\\", 10);
    trellis::logging::RequestScope scope("req-8", "0af7651916cd43dd8448eb211c80319c");
    const std::string line = format_with(*json_formatter, message("beta", hostile));
    REQUIRE(line.ends_with("}\n"));
    CHECK(std::count(line.begin(), line.end(), '\n') == 1);
    nlohmann::json parsed;
    REQUIRE_NOTHROW(parsed = nlohmann::json::parse(line));
    CHECK(parsed["logger"] == "beta");
    CHECK(parsed["level"] == "info");
    CHECK(parsed["request_id"] == "req-8");
    CHECK(parsed["trace_id"] == "0af7651916cd43dd8448eb211c80319c");
    CHECK(parsed["message"].get<std::string>().ends_with(std::string("\x1b\r\n\0\"}{\\", 8)));
    CHECK(parsed["time"].get<std::string>().ends_with("Z"));
}

TEST_CASE("logging keys: levels per logger, outputs relative to the file, buffer size", "[logging][config]") {
    trellis::test::TempDir dir;
    auto file = dir.write("trellis.yaml", "logging:\n  levels: {notes: debug, access: warn}\n  output: logs/t.log\n"
                                          "  access_output: stderr\n  buffer_size: 64KiB\n");
    auto loaded = trellis::config::load({file, {}});
    REQUIRE(loaded);
    const auto& logging = (*loaded)->logging;
    CHECK(logging.levels == std::map<std::string, std::string>{{"access", "warn"}, {"notes", "debug"}});
    CHECK(logging.output == (dir.path() / "logs/t.log").string());
    CHECK(logging.access_output == "stderr");
    CHECK(logging.buffer_size == 64 * 1024);

    auto bad = dir.write("bad.yaml", "logging:\n  levels: {notes: loud}\n");
    auto failed = trellis::config::load({bad, {}});
    REQUIRE_FALSE(failed);
    REQUIRE(failed.error().size() == 1);
    CHECK_THAT(failed.error()[0], Catch::Matchers::Contains("bad.yaml:2:") &&
                                      Catch::Matchers::Contains("logging.levels.notes"));
}
