// Tests for config loading: real files in a fresh directory per test, merged with conf.d
// drop-ins and TRELLIS_* variables, and the exact errors (with file:line:column) an admin sees.
#include "config/config.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include <sched.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using trellis::config::Config;
using trellis::config::EngineKind;
using trellis::config::Errors;
using trellis::config::load;
using trellis::config::LoadOptions;
using trellis::test::TempDir;
using Environment = std::vector<std::pair<std::string, std::string>>;

std::shared_ptr<const Config> load_ok(const fs::path& main_file, Environment environment = {}) {
    auto result = load(LoadOptions{main_file, std::move(environment)});
    if (!result) {
        for (const auto& error : result.error()) UNSCOPED_INFO(error);
    }
    REQUIRE(result);
    return *result;
}

Errors load_errors(const fs::path& main_file, Environment environment = {}) {
    auto result = load(LoadOptions{main_file, std::move(environment)});
    REQUIRE_FALSE(result);
    return result.error();
}

// The only error that loading `yaml` (with `environment`) reports.
std::string single_error(const std::string& yaml, Environment environment = {}) {
    TempDir dir;
    const Errors errors = load_errors(dir.write("trellis.yaml", yaml), std::move(environment));
    REQUIRE(errors.size() == 1);
    return errors.front();
}

// The reason given for one bad `server.<key>` value on line 2. A scalar is reported at its
// own column; a list, map or empty value at its key's (column 3).
std::string server_value_error(const std::string& key, const std::string& value, std::size_t column = 0) {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "server:\n  " + key + ": " + value + "\n");
    const Errors errors = load_errors(main);
    REQUIRE(errors.size() == 1);
    const std::string prefix =
        main.string() + ":2:" + std::to_string(column != 0 ? column : key.size() + 5) + ": key 'server." + key + "': ";
    REQUIRE(errors.front().starts_with(prefix));
    return errors.front().substr(prefix.size());
}

// The CPUs in this thread's affinity mask, as the loader should count them.
int affinity_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
    return CPU_COUNT(&set);
}

// Pins the calling thread to its first allowed CPU, as `taskset -c N` would, until destroyed.
class PinnedToOneCpu {
public:
    PinnedToOneCpu() {
        CPU_ZERO(&saved_);
        REQUIRE(sched_getaffinity(0, sizeof saved_, &saved_) == 0);
        cpu_set_t one;
        CPU_ZERO(&one);
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            if (CPU_ISSET(cpu, &saved_)) {
                CPU_SET(cpu, &one);
                break;
            }
        }
        REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    }
    ~PinnedToOneCpu() { sched_setaffinity(0, sizeof saved_, &saved_); }
    PinnedToOneCpu(const PinnedToOneCpu&) = delete;
    PinnedToOneCpu& operator=(const PinnedToOneCpu&) = delete;

private:
    cpu_set_t saved_;
};

}  // namespace

TEST_CASE("an empty file gives every default", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "");
    const auto config = load_ok(main);

    CHECK(config->server.listen.text() == "127.0.0.1:8080");
    CHECK(config->server.admin_listen.text() == "127.0.0.1:9180");
    CHECK(config->server.admin_enabled);
    CHECK(config->server.max_threads == 512);
    CHECK(config->server.max_queued == 1024);
    CHECK(config->server.keep_alive_timeout == std::chrono::milliseconds(5000));
    CHECK(config->server.max_keep_alive_requests == 1000);
    CHECK(config->server.max_body_bytes == 1024 * 1024);
    CHECK(config->server.engine == EngineKind::event);
    CHECK(config->server.io_threads == std::min(affinity_cpus(), 256));
    CHECK(config->server.workers == 16);
    CHECK(config->server.worker_queue == 1024);
    CHECK(config->server.max_connections == 16384);
    CHECK(config->server.header_timeout == std::chrono::milliseconds(10000));
    CHECK(config->server.body_timeout == std::chrono::milliseconds(60000));
    CHECK(config->server.send_timeout == std::chrono::milliseconds(60000));
    CHECK(config->server.max_header_bytes == 16 * 1024);
    CHECK(config->server.max_headers == 100);
    CHECK(config->server.max_uri_bytes == 8 * 1024);
    CHECK(config->server.inline_warn == std::chrono::milliseconds(5));
    CHECK(config->logging.level == "info");
    CHECK(config->logging.format == "text");
    CHECK(config->logging.access_log);
    CHECK(config->middleware.empty());
    CHECK(config->plugin_search_paths == std::vector<std::filesystem::path>{"/usr/lib/trellis/plugins"});
    CHECK(config->plugins.empty());
    CHECK(config->sources == std::vector<std::string>{main.string()});
}

TEST_CASE("a file of comments or with empty sections also gives the defaults", "[config]") {
    TempDir dir;
    CHECK(load_ok(dir.write("a.yaml", "# nothing yet\n"))->server.max_threads == 512);
    const auto config = load_ok(dir.write("b.yaml", "server:\nlogging:\nmiddleware:\nplugins:\n"));
    CHECK(config->server.listen.port == 8080);
    CHECK(config->middleware.empty());
    CHECK(config->plugins.empty());
}

