// trellis_load_client: the clients of the event engine's load tests, run as a process of
// their own (tests/load/load_test.cpp starts it next to a `trellis serve` child). Plain POSIX
// sockets and epoll/poll on loopback, one request in flight per connection, HTTP/1.1 with
// Content-Length answers (what the hello route sends).
//
//   trellis_load_client idle    --port P --connections N [--fresh 20] [--server-pid PID]
//                               [--hold-seconds S] [--window 256]
//       opens up to N keep-alive connections (each sends one request, reads its answer and
//       stays idle), as many as both processes' file limits allow; reports the server's
//       VmRSS before and after; then times --fresh new connections doing one request each
//       (spread over --hold-seconds when given) and checks the idle ones are still open.
//   trellis_load_client steady  --port P --connections 256 --seconds 10
//       every connection sends its next request as soon as the previous one is answered;
//       per-connection counts of answers in each 1-second window, counted from the moment
//       every connection has had its first answer (warmup_ms after the start).
//   trellis_load_client trickle --port P --tricklers 500 --interval-ms 200 --requests 50
//                               [--spacing-ms 100] [--warmup-ms 1000]
//       the tricklers send a request head one byte per interval and never finish it, while
//       --requests fresh connections each do one request, --spacing-ms apart.
//   trellis_load_client hold    --port P --connections N --seconds S
//       connects N sockets that send nothing, prints `holding`, waits S seconds, closes them.
//
// Results are printed as `key=value` words, one group per line, for the tests to parse.
// Exit code 0 when the run itself could be carried out (the tests judge the figures), 2 on
// usage errors, 1 when the server could not be reached at all.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double ms_between(Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
}

// --key value pairs after the mode.
struct Args {
    std::map<std::string, std::string> values;

    long number(const std::string& key, long fallback) const {
        auto found = values.find(key);
        if (found == values.end()) return fallback;
        return std::strtol(found->second.c_str(), nullptr, 10);
    }
    std::string text(const std::string& key, const std::string& fallback) const {
        auto found = values.find(key);
        return found == values.end() ? fallback : found->second;
    }
};

// The soft limit raised to the hard one; returns the soft limit in force.
long raise_file_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    return static_cast<long>(limit.rlim_cur);
}

// The soft "Max open files" of another process, from /proc/PID/limits; 0 if unknown.
long process_file_limit(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("Max open files", 0) != 0) continue;
        std::istringstream words(line.substr(std::strlen("Max open files")));
        std::string soft;
        words >> soft;
        return soft == "unlimited" ? 1L << 30 : std::strtol(soft.c_str(), nullptr, 10);
    }
    return 0;
}

