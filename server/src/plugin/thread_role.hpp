// Which kind of thread is running: an event-loop thread must never block, so the host API
// refuses database calls made from one (ABI 1.2, TRELLIS_ROUTE_NON_BLOCKING).
#pragma once

#include <string_view>

namespace trellis::plugin {

// Marks the calling thread as an event-loop thread for its lifetime (RAII). The previous
// mark comes back on destruction, so a scope may wrap a whole loop thread or one inline
// handler call, and nested scopes are fine. Create and destroy it on the same thread.
class EventLoopThreadScope {
public:
    EventLoopThreadScope() noexcept;
    ~EventLoopThreadScope();
    EventLoopThreadScope(const EventLoopThreadScope&) = delete;
    EventLoopThreadScope& operator=(const EventLoopThreadScope&) = delete;

private:
    bool previous_;
};

// True while an EventLoopThreadScope lives on the calling thread.
bool on_event_loop_thread() noexcept;

// Why a database call was refused on an event-loop thread and what to do: the db_error text
// (trellis::event_loop_database_message of the SDK, which raises it for a refused db_acquire).
std::string_view event_loop_database_error() noexcept;

}  // namespace trellis::plugin
