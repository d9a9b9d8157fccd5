// spdlog set-up. JSON lines use a custom flag that escapes the message, so a log line can
// never be broken by what a client or a plugin put into it.
#include "runtime/logging.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <spdlog/details/os.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
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

// The text format, "%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v" in UTC, written directly:
// spdlog's pattern_formatter ran a dozen virtual flag formatters per line, most of an access
// log line's cost. The date and time up to the second are formatted once a second. Used
// under the sink's lock, like any spdlog formatter.
class TextFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        using namespace std::chrono;
        auto since_epoch = msg.time.time_since_epoch();
        auto secs = duration_cast<seconds>(since_epoch);
        if (secs != cached_secs_ || prefix_size_ == 0) {
            std::tm tm = spdlog::details::os::gmtime(static_cast<std::time_t>(secs.count()));
            auto end = fmt::format_to_n(prefix_, sizeof prefix_, "{}-{:02}-{:02}T{:02}:{:02}:{:02}.", tm.tm_year + 1900,
                                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
            prefix_size_ = std::min(end.size, sizeof prefix_);
            cached_secs_ = secs;
        }
        dest.append(prefix_, prefix_ + prefix_size_);
        auto millis = static_cast<int>(duration_cast<milliseconds>(since_epoch - secs).count());
        const char fraction[] = {static_cast<char>('0' + millis / 100), static_cast<char>('0' + millis / 10 % 10),
                                 static_cast<char>('0' + millis % 10), 'Z', ' '};
        dest.append(fraction, fraction + sizeof fraction);
        auto level = spdlog::level::to_string_view(msg.level);
        dest.append(level.data(), level.data() + level.size());
        for (auto pad = level.size(); pad < 5; ++pad) dest.push_back(' ');
        dest.push_back(' ');
        dest.push_back('[');
        dest.append(msg.logger_name.data(), msg.logger_name.data() + msg.logger_name.size());
        dest.push_back(']');
        dest.push_back(' ');
        dest.append(msg.payload.data(), msg.payload.data() + msg.payload.size());
        dest.push_back('\n');
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<TextFormatter>(); }

private:
    std::chrono::seconds cached_secs_{0};
    char prefix_[64] = {};
    std::size_t prefix_size_ = 0;
};

// Writes to stderr in batches: a write(2) per access-log line cost about a tenth of the
// hello route's throughput. Lines wait at most flush_interval; warnings and errors, and
// anything logged before an exit (flush()), go out at once.
class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t formatted;
        formatter_->format(msg, formatted);
        buffer_.append(formatted.data(), formatted.size());
        if (buffer_.size() >= 32 * 1024 || msg.level >= spdlog::level::warn) flush_();
    }

    void flush_() override {
        std::size_t done = 0;
        while (done < buffer_.size()) {
            ssize_t n = ::write(STDERR_FILENO, buffer_.data() + done, buffer_.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // stderr is gone; nothing better to do with log lines
            done += static_cast<std::size_t>(n);
        }
        buffer_.clear();
    }

private:
    std::string buffer_;
};

constexpr std::chrono::milliseconds flush_interval{100};

struct State {
    State() {
        flusher = std::thread([this] {
            std::unique_lock lock(flusher_mutex);
            while (!stopping) {
                flusher_wakeup.wait_for(lock, flush_interval);
                sink->flush();
            }
        });
    }
    ~State() {
        {
            std::lock_guard lock(flusher_mutex);
            stopping = true;
        }
        flusher_wakeup.notify_all();
        flusher.join();
        sink->flush();
    }

    std::mutex mutex;
    std::shared_ptr<BufferedStderrSink> sink = std::make_shared<BufferedStderrSink>();
    std::mutex flusher_mutex;
    std::condition_variable flusher_wakeup;
    bool stopping = false;
    std::thread flusher;
    std::map<std::string, std::shared_ptr<spdlog::logger>> loggers;
    spdlog::level::level_enum level = spdlog::level::info;
    std::atomic<bool> access_log{true};
};

State& state() {
    static State instance;
    return instance;
}

}  // namespace

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format) {
    if (format != "json") return std::make_unique<TextFormatter>();
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","message":%*})");
    return formatter;
}

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
