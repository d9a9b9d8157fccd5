// The thread-local event-loop mark.
#include "plugin/thread_role.hpp"

#include <trellis/database.hpp>

namespace trellis::plugin {
namespace {
thread_local bool event_loop_thread = false;
}  // namespace

EventLoopThreadScope::EventLoopThreadScope() noexcept : previous_(event_loop_thread) { event_loop_thread = true; }

EventLoopThreadScope::~EventLoopThreadScope() { event_loop_thread = previous_; }

bool on_event_loop_thread() noexcept { return event_loop_thread; }

// One text for host and SDK: the SDK raises it when db_acquire is refused (it has no
// connection to read db_error from), the host sets it as db_error on a connection.
std::string_view event_loop_database_error() noexcept { return trellis::event_loop_database_message; }

}  // namespace trellis::plugin
