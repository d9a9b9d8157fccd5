// Middleware chain execution.
#include "plugin/chain.hpp"

#include "plugin/host_api.hpp"

namespace trellis::plugin {

trellis_status run_chain(ChainRun& run, std::size_t index) noexcept {
    trellis_status status = TRELLIS_ERROR;
    if (index >= run.steps->size()) {
        try {
            status = run.terminal(run.terminal_context);
        } catch (...) {
            if (run.request->error.empty()) run.request->error = "handler threw an exception through the ABI";
        }
        if (status != TRELLIS_OK && run.failed_at.empty()) run.failed_at = "handler";
        return status;
    }
    const MiddlewareBinding& step = *(*run.steps)[index];
    trellis_next next;
    next.run = &run;
    next.index = index + 1;
    try {
        status = step.on_middleware(step.user_data, run.request, run.response, &next);
    } catch (...) {
        if (run.request->error.empty()) run.request->error = "middleware threw an exception through the ABI";
    }
    if (status != TRELLIS_OK && run.failed_at.empty()) {
        try {
            run.failed_at = "middleware " + step.name;
        } catch (...) {
        }
    }
    return status;
}

}  // namespace trellis::plugin
