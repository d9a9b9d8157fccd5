// Logs as an admin reads them, from the real trellis binary: request and trace ids on every
// line of a request, JSON access lines, escaping, per-plugin levels, reopening on SIGUSR1,
// a stalled stderr that never stalls requests, and no secret in any line or CLI output.
#include <catch2/catch.hpp>

#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

// A trellis serve child with its config in a temporary folder; `logging` and other top-level
// sections come first, `plugins` are entries under plugins:.
struct Served {
    TempDir dir;
    std::uint16_t port = free_port();
    std::uint16_t admin_port = free_port();
    std::unique_ptr<Process> process;

    // `server` holds more lines for the server: section (indented by the caller).
    Served(const std::string& top, const std::string& plugins, int stderr_fd = -1, const std::string& server = "") {
        write_config(top, plugins, server);
        auto env = minimal_environment();
        env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
        env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(admin_port));
        process = std::make_unique<Process>(
            std::vector<std::string>{TRELLIS_TEST_BINARY, "serve", "-c", config_path().string()}, env,
            dir.path() / "output.log", stderr_fd);
    }
    std::filesystem::path config_path() const { return dir.path() / "trellis.yaml"; }
    std::filesystem::path log_path() const { return dir.path() / "trellis.log"; }
    void write_config(const std::string& top, const std::string& plugins, const std::string& server = "") const {
        dir.write("trellis.yaml",
                  "server:\n  data_dir: " + dir.path().string() + "\n" + server + config_yaml(plugins, top));
    }
    std::string log() const { return read_file(log_path()); }
    // SIGTERM and a clean exit: every line is written by then.
    void stop() {
        process->signal(SIGTERM);
        REQUIRE(process->wait(30s) == 0);
    }
};

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// Waits until `path` holds `needle` (the writer thread writes within about 100 ms).
bool wait_for_text(const std::filesystem::path& path, const std::string& needle, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (std::filesystem::exists(path) && read_file(path).find(needle) != std::string::npos) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
const std::string traceparent = "00-" + trace_id + "-00f067aa0ba902b7-01";

}  // namespace

TEST_CASE("every JSON line of one request carries its request id and trace id as keys", "[logging]") {
    Served s("logging:\n  level: debug\n  format: json\n  output: trellis.log\n", "  alpha: {}\n");
    REQUIRE(wait_until_listening(s.port, 10s));
    // One request that logs from the plugin, fails a statement in the database layer and so
    // makes the host log the failed handler, then writes its access line.
    auto r = http_request(s.port, "GET",
                          "/alpha/log?message=from%20the%20plugin&sql=SELECT%20nope%20FROM%20missing%20WHERE%20x%20%3D%20:hidden",
                          {}, {{"X-Request-ID", "req-one"}, {"traceparent", traceparent}, {"X-Bind-Value", "v1"},
                               {"User-Agent", "log-test/1.0"}});
    CHECK(r.status == 500);
    CHECK(r.header("X-Request-ID") == "req-one");
    REQUIRE(r.header("traceparent"));
    CHECK(r.header("traceparent")->starts_with("00-" + trace_id + "-"));
    CHECK(*r.header("traceparent") != traceparent);  // this server's own span id
    s.stop();

    std::set<std::string> loggers;
    json access;
    for (const auto& line : lines_of(s.log())) {
        INFO(line);
        json parsed;
        REQUIRE_NOTHROW(parsed = json::parse(line));
        CHECK(parsed.contains("time"));
        CHECK(parsed.contains("level"));
        CHECK(parsed.contains("message"));
        if (parsed.value("request_id", "") != "req-one") continue;
        CHECK(parsed["trace_id"] == trace_id);
        loggers.insert(parsed["logger"].get<std::string>());
        if (parsed["logger"] == "access") access = parsed;
        if (parsed["logger"] == "alpha") CHECK(parsed["message"] == "from the plugin");
    }
    CHECK(loggers == std::set<std::string>{"access", "alpha", "database", "trellis"});
    REQUIRE(access.is_object());
    CHECK(access["method"] == "GET");
    CHECK(access["path"] == "/alpha/log");
    CHECK(access["route"] == "/alpha/log");
    CHECK(access["status"] == 500);
    CHECK(access["bytes"].is_number_integer());
    CHECK(access["duration_ms"].is_number());
    CHECK(access["client_address"].get<std::string>().starts_with("127.0.0.1"));
    CHECK(access["user_agent"] == "log-test/1.0");
    CHECK(access["request_id"] == "req-one");
    CHECK(access["trace_id"] == trace_id);
}

