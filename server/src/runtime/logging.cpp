// spdlog set-up with a bounded, non-blocking output. Lines are formatted on the calling
// thread (each thread has its own copy of the formatter), appended to a bounded buffer
// under a short lock, and written by one writer thread per output; nothing a request thread
// does waits for write(2). A full buffer drops the line and counts it.
#include "runtime/logging.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/details/os.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/sink.h>
#include <nlohmann/json.hpp>

namespace trellis::logging {
namespace {

thread_local RequestContext t_request;
thread_local const AccessEntry* t_access = nullptr;

void append(spdlog::memory_buf_t& dest, std::string_view text) { dest.append(text.data(), text.data() + text.size()); }

// Escapes like escape_text, straight into a line buffer.
void append_escaped(spdlog::memory_buf_t& dest, std::string_view text, bool quoted) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::size_t clean = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c >= 0x20 && c != 0x7f && !(quoted && (c == '"' || c == '\\'))) continue;
        append(dest, text.substr(clean, i - clean));
        const char escaped[] = {'\\', 'x', digits[c >> 4], digits[c & 0xF]};
        dest.append(escaped, escaped + 4);
        clean = i + 1;
    }
    append(dest, text.substr(clean));
}

void append_json_string(spdlog::memory_buf_t& dest, std::string_view text) {
    // Fast path: printable ASCII without quotes or backslashes needs no escaping.
    bool plain = true;
    for (unsigned char c : text)
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            plain = false;
            break;
        }
    if (plain) {
        dest.push_back('"');
        append(dest, text);
        dest.push_back('"');
        return;
    }
    // Invalid UTF-8 becomes U+FFFD: the line stays valid JSON whatever a client sent.
    const std::string escaped =
        nlohmann::json(std::string(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    append(dest, escaped);
}

// "YYYY-MM-DDTHH:MM:SS." cached per second, then milliseconds and 'Z'.
class TimeText {
public:
    void append_to(spdlog::memory_buf_t& dest, spdlog::log_clock::time_point time) {
        using namespace std::chrono;
        auto since_epoch = time.time_since_epoch();
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
                                 static_cast<char>('0' + millis % 10), 'Z'};
        dest.append(fraction, fraction + sizeof fraction);
    }

private:
    std::chrono::seconds cached_secs_{0};
    char prefix_[64] = {};
    std::size_t prefix_size_ = 0;
};

// The text format, "%Y-%m-%dT%H:%M:%S.%eZ %-5l [%n] %v" in UTC, written directly (spdlog's
// pattern_formatter ran a dozen virtual flag formatters per line), with control characters
// of the message escaped and the request's ids appended while a request is being served.
class TextFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        time_.append_to(dest, msg.time);
        dest.push_back(' ');
        auto level = spdlog::level::to_string_view(msg.level);
        dest.append(level.data(), level.data() + level.size());
        for (auto pad = level.size(); pad < 5; ++pad) dest.push_back(' ');
        dest.push_back(' ');
        dest.push_back('[');
        dest.append(msg.logger_name.data(), msg.logger_name.data() + msg.logger_name.size());
        dest.push_back(']');
        dest.push_back(' ');
        append_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()), false);
        if (!t_request.request_id.empty()) {
            append(dest, " id=");
            append_escaped(dest, t_request.request_id, false);
        }
        if (!t_request.trace_id.empty()) {
            append(dest, " trace_id=");
            append_escaped(dest, t_request.trace_id, false);
        }
        dest.push_back('\n');
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<TextFormatter>(); }

private:
    TimeText time_;
};