TEST_CASE("a full valid file sets every key", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(server:
  listen: "[::1]:8081"
  admin_listen: 0.0.0.0:9000
  admin_enabled: no
  max_threads: 64
  max_queued: 100
  keep_alive_timeout: 2s
  max_keep_alive_requests: 0
  max_body_bytes: 2MiB
logging:
  level: debug
  format: json
  access_log: false
middleware: [cors, auth.jwt]
plugins:
  search_paths: [/usr/lib/trellis/plugins/]
  zeta:
  hello:
    enabled: true
    required: yes
    mount: /greet
    middleware: [auth.jwt]
    config:
      greeting: Hello
      count: 3
      negative: -7
      ratio: 0.5
      exponent: +1e3
      quoted: "42"
      single: 'true'
      signs: +-5
      flag: true
      off_is_text: off
      nothing: ~
      list: [a, 1, False]
      nested: {x: -7, "a/b": NULL}
)");
    const auto config = load_ok(main);

    CHECK(config->server.listen.host == "::1");
    CHECK(config->server.listen.port == 8081);
    CHECK(config->server.listen.text() == "[::1]:8081");
    CHECK(config->server.admin_listen.text() == "0.0.0.0:9000");
    CHECK_FALSE(config->server.admin_enabled);
    CHECK(config->server.max_threads == 64);
    CHECK(config->server.max_queued == 100);
    CHECK(config->server.keep_alive_timeout == std::chrono::milliseconds(2000));
    CHECK(config->server.max_keep_alive_requests == 0);
    CHECK(config->server.max_body_bytes == 2 * 1024 * 1024);
    CHECK(config->logging.level == "debug");
    CHECK(config->logging.format == "json");
    CHECK_FALSE(config->logging.access_log);
    CHECK(config->middleware == std::vector<std::string>{"cors", "auth.jwt"});
    CHECK(config->plugin_search_paths == std::vector<fs::path>{"/usr/lib/trellis/plugins"});

    REQUIRE(config->plugins.size() == 2);
    CHECK(config->plugins[0].name == "hello");  // sorted by name, not file order
    CHECK(config->plugins[1].name == "zeta");

    const auto* hello = config->plugin("hello");
    REQUIRE(hello == &config->plugins[0]);
    CHECK(hello->enabled);
    CHECK(hello->required);
    CHECK(hello->mount == "/greet");
    CHECK(hello->middleware == std::vector<std::string>{"auth.jwt"});
    CHECK(hello->origin.describe() == main.string() + ":18:3");
    CHECK(hello->config == nlohmann::json::parse(R"({
        "greeting": "Hello", "count": 3, "negative": -7, "ratio": 0.5, "exponent": 1000.0,
        "quoted": "42", "single": "true", "signs": "+-5",
        "flag": true, "off_is_text": "off", "nothing": null,
        "list": ["a", 1, false], "nested": {"x": -7, "a/b": null}})"));
    CHECK(hello->config["count"].is_number_integer());
    CHECK(hello->config["exponent"].is_number_float());
    CHECK(hello->config_origins.at("").describe() == main.string() + ":23:5");
    CHECK(hello->config_origins.at("/nested/a~1b").describe() == main.string() + ":36:23");

    const auto* zeta = config->plugin("zeta");
    REQUIRE(zeta != nullptr);
    CHECK(zeta->enabled);
    CHECK_FALSE(zeta->required);
    CHECK(zeta->mount == "/zeta");
    CHECK(zeta->middleware.empty());
    CHECK(zeta->config == nlohmann::json::object());
    CHECK(zeta->origin.describe() == main.string() + ":17:3");
    CHECK(zeta->config_origins.size() == 1);
    CHECK(zeta->config_origins.at("").describe() == main.string() + ":17:3");

    CHECK(config->plugin("absent") == nullptr);
}

TEST_CASE("conf.d drop-ins merge deeply, in lexical order, later winning", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("etc/trellis.yaml", R"(server:
  listen: 127.0.0.1:8000
  max_threads: 10
middleware: [a, b, c]
plugins:
  hello:
    mount: /hi
    config:
      greeting: Hello
      colors: [red, green]
)");
    const fs::path later = dir.write("etc/conf.d/20-later.yaml", R"(server:
  max_threads: 30
plugins:
  hello:
    config:
      colors: [blue]
)");
    const fs::path first = dir.write("etc/conf.d/10-first.yaml", R"(server:
  max_threads: 20
  max_queued: 5
middleware: [x]
plugins:
  hello:
    config:
      punctuation: "!"
)");
    dir.write("etc/conf.d/notes.txt", "not: [yaml");
    dir.write("etc/conf.d/30-off.yaml.disabled", "server: {max_threads: 99}");
    dir.write("etc/conf.d/40-empty.yaml", "plugins:\n  hello:\n");  // adds nothing, wipes nothing

    const auto config = load_ok(main);
    CHECK(config->server.listen.port == 8000);  // map merged: untouched keys survive
    CHECK(config->server.max_threads == 30);    // scalar replaced, later file wins
    CHECK(config->server.max_queued == 5);
    CHECK(config->middleware == std::vector<std::string>{"x"});  // list replaced whole
    const auto* hello = config->plugin("hello");
    REQUIRE(hello != nullptr);
    CHECK(hello->mount == "/hi");
    CHECK(hello->config == nlohmann::json::parse(R"({"greeting": "Hello", "colors": ["blue"], "punctuation": "!"})"));
    CHECK(hello->config_origins.at("/colors/0").describe() == later.string() + ":6:16");
    CHECK(hello->config_origins.at("/greeting").describe() == main.string() + ":9:17");
    CHECK_FALSE(hello->config_origins.contains("/colors/1"));
    CHECK(config->sources == std::vector<std::string>{main.string(), first.string(), later.string(),
                                                      (dir.path() / "etc/conf.d/40-empty.yaml").string()});
}

TEST_CASE("an error in a drop-in names the drop-in that set the value", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "server:\n  max_threads: 8\n");
    const fs::path drop_in = dir.write("conf.d/50-tuning.yaml", "server:\n  max_threads: 0\n");
    CHECK(load_errors(main) ==
          Errors{drop_in.string() + ":2:16: key 'server.max_threads': expected an integer from 1 to 100000, got '0'"});
}

