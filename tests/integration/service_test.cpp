// `trellis serve` as a systemd service, with the real binary: the sd_notify messages it sends
// to a NOTIFY_SOCKET bound here (READY=1 once it serves, RELOADING=1/READY=1 around SIGHUP and
// POST /admin/reload, STOPPING=1 at SIGTERM), watchdog pings that stop while an event loop is
// stuck, and server.pid_file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Clock = std::chrono::steady_clock;

namespace {

struct Message {
    std::string text;
    Clock::time_point at;
    bool has(const std::string& line) const {
        return ("\n" + text + "\n").find("\n" + line + "\n") != std::string::npos;
    }
    std::string field(const std::string& name) const {
        const auto start = ("\n" + text).find("\n" + name + "=");
        if (start == std::string::npos) return {};
        const auto from = start + name.size() + 1;
        return text.substr(from, text.find('\n', from) - from);
    }
};

// A unix datagram socket like systemd's notify socket; a thread reads every message. On the
// first READY=1 it runs `at_ready` at once, before the test thread even sees the message.
class NotifySocket {
public:
    NotifySocket(const std::filesystem::path& path, std::function<void()> at_ready)
        : path_(path), at_ready_(std::move(at_ready)) {
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        REQUIRE(path.string().size() < sizeof address.sun_path);
        std::strcpy(address.sun_path, path.c_str());
        REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        timeval slice{0, 50'000};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &slice, sizeof slice);
        reader_ = std::thread([this] { read(); });
    }
    ~NotifySocket() {
        stop_ = true;
        reader_.join();
        close(fd_);
    }

    std::vector<Message> messages() {
        std::lock_guard lock(mutex_);
        return messages_;
    }

    // The index of the first message from `from` on with that line, waiting up to `timeout`;
    // -1 when none came.
    long find(const std::string& line, std::size_t from, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        long found = -1;
        arrived_.wait_for(lock, timeout, [&] {
            for (std::size_t i = from; i < messages_.size(); ++i)
                if (messages_[i].has(line)) return (found = static_cast<long>(i)) >= 0;
            return false;
        });
        return found;
    }

    std::size_t count(const std::string& line, Clock::time_point after, Clock::time_point before) {
        std::lock_guard lock(mutex_);
        return static_cast<std::size_t>(std::count_if(messages_.begin(), messages_.end(), [&](const Message& m) {
            return m.has(line) && m.at > after && m.at < before;
        }));
    }

private:
    void read() {
        char buffer[4096];
        bool ready_seen = false;
        while (!stop_) {
            const ssize_t got = recv(fd_, buffer, sizeof buffer, 0);
            if (got <= 0) continue;
            Message message{std::string(buffer, static_cast<std::size_t>(got)), Clock::now()};
            if (!ready_seen && message.has("READY=1")) {
                ready_seen = true;
                at_ready_();
            }
            {
                std::lock_guard lock(mutex_);
                messages_.push_back(std::move(message));
            }
            arrived_.notify_all();
        }
    }

    std::filesystem::path path_;
    std::function<void()> at_ready_;
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::vector<Message> messages_;
    std::thread reader_;
};

// A served trellis with NOTIFY_SOCKET and WATCHDOG_USEC; what answered at READY=1 is kept.
struct Service {
    TempDir dir;
    std::uint16_t port = free_port();
    std::uint16_t admin_port = free_port();
    int status_at_ready = 0;        // GET /alpha/inline/ping on the public listener
    int admin_status_at_ready = 0;  // GET /readyz on the admin listener
    NotifySocket notify{dir.path() / "notify.sock", [this] {
                            try {
                                status_at_ready = http_request(port, "GET", "/alpha/inline/ping").status;
                                admin_status_at_ready = http_request(admin_port, "GET", "/readyz").status;
                            } catch (...) {
                                status_at_ready = -1;
                            }
                        }};
    std::unique_ptr<Process> process;

    explicit Service(const std::string& watchdog_usec = "400000") {
        dir.write("trellis.yaml", config_yaml("  alpha: {}\n"));
        auto env = minimal_environment();
        env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
        env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(admin_port));
        env.push_back("NOTIFY_SOCKET=" + (dir.path() / "notify.sock").string());
        // WATCHDOG_PID unset: the watchdog is meant for the child.
        if (!watchdog_usec.empty()) env.push_back("WATCHDOG_USEC=" + watchdog_usec);
        process = std::make_unique<Process>(
            std::vector<std::string>{TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / "trellis.yaml").string()}, env,
            dir.path() / "output.log");
    }
};

bool poco_engine() {
    const char* engine = std::getenv("TRELLIS_SERVER__ENGINE");
    return engine && std::string(engine) == "poco";
}

}  // namespace