// VmRSS of a process in KiB; 0 if unknown.
long process_rss_kib(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

// A non-blocking socket whose connect to 127.0.0.1:port is under way (or done); -1 on error.
int start_connect(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 && errno != EINPROGRESS) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool connect_finished_ok(int fd) {
    int error = 0;
    socklen_t length = sizeof error;
    return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0;
}

std::string request_for(const std::string& target, bool close = false) {
    return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: trellis-load\r\n" +
           (close ? "Connection: close\r\n" : "") + "\r\n";
}

// Reads HTTP/1.1 responses framed by Content-Length out of the bytes received so far.
class ResponseReader {
public:
    void add(const char* data, std::size_t size) { buffer_.append(data, size); }

    // The status of the next complete response (and consumes it), 0 when more bytes are
    // needed, -1 when the bytes are not a response this client understands.
    int next() {
        auto end = buffer_.find("\r\n\r\n");
        if (end == std::string::npos) return buffer_.size() > 65536 ? -1 : 0;
        if (buffer_.rfind("HTTP/1.", 0) != 0 || buffer_.size() < 12) return -1;
        int status = std::atoi(buffer_.c_str() + 9);
        std::size_t length = 0;
        std::string head = buffer_.substr(0, end);
        for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (head.find("\r\ntransfer-encoding:") != std::string::npos) return -1;
        if (auto at = head.find("\r\ncontent-length:"); at != std::string::npos)
            length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
        if (buffer_.size() < end + 4 + length) return 0;
        buffer_.erase(0, end + 4 + length);
        return status;
    }

private:
    std::string buffer_;
};

struct Latencies {
    std::vector<double> ms;

    void print(const char* name) const {
        std::vector<double> sorted = ms;
        std::sort(sorted.begin(), sorted.end());
        auto at = [&](double q) {
            if (sorted.empty()) return 0.0;
            auto index = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
            return sorted[std::min(index, sorted.size() - 1)];
        };
        std::printf("%s_count=%zu %s_p50_ms=%.2f %s_p99_ms=%.2f %s_max_ms=%.2f\n", name, sorted.size(), name,
                    at(0.5), name, at(0.99), name, sorted.empty() ? 0.0 : sorted.back());
    }
};

// One request on a fresh connection, with a deadline for the whole exchange. The time from
// connect to the full answer in ms, or nullopt (timeout, refused, closed, not 200).
std::optional<double> fresh_request(std::uint16_t port, const std::string& target, std::chrono::milliseconds timeout,
                                    std::string* why = nullptr) {
    auto start = Clock::now();
    auto deadline = start + timeout;
    auto fail = [&](const char* reason, int fd) -> std::optional<double> {
        if (why) *why = reason;
        if (fd >= 0) ::close(fd);
        return std::nullopt;
    };
    int fd = start_connect(port);
    if (fd < 0) return fail("socket/connect failed", -1);
    auto wait_for = [&](short events) {
        while (true) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (left <= 0) return false;
            pollfd p{fd, events, 0};
            int n = ::poll(&p, 1, static_cast<int>(left));
            if (n > 0) return true;
            if (n < 0 && errno != EINTR) return false;
        }
    };
    if (!wait_for(POLLOUT)) return fail("connect timed out", fd);
    if (!connect_finished_ok(fd)) return fail("connect refused", fd);
    std::string request = request_for(target);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
        return fail("send failed", fd);
    ResponseReader reader;
    char buffer[4096];
    while (true) {
        if (!wait_for(POLLIN)) return fail("no answer in time", fd);
        ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
        if (got == 0) return fail("closed without an answer", fd);
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return fail("reset", fd);
        }
        reader.add(buffer, static_cast<std::size_t>(got));
        int status = reader.next();
        if (status < 0) return fail("unreadable answer", fd);
        if (status == 0) continue;
        double elapsed = ms_between(start, Clock::now());
        ::close(fd);
        if (status != 200) return fail("status not 200", -1);
        return elapsed;
    }
}

// `count` fresh requests, one every `spacing`; prints each failure and the latencies.
// Returns how many were answered within `limit`.
int fresh_requests(const char* name, std::uint16_t port, const std::string& target, int count,
                   std::chrono::milliseconds spacing, std::chrono::milliseconds limit) {
    Latencies latencies;
    int within = 0, failed = 0;
    auto next = Clock::now();
    for (int i = 0; i < count; ++i) {
        std::this_thread::sleep_until(next);
        next += spacing;
        std::string why;
        auto elapsed = fresh_request(port, target, 5s, &why);
        if (!elapsed) {
            ++failed;
            std::printf("%s_failure=%d reason=\"%s\"\n", name, i, why.c_str());
            continue;
        }
        latencies.ms.push_back(*elapsed);
        if (*elapsed <= static_cast<double>(limit.count())) ++within;
    }
    latencies.print(name);
    std::printf("%s_requests=%d %s_within_limit=%d %s_failed=%d %s_limit_ms=%lld\n", name, count, name, within, name,
                failed, name, static_cast<long long>(limit.count()));
    return within;
}