TEST_CASE("environment variables override files", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(server:
  listen: 127.0.0.1:8080
  max_threads: 4
plugins:
  hello:
    enabled: true
    config:
      greeting: Hello
)");
    const Environment environment{
        {"HOME", "/root"},
        {"TRELLIS_CONFIG", "/somewhere/else.yaml"},
        {"TRELLIS_FORCE_WORKERS", "1"},  // the host's benchmark switch, not a key
        {"TRELLIS_SERVER__LISTEN", "0.0.0.0:9090"},
        {"TRELLIS_PLUGINS__HELLO__ENABLED", "false"},
        {"TRELLIS_PLUGINS__NEWONE__MOUNT", "/new"},
        {"TRELLIS_MIDDLEWARE", "[cors, auth.jwt]"},
        {"TRELLIS_PLUGINS__HELLO__CONFIG__GREETING", "Hi"},
        {"TRELLIS_PLUGINS__HELLO__CONFIG__COUNT", "5"},
        {"TRELLIS_PLUGINS__HELLO__CONFIG__QUOTED", "\"5\""},
        {"TRELLIS_PLUGINS__HELLO__CONFIG__SENTENCE", "Hello: world"},
        {"TRELLIS_PLUGINS__HELLO__CONFIG__NAMES", "[ann, 2]"},
        {"TRELLIS_Logging__Level", "warn"},
        {"TRELLIS_PLUGINS__BARE", ""},
    };
    const auto config = load_ok(main, environment);

    CHECK(config->server.listen.text() == "0.0.0.0:9090");
    CHECK(config->server.max_threads == 4);
    CHECK(config->middleware == std::vector<std::string>{"cors", "auth.jwt"});
    CHECK(config->logging.level == "warn");

    const auto* hello = config->plugin("hello");
    REQUIRE(hello != nullptr);
    CHECK_FALSE(hello->enabled);
    CHECK(hello->config == nlohmann::json::parse(R"({"greeting": "Hi", "count": 5, "quoted": "5",
        "sentence": "Hello: world", "names": ["ann", 2]})"));
    CHECK(hello->config_origins.at("/greeting").describe() == "environment TRELLIS_PLUGINS__HELLO__CONFIG__GREETING");
    CHECK(hello->config_origins.at("/names/1").describe() == "environment TRELLIS_PLUGINS__HELLO__CONFIG__NAMES");

    const auto* created = config->plugin("newone");
    REQUIRE(created != nullptr);
    CHECK(created->enabled);
    CHECK(created->mount == "/new");
    CHECK(created->origin.describe() == "environment TRELLIS_PLUGINS__NEWONE__MOUNT");
    const auto* bare = config->plugin("bare");  // an empty value enables with all defaults
    REQUIRE(bare != nullptr);
    CHECK(bare->enabled);
    CHECK(bare->mount == "/bare");

    CHECK(config->sources == std::vector<std::string>{
                                 main.string(),
                                 "environment TRELLIS_SERVER__LISTEN",
                                 "environment TRELLIS_PLUGINS__HELLO__ENABLED",
                                 "environment TRELLIS_PLUGINS__NEWONE__MOUNT",
                                 "environment TRELLIS_MIDDLEWARE",
                                 "environment TRELLIS_PLUGINS__HELLO__CONFIG__GREETING",
                                 "environment TRELLIS_PLUGINS__HELLO__CONFIG__COUNT",
                                 "environment TRELLIS_PLUGINS__HELLO__CONFIG__QUOTED",
                                 "environment TRELLIS_PLUGINS__HELLO__CONFIG__SENTENCE",
                                 "environment TRELLIS_PLUGINS__HELLO__CONFIG__NAMES",
                                 "environment TRELLIS_Logging__Level",
                                 "environment TRELLIS_PLUGINS__BARE",
                             });
}

TEST_CASE("an environment value of the wrong type names the variable", "[config]") {
    CHECK(single_error("", {{"TRELLIS_SERVER__MAX_THREADS", "many"}}) ==
          "environment TRELLIS_SERVER__MAX_THREADS: key 'server.max_threads': "
          "expected an integer from 1 to 100000, got 'many'");
    CHECK(single_error("", {{"TRELLIS_PLUGINS__HELLO__ENABLED", "\"false\""}}) ==
          "environment TRELLIS_PLUGINS__HELLO__ENABLED: key 'plugins.hello.enabled': "
          "expected true or false (without quotes), got the quoted string 'false'");
    CHECK(single_error("", {{"TRELLIS_MIDDLEWARE", "[cors, "}})
              .starts_with("environment TRELLIS_MIDDLEWARE: invalid YAML: "));
}

TEST_CASE("an unknown environment key names the variable", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "server:\n  max_threads: 4\n");
    CHECK(load_errors(main, {{"TRELLIS_SERVER__LISEN", "0.0.0.0:80"},
                             {"TRELLIS_NOPE", "1"},
                             {"TRELLIS_SERVER____LISTEN", "x"},
                             {"TRELLIS_PLUGINS__HELLO__MOUNTT", "/x"}}) ==
          Errors{
              "environment TRELLIS_SERVER____LISTEN: cannot tell which key this sets; write "
              "TRELLIS_ and the "
              "key path in upper case with '__' between levels, such as TRELLIS_SERVER__LISTEN",
              "environment TRELLIS_SERVER__LISEN: unknown key 'server.lisen' (did you mean "
              "'listen'?)",
              "environment TRELLIS_NOPE: unknown key 'nope'",
              "environment TRELLIS_PLUGINS__HELLO__MOUNTT: unknown key 'plugins.hello.mountt' (did "
              "you mean "
              "'mount'?)",
          });
}

TEST_CASE("process_environment returns the TRELLIS_ variables, sorted", "[config]") {
    ::setenv("TRELLIS_ZZ_TEST_B", "2", 1);
    ::setenv("TRELLIS_ZZ_TEST_A", "a=b", 1);
    ::setenv("NOT_TRELLIS_ZZ_TEST", "x", 1);
    const auto variables = trellis::config::process_environment();
    ::unsetenv("TRELLIS_ZZ_TEST_B");
    ::unsetenv("TRELLIS_ZZ_TEST_A");
    ::unsetenv("NOT_TRELLIS_ZZ_TEST");

    CHECK(std::is_sorted(variables.begin(), variables.end()));
    for (const auto& [name, value] : variables) CHECK(name.starts_with("TRELLIS_"));
    const auto a =
        std::find(variables.begin(), variables.end(), std::pair<std::string, std::string>{"TRELLIS_ZZ_TEST_A", "a=b"});
    REQUIRE(a != variables.end());
    REQUIRE(a + 1 != variables.end());
    CHECK(*(a + 1) == std::pair<std::string, std::string>{"TRELLIS_ZZ_TEST_B", "2"});
}

TEST_CASE("an unknown key names file, line and a close known key", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(server:
  lisen: 127.0.0.1:8080
  colour: blue
plugin:
  hello:
plugins:
  hello:
    enabeld: false
)");
    const std::string file = main.string();
    CHECK(load_errors(main) == Errors{
                                   file + ":2:3: unknown key 'server.lisen' (did you mean 'listen'?)",
                                   file + ":3:3: unknown key 'server.colour'",
                                   file + ":4:1: unknown key 'plugin' (did you mean 'plugins'?)",
                                   file + ":8:5: unknown key 'plugins.hello.enabeld' (did you mean 'enabled'?)",
                               });
}

TEST_CASE("a value of the wrong type names file, line and column", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(server:
  max_threads: abc
logging:
  access_log: maybe
  level: verbose
  format: [json]
middleware: cors
)");
    const std::string file = main.string();
    CHECK(load_errors(main) ==
          Errors{
              file + ":2:16: key 'server.max_threads': expected an integer from 1 to 100000, got 'abc'",
              file + ":4:15: key 'logging.access_log': expected true or false (without quotes), got "
                     "'maybe'",
              file + ":5:10: key 'logging.level': expected one of trace, debug, info, warn, error, "
                     "critical, "
                     "off, got 'verbose'",
              file + ":6:3: key 'logging.format': expected one of text, json, got a list",
              file + ":7:13: key 'middleware': expected a list of middleware names, got 'cors'",
          });
}

