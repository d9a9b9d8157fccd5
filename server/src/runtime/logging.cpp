// spdlog set-up. JSON lines use a custom flag that escapes the message, so a log line can
// never be broken by what a client or a plugin put into it.
#include "runtime/logging.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
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
// hello route's throughput. Lines wait at most flush_interval; warnings and errors (the
// loggers flush on warn), and anything logged before an exit, go out at once.
//
// Every request thread logs its access line, so nothing slow may happen under the shared
// lock: with one lock around formatting, 64 request threads on one core queued behind
// whichever holder the scheduler had preempted (p99 50 ms against 8 ms without the access
// log). Each thread formats with its own copy of the formatter; the lock only covers
// appending the finished line; the flusher writes a batch after releasing it.
class BufferedStderrSink final : public spdlog::sinks::sink {
public:
    void log(const spdlog::details::log_msg& msg) override {
        thread_local PerThread local;
        const std::uint64_t generation = generation_.load(std::memory_order_acquire);
        if (!local.formatter || local.generation != generation) {
            std::lock_guard lock(formatter_mutex_);
            local.formatter = formatter_->clone();
            local.generation = generation_.load(std::memory_order_relaxed);
        }
        local.line.clear();
        local.formatter->format(msg, local.line);
        std::size_t size = 0;
        {
            std::lock_guard lock(mutex_);
            buffer_.append(local.line.data(), local.line.size());
            size = buffer_.size();
        }
        if (size >= kBackstop)
            flush();  // the flusher is stuck
        else if (size >= kEarly && wake_)
            wake_();
    }

    // Takes the batch out under the lock and writes it after releasing it; write_mutex_
    // keeps batches in order. The two buffers swap roles and keep their capacity, so a
    // steady stream of lines allocates nothing.
    void flush() override {
        std::unique_lock lock(mutex_);
        std::lock_guard write_lock(write_mutex_);
        buffer_.swap(spare_);
        lock.unlock();
        write_all(spare_);
        spare_.clear();
    }

    void set_pattern(const std::string& pattern) override {
        set_formatter(std::make_unique<spdlog::pattern_formatter>(pattern));
    }
    void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
        std::lock_guard lock(formatter_mutex_);
        formatter_ = std::move(formatter);
        generation_.fetch_add(1, std::memory_order_release);
    }

    // Lets a filling buffer wake the flusher before its interval is up.
    void on_full(std::function<void()> wake) { wake_ = std::move(wake); }

private:
    struct PerThread {
        std::unique_ptr<spdlog::formatter> formatter;
        std::uint64_t generation = 0;
        spdlog::memory_buf_t line;
    };
    static constexpr std::size_t kEarly = 64 * 1024;
    static constexpr std::size_t kBackstop = 1024 * 1024;

    static void write_all(const std::string& text) {
        std::size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // stderr is gone; nothing better to do with log lines
            done += static_cast<std::size_t>(n);
        }
    }

    std::mutex formatter_mutex_;
    std::unique_ptr<spdlog::formatter> formatter_ = std::make_unique<TextFormatter>();
    std::atomic<std::uint64_t> generation_{1};
    std::mutex mutex_;  // buffer_
    std::string buffer_;
    std::mutex write_mutex_;
    std::string spare_;  // being written; guarded by write_mutex_
    std::function<void()> wake_;
};

constexpr std::chrono::milliseconds flush_interval{100};

struct State {
    State() {
        sink->on_full([this] {
            if (!woken.exchange(true, std::memory_order_relaxed)) flusher_wakeup.notify_one();
        });
        flusher = std::thread([this] {
            std::unique_lock lock(flusher_mutex);
            while (!stopping) {
                flusher_wakeup.wait_for(lock, flush_interval,
                                        [this] { return stopping || woken.load(std::memory_order_relaxed); });
                woken.store(false, std::memory_order_relaxed);
                lock.unlock();
                sink->flush();
                lock.lock();
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
    std::atomic<bool> woken{false};
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