TEST_CASE("a malformed traceparent is replaced, never echoed, and the attribute reaches plugins", "[logging]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    auto r = server.get("/alpha/attributes", {{"traceparent", "00-evil-header-" + std::string(40, 'f')}});
    REQUIRE(r.status == 200);
    const std::string sent = r.json()["attributes"]["trellis.traceparent"].get<std::string>();
    CHECK(sent.size() == 55);
    CHECK(sent.find("evil") == std::string::npos);
    REQUIRE(r.header("traceparent"));
    CHECK(r.header("traceparent")->substr(0, 35) == sent.substr(0, 35));  // the same new trace
    CHECK(r.header("traceparent")->find("evil") == std::string::npos);
}

TEST_CASE("the JSON access line of an unmatched request has route null and stays valid for any bytes", "[logging]") {
    Served s("logging:\n  format: json\n  output: trellis.log\n", "  alpha: {}\n");
    REQUIRE(wait_until_listening(s.port, 10s));
    // Invalid UTF-8 and control characters in the user agent and the decoded message.
    raw_request(s.port, "GET /nowhere HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bad \xff\xfe \"q\" \\\r\n"
                        "X-Request-ID: req-raw\r\nConnection: close\r\n\r\n");
    http_request(s.port, "GET", "/alpha/log?message=%1B%00%FF%0A", {}, {{"X-Request-ID", "req-ctl"}});
    s.stop();
    bool saw_unmatched = false, saw_control = false;
    for (const auto& line : lines_of(s.log())) {
        INFO(line);
        json parsed;
        REQUIRE_NOTHROW(parsed = json::parse(line));
        if (parsed.value("request_id", "") == "req-raw" && parsed["logger"] == "access") {
            saw_unmatched = true;
            CHECK(parsed["route"].is_null());
            CHECK(parsed["status"] == 404);
            CHECK(parsed["user_agent"].get<std::string>().find("\"q\"") != std::string::npos);
        }
        if (parsed.value("request_id", "") == "req-ctl" && parsed["logger"] == "alpha") {
            saw_control = true;
            CHECK(parsed["message"].get<std::string>().starts_with(std::string("\x1b\0", 2)));
        }
    }
    CHECK(saw_unmatched);
    CHECK(saw_control);
}

TEST_CASE("the text log escapes ESC, CR, LF, NUL and quotes that came with a request", "[logging]") {
    Served s("logging:\n  output: trellis.log\n", "  alpha: {}\n");
    REQUIRE(wait_until_listening(s.port, 10s));
    // Percent-decoded by the host: the plugin logs ESC, CR, LF and NUL as they arrived.
    http_request(s.port, "GET", "/alpha/log?message=%1B%5B31mred%0D%0Afake%20line%00end", {},
                 {{"X-Request-ID", "req-esc"}});
    // Raw bytes over a socket: a quote and a backslash in the user agent, ESC in the target.
    const std::string answer =
        raw_request(s.port, "GET /alpha/log?message=%1B HTTP/1.1\r\nHost: localhost\r\n"
                            "User-Agent: evil\" \"injected\\\r\nX-Request-ID: req-quote\r\nConnection: close\r\n\r\n");
    CHECK(answer.starts_with("HTTP/1.1 200"));
    s.stop();
    const std::string log = s.log();
    CHECK_THAT(log, Contains("[alpha] \\x1B[31mred\\x0D\\x0Afake line\\x00end id=req-esc trace_id="));
    CHECK_THAT(log, Contains("\"evil\\x22 \\x22injected\\x5C\" id=req-quote"));
    CHECK(log.find('\x1b') == std::string::npos);
    CHECK(log.find('\r') == std::string::npos);
    CHECK(log.find('\0') == std::string::npos);
    for (const auto& line : lines_of(log)) CHECK_THAT(line, !Contains("fake line") || Contains("red\\x0D\\x0Afake"));
}

