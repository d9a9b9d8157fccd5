// Process-wide logging: one stderr sink shared by the host ("trellis"), the access log
// ("access") and one logger per plugin (named after it), as text or one JSON object a line.
#pragma once

#include <memory>
#include <string>

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include "config/config.hpp"

namespace trellis::logging {

// Applies level, format and access-log switch; safe to call again (reload).
void configure(const config::LoggingConfig& settings);

// The named logger, created on first use with the shared sink.
std::shared_ptr<spdlog::logger> get(const std::string& name);

bool access_log_enabled();

// The line formatter for "text" or "json" (exposed for tests).
std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format);

}  // namespace trellis::logging