TEST_CASE("sd_notify: READY=1 once serving, RELOADING=1/READY=1 around reloads, WATCHDOG=1, STOPPING=1",
          "[service]") {
    Service s;
    const long ready = s.notify.find("READY=1", 0, 20s);
    INFO(s.process->output());
    REQUIRE(ready >= 0);
    // At the moment READY=1 arrived, the plugin's route and the admin listener already answered.
    CHECK(s.status_at_ready == 200);
    CHECK(s.admin_status_at_ready == 200);
    const auto messages = s.notify.messages();
    CHECK(ready == 0);  // nothing (no READY, no ping) before it
    CHECK(messages[static_cast<std::size_t>(ready)].field("MAINPID") == std::to_string(s.process->pid()));
    CHECK_THAT(messages[static_cast<std::size_t>(ready)].field("STATUS"),
               Contains("127.0.0.1:" + std::to_string(s.port)));

    // Watchdog pings every half interval (200 ms) while serving.
    long ping = ready;
    for (int i = 0; i < 3; ++i) {
        ping = s.notify.find("WATCHDOG=1", static_cast<std::size_t>(ping + 1), 3s);
        REQUIRE(ping > 0);
    }

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 saying it reloaded.
    auto from = s.notify.messages().size();
    s.process->signal(SIGHUP);
    long reloading = s.notify.find("RELOADING=1", from, 10s);
    REQUIRE(reloading >= 0);
    long ready_again = s.notify.find("READY=1", static_cast<std::size_t>(reloading + 1), 10s);
    REQUIRE(ready_again > reloading);
    CHECK_FALSE(s.notify.messages()[static_cast<std::size_t>(reloading)].field("MONOTONIC_USEC").empty());
    CHECK_THAT(s.notify.messages()[static_cast<std::size_t>(ready_again)].field("STATUS"), Contains("reloaded"));

    // POST /admin/reload goes through the same path. READY=1 goes out once the SIGHUP reload
    // has let go of its turn, so a reload sent right after it is not refused as busy (409).
    from = s.notify.messages().size();
    const int posted = http_request(s.admin_port, "POST", "/admin/reload", "{}", {{"Content-Type", "application/json"}}).status;
    REQUIRE(posted == 200);
    reloading = s.notify.find("RELOADING=1", from, 10s);
    REQUIRE(reloading >= 0);
    ready_again = s.notify.find("READY=1", static_cast<std::size_t>(reloading + 1), 10s);
    REQUIRE(ready_again > reloading);

    // A reload that fails still ends with READY=1: the previous runtime keeps serving.
    s.dir.write("trellis.yaml", config_yaml("  alpha: {}\n", "server:\n  workers: many\n"));
    from = s.notify.messages().size();
    s.process->signal(SIGHUP);
    reloading = s.notify.find("RELOADING=1", from, 10s);
    REQUIRE(reloading >= 0);
    ready_again = s.notify.find("READY=1", static_cast<std::size_t>(reloading + 1), 10s);
    REQUIRE(ready_again > reloading);
    CHECK_THAT(s.notify.messages()[static_cast<std::size_t>(ready_again)].field("STATUS"),
               Contains("reload failed") && Contains("server.workers"));
    CHECK(http_request(s.port, "GET", "/alpha/inline/ping").status == 200);

    // Pings go on after the reloads.
    const auto before_stop = s.notify.messages().size();
    REQUIRE(s.notify.find("WATCHDOG=1", before_stop, 3s) >= 0);

    s.process->signal(SIGTERM);
    const long stopping = s.notify.find("STOPPING=1", before_stop, 10s);
    REQUIRE(stopping >= 0);
    CHECK(s.process->wait(20s) == 0);
    // No ping once STOPPING=1 is out (systemd stops watching then).
    const auto all = s.notify.messages();
    CHECK(std::none_of(all.begin() + stopping, all.end(), [](const Message& m) { return m.has("WATCHDOG=1"); }));
}

TEST_CASE("sd_notify: an event loop stuck in a handler stops the watchdog pings until it runs again",
          "[service]") {
    Service s;
    REQUIRE(s.notify.find("READY=1", 0, 20s) >= 0);
    REQUIRE(s.notify.find("WATCHDOG=1", 0, 3s) >= 0);
    // A non-blocking route that breaks the rule: it sleeps 2 s inline on its event loop.
    const auto start = Clock::now();
    const auto r = http_request(s.port, "GET", "/alpha/inline/sleep?ms=2000");
    const auto end = Clock::now();
    REQUIRE(r.status == 200);
    REQUIRE(end - start >= 2s);
    // Pings are every 200 ms and withheld once a loop's heartbeat is over 200 ms old: none may
    // arrive from 600 ms into the stall (a ping sent just before it may still be on its way)
    // to 100 ms before the earliest moment it can end. On the Poco engine a handler thread
    // may block: the pings go on.
    const auto during = s.notify.count("WATCHDOG=1", start + 600ms, start + 1900ms);
    if (poco_engine())
        CHECK(during > 0);
    else
        CHECK(during == 0);
    // ... and come back once the loop runs again.
    const auto after = s.notify.messages().size();
    CHECK(s.notify.find("WATCHDOG=1", after, 3s) >= 0);
    if (!poco_engine()) CHECK_THAT(s.process->output(), Contains("withholding the watchdog ping"));
    s.process->signal(SIGTERM);
    CHECK(s.process->wait(20s) == 0);
}