// One JSON object a line, keys as pino or an ECS-style logger writes them: time, level,
// logger, message, then request_id and trace_id while a request is served, and an access
// line's fields as keys of their own.
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        append(dest, R"({"time":")");
        time_.append_to(dest, msg.time);
        append(dest, R"(","level":")");
        auto level = spdlog::level::to_string_view(msg.level);
        dest.append(level.data(), level.data() + level.size());
        append(dest, R"(","logger":)");
        append_json_string(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
        append(dest, R"(,"message":)");
        append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
        if (const AccessEntry* entry = t_access; entry && std::string_view(msg.logger_name.data(), msg.logger_name.size()) == "access") {
            append(dest, R"(,"method":)");
            append_json_string(dest, entry->method);
            append(dest, R"(,"path":)");
            append_json_string(dest, entry->path);
            if (!entry->query.empty()) {
                append(dest, R"(,"query":)");
                append_json_string(dest, entry->query);
            }
            append(dest, R"(,"route":)");
            if (entry->route)
                append_json_string(dest, *entry->route);
            else
                append(dest, "null");
            const auto micros = entry->duration.count();
            fmt::format_to(std::back_inserter(dest), R"(,"status":{},"bytes":{},"duration_ms":{}.{:03})", entry->status,
                           entry->bytes, micros / 1000, micros % 1000);
            append(dest, R"(,"client_address":)");
            append_json_string(dest, entry->client_address);
            append(dest, R"(,"user_agent":)");
            if (entry->user_agent.empty())
                append(dest, "null");
            else
                append_json_string(dest, entry->user_agent);
        }
        if (!t_request.request_id.empty()) {
            append(dest, R"(,"request_id":)");
            append_json_string(dest, t_request.request_id);
        }
        if (!t_request.trace_id.empty()) {
            append(dest, R"(,"trace_id":)");
            append_json_string(dest, t_request.trace_id);
        }
        append(dest, "}\n");
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }

private:
    TimeText time_;
};

// A destination (stderr or a file) with its bounded buffer and its writer thread. Never
// destroyed: the writer may be stuck in write(2) on a pipe nobody reads when the process
// exits, and must not find its object gone.
class Output {
public:
    Output() : writer_([this] { run(); }) { writer_.detach(); }

    // "" or "stderr" for stderr, otherwise a file path; applied by the writer before its
    // next write.
    void set_target(const std::string& target, std::size_t capacity) {
        std::lock_guard lock(mutex_);
        capacity_ = capacity;
        const std::string path = target == "stderr" ? std::string() : target;
        if (path != path_) {
            path_ = path;
            reopen_ = true;
            wake_locked();
        }
    }

    void reopen() {
        std::lock_guard lock(mutex_);
        if (path_.empty()) return;
        reopen_ = true;
        wake_locked();
    }

    // Appends a finished line, preceded by `notice` (the dropped-lines line, may be empty)
    // which reports `reported` drops. Returns false when the line was dropped.
    bool append(std::string_view notice, std::uint64_t reported, std::string_view line) {
        std::lock_guard lock(mutex_);
        const bool with_notice = reported != 0 && reported <= unreported_;
        const std::size_t size = line.size() + (with_notice ? notice.size() : 0);
        if (buffer_.size() + size > capacity_) {
            ++unreported_;
            total_dropped_.fetch_add(1, std::memory_order_relaxed);
            wake_locked();
            return false;
        }
        if (with_notice) {
            buffer_.append(notice);
            unreported_ -= reported;
        }
        buffer_.append(line);
        if (buffer_.size() >= kEarly) wake_locked();
        return true;
    }

    std::uint64_t unreported() {
        std::lock_guard lock(mutex_);
        return unreported_;
    }

    void wake() {
        std::lock_guard lock(mutex_);
        wake_locked();
    }

    // Waits until everything appended so far is written, at most until `deadline`.
    void flush(std::chrono::steady_clock::time_point deadline) {
        std::unique_lock lock(mutex_);
        wake_locked();
        written_.wait_until(lock, deadline, [this] { return buffer_.empty() && !writing_; });
    }

    std::uint64_t dropped() const { return total_dropped_.load(std::memory_order_relaxed); }

private:
    static constexpr std::size_t kEarly = 64 * 1024;
    static constexpr std::chrono::milliseconds kInterval{100};

    void wake_locked() {
        if (!woken_) {
            woken_ = true;
            wakeup_.notify_one();
        }
    }

    void run() {
        std::string batch;
        std::unique_lock lock(mutex_);
        while (true) {
            wakeup_.wait_for(lock, kInterval, [this] { return woken_; });
            woken_ = false;
            if (reopen_) {
                reopen_ = false;
                const std::string path = path_;
                lock.unlock();
                open(path);
                lock.lock();
            }
            if (buffer_.empty()) {
                written_.notify_all();
                continue;
            }
            buffer_.swap(batch);
            writing_ = true;
            lock.unlock();
            write_all(batch);
            batch.clear();
            if (batch.capacity() > 4 * kEarly) batch.shrink_to_fit();
            lock.lock();
            writing_ = false;
            if (buffer_.empty()) written_.notify_all();
        }
    }