TEST_CASE("integers must be unquoted and in range", "[config]") {
    const std::string range = "expected an integer from 1 to 100000, ";
    CHECK(server_value_error("max_threads", "0") == range + "got '0'");
    CHECK(server_value_error("max_threads", "100001") == range + "got '100001'");
    CHECK(server_value_error("max_threads", "1.5") == range + "got '1.5'");
    CHECK(server_value_error("max_threads", "0x10") == range + "got '0x10'");
    CHECK(server_value_error("max_threads", "+-5") == range + "got '+-5'");
    CHECK(server_value_error("max_threads", "99999999999999999999") == range + "got '99999999999999999999'");
    CHECK(server_value_error("max_threads", "\"8\"") == range + "got the quoted string '8'");
    CHECK(server_value_error("max_threads", "", 3) == range + "got nothing (null)");
    CHECK(server_value_error("max_queued", "-1") == "expected an integer from 1 to 1000000, got '-1'");
    CHECK(server_value_error("max_keep_alive_requests", "10000001") ==
          "expected an integer from 0 to 10000000, got '10000001'");

    TempDir dir;
    const auto config = load_ok(dir.write("t.yaml", "server: {max_threads: +100000, max_queued: 1000000}"));
    CHECK(config->server.max_threads == 100000);
    CHECK(config->server.max_queued == 1000000);
}

TEST_CASE("the struct's defaults leave io_threads unset for the loader to resolve", "[config]") {
    const trellis::config::ServerConfig server;
    CHECK(server.engine == EngineKind::event);
    CHECK(server.io_threads == 0);
    CHECK(trellis::config::admin_max_connections == 64);
    CHECK(trellis::config::to_string(EngineKind::event) == "event");
    CHECK(trellis::config::to_string(EngineKind::poco) == "poco");
}

TEST_CASE("the event engine's keys are read from a file", "[config]") {
    TempDir dir;
    const auto config = load_ok(dir.write("trellis.yaml", R"(server:
  engine: poco
  io_threads: 3
  workers: 4096
  worker_queue: 0
  max_connections: 10000000
  header_timeout: 2s
  body_timeout: 1m
  send_timeout: 1500
  max_header_bytes: 32KiB
  max_headers: 10000
  max_uri_bytes: 256
  inline_warn: 1ms
)"));
    CHECK(config->server.engine == EngineKind::poco);
    CHECK(config->server.io_threads == 3);
    CHECK(config->server.workers == 4096);
    CHECK(config->server.worker_queue == 0);
    CHECK(config->server.max_connections == 10'000'000);
    CHECK(config->server.header_timeout == std::chrono::milliseconds(2000));
    CHECK(config->server.body_timeout == std::chrono::milliseconds(60000));
    CHECK(config->server.send_timeout == std::chrono::milliseconds(1500));
    CHECK(config->server.max_header_bytes == 32 * 1024);
    CHECK(config->server.max_headers == 10000);
    CHECK(config->server.max_uri_bytes == 256);
    CHECK(config->server.inline_warn == std::chrono::milliseconds(1));

    const auto bounds = load_ok(dir.write("bounds.yaml", R"(server:
  engine: event
  io_threads: 256
  workers: 1
  worker_queue: 1000000
  max_connections: 1
  max_header_bytes: 1KiB
  max_headers: 1
  max_uri_bytes: 1MiB
)"));
    CHECK(bounds->server.engine == EngineKind::event);
    CHECK(bounds->server.io_threads == 256);
    CHECK(bounds->server.workers == 1);
    CHECK(bounds->server.worker_queue == 1'000'000);
    CHECK(bounds->server.max_connections == 1);
    CHECK(bounds->server.max_header_bytes == 1024);
    CHECK(bounds->server.max_headers == 1);
    CHECK(bounds->server.max_uri_bytes == 1024 * 1024);
}

TEST_CASE("the event engine's keys are read from the environment", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "server:\n  engine: event\n  workers: 8\n");
    const auto config = load_ok(main, {
                                          {"TRELLIS_SERVER__ENGINE", "poco"},
                                          {"TRELLIS_SERVER__IO_THREADS", "2"},
                                          {"TRELLIS_SERVER__WORKERS", "32"},
                                          {"TRELLIS_SERVER__WORKER_QUEUE", "50"},
                                          {"TRELLIS_SERVER__MAX_CONNECTIONS", "100"},
                                          {"TRELLIS_SERVER__HEADER_TIMEOUT", "3s"},
                                          {"TRELLIS_SERVER__BODY_TIMEOUT", "4s"},
                                          {"TRELLIS_SERVER__SEND_TIMEOUT", "5s"},
                                          {"TRELLIS_SERVER__MAX_HEADER_BYTES", "8KiB"},
                                          {"TRELLIS_SERVER__MAX_HEADERS", "50"},
                                          {"TRELLIS_SERVER__MAX_URI_BYTES", "2KiB"},
                                          {"TRELLIS_SERVER__INLINE_WARN", "20ms"},
                                      });
    CHECK(config->server.engine == EngineKind::poco);
    CHECK(config->server.io_threads == 2);
    CHECK(config->server.workers == 32);
    CHECK(config->server.worker_queue == 50);
    CHECK(config->server.max_connections == 100);
    CHECK(config->server.header_timeout == std::chrono::milliseconds(3000));
    CHECK(config->server.body_timeout == std::chrono::milliseconds(4000));
    CHECK(config->server.send_timeout == std::chrono::milliseconds(5000));
    CHECK(config->server.max_header_bytes == 8 * 1024);
    CHECK(config->server.max_headers == 50);
    CHECK(config->server.max_uri_bytes == 2 * 1024);
    CHECK(config->server.inline_warn == std::chrono::milliseconds(20));
}

TEST_CASE("io_threads left unset is the number of CPUs in the affinity mask", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "server:\n  listen: 127.0.0.1:8080\n");
    CHECK(load_ok(main)->server.io_threads == std::min(affinity_cpus(), 256));
    {
        const PinnedToOneCpu pinned;  // `taskset -c N trellis serve`
        REQUIRE(affinity_cpus() == 1);
        CHECK(load_ok(main)->server.io_threads == 1);
        CHECK(load_ok(main, {{"TRELLIS_SERVER__IO_THREADS", "4"}})->server.io_threads == 4);
    }
    CHECK(load_ok(main)->server.io_threads == std::min(affinity_cpus(), 256));
}

