// Child processes for CLI tests.
#include "support/process.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <cstdlib>
#include <thread>

#include <Poco/Net/ServerSocket.h>

#include "support/http_client.hpp"
#include "support/temp_dir.hpp"

namespace trellis::test {

Process::Process(std::vector<std::string> argv, std::vector<std::string> environment, std::filesystem::path output,
                 int stderr_fd)
    : output_(std::move(output)) {
    std::vector<char*> args, env;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : environment) env.push_back(e.data());
    env.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
        int fd = ::open(output_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (stderr_fd >= 0) dup2(stderr_fd, 2);
        // The test runner may block signals; the child must start with a clean mask.
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        execve(args[0], args.data(), env.data());
        _exit(127);
    }
}

Process::~Process() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        int ignored = 0;
        waitpid(pid_, &ignored, 0);
    }
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        int raw = 0;
        pid_t done = waitpid(pid_, &raw, WNOHANG);
        if (done == pid_) {
            status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
            return status_;
        }
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

void Process::signal(int number) const {
    if (pid_ > 0 && !status_) ::kill(pid_, number);
}

std::string Process::output() const { return read_file(output_); }

std::vector<std::string> minimal_environment() {
    std::vector<std::string> env;
    // TRELLIS_SERVER__ENGINE: the engine this test pass runs against (see ./dev test).
    for (const char* name : {"PATH", "HOME", "TRELLIS_SERVER__ENGINE"})
        if (const char* value = std::getenv(name)) env.push_back(std::string(name) + "=" + value);
    // Children stop at once on SIGTERM unless a test sets a shutdown delay of its own.
    env.push_back(std::string(shutdown_delay_variable) + "=0s");
    return env;
}

bool wait_until_listening(std::uint16_t port, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            if (http_request(port, "GET", "/livez").status == 200) return true;
        } catch (...) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

std::uint16_t free_port() {
    Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
    return socket.address().port();
}

}  // namespace trellis::test