    void open(const std::string& path) {
        int next = STDERR_FILENO;
        if (!path.empty()) {
            next = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
            if (next < 0) {
                const std::string message = "trellis: cannot open the log file " + path + ": " + std::strerror(errno) +
                                            "; logging to stderr\n";
                write_to(STDERR_FILENO, message);
                next = STDERR_FILENO;
            }
        }
        if (fd_ != STDERR_FILENO) ::close(fd_);
        fd_ = next;
    }

    void write_all(const std::string& text) { write_to(fd_, text); }

    static void write_to(int fd, const std::string& text) {
        std::size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::write(fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;  // the output is gone; nothing better to do with log lines
            done += static_cast<std::size_t>(n);
        }
    }

    std::mutex mutex_;
    std::condition_variable wakeup_;
    std::condition_variable written_;
    bool woken_ = false;
    bool writing_ = false;
    bool reopen_ = false;
    std::string path_;  // empty: stderr
    int fd_ = STDERR_FILENO;  // the writer's
    std::size_t capacity_ = 1024 * 1024;
    std::string buffer_;
    std::uint64_t unreported_ = 0;
    std::atomic<std::uint64_t> total_dropped_{0};
    std::thread writer_;
};

struct State;
State& state();

// The spdlog sink of one logger group ("access" or everything else): formats on the
// calling thread and hands the line to its output, which configure() may switch.
class Sink final : public spdlog::sinks::sink {
public:
    explicit Sink(Output* output) : output_(output) {}

    void log(const spdlog::details::log_msg& msg) override;
    void flush() override { output_.load(std::memory_order_acquire)->wake(); }
    void set_pattern(const std::string&) override {}
    void set_formatter(std::unique_ptr<spdlog::formatter>) override {}

    void use(Output* output) { output_.store(output, std::memory_order_release); }

private:
    std::atomic<Output*> output_;
};

struct State {
    std::mutex mutex;  // loggers, levels, formatter
    Output* main_output = new Output();
    Output* access_output = new Output();
    std::shared_ptr<Sink> main_sink = std::make_shared<Sink>(main_output);
    std::shared_ptr<Sink> access_sink = std::make_shared<Sink>(main_output);
    std::map<std::string, std::shared_ptr<spdlog::logger>> loggers;
    spdlog::level::level_enum level = spdlog::level::info;
    std::map<std::string, spdlog::level::level_enum, std::less<>> levels;
    std::atomic<bool> access_log{true};
    std::unique_ptr<spdlog::formatter> formatter = std::make_unique<TextFormatter>();
    std::atomic<std::uint64_t> generation{1};

    spdlog::level::level_enum level_of(const std::string& name) const {
        auto found = levels.find(name);
        return found == levels.end() ? level : found->second;
    }
};

State& state() {
    // Never destroyed, like the outputs: loggers are used by threads until the very end.
    static State* instance = [] {
        auto* s = new State();
        std::atexit([] { flush(); });
        return s;
    }();
    return *instance;
}

void Sink::log(const spdlog::details::log_msg& msg) {
    struct PerThread {
        std::unique_ptr<spdlog::formatter> formatter;
        std::uint64_t generation = 0;
        spdlog::memory_buf_t line;
        spdlog::memory_buf_t notice;
    };
    thread_local PerThread local;
    State& s = state();
    const std::uint64_t generation = s.generation.load(std::memory_order_acquire);
    if (!local.formatter || local.generation != generation) {
        std::lock_guard lock(s.mutex);
        local.formatter = s.formatter->clone();
        local.generation = s.generation.load(std::memory_order_relaxed);
    }
    Output* output = output_.load(std::memory_order_acquire);
    local.line.clear();
    local.formatter->format(msg, local.line);
    local.notice.clear();
    const std::uint64_t unreported = output->unreported();
    if (unreported != 0) {
        // Written as a line of its own before this one, without this request's ids.
        const std::string text = std::to_string(unreported) + " log lines dropped: the log output did not keep up";
        const RequestContext saved = std::exchange(t_request, RequestContext{});
        const AccessEntry* saved_access = std::exchange(t_access, nullptr);
        spdlog::details::log_msg notice(msg.time, spdlog::source_loc{}, "trellis", spdlog::level::warn, text);
        local.formatter->format(notice, local.notice);
        t_request = saved;
        t_access = saved_access;
    }
    output->append(std::string_view(local.notice.data(), local.notice.size()), unreported,
                   std::string_view(local.line.data(), local.line.size()));
}

