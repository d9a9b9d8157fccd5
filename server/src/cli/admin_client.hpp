// A request to the running server's admin API (server.admin_listen), as `trellis plugins
// enable|disable --reload` and `trellis plugins list` make it: loopback HTTP/1.1, the bearer
// token of server.admin_token_file when one is configured.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include <tl/expected.hpp>

#include "config/config.hpp"

namespace trellis::cli {

struct AdminAnswer {
    int status = 0;
    std::string body;
};

// "127.0.0.1:9180": where the admin API of this configuration answers (a wildcard listener
// is reached on loopback).
std::string admin_address(const config::Config& config);

// The error says what failed ("connection refused", a timeout) without the token.
tl::expected<AdminAnswer, std::string> admin_request(const config::Config& config, const std::string& method,
                                                     const std::string& target, std::chrono::milliseconds timeout);

// The running server's last reload error of each plugin that has one (GET /admin/plugins),
// when a server answers on the admin listener at once; empty otherwise.
std::map<std::string, std::string> served_reload_errors(const config::Config& config);

}  // namespace trellis::cli
