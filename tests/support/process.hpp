// Runs the real trellis binary as a child process with its own environment; stops it by
// PID. Output goes to a file the test can read.
#pragma once

#include <sys/types.h>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trellis::test {

class Process {
public:
    // argv[0] is the program; `environment` replaces the child's environment entirely.
    // With `stderr_fd`, the child's stderr is that descriptor (a pipe) instead of `output`.
    Process(std::vector<std::string> argv, std::vector<std::string> environment, std::filesystem::path output,
            int stderr_fd = -1);
    ~Process();  // SIGKILL if still running
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    // The exit code (or 128 + signal), or nullopt if it is still running after `timeout`.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    void signal(int number) const;
    std::string output() const;

private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    std::filesystem::path output_;
};

// PATH, HOME and TRELLIS_SERVER__ENGINE of this process, for children that need nothing else,
// and server.shutdown_delay 0s (replace that entry to test the delay).
inline constexpr const char* shutdown_delay_variable = "TRELLIS_SERVER__SHUTDOWN_DELAY";
std::vector<std::string> minimal_environment();

// Polls GET /livez on the port until it answers or `timeout` passes.
bool wait_until_listening(std::uint16_t port, std::chrono::milliseconds timeout);

// A loopback port that was free a moment ago.
std::uint16_t free_port();

}  // namespace trellis::test