TEST_CASE("sd_notify: without WATCHDOG_USEC there are no pings", "[service]") {
    Service s("");
    REQUIRE(s.notify.find("READY=1", 0, 20s) >= 0);
    std::this_thread::sleep_for(600ms);
    CHECK(s.notify.find("WATCHDOG=1", 0, 0ms) == -1);
    s.process->signal(SIGTERM);
    CHECK(s.notify.find("STOPPING=1", 0, 10s) >= 0);
    CHECK(s.process->wait(20s) == 0);
}

namespace {

// trellis serve with server.pid_file set to `pid_file` (relative to the config file).
struct PidServed {
    std::uint16_t port = free_port();
    std::unique_ptr<Process> process;
    PidServed(const TempDir& dir, const std::string& name) {
        dir.write(name + ".yaml", config_yaml("  alpha: {}\n", "server:\n  pid_file: run/trellis.pid\n"));
        auto env = minimal_environment();
        env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
        env.push_back("TRELLIS_SERVER__ADMIN_ENABLED=false");
        process = std::make_unique<Process>(
            std::vector<std::string>{TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / (name + ".yaml")).string()}, env,
            dir.path() / (name + ".log"));
    }
};

// The file's content once it holds `expected` (it is written just after the listeners start
// serving), or what it holds after 10 s.
std::string wait_for_content(const std::filesystem::path& path, const std::string& expected) {
    std::string content;
    for (int i = 0; i < 200; ++i) {
        content = std::filesystem::exists(path) ? read_file(path) : "";
        if (content == expected) break;
        std::this_thread::sleep_for(50ms);
    }
    return content;
}

}  // namespace

TEST_CASE("server.pid_file is written while serving and removed at exit, and a running trellis keeps it", "[service]") {
    TempDir dir;
    std::filesystem::create_directories(dir.path() / "run");
    const auto pid_file = dir.path() / "run" / "trellis.pid";
    PidServed first(dir, "first");
    REQUIRE(wait_until_listening(first.port, 20s));
    REQUIRE(wait_for_content(pid_file, std::to_string(first.process->pid()) + "\n") ==
            std::to_string(first.process->pid()) + "\n");
    CHECK_FALSE(std::filesystem::exists(dir.path() / "run" / ("trellis.pid.tmp." + std::to_string(first.process->pid()))));

    // A second server with the same pid file refuses to start, naming the first.
    PidServed second(dir, "second");
    REQUIRE(second.process->wait(20s) == 1);
    CHECK_THAT(second.process->output(), Contains("server.pid_file " + pid_file.string()) &&
                                             Contains("names process " + std::to_string(first.process->pid())) &&
                                             Contains("a running trellis"));
    CHECK(read_file(pid_file) == std::to_string(first.process->pid()) + "\n");

    first.process->signal(SIGTERM);
    REQUIRE(first.process->wait(20s) == 0);
    CHECK_FALSE(std::filesystem::exists(pid_file));
}

TEST_CASE("a stale server.pid_file is replaced, and one that holds no process id is refused", "[service]") {
    TempDir dir;
    std::filesystem::create_directories(dir.path() / "run");
    const auto pid_file = dir.path() / "run" / "trellis.pid";

    SECTION("a process that is gone") {
        Process gone({"/bin/true"}, {}, dir.path() / "true.log");
        REQUIRE(gone.wait(10s) == 0);
        dir.write("run/trellis.pid", std::to_string(gone.pid()) + "\n");
    }
    SECTION("a live process that is no trellis (this test)") {
        dir.write("run/trellis.pid", std::to_string(getpid()) + "\n");
    }
    PidServed served(dir, "served");
    INFO(served.process->output());
    REQUIRE(wait_until_listening(served.port, 20s));
    CHECK(wait_for_content(pid_file, std::to_string(served.process->pid()) + "\n") ==
          std::to_string(served.process->pid()) + "\n");
    served.process->signal(SIGTERM);
    REQUIRE(served.process->wait(20s) == 0);
    CHECK_FALSE(std::filesystem::exists(pid_file));
}

TEST_CASE("a server.pid_file that is no pid file, or in a missing directory, is refused", "[service]") {
    TempDir dir;
    std::filesystem::create_directories(dir.path() / "run");
    dir.write("run/trellis.pid", "not a pid\n");
    PidServed served(dir, "served");
    REQUIRE(served.process->wait(20s) == 1);
    CHECK_THAT(served.process->output(), Contains("holds no process id") && Contains("start-up failed"));
    CHECK(read_file(dir.path() / "run" / "trellis.pid") == "not a pid\n");

    // A directory that does not exist: serve refuses before loading anything, naming it.
    dir.write("missing.yaml", config_yaml("  alpha: {}\n", "server:\n  pid_file: nowhere/trellis.pid\n"));
    Process missing({TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / "missing.yaml").string()}, minimal_environment(),
                    dir.path() / "missing.log");
    REQUIRE(missing.wait(20s) == 1);
    CHECK_THAT(missing.output(), Contains("server.pid_file") && Contains("nowhere") && Contains("does not exist") &&
                                     Contains("start-up failed"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "nowhere"));
}