// Is the connection still open (nothing to read, no end of stream)?
bool still_open(int fd) {
    char byte;
    ssize_t got = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// ---- idle ----------------------------------------------------------------------------

int run_idle(const Args& args) {
    const auto port = static_cast<std::uint16_t>(args.number("port", 0));
    const long wanted = args.number("connections", 10000);
    const long fresh = args.number("fresh", 20);
    const long server_pid = args.number("server-pid", 0);
    const long window = std::max(1L, args.number("window", 256));
    const long hold_seconds = args.number("hold-seconds", 0);
    const std::string target = args.text("target", "/hello/idle");

    // Leave room for the process's own descriptors (and, on the server, its listeners,
    // loops, log files and the fresh connections).
    const long own_limit = raise_file_limit();
    const long server_limit = server_pid ? process_file_limit(server_pid) : 0;
    long allowed = std::min(wanted, own_limit - 64);
    if (server_limit > 0) allowed = std::min(allowed, server_limit - 128);
    allowed = std::max(0L, allowed);
    std::printf("client_file_limit=%ld server_file_limit=%ld wanted=%ld allowed=%ld\n", own_limit, server_limit,
                wanted, allowed);
    std::fflush(stdout);

    // Warm the server up once, then take its resident size.
    if (!fresh_request(port, target, 5s)) {
        std::printf("error=\"the server does not answer\"\n");
        return 1;
    }
    const long rss_before = server_pid ? process_rss_kib(server_pid) : 0;

    struct Conn {
        int fd = -1;
        int state = 0;  // 0 connecting, 1 reading the answer, 2 idle, 3 failed
        ResponseReader reader;
    };
    std::vector<Conn> conns(static_cast<std::size_t>(allowed));
    const std::string request = request_for(target);
    int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    long started = 0, in_flight = 0, reached = 0, failed = 0;
    std::map<std::string, long> failures;
    auto fail = [&](Conn& c, const char* why) {
        ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        c.fd = -1;
        c.state = 3;
        ++failed;
        --in_flight;
        ++failures[why];
    };
    const auto open_start = Clock::now();
    const auto open_deadline = open_start + std::chrono::seconds(30 + allowed / 500);
    std::vector<epoll_event> events(512);
    char buffer[4096];
    while ((started < allowed || in_flight > 0) && Clock::now() < open_deadline) {
        while (started < allowed && in_flight < window) {
            Conn& c = conns[static_cast<std::size_t>(started)];
            c.fd = start_connect(port);
            if (c.fd < 0) {
                c.state = 3;
                ++failed;
                ++failures[errno == EMFILE ? "client out of descriptors" : "socket/connect failed"];
                ++started;
                continue;
            }
            epoll_event event{};
            event.events = EPOLLOUT;
            event.data.u64 = static_cast<std::uint64_t>(started);
            ::epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &event);
            ++started;
            ++in_flight;
        }
        int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 100);
        for (int i = 0; i < n; ++i) {
            Conn& c = conns[events[static_cast<std::size_t>(i)].data.u64];
            if (c.state == 0) {
                if (!connect_finished_ok(c.fd)) {
                    fail(c, "connect refused");
                    continue;
                }
                if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
                    fail(c, "send failed");
                    continue;
                }
                c.state = 1;
                epoll_event event = events[static_cast<std::size_t>(i)];
                event.events = EPOLLIN;
                ::epoll_ctl(epoll, EPOLL_CTL_MOD, c.fd, &event);
                continue;
            }
            ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (got <= 0) {
                fail(c, got == 0 ? "closed without an answer" : "reset");
                continue;
            }
            c.reader.add(buffer, static_cast<std::size_t>(got));
            int status = c.reader.next();
            if (status == 0) continue;
            if (status != 200) {
                fail(c, "status not 200");
                continue;
            }
            ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
            c.state = 2;
            c.reader = {};
            --in_flight;
            ++reached;
        }
    }
    const double open_ms = ms_between(open_start, Clock::now());
    for (auto& c : conns)
        if (c.state < 2) {
            ::close(c.fd);
            c.fd = -1;
            c.state = 3;
            ++failed;
            ++failures["not answered before the deadline"];
        }
    ::close(epoll);
    std::printf("reached=%ld failed=%ld open_ms=%.0f\n", reached, failed, open_ms);
    for (const auto& [why, count] : failures) std::printf("open_failure=\"%s\" count=%ld\n", why.c_str(), count);
    std::fflush(stdout);

    // Let the server give back what it held for the requests, then measure again.
    std::this_thread::sleep_for(500ms);
    const long rss_after = server_pid ? process_rss_kib(server_pid) : 0;
    const double per_idle = reached > 0 ? static_cast<double>(rss_after - rss_before) * 1024.0 / static_cast<double>(reached) : 0;
    std::printf("rss_before_kib=%ld rss_after_kib=%ld rss_per_idle_connection_bytes=%.0f\n", rss_before, rss_after,
                per_idle);
    std::fflush(stdout);

    // New connections while the idle ones are held, spread over the hold time if any.
    auto spacing = hold_seconds > 0 && fresh > 0 ? std::chrono::milliseconds(hold_seconds * 1000 / fresh) : 50ms;
    fresh_requests("fresh", port, target, static_cast<int>(fresh), spacing, 1000ms);

    long open = 0;
    for (const auto& c : conns)
        if (c.state == 2 && still_open(c.fd)) ++open;
    // A second request on some of the idle connections: they are kept alive, not just open.
    long reused = 0, reuse_tried = 0;
    for (std::size_t i = 0; i < conns.size(); i += std::max<std::size_t>(1, conns.size() / 50)) {
        Conn& c = conns[i];
        if (c.state != 2) continue;
        ++reuse_tried;
        if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) continue;
        ResponseReader reader;
        auto deadline = Clock::now() + 5s;
        while (Clock::now() < deadline) {
            pollfd p{c.fd, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            ssize_t got = ::recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (got <= 0) break;
            reader.add(buffer, static_cast<std::size_t>(got));
            if (int status = reader.next(); status != 0) {
                if (status == 200) ++reused;
                break;
            }
        }
    }
    std::printf("still_open=%ld reused=%ld reuse_tried=%ld\n", open, reused, reuse_tried);
    for (auto& c : conns)
        if (c.fd >= 0) ::close(c.fd);
    std::printf("done\n");
    return 0;
}