TEST_CASE("the event engine's keys refuse bad values, naming key, file and line", "[config]") {
    CHECK(server_value_error("engine", "nginx") == "expected one of event, poco, got 'nginx'");
    CHECK(server_value_error("engine", "Event") == "expected one of event, poco, got 'Event'");
    CHECK(server_value_error("engine", "", 3) == "expected one of event, poco, got nothing (null)");

    const std::string loops = "expected an integer from 1 to 256, ";
    CHECK(server_value_error("io_threads", "0") == loops + "got '0'");
    CHECK(server_value_error("io_threads", "1000") == loops + "got '1000'");
    CHECK(server_value_error("io_threads", "-1") == loops + "got '-1'");
    CHECK(server_value_error("io_threads", "all") == loops + "got 'all'");
    CHECK(server_value_error("workers", "0") == "expected an integer from 1 to 4096, got '0'");
    CHECK(server_value_error("workers", "many") == "expected an integer from 1 to 4096, got 'many'");
    CHECK(server_value_error("workers", "4097") == "expected an integer from 1 to 4096, got '4097'");
    CHECK(server_value_error("worker_queue", "-1") == "expected an integer from 0 to 1000000, got '-1'");
    CHECK(server_value_error("worker_queue", "1000001") == "expected an integer from 0 to 1000000, got '1000001'");
    CHECK(server_value_error("max_connections", "0") == "expected an integer from 1 to 10000000, got '0'");
    CHECK(server_value_error("max_connections", "10000001") ==
          "expected an integer from 1 to 10000000, got '10000001'");
    CHECK(server_value_error("max_headers", "0") == "expected an integer from 1 to 10000, got '0'");
    CHECK(server_value_error("max_headers", "10001") == "expected an integer from 1 to 10000, got '10001'");
    CHECK(server_value_error("max_headers", "1e2") == "expected an integer from 1 to 10000, got '1e2'");

    const std::string duration =
        "expected a duration above zero such as 500ms, 5s or 1m (a bare integer is milliseconds), ";
    for (const std::string key : {"header_timeout", "body_timeout", "send_timeout", "inline_warn"}) {
        for (const std::string bad : {"0", "0ms", "0s", "-1s", "-5", "soon", "1.5s", "5h"}) {
            INFO(key + ": " + bad);
            CHECK(server_value_error(key, bad) == duration + "got '" + bad + "'");
        }
        CHECK(server_value_error(key, "[5s]", 3) == duration + "got a list");
    }

    const std::string header_size = "expected a size from 1KiB to 1MiB (units B, KiB, MiB, GiB), ";
    CHECK(server_value_error("max_header_bytes", "1023") == header_size + "got '1023'");
    CHECK(server_value_error("max_header_bytes", "512B") == header_size + "got '512B'");
    CHECK(server_value_error("max_header_bytes", "0") == header_size + "got '0'");
    CHECK(server_value_error("max_header_bytes", "1025KiB") == header_size + "got '1025KiB'");
    CHECK(server_value_error("max_header_bytes", "16KB") == header_size + "got '16KB'");
    CHECK(server_value_error("max_header_bytes", "big") == header_size + "got 'big'");
    const std::string uri_size = "expected a size from 256B to 1MiB (units B, KiB, MiB, GiB), ";
    CHECK(server_value_error("max_uri_bytes", "255") == uri_size + "got '255'");
    CHECK(server_value_error("max_uri_bytes", "2MiB") == uri_size + "got '2MiB'");
    CHECK(server_value_error("max_uri_bytes", "-8KiB") == uri_size + "got '-8KiB'");
}

TEST_CASE("a bad event engine value from the environment names the variable", "[config]") {
    CHECK(single_error("", {{"TRELLIS_SERVER__ENGINE", "nginx"}}) ==
          "environment TRELLIS_SERVER__ENGINE: key 'server.engine': expected one of event, poco, got 'nginx'");
    CHECK(single_error("", {{"TRELLIS_SERVER__IO_THREADS", "0"}}) ==
          "environment TRELLIS_SERVER__IO_THREADS: key 'server.io_threads': expected an integer from 1 to 256, "
          "got '0'");
    CHECK(single_error("", {{"TRELLIS_SERVER__IO_THREADS", "1000"}}) ==
          "environment TRELLIS_SERVER__IO_THREADS: key 'server.io_threads': expected an integer from 1 to 256, "
          "got '1000'");
    CHECK(single_error("", {{"TRELLIS_SERVER__HEADER_TIMEOUT", "0s"}}) ==
          "environment TRELLIS_SERVER__HEADER_TIMEOUT: key 'server.header_timeout': expected a duration above zero "
          "such as 500ms, 5s or 1m (a bare integer is milliseconds), got '0s'");
    CHECK(single_error("", {{"TRELLIS_SERVER__MAX_HEADER_BYTES", "100"}}) ==
          "environment TRELLIS_SERVER__MAX_HEADER_BYTES: key 'server.max_header_bytes': expected a size from 1KiB "
          "to 1MiB (units B, KiB, MiB, GiB), got '100'");
    CHECK(single_error("", {{"TRELLIS_SERVER__WORKERS", "lots"}}) ==
          "environment TRELLIS_SERVER__WORKERS: key 'server.workers': expected an integer from 1 to 4096, got "
          "'lots'");
}

TEST_CASE("misspelt event engine keys are unknown, with the key meant", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(server:
  io_thread: 2
  worker: 4
  engin: poco
  max_header: 10
  inline_warns: 5ms
)");
    const std::string file = main.string();
    CHECK(load_errors(main) == Errors{
                                   file + ":2:3: unknown key 'server.io_thread' (did you mean 'io_threads'?)",
                                   file + ":3:3: unknown key 'server.worker' (did you mean 'workers'?)",
                                   file + ":4:3: unknown key 'server.engin' (did you mean 'engine'?)",
                                   file + ":5:3: unknown key 'server.max_header' (did you mean 'max_headers'?)",
                                   file + ":6:3: unknown key 'server.inline_warns' (did you mean 'inline_warn'?)",
                               });
}

