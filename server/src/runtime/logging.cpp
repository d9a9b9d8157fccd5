// spdlog set-up. JSON lines use a custom flag that escapes the message, so a log line can
// never be broken by what a client or a plugin put into it.
#include "runtime/logging.hpp"

#include <atomic>
#include <map>
#include <mutex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <nlohmann/json.hpp>

namespace trellis::logging {
namespace {

class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        std::string text(msg.payload.data(), msg.payload.size());
        std::string escaped = nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        dest.append(escaped.data(), escaped.data() + escaped.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonEscapedMessage>(); }
};

struct State {
    std::mutex mutex;
    std::shared_ptr<spdlog::sinks::stderr_sink_mt> sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    std::map<std::string, std::shared_ptr<spdlog::logger>> loggers;
    spdlog::level::level_enum level = spdlog::level::info;
    std::atomic<bool> access_log{true};
};

State& state() {
    static State instance;
    return instance;
}

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    if (format == "json") {
        formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
            R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","message":%*})");
    } else {
        formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v");
    }
    return formatter;
}

}  // namespace

void configure(const config::LoggingConfig& settings) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.level = spdlog::level::from_str(settings.level);
    s.access_log = settings.access_log;
    s.sink->set_formatter(make_formatter(settings.format));
    for (auto& [name, logger] : s.loggers) logger->set_level(s.level);
}

std::shared_ptr<spdlog::logger> get(const std::string& name) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    auto& logger = s.loggers[name];
    if (!logger) {
        logger = std::make_shared<spdlog::logger>(name, s.sink);
        logger->set_level(s.level);
        logger->flush_on(spdlog::level::warn);
    }
    return logger;
}

bool access_log_enabled() { return state().access_log; }

}  // namespace trellis::logging