TEST_CASE("logging.levels sets one plugin to debug, and a reload changes it", "[logging]") {
    // No access log: its lines would show the messages in their query strings.
    Served s("logging:\n  output: trellis.log\n  access_log: false\n  levels: {alpha: debug}\n",
             "  alpha: {}\n  beta: {}\n");
    REQUIRE(wait_until_listening(s.port, 10s));
    CHECK(http_request(s.port, "GET", "/alpha/log?level=debug&message=alpha-debug-1").status == 200);
    CHECK(http_request(s.port, "GET", "/beta/log?level=debug&message=beta-debug-1").status == 200);
    CHECK(http_request(s.port, "GET", "/beta/log?level=info&message=beta-info-1").status == 200);
    REQUIRE(wait_for_text(s.log_path(), "beta-info-1", 5s));

    s.write_config("logging:\n  output: trellis.log\n  access_log: false\n  levels: {beta: debug}\n",
                   "  alpha: {}\n  beta: {}\n");
    s.process->signal(SIGHUP);
    REQUIRE(wait_for_text(s.log_path(), "reloaded", 10s));
    CHECK(http_request(s.port, "GET", "/alpha/log?level=debug&message=alpha-debug-2").status == 200);
    CHECK(http_request(s.port, "GET", "/beta/log?level=debug&message=beta-debug-2").status == 200);
    s.stop();
    const std::string log = s.log();
    CHECK_THAT(log, Contains("[alpha] alpha-debug-1"));
    CHECK_THAT(log, !Contains("beta-debug-1"));
    CHECK_THAT(log, Contains("[beta] beta-info-1"));
    CHECK_THAT(log, !Contains("alpha-debug-2"));
    CHECK_THAT(log, Contains("[beta] beta-debug-2"));
}

TEST_CASE("a log file moved away is reopened on SIGUSR1, and the access log may have its own", "[logging]") {
    Served s("logging:\n  output: trellis.log\n  access_output: access.log\n", "  alpha: {}\n");
    REQUIRE(wait_until_listening(s.port, 10s));
    CHECK(http_request(s.port, "GET", "/alpha/log?message=before-rotation").status == 200);
    REQUIRE(wait_for_text(s.log_path(), "before-rotation", 5s));
    REQUIRE(wait_for_text(s.dir.path() / "access.log", "/alpha/log?message=before-rotation", 5s));
    std::filesystem::rename(s.log_path(), s.dir.path() / "trellis.log.1");
    std::filesystem::rename(s.dir.path() / "access.log", s.dir.path() / "access.log.1");
    s.process->signal(SIGUSR1);
    REQUIRE(wait_for_text(s.log_path(), "received SIGUSR1", 5s));
    CHECK(http_request(s.port, "GET", "/alpha/log?message=after-rotation").status == 200);
    s.stop();
    const std::string old_log = read_file(s.dir.path() / "trellis.log.1"), new_log = s.log();
    CHECK_THAT(old_log, Contains("before-rotation") && !Contains("after-rotation"));
    CHECK_THAT(new_log, Contains("[alpha] after-rotation") && !Contains("before-rotation"));
    CHECK_THAT(new_log, !Contains("[access]"));  // on its own output
    const std::string new_access = read_file(s.dir.path() / "access.log");
    CHECK_THAT(new_access, Contains("/alpha/log?message=after-rotation") && !Contains("before-rotation"));
    CHECK_THAT(read_file(s.dir.path() / "access.log.1"), Contains("before-rotation"));
}