TEST_CASE("listen addresses are host:port with bracketed IPv6", "[config]") {
    TempDir dir;
    const auto config = load_ok(dir.write("ok.yaml", R"(server:
  listen: localhost:0
  admin_listen: "[::]:65535"
)"));
    CHECK(config->server.listen.host == "localhost");
    CHECK(config->server.listen.port == 0);
    CHECK(config->server.admin_listen.host == "::");
    CHECK(config->server.admin_listen.text() == "[::]:65535");

    const std::string expected =
        "expected host:port with a port from 0 to 65535, such as 127.0.0.1:8080 or [::1]:8080, ";
    for (const std::string bad : {":8080", "localhost", "8080", "127.0.0.1:65536", "127.0.0.1:", "1.2.3:80",
                                  "256.1.1.1:80", "::1:8080", "[::1:8080", "[zz::1]:80", "host:port"}) {
        INFO(bad);
        CHECK(server_value_error("listen", "'" + bad + "'") == expected + "got the quoted string '" + bad + "'");
    }
    CHECK(server_value_error("admin_listen", "{host: x}", 3) == expected + "got a map");
}

TEST_CASE("Origin and Endpoint print as in messages", "[config]") {
    CHECK(trellis::config::Origin{"a.yaml", 3, 7}.describe() == "a.yaml:3:7");
    CHECK(trellis::config::Origin{"environment TRELLIS_X", 0, 0}.describe() == "environment TRELLIS_X");
    CHECK(trellis::config::Endpoint{"::1", 80}.text() == "[::1]:80");
    CHECK(trellis::config::Endpoint{"example.com", 443}.text() == "example.com:443");
}

TEST_CASE("a mount starts with / and holds no trailing /, //, braces, ? or #", "[config]") {
    TempDir dir;
    const auto config = load_ok(dir.write("ok.yaml", "plugins:\n  root:\n    mount: /\n  deep:\n    mount: /a/b-c\n"));
    CHECK(config->plugin("root")->mount == "/");
    CHECK(config->plugin("deep")->mount == "/a/b-c");

    for (const std::string bad : {"hello", "/hello/", "/a//b", "/{name}", "/a}", "/a?b", "/a#b", ""}) {
        INFO(bad);
        const fs::path main = dir.write("bad.yaml", "plugins:\n  hello:\n    mount: \"" + bad + "\"\n");
        CHECK(load_errors(main) == Errors{main.string() +
                                          ":3:12: key 'plugins.hello.mount': expected a path such as /hello or / "
                                          "(starting with '/', without a trailing '/', '//', '{', '}', '?' or "
                                          "'#'), got the quoted string '" +
                                          bad + "'"});
    }
}

TEST_CASE("a plugin name must be lower case letters, digits and _", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(plugins:
  Hello:
  my-plugin:
    enabled: true
  2fa:
  ok_name2:
)");
    const std::string reason = "a plugin name is lower case letters, digits and '_', starting with a letter";
    CHECK(load_errors(main) == Errors{
                                   main.string() + ":2:3: key 'plugins.Hello': " + reason,
                                   main.string() + ":3:3: key 'plugins.my-plugin': " + reason,
                                   main.string() + ":5:3: key 'plugins.2fa': " + reason,
                               });
}

TEST_CASE("a plugin section must be a map, and search_path is caught as a typo", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(plugins:
  hello: true
  search_path: [/x]
  world:
    config: [1, 2]
    middleware: [Bad Name]
)");
    const std::string file = main.string();
    CHECK(load_errors(main) ==
          Errors{
              file + ":2:10: key 'plugins.hello': expected a map of settings, got 'true'",
              file + ":3:3: key 'plugins.search_path': expected a map of settings, got a list (did "
                     "you mean "
                     "'search_paths'?)",
              file + ":5:5: key 'plugins.world.config': expected a map of the plugin's own "
                     "settings, got a list",
              file + ":6:18: key 'plugins.world.middleware[0]': expected a middleware name PLUGIN "
                     "or PLUGIN.NAME, "
                     "such as cors or auth.jwt, got 'Bad Name'",
          });
}

TEST_CASE("a quoted true is a string, not a bool", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "plugins:\n  hello:\n    enabled: \"true\"\n    required: 'no'\n");
    CHECK(load_errors(main) ==
          Errors{
              main.string() + ":3:14: key 'plugins.hello.enabled': expected true or false (without quotes), "
                              "got the quoted string 'true'",
              main.string() + ":4:15: key 'plugins.hello.required': expected true or false (without quotes), "
                              "got the quoted string 'no'",
          });
}

TEST_CASE("malformed YAML names file, line and column", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "server:\n  listen: 127.0.0.1:8080\n  max_threads: 4: 5\n");
    CHECK(load_errors(main) == Errors{main.string() + ":3:17: invalid YAML: illegal map value"});

    const fs::path tabs = dir.write("tabs.yaml", "server:\n  listen: 127.0.0.1:8080\n\tmax_threads: 4\n");
    CHECK(load_errors(tabs) == Errors{tabs.string() + ":3:1: invalid YAML: illegal tab when looking for indentation"});
}

TEST_CASE("a missing main file is reported with the reason", "[config]") {
    TempDir dir;
    const fs::path main = dir.path() / "absent.yaml";
    CHECK(load_errors(main) == Errors{main.string() + ": cannot read configuration: No such file or directory"});
    const fs::path folder = dir.path() / "folder.yaml";
    fs::create_directory(folder);
    CHECK(load_errors(folder) == Errors{folder.string() + ": cannot read configuration: Is a directory"});
}

TEST_CASE("a file must hold one document whose top is a map", "[config]") {
    TempDir dir;
    const fs::path list = dir.write("list.yaml", "- a\n- b\n");
    CHECK(load_errors(list) ==
          Errors{list.string() + ":1:1: the top of a configuration file must be a map of keys, got a list"});
    const fs::path two = dir.write("two.yaml", "server: {}\n---\nlogging: {}\n");
    CHECK(load_errors(two) == Errors{two.string() + ": holds 2 YAML documents; a configuration file holds one"});
}

TEST_CASE("a key set twice in one map is an error", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "server:\n  max_threads: 4\n  max_threads: 5\n");
    CHECK(load_errors(main) ==
          Errors{main.string() + ":3:3: key 'server.max_threads': set twice in one map (first at " + main.string() +
                 ":2:3)"});
}

TEST_CASE("every error is reported at once, from every source", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(server:
  listen: nowhere
  max_threads: -5
logging:
  level: loud
plugins:
  Bad:
)");
    const fs::path drop_in = dir.write("conf.d/10-x.yaml", "logging:\n  format: xml\n");
    const fs::path broken = dir.write("conf.d/20-broken.yaml", "server: [1,\n");
    const Errors errors = load_errors(main, {{"TRELLIS_SERVER__ADMIN_ENABLED", "perhaps"}});
    const std::string file = main.string();
    CHECK(errors == Errors{
                        broken.string() + ":2:1: invalid YAML: end of sequence flow not found",
                        file + ":2:11: key 'server.listen': expected host:port with a port from 0 to 65535, "
                               "such as "
                               "127.0.0.1:8080 or [::1]:8080, got 'nowhere'",
                        file + ":3:16: key 'server.max_threads': expected an integer from 1 to 100000, got '-5'",
                        "environment TRELLIS_SERVER__ADMIN_ENABLED: key 'server.admin_enabled': expected true "
                        "or "
                        "false (without quotes), got 'perhaps'",
                        file + ":5:10: key 'logging.level': expected one of trace, debug, info, warn, error, "
                               "critical, off, got 'loud'",
                        drop_in.string() + ":2:11: key 'logging.format': expected one of text, json, got 'xml'",
                        file + ":7:3: key 'plugins.Bad': a plugin name is lower case letters, digits and '_', "
                               "starting with a letter",
                    });
}

