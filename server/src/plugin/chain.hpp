// Running a middleware chain: each step gets a trellis_next that continues at the step
// after it; the last step continues into the terminal (the route handler, or the host's
// own answer when nothing matched).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <trellis/abi.h>

namespace trellis::plugin {

struct MiddlewareBinding {
    std::string plugin;  // which plugin registered it
    std::string name;    // "PLUGIN.NAME" as configuration refers to it
    trellis_on_middleware_fn on_middleware = nullptr;
    void* user_data = nullptr;
    bool non_blocking = false;  // from MiddlewareRegistration: may run on an event-loop thread
};

struct ChainRun {
    const std::vector<const MiddlewareBinding*>* steps = nullptr;
    trellis_request* request = nullptr;
    trellis_response* response = nullptr;
    trellis_status (*terminal)(void* context) = nullptr;
    void* terminal_context = nullptr;
    // The innermost place that failed ("middleware cors", "handler"), for the error log.
    std::string failed_at;
};

// Runs steps[index...] then the terminal. Plugin exceptions are caught here as well as in
// the SDK: the host never lets one unwind through its own frames.
trellis_status run_chain(ChainRun& run, std::size_t index) noexcept;

}  // namespace trellis::plugin
