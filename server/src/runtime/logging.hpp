// Process-wide logging: one output shared by the host ("trellis"), the database layer
// ("database") and one logger per plugin (named after it), and the access log ("access"),
// which may have an output of its own; as text or one JSON object a line.
//
// Request threads never wait for the output: a line is formatted on the calling thread and
// appended to a bounded buffer that one writer thread per output drains. When the buffer is
// full (a pipe nobody reads, a slow disk) the line is dropped and counted; the count is
// written before the next line that fits and is readable through dropped_lines().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include "config/config.hpp"

namespace trellis::logging {

// Applies levels, format, outputs and the access-log switch; safe to call again (reload).
void configure(const config::LoggingConfig& settings);

// The named logger, created on first use with its output and its configured level.
std::shared_ptr<spdlog::logger> get(const std::string& name);

bool access_log_enabled();

// Lines dropped since start because an output's buffer was full (for the metrics).
std::uint64_t dropped_lines();

// Reopens file outputs (SIGUSR1, after logrotate moved the file away). Returns at once;
// the writer threads reopen before their next write.
void reopen();

// Waits until what was logged so far is written, at most `timeout` (exit, drain).
void flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

// The request whose chain this thread runs: every line logged on this thread meanwhile
// carries its ids (text: " id=… trace_id=…", JSON: "request_id", "trace_id"). The views
// must outlive the scope.
struct RequestContext {
    std::string_view request_id;
    std::string_view trace_id;
};
RequestContext current_request();

class RequestScope {
public:
    RequestScope(std::string_view request_id, std::string_view trace_id);
    ~RequestScope();
    RequestScope(const RequestScope&) = delete;
    RequestScope& operator=(const RequestScope&) = delete;

private:
    RequestContext previous_;
};

// One access-log line; written as text or as JSON keys of their own.
struct AccessEntry {
    std::string_view client_address;
    std::string_view method;
    std::string_view path;
    std::string_view query;
    std::string_view version;
    const std::string* route = nullptr;  // the route's template; null when unmatched
    int status = 0;
    std::size_t bytes = 0;
    std::chrono::microseconds duration{0};
    std::string_view user_agent;
};
void access(const AccessEntry& entry);

// Control characters (bytes < 0x20 and 0x7f) as \xHH, like nginx; with `quoted` also '"'
// and '\'. Leaves every other byte alone.
void escape_text(std::string_view text, bool quoted, std::string& out);

// The line formatter for "text" or "json" (exposed for tests).
std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format);

}  // namespace trellis::logging