// ---- steady --------------------------------------------------------------------------

int run_steady(const Args& args) {
    const auto port = static_cast<std::uint16_t>(args.number("port", 0));
    const long count = args.number("connections", 256);
    const long seconds = std::max(1L, args.number("seconds", 10));
    const std::string target = args.text("target", "/hello/steady");
    raise_file_limit();

    struct Conn {
        int fd = -1;
        bool open = true;
        bool waiting = false;  // a request is out
        Clock::time_point sent;
        ResponseReader reader;
        std::vector<long> windows;
        long answered = 0;
    };
    std::vector<Conn> conns(static_cast<std::size_t>(count));
    // Connect them all first: the run measures answers, not the handshake.
    for (auto& c : conns) {
        c.fd = start_connect(port);
        c.windows.assign(static_cast<std::size_t>(seconds), 0);
    }
    for (auto& c : conns) {
        pollfd p{c.fd, POLLOUT, 0};
        if (c.fd < 0 || ::poll(&p, 1, 5000) != 1 || !connect_finished_ok(c.fd)) {
            std::printf("error=\"a connection could not be opened\"\n");
            return 1;
        }
    }
    const std::string request = request_for(target);
    int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    for (std::size_t i = 0; i < conns.size(); ++i) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = i;
        ::epoll_ctl(epoll, EPOLL_CTL_ADD, conns[i].fd, &event);
    }
    Latencies latencies;
    latencies.ms.reserve(1 << 20);
    long errors = 0, bad_status = 0;
    std::string first_error = "none";
    auto send_next = [&](Conn& c) {
        c.sent = Clock::now();
        if (::send(c.fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
            c.open = false;
            if (errors++ == 0) first_error = std::string("send: ") + std::strerror(errno);
            return;
        }
        c.waiting = true;
    };
    std::vector<epoll_event> events(512);
    char buffer[16384];
    // Reads what a connection has; each complete answer goes to `answered(c, at)`.
    auto read_ready = [&](Conn& c, auto&& answered) {
        ssize_t got = ::recv(c.fd, buffer, sizeof buffer, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (got <= 0) {
            c.open = false;
            if (errors++ == 0) first_error = got == 0 ? "closed by the server" : std::strerror(errno);
            ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
            return;
        }
        c.reader.add(buffer, static_cast<std::size_t>(got));
        int status;
        while ((status = c.reader.next()) != 0) {
            if (status < 0) {
                c.open = false;
                if (errors++ == 0) first_error = "a malformed answer";
                ::epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);
                break;
            }
            if (status != 200) ++bad_status;
            c.waiting = false;
            answered(c, Clock::now());
        }
    };
    auto outstanding = [&] {
        return std::any_of(conns.begin(), conns.end(), [](const Conn& c) { return c.open && c.waiting; });
    };
    // Warm-up: the clock starts once every connection has had an answer (each answered one
    // goes on asking meanwhile, so that none idles into the keep-alive timeout). A finished
    // handshake on the client's side does not mean the server has accepted the connection:
    // when the kernel's accept queue is full, the handshake's last step is retried after
    // 1 s. The run measures the answers of accepted connections, not the listen backlog.
    const auto warmup_start = Clock::now();
    std::vector<bool> warmed(conns.size(), false);
    std::size_t cold = conns.size();
    for (auto& c : conns) send_next(c);
    while (cold > 0 && errors == 0 && Clock::now() < warmup_start + 10s) {
        int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 50);
        for (int i = 0; i < n; ++i) {
            const auto index = events[static_cast<std::size_t>(i)].data.u64;
            if (!conns[index].open) continue;
            read_ready(conns[index], [&](Conn& c, Clock::time_point) {
                if (!warmed[index]) {
                    warmed[index] = true;
                    --cold;
                }
                send_next(c);
            });
        }
    }
    const double warmup_ms = ms_between(warmup_start, Clock::now());
    if (cold > 0 || errors > 0) {
        std::printf("error=\"the warm-up request was not answered on every connection\" warmup_ms=%.1f cold=%zu "
                    "errors=%ld first_error=\"%s\"\n",
                    warmup_ms, cold, errors, first_error.c_str());
        return 1;
    }

    const auto start = Clock::now();
    const auto end = start + std::chrono::seconds(seconds);
    // After the run, what is still out gets up to 5 s to be answered.
    const auto last = end + 5s;
    auto measured = [&](Conn& c, Clock::time_point at) {
        ++c.answered;
        latencies.ms.push_back(ms_between(c.sent, at));
        auto window = std::chrono::duration_cast<std::chrono::seconds>(at - start).count();
        if (window < seconds) ++c.windows[static_cast<std::size_t>(window)];
        if (at < end) send_next(c);
    };
    while (true) {
        auto now = Clock::now();
        if (now >= last || (now >= end && !outstanding())) break;
        int n = ::epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 50);
        for (int i = 0; i < n; ++i) {
            Conn& c = conns[events[static_cast<std::size_t>(i)].data.u64];
            if (c.open) read_ready(c, measured);
        }
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    long total = 0, unanswered = 0, empty_windows = 0, starved_connections = 0, closed = 0;
    long min_window = -1;
    for (const auto& c : conns) {
        total += c.answered;
        if (c.waiting) ++unanswered;
        if (!c.open) ++closed;
        bool starved = false;
        for (long w : c.windows) {
            if (w == 0) {
                ++empty_windows;
                starved = true;
            }
            if (min_window < 0 || w < min_window) min_window = w;
        }
        if (starved) ++starved_connections;
    }
    ::close(epoll);
    for (auto& c : conns) ::close(c.fd);
    std::printf("connections=%ld seconds=%ld responses=%ld rate_per_s=%.0f elapsed_s=%.2f warmup_ms=%.1f\n", count, seconds,
                total, static_cast<double>(total) / static_cast<double>(seconds), elapsed, warmup_ms);
    std::printf("min_per_window=%ld empty_windows=%ld starved_connections=%ld unanswered=%ld closed=%ld errors=%ld "
                "bad_status=%ld first_error=\"%s\"\n",
                min_window, empty_windows, starved_connections, unanswered, closed, errors, bad_status, first_error.c_str());
    latencies.print("latency");
    std::printf("done\n");
    return 0;
}

