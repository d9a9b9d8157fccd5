// The request path through the host: request id, host endpoints, routing, the middleware
// chains, the handler, problem+json for every failure, and the access log line.
#pragma once

#include <atomic>
#include <memory>

#include <spdlog/logger.h>

#include "http/message.hpp"
#include "runtime/runtime.hpp"

namespace trellis::runtime {

enum class Listener { public_, admin };

class Pipeline {
public:
    explicit Pipeline(std::shared_ptr<const Runtime> initial);

    // Swaps in a new runtime; requests in flight finish on the one they started with, and
    // the old runtime is released (plugins shut down) when its last request ends.
    void replace(std::shared_ptr<const Runtime> next);
    std::shared_ptr<const Runtime> current() const { return runtime_.load(); }

    // /readyz answers 503 while not ready (starting, draining).
    void set_ready(bool ready) { ready_ = ready; }

    // Never throws; every failure becomes a problem+json response.
    void handle(http::Request& request, http::Response& response, Listener listener) const;

private:
    void dispatch(const Runtime& runtime, http::Request& request, http::Response& response, Listener listener) const;

    std::atomic<std::shared_ptr<const Runtime>> runtime_;
    std::atomic<bool> ready_{true};
    std::shared_ptr<spdlog::logger> log_;  // looked up once: get() takes a lock
    std::shared_ptr<spdlog::logger> access_log_;
};

}  // namespace trellis::runtime