TEST_CASE("with stderr a pipe nobody reads, requests and /livez keep answering and lines are dropped", "[logging]") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    Served s("logging:\n  buffer_size: 16KiB\n", "  alpha: {}\n", fds[1]);
    ::close(fds[1]);
    REQUIRE(wait_until_listening(s.port, 10s));
    const std::string payload(300, 'x');
    const auto started = std::chrono::steady_clock::now();
    int answered = 0;
    for (int i = 0; i < 1500; ++i) {
        if (http_request(s.port, "GET", "/alpha/log?message=" + payload).status == 200) ++answered;
        if (i % 100 == 0) CHECK(http_request(s.admin_port, "GET", "/livez").status == 200);
    }
    CHECK(answered == 1500);
    CHECK(std::chrono::steady_clock::now() - started < 60s);
    CHECK(http_request(s.admin_port, "GET", "/livez").status == 200);
    // The drops are counted as they happen, and /metrics shows the count.
    const auto metrics = http_request(s.admin_port, "GET", "/metrics");
    REQUIRE(metrics.status == 200);
    const auto counter = metrics.body.find("\ntrellis_log_lines_dropped_total ");
    REQUIRE(counter != std::string::npos);
    CHECK(std::stod(metrics.body.substr(counter + std::string("\ntrellis_log_lines_dropped_total ").size())) > 0);

    // Now read the pipe: the writer catches up, and the next line reports the drops.
    std::mutex seen_mutex;
    std::string seen;
    const auto seen_so_far = [&] {
        std::lock_guard lock(seen_mutex);
        return seen;
    };
    std::atomic<bool> stop_reading{false};
    std::thread reader([&] {
        char buffer[65536];
        while (!stop_reading) {
            pollfd p{fds[0], POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            ssize_t n = ::read(fds[0], buffer, sizeof buffer);
            if (n <= 0) break;
            std::lock_guard lock(seen_mutex);
            seen.append(buffer, static_cast<std::size_t>(n));
        }
    });
    std::this_thread::sleep_for(500ms);
    CHECK(http_request(s.port, "GET", "/alpha/log?message=after-the-stall").status == 200);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(100ms);
        if (seen_so_far().find("after-the-stall") != std::string::npos) break;  // written after the notice
    }
    s.stop();
    stop_reading = true;
    reader.join();
    ::close(fds[0]);
    INFO(seen.substr(seen.size() > 2000 ? seen.size() - 2000 : 0));
    REQUIRE_THAT(seen, Contains("after-the-stall"));
    const auto notice = seen.find(" log lines dropped");
    REQUIRE(notice != std::string::npos);
    const auto number_start = seen.find_last_not_of("0123456789", notice - 1) + 1;
    CHECK(std::stoull(seen.substr(number_start, notice - number_start)) > 0);
}