TEST_CASE("relative search paths are resolved against the directory of the file that set them", "[config]") {
    TempDir dir;
    const fs::path etc = dir.path() / "etc";
    const fs::path main =
        dir.write("etc/trellis.yaml", "plugins:\n  search_paths: [../lib/plugins, ./here/, /opt/p]\n");
    CHECK(load_ok(main)->plugin_search_paths ==
          std::vector<fs::path>{dir.path() / "lib/plugins", etc / "here", "/opt/p"});

    dir.write("etc/conf.d/10-paths.yaml", "plugins:\n  search_paths: [extra]\n");
    CHECK(load_ok(main)->plugin_search_paths == std::vector<fs::path>{etc / "conf.d/extra"});

    CHECK(load_ok(main, {{"TRELLIS_PLUGINS__SEARCH_PATHS", "[from_env, ../up]"}})->plugin_search_paths ==
          std::vector<fs::path>{etc / "from_env", dir.path() / "up"});

    const fs::path bad = dir.write("bad/trellis.yaml", "plugins:\n  search_paths: [ok, '', {a: b}]\n");
    CHECK(load_errors(bad) == Errors{
                                  bad.string() + ":2:22: key 'plugins.search_paths[1]': expected a directory, "
                                                 "got the quoted string ''",
                                  bad.string() + ":2:26: key 'plugins.search_paths[2]': expected a directory, "
                                                 "got a map",
                              });
}

TEST_CASE("config_origins give the line of every nested plugin config value", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", R"(plugins:
  hello:
    config:
      db:
        pool:
          size: 8
      hosts:
        - a
        - b
)");
    const auto config = load_ok(main);
    const auto& origins = config->plugin("hello")->config_origins;
    const std::string file = main.string();
    CHECK(config->plugin("hello")->origin.describe() == file + ":2:3");
    CHECK(origins.at("").describe() == file + ":3:5");
    CHECK(origins.at("/db").describe() == file + ":4:7");
    CHECK(origins.at("/db/pool").describe() == file + ":5:9");
    CHECK(origins.at("/db/pool/size").describe() == file + ":6:17");
    CHECK(origins.at("/hosts").describe() == file + ":7:7");
    CHECK(origins.at("/hosts/0").describe() == file + ":8:11");
    CHECK(origins.at("/hosts/1").describe() == file + ":9:11");
    CHECK(origins.size() == 7);
}

TEST_CASE("a plugin with no config section maps the empty pointer to the plugin", "[config]") {
    TempDir dir;
    const fs::path main = dir.write("trellis.yaml", "plugins:\n  hello:\n    enabled: true\n  world:\n    config:\n");
    const auto config = load_ok(main);
    CHECK(config->plugin("hello")->config == nlohmann::json::object());
    CHECK(config->plugin("hello")->config_origins.at("").describe() == main.string() + ":2:3");
    CHECK(config->plugin("world")->config == nlohmann::json::object());
    CHECK(config->plugin("world")->config_origins.at("").describe() == main.string() + ":5:5");
}

TEST_CASE("durations take ms, s or m - a bare integer is milliseconds", "[config]") {
    const std::vector<std::pair<std::string, long>> good{{"500ms", 500}, {"5s", 5000},     {"1m", 60000},  {"250", 250},
                                                         {"0s", 0},      {"\"750\"", 750}, {"'2 s'", 2000}};
    for (const auto& [text, ms] : good) {
        INFO(text);
        TempDir dir;
        const auto config = load_ok(dir.write("t.yaml", "server:\n  keep_alive_timeout: " + text + "\n"));
        CHECK(config->server.keep_alive_timeout == std::chrono::milliseconds(ms));
    }
    const std::string expected = "expected a duration such as 500ms, 5s or 1m (a bare integer is milliseconds), ";
    for (const std::string bad : {"5h", "1.5s", "-1s", "s", "5 sec", "5S", "99999999999999999999ms"}) {
        INFO(bad);
        CHECK(server_value_error("keep_alive_timeout", bad) == expected + "got '" + bad + "'");
    }
    CHECK(server_value_error("keep_alive_timeout", "[5s]", 3) == expected + "got a list");
}

TEST_CASE("sizes take B, KiB, MiB or GiB - a bare integer is bytes", "[config]") {
    const std::vector<std::pair<std::string, std::size_t>> good{{"1048576", 1048576},
                                                                {"\"1048576\"", 1048576},
                                                                {"512KiB", 524288},
                                                                {"1MiB", 1048576},
                                                                {"2GiB", 2147483648},
                                                                {"10B", 10},
                                                                {"0", 0}};
    for (const auto& [text, bytes] : good) {
        INFO(text);
        TempDir dir;
        const auto config = load_ok(dir.write("t.yaml", "server:\n  max_body_bytes: " + text + "\n"));
        CHECK(config->server.max_body_bytes == bytes);
    }
    const std::string expected = "expected a size such as 1048576, 512KiB or 1MiB (units B, KiB, MiB, GiB), ";
    for (const std::string bad : {"1MB", "1.5MiB", "-1", "1kib", "MiB", "99999999999GiB"}) {
        INFO(bad);
        CHECK(server_value_error("max_body_bytes", bad) == expected + "got '" + bad + "'");
    }
}

#ifdef TRELLIS_TEST_SOURCE_DIR
TEST_CASE("the shipped development configuration is valid", "[config]") {
    const fs::path main = fs::path(TRELLIS_TEST_SOURCE_DIR) / "config/trellis.yaml";
    const auto config = load_ok(main);
    REQUIRE_FALSE(config->plugin_search_paths == std::vector<std::filesystem::path>{"/usr/lib/trellis/plugins"});
    CHECK(config->plugin_search_paths.front() ==
          (fs::path(TRELLIS_TEST_SOURCE_DIR) / "build/plugins").lexically_normal());
    CHECK(config->plugin("hello") != nullptr);
}
#endif

TEST_CASE("YAML aliases that expand too far are refused quickly", "[config]") {
    // Nine levels of nine aliases each: about 387 million values if expanded.
    std::string yaml = "plugins:\n  hello:\n    config:\n      l0: &l0 [x, x, x, x, x, x, x, x, x]\n";
    for (int level = 1; level <= 9; ++level) {
        std::string previous = "*l" + std::to_string(level - 1);
        yaml += "      l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
        for (int i = 0; i < 9; ++i) yaml += (i ? ", " : "") + previous;
        yaml += "]\n";
    }
    auto error = single_error(yaml);
    CHECK_THAT(error, Catch::Matchers::Contains("larger than 100000 values"));
}