std::size_t buffer_bytes(const config::LoggingConfig& settings) { return std::max<std::size_t>(4096, settings.buffer_size); }

}  // namespace

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format) {
    if (format == "json") return std::make_unique<JsonFormatter>();
    return std::make_unique<TextFormatter>();
}

void configure(const config::LoggingConfig& settings) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.level = spdlog::level::from_str(settings.level);
    s.levels.clear();
    for (const auto& [name, level] : settings.levels) s.levels[name] = spdlog::level::from_str(level);
    s.access_log = settings.access_log;
    s.formatter = make_formatter(settings.format);
    s.generation.fetch_add(1, std::memory_order_release);
    s.main_output->set_target(settings.output, buffer_bytes(settings));
    if (settings.access_output.empty()) {
        s.access_sink->use(s.main_output);
        s.access_output->set_target("stderr", buffer_bytes(settings));
    } else {
        s.access_output->set_target(settings.access_output, buffer_bytes(settings));
        s.access_sink->use(s.access_output);
    }
    for (auto& [name, logger] : s.loggers) logger->set_level(s.level_of(name));
}

std::shared_ptr<spdlog::logger> get(const std::string& name) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    auto& logger = s.loggers[name];
    if (!logger) {
        logger = std::make_shared<spdlog::logger>(name, name == "access" ? s.access_sink : s.main_sink);
        logger->set_level(s.level_of(name));
        logger->flush_on(spdlog::level::warn);
    }
    return logger;
}

bool access_log_enabled() { return state().access_log; }

std::uint64_t dropped_lines() {
    auto& s = state();
    return s.main_output->dropped() + s.access_output->dropped();
}

void reopen() {
    auto& s = state();
    s.main_output->reopen();
    s.access_output->reopen();
}

void flush(std::chrono::milliseconds timeout) {
    auto& s = state();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    s.main_output->flush(deadline);
    s.access_output->flush(deadline);
}

RequestContext current_request() { return t_request; }

RequestScope::RequestScope(std::string_view request_id, std::string_view trace_id) : previous_(t_request) {
    t_request = {request_id, trace_id};
}

RequestScope::~RequestScope() { t_request = previous_; }

void escape_text(std::string_view text, bool quoted, std::string& out) {
    spdlog::memory_buf_t buffer;
    append_escaped(buffer, text, quoted);
    out.append(buffer.data(), buffer.size());
}

void access(const AccessEntry& entry) {
    static const auto logger = get("access");
    if (!logger->should_log(spdlog::level::info)) return;
    // The text line; JSON takes the same fields from t_access as keys of their own.
    spdlog::memory_buf_t line;
    append(line, entry.client_address);
    append(line, " \"");
    append_escaped(line, entry.method, true);
    line.push_back(' ');
    append_escaped(line, entry.path, true);
    if (!entry.query.empty()) {
        line.push_back('?');
        append_escaped(line, entry.query, true);
    }
    line.push_back(' ');
    append_escaped(line, entry.version, true);
    const auto micros = entry.duration.count();
    fmt::format_to(std::back_inserter(line), "\" {} {} {}.{:03}ms \"", entry.status, entry.bytes, micros / 1000,
                   micros % 1000);
    append_escaped(line, entry.user_agent.empty() ? std::string_view("-") : entry.user_agent, true);
    line.push_back('"');
    t_access = &entry;
    try {
        logger->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
    } catch (...) {
        t_access = nullptr;
        throw;
    }
    t_access = nullptr;
}

}  // namespace trellis::logging