// ---- trickle -------------------------------------------------------------------------

int run_trickle(const Args& args) {
    const auto port = static_cast<std::uint16_t>(args.number("port", 0));
    const long tricklers = args.number("tricklers", 500);
    const auto interval = std::chrono::milliseconds(args.number("interval-ms", 200));
    const long requests = args.number("requests", 50);
    const auto spacing = std::chrono::milliseconds(args.number("spacing-ms", 100));
    const auto warmup = std::chrono::milliseconds(args.number("warmup-ms", 1000));
    const std::string target = args.text("target", "/hello/probe");
    raise_file_limit();

    // A head that never ends: after the prefix, one more byte of the header value each time.
    const std::string prefix = "GET /hello/trickle HTTP/1.1\r\nHost: localhost\r\nX-Trickle: ";
    std::vector<int> fds(static_cast<std::size_t>(tricklers), -1);
    for (auto& fd : fds) fd = start_connect(port);
    long connected = 0;
    for (auto& fd : fds) {
        pollfd p{fd, POLLOUT, 0};
        if (fd >= 0 && ::poll(&p, 1, 5000) == 1 && connect_finished_ok(fd)) ++connected;
    }
    std::printf("tricklers=%ld connected=%ld interval_ms=%lld\n", tricklers, connected,
                static_cast<long long>(interval.count()));
    std::fflush(stdout);

    std::atomic<bool> stop{false};
    std::vector<long> sent(fds.size(), 0);
    std::vector<char> closed(fds.size(), 0);
    std::vector<char> answered(fds.size(), 0);
    const auto start = Clock::now();
    std::thread trickle([&] {
        // Trickler i sends at start + i * interval / N + k * interval.
        std::vector<Clock::time_point> due(fds.size());
        for (std::size_t i = 0; i < fds.size(); ++i)
            due[i] = start + interval * static_cast<long>(i) / static_cast<long>(fds.size());
        char buffer[1024];
        while (!stop) {
            auto now = Clock::now();
            for (std::size_t i = 0; i < fds.size(); ++i) {
                if (closed[i] || due[i] > now) continue;
                due[i] += interval;
                auto index = static_cast<std::size_t>(sent[i]);
                char byte = index < prefix.size() ? prefix[index] : 'a';
                if (::send(fds[i], &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
                    ++sent[i];
                } else if (errno != EAGAIN) {
                    closed[i] = 1;
                    continue;
                }
                // Anything from the server (a 408, an end of stream) ends the trickler.
                ssize_t got = ::recv(fds[i], buffer, sizeof buffer, MSG_DONTWAIT);
                if (got > 0) answered[i] = 1;
                if (got >= 0 || errno != EAGAIN) closed[i] = 1;
            }
            std::this_thread::sleep_for(5ms);
        }
    });

    std::this_thread::sleep_for(warmup);
    fresh_requests("probe", port, target, static_cast<int>(requests), spacing, 1000ms);
    const double run_s = std::chrono::duration<double>(Clock::now() - start).count();
    stop = true;
    trickle.join();

    long still = 0, closed_count = 0, answered_count = 0, min_sent = -1, max_sent = 0;
    for (std::size_t i = 0; i < fds.size(); ++i) {
        if (fds[i] < 0) continue;
        if (!closed[i] && still_open(fds[i])) ++still;
        if (closed[i]) ++closed_count;
        if (answered[i]) ++answered_count;
        if (min_sent < 0 || sent[i] < min_sent) min_sent = sent[i];
        max_sent = std::max(max_sent, sent[i]);
        ::close(fds[i]);
    }
    std::printf("tricklers_still_open=%ld tricklers_closed=%ld tricklers_answered=%ld bytes_min=%ld bytes_max=%ld "
                "run_s=%.2f\n",
                still, closed_count, answered_count, min_sent, max_sent, run_s);
    std::printf("done\n");
    return 0;
}

// ---- hold ----------------------------------------------------------------------------

int run_hold(const Args& args) {
    const auto port = static_cast<std::uint16_t>(args.number("port", 0));
    const long count = args.number("connections", 200);
    const long seconds = args.number("seconds", 5);
    raise_file_limit();
    std::vector<int> fds;
    for (long i = 0; i < count; ++i) fds.push_back(start_connect(port));
    long connected = 0;
    for (int fd : fds) {
        pollfd p{fd, POLLOUT, 0};
        if (fd >= 0 && ::poll(&p, 1, 5000) == 1 && connect_finished_ok(fd)) ++connected;
    }
    std::printf("connected=%ld\nholding\n", connected);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    long open = 0;
    for (int fd : fds)
        if (fd >= 0 && still_open(fd)) ++open;
    for (int fd : fds)
        if (fd >= 0) ::close(fd);
    std::printf("open_at_end=%ld\nclosed\n", open);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    if (argc < 2 || (argc - 2) % 2 != 0) {
        std::fprintf(stderr, "usage: trellis_load_client idle|steady|trickle|hold --port P [--key value]...\n");
        return 2;
    }
    Args args;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string key = argv[i];
        if (key.rfind("--", 0) != 0) {
            std::fprintf(stderr, "trellis_load_client: expected --key, got '%s'\n", argv[i]);
            return 2;
        }
        args.values[key.substr(2)] = argv[i + 1];
    }
    if (args.number("port", 0) <= 0) {
        std::fprintf(stderr, "trellis_load_client: --port is required\n");
        return 2;
    }
    const std::string mode = argv[1];
    if (mode == "idle") return run_idle(args);
    if (mode == "steady") return run_steady(args);
    if (mode == "trickle") return run_trickle(args);
    if (mode == "hold") return run_hold(args);
    std::fprintf(stderr, "trellis_load_client: unknown mode '%s'\n", mode.c_str());
    return 2;
}