TEST_CASE("nesting deeper than 64 levels is refused", "[config]") {
    std::string yaml = "plugins:\n  hello:\n    config:\n      deep: " + std::string(80, '[') + std::string(80, ']') + "\n";
    CHECK_THAT(single_error(yaml), Catch::Matchers::Contains("nested deeper than 64 levels"));
}

TEST_CASE("malformed YAML that sends yaml-cpp into an endless loop is an error", "[config]") {
    // Found by tests/fuzz/fuzz_config: yaml-cpp 0.7 alone never returns on this input.
    auto error = single_error(",-er* e");
    CHECK_THAT(error, Catch::Matchers::Contains("invalid YAML: the YAML parser does not come to an end"));
}

TEST_CASE("the YAML event bound follows the file's size: dense but valid YAML still loads", "[config]") {
    // The densest forms: nested empty sequences and null items give about one event per byte.
    std::string dense = "plugins:\n  hello:\n    config:\n      nested: [";
    for (int i = 0; i < 20000; ++i) dense += (i ? "," : "") + std::string("[[]]");
    dense += "]\n      items:\n";
    for (int i = 0; i < 20000; ++i) dense += "        - ~\n";
    TempDir dir;
    auto config = load_ok(dir.write("dense.yaml", dense));
    REQUIRE(config->plugin("hello") != nullptr);
}

TEST_CASE("shutdown_delay, admin_token_file and health.readyz_requires_database", "[config]") {
    TempDir dir;
    auto defaults = load_ok(dir.write("d.yaml", "server: {}\n"));
    CHECK(defaults->server.shutdown_delay == std::chrono::seconds(5));
    CHECK(defaults->server.admin_token.empty());
    CHECK_FALSE(defaults->health.readyz_requires_database);
    dir.write("admin.token", "\n  t0k3n \n");
    auto set = load_ok(dir.write("s.yaml", "server: {shutdown_delay: 250ms, admin_token_file: admin.token}\n"
                                           "health: {readyz_requires_database: true}\n"));
    CHECK(set->server.shutdown_delay == std::chrono::milliseconds(250));
    CHECK(set->server.admin_token_file == dir.path() / "admin.token");
    CHECK(set->server.admin_token == "t0k3n");
    CHECK(set->health.readyz_requires_database);
    auto errors = load_errors(dir.write("e.yaml", "health: {readyz_requires_database: maybe, ready: x}\n"));
    REQUIRE(errors.size() == 2);
    CHECK_THAT(errors[0], Catch::Matchers::Contains("key 'health.readyz_requires_database': expected true or false"));
    CHECK_THAT(errors[1], Catch::Matchers::Contains("unknown key 'health.ready'"));
}

TEST_CASE("server.pid_file: none by default, relative to its file, its directory is serve's to check", "[config]") {
    TempDir dir;
    CHECK(load_ok(dir.write("d.yaml", "server: {}\n"))->server.pid_file.empty());
    fs::create_directories(dir.path() / "run");
    CHECK(load_ok(dir.write("s.yaml", "server: {pid_file: run/trellis.pid}\n"))->server.pid_file ==
          dir.path() / "run" / "trellis.pid");
    CHECK(load_ok(dir.write("e.yaml", "server: {pid_file: run/trellis.pid}\n"), {{"TRELLIS_SERVER__PID_FILE", ""}})
              ->server.pid_file.empty());
    // A runtime directory (/run/trellis) exists only while the service runs: `trellis check`
    // from ExecStartPre= or a maintainer script must accept it missing.
    CHECK(load_ok(dir.write("m.yaml", "server:\n  pid_file: nowhere/trellis.pid\n"))->server.pid_file ==
          dir.path() / "nowhere" / "trellis.pid");

    auto errors = load_errors(dir.write("dir.yaml", "server: {pid_file: run}\n"));
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0], Catch::Matchers::Contains("server.pid_file") && Catch::Matchers::Contains("is a directory"));
    errors = load_errors(dir.write("list.yaml", "server: {pid_file: [a]}\n"));
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0], Catch::Matchers::Contains("expected the path of the pid file"));
}

TEST_CASE("trusted_proxies, allowed_hosts and compression are read and checked with their line", "[config]") {
    TempDir dir;
    const auto config = load_ok(dir.write("trellis.yaml",
                                          "server:\n  trusted_proxies: [10.0.0.0/8, \"fd00::/8\", 192.0.2.7]\n"
                                          "  allowed_hosts: [example.com, \"*.example.com\", \"api.example:8443\"]\n"
                                          "compression:\n  min_size: 2KiB\n  content_types: [Text/*, application/json]\n"
                                          "  gzip_level: 9\n  brotli_quality: 5\n"));
    CHECK(config->server.trusted_proxies == std::vector<std::string>{"10.0.0.0/8", "fd00::/8", "192.0.2.7"});
    CHECK(config->server.allowed_hosts.size() == 3);
    CHECK(config->compression.enabled);
    CHECK(config->compression.min_size == 2048);
    CHECK(config->compression.content_types == std::vector<std::string>{"text/*", "application/json"});
    CHECK(config->compression.gzip_level == 9);
    CHECK(config->compression.brotli_quality == 5);

    const auto defaults = load_ok(dir.write("defaults.yaml", "server: {}\n"));
    CHECK(defaults->server.trusted_proxies.empty());
    CHECK(defaults->compression.min_size == 1024);
    CHECK(defaults->compression.gzip_level == 6);
    CHECK(defaults->compression.brotli_quality == 4);

    const fs::path bad = dir.write("bad.yaml", "server:\n  trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n"
                                               "  allowed_hosts: [\"bad host\"]\ncompression:\n  gzip_level: 10\n"
                                               "  content_types: [json]\n  level: 3\n");
    const Errors errors = load_errors(bad);
    REQUIRE(errors.size() == 5);
    CHECK_THAT(errors[0], Catch::Matchers::StartsWith(bad.string() + ":2:33: key 'server.trusted_proxies[1]'") &&
                              Catch::Matchers::Contains("prefix length"));
    CHECK_THAT(errors[1], Catch::Matchers::StartsWith(bad.string() + ":3:19: key 'server.allowed_hosts[0]'"));
    CHECK_THAT(errors[2], Catch::Matchers::StartsWith(bad.string() + ":5:15: key 'compression.gzip_level'"));
    CHECK_THAT(errors[3], Catch::Matchers::StartsWith(bad.string() + ":6:19: key 'compression.content_types[0]'"));
    CHECK_THAT(errors[4], Catch::Matchers::Contains("unknown key 'compression.level'"));
}