TEST_CASE("no secret reaches a log line or the CLI's output", "[logging][secrets]") {
    const std::string db_password = "DbPw-Secret-1", plugin_secret = "Plugin-Secret-2", bound_secret = "Bound-Secret-3",
                      admin_token = "Admin-Token-4";
    const auto no_secret = [&](const std::string& text) {
        INFO(text);
        CHECK(text.find(admin_token) == std::string::npos);
        CHECK(text.find(db_password) == std::string::npos);
        CHECK(text.find(plugin_secret) == std::string::npos);
        CHECK(text.find(bound_secret) == std::string::npos);
    };
    const auto check_json = [&](const Served& s) {
        TempDir out;
        Process check({TRELLIS_TEST_BINARY, "check", "--json", "-c", s.config_path().string()}, minimal_environment(),
                      out.path() / "check.out");
        REQUIRE(check.wait(30s));
        no_secret(check.output());
        return check.output();
    };

    // Connections open on first use: a request that needs the database makes the pool connect
    // and log why it cannot.
    const auto use_database = [&](Served& s) {
        REQUIRE(wait_until_listening(s.port, 10s));
        auto r = http_request(s.port, "GET", "/alpha/db/ping");
        CHECK(r.status == 503);
        no_secret(r.body);
        s.stop();
    };

    SECTION("a libpq connection string that libpq cannot parse") {
        // libpq quotes the whole URI in this error.
        Served s("logging:\n  level: debug\n  output: trellis.log\ndatabase:\n  url: postgresql://trellis:" + db_password +
                     "@[::1/trellis\n",
                 "  alpha: {}\n");
        use_database(s);
        const std::string log = s.log() + s.process->output();
        CHECK_THAT(log, Contains("postgresql://trellis:***@"));
        no_secret(log);
        check_json(s);
    }
    SECTION("a keyword connection string with the password in a bad option") {
        Served s("logging:\n  level: debug\n  output: trellis.log\ndatabase:\n  url: host=127.0.0.1 dbname=x password" +
                     db_password + "=1\n",
                 "  alpha: {}\n");
        use_database(s);
        no_secret(s.log() + s.process->output());
        check_json(s);
    }
    SECTION("a schema type error on a writeOnly secret") {
        Served s("logging:\n  level: debug\n  output: trellis.log\n",
                 "  alpha:\n    required: true\n    config: {api_secret: [" + plugin_secret + "]}\n");
        CHECK(s.process->wait(20s) == 1);  // a required plugin that fails stops start-up
        const std::string log = s.log() + s.process->output();
        CHECK_THAT(log, Contains("api_secret"));
        no_secret(log);
        CHECK_THAT(check_json(s), Contains("api_secret"));
    }
    SECTION("a failing statement with a bound secret, with the plugin's secret configured") {
        Served s("logging:\n  level: debug\n  output: trellis.log\n",
                 "  alpha:\n    config:\n      api_secret: " + plugin_secret +
                     "\n      migrations: [{version: 1, up: \"CREATE TABLE t (v TEXT CHECK (length(v) < 3))\"}]\n");
        REQUIRE(wait_until_listening(s.port, 10s));
        // Fails while executing, with the secret bound: SOCI names bound values in that error.
        auto r = http_request(s.port, "GET", "/alpha/log?sql=INSERT%20INTO%20t%20VALUES%20(:hidden)", {},
                              {{"X-Bind-Value", bound_secret}});
        CHECK(r.status >= 400);
        no_secret(r.body);
        s.stop();
        const std::string log = s.log() + s.process->output();
        CHECK_THAT(log, Contains("[database] statement failed: ") && Contains("CHECK constraint failed"));
        no_secret(log);
        check_json(s);
    }
    SECTION("a wrong admin token and /admin/config, with the three secrets configured") {
        TempDir secrets;
        const auto token_file = secrets.write("admin.token", admin_token + "\n");
        Served s("logging:\n  level: debug\n  output: trellis.log\ndatabase:\n  url: postgresql://trellis:" +
                     db_password + "@127.0.0.1:1/trellis\n",
                 "  alpha:\n    config: {api_secret: " + plugin_secret + "}\n", -1,
                 "  admin_token_file: " + token_file.string() + "\n");
        REQUIRE(wait_until_listening(s.admin_port, 10s));
        auto refused = http_request(s.admin_port, "GET", "/admin/config", {}, {{"Authorization", "Bearer wrong-" + admin_token}});
        CHECK(refused.status == 401);
        no_secret(refused.body);
        auto shown = http_request(s.admin_port, "GET", "/admin/config", {}, {{"Authorization", "Bearer " + admin_token}});
        CHECK(shown.status == 200);
        CHECK_THAT(shown.body, Contains("api_secret") && Contains("***"));
        no_secret(shown.body);
        s.stop();
        no_secret(s.log() + s.process->output());
        check_json(s);
    }
    SECTION("a wrong password against a real PostgreSQL") {
        const std::string server = postgres_server();
        if (server.empty()) {
            SUCCEED("no PostgreSQL for this pass (TRELLIS_TEST_POSTGRES unset)");
            return;
        }
        // A role that must give its password (tests/support/postgres.sh asks every role but
        // postgres for one), and a url with the wrong one:
        // postgresql://postgres@host:port -> postgresql://ROLE:WRONG@host:port/postgres
        const std::string role = "trellis_secret_" + std::to_string(::getpid());
        postgres_admin(server, "DROP ROLE IF EXISTS " + role);
        postgres_admin(server, "CREATE ROLE " + role + " LOGIN PASSWORD 'the-right-one'");
        std::string url = server;
        url.replace(url.find("://") + 3, url.find('@') - url.find("://") - 3, role + ":" + db_password);
        Served s("logging:\n  level: debug\n  output: trellis.log\ndatabase:\n  url: " + url + "/postgres\n",
                 "  alpha: {}\n");
        use_database(s);
        const std::string log = s.log() + s.process->output();
        CHECK_THAT(log, Contains("password authentication failed"));
        no_secret(log);
        check_json(s);
        postgres_admin(server, "DROP ROLE " + role);
    }
}
