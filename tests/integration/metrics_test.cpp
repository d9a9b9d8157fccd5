// GET /metrics on the admin listener: valid exposition text (promtool), request counts by
// route template, plugin metrics and readiness checks through ABI 1.3, and the label cap.
#include <catch2/catch.hpp>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "support/process.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace trellis::test;

namespace {

std::string scrape(const TestServer& server) {
    auto r = http_request(server.admin_port(), "GET", "/metrics");
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type").value_or("").starts_with("text/plain; version=0.0.4"));
    return r.body;
}

// The value of one series, written exactly as the text format has it: `name{a="x",b="y"}`
// (labels in name order) or `name` alone.
std::optional<double> value(const std::string& text, const std::string& series) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line))
        if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ')
            return std::stod(line.substr(series.size() + 1));
    return std::nullopt;
}

double value_or_zero(const std::string& text, const std::string& series) { return value(text, series).value_or(0); }

std::size_t count_lines_starting(const std::string& text, const std::string& prefix) {
    std::istringstream lines(text);
    std::string line;
    std::size_t count = 0;
    while (std::getline(lines, line))
        if (line.starts_with(prefix)) ++count;
    return count;
}

const plugin::Instance& instance_named(const runtime::Runtime& runtime, const std::string& name) {
    for (const auto& instance : runtime.instances())
        if (instance->name() == name) return *instance;
    FAIL("no instance " << name);
    throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("promtool check metrics passes on real /metrics output", "[metrics]") {
    const std::string promtool = TRELLIS_TEST_PROMTOOL;
    INFO("promtool not found: ./dev deps unpacks it into .deps/prometheus (Debian's prometheus package); "
         "configure again after that");
    REQUIRE(std::filesystem::exists(promtool));

    TestServer server(config_yaml("  alpha: {}\n"));
    CHECK(server.request("POST", "/alpha/echo/7", "{}", {{"Content-Type", "application/json"}}).status == 201);
    CHECK(server.get("/alpha/boom").status == 500);
    CHECK(server.get("/alpha/metric/hit?outcome=ok").status == 200);
    CHECK(server.get("/nowhere").status == 404);
    const std::string text = scrape(server);
    const auto file = server.dir().path() / "metrics.txt";
    std::ofstream(file) << text;

    Process check({"/bin/sh", "-c", "exec \"$0\" check metrics < \"$1\"", promtool, file.string()},
                  minimal_environment(), server.dir().path() / "promtool.out");
    const auto code = check.wait(std::chrono::seconds(30));
    INFO(check.output());
    INFO(text);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    // Every family the issue names is there.
    for (const char* name :
         {"trellis_http_requests_total", "trellis_http_request_duration_seconds", "trellis_http_requests_in_flight",
          "trellis_connections_open", "trellis_connections_accepted_total", "trellis_connections_refused_total",
          "trellis_worker_queue_depth", "trellis_worker_rejections_total", "trellis_db_connections_in_use",
          "trellis_db_connections_waiting", "trellis_db_acquire_timeouts_total", "trellis_db_query_errors_total",
          "trellis_db_migrations_applied_total", "trellis_db_migrations_failed_total", "trellis_plugin_events_total",
          "trellis_plugin_request_failures_total", "trellis_build_info", "process_resident_memory_bytes",
          "process_open_fds", "process_cpu_seconds_total", "process_start_time_seconds"}) {
        INFO(name);
        CHECK(text.find(std::string("# TYPE ") + name + " ") != std::string::npos);
    }
    CHECK(value(text, "trellis_build_info{abi=\"1.4\",version=\"" TRELLIS_VERSION "\"}") == 1);
    CHECK(value_or_zero(text, "process_resident_memory_bytes") > 1e6);
    CHECK(value_or_zero(text, "process_open_fds") > 3);
    CHECK(value_or_zero(text, "process_start_time_seconds") > 1.6e9);
    CHECK(value_or_zero(text, "trellis_connections_accepted_total{listener=\"public\"}") >= 1);
    CHECK(value_or_zero(text, "trellis_plugin_request_failures_total{plugin=\"alpha\"}") == 1);
}

TEST_CASE("request counts and the duration histogram count exactly the requests sent, by route template",
          "[metrics]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    for (int i = 0; i < 5; ++i)
        REQUIRE(server.request("POST", "/alpha/echo/" + std::to_string(i), "{}",
                               {{"Content-Type", "application/json"}})
                    .status == 201);
    for (const char* path : {"/nope/a", "/nope/b", "/alpha/echo"}) CHECK(server.get(path).status >= 400);
    CHECK(server.request("BREW", "/alpha/count").status >= 400);
    const std::string text = scrape(server);
    INFO(text);

    const std::string echo = "{method=\"POST\",route=\"/alpha/echo/{id}\"";
    CHECK(value(text, "trellis_http_request_duration_seconds_count" + echo + "}") == 5);
    CHECK(value(text, "trellis_http_request_duration_seconds_bucket" + echo + ",le=\"+Inf\"}") == 5);
    CHECK(value(text, "trellis_http_requests_total" + echo + ",status_class=\"2xx\"}") == 5);
    CHECK(value(text, "trellis_http_requests_total" + echo + ",status_class=\"5xx\"}") == 0);
    // Never the raw path: cardinality stays bounded.
    CHECK(text.find("/alpha/echo/3") == std::string::npos);
    CHECK(text.find("/nope") == std::string::npos);
    // The three unmatched GETs share one label; the unknown method is "other".
    CHECK(value(text, "trellis_http_requests_total{method=\"GET\",route=\"unmatched\",status_class=\"4xx\"}") == 3);
    CHECK(value(text, "trellis_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\"}") == 3);
    CHECK(text.find("BREW") == std::string::npos);
    CHECK(value_or_zero(text, "trellis_http_request_duration_seconds_count{method=\"other\",route=\"unmatched\"}") +
              value_or_zero(text, "trellis_http_request_duration_seconds_count{method=\"other\",route=\"/alpha/count\"}") ==
          1);
    // In flight: only the scrape itself.
    CHECK(value(text, "trellis_http_requests_in_flight") == 1);
}

TEST_CASE("/metrics is served on the admin listener only", "[metrics]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    CHECK(server.get("/metrics").status == 404);
    CHECK(http_request(server.admin_port(), "GET", "/metrics").status == 200);
    CHECK(http_request(server.admin_port(), "POST", "/metrics").status == 405);
}

TEST_CASE("metrics.enabled: false records no requests but still serves /metrics", "[metrics]") {
    TestServer server(config_yaml("  alpha: {}\n", "metrics:\n  enabled: false\n"));
    CHECK(server.get("/alpha/count").status == 200);
    const std::string text = scrape(server);
    CHECK(text.find("route=\"/alpha/count\"") == std::string::npos);
    CHECK(value(text, "trellis_http_requests_in_flight") == 0);
    CHECK(text.find("process_open_fds") != std::string::npos);
}

TEST_CASE("a plugin's own metrics appear with its prefix and survive a reload", "[metrics][abi]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    const std::string before = scrape(server);
    const double hits = value_or_zero(before, "alpha_hits_total{outcome=\"ok\"}");
    const double observed = value_or_zero(before, "alpha_hit_seconds_count");
    const double reloads = value_or_zero(before, "trellis_plugin_events_total{event=\"reload\",plugin=\"alpha\"}");
    for (int i = 0; i < 3; ++i) CHECK(server.get("/alpha/metric/hit?outcome=ok").status == 200);
    CHECK(server.get("/alpha/metric/hit?outcome=late").status == 200);
    std::string text = scrape(server);
    CHECK(value(text, "alpha_hits_total{outcome=\"ok\"}") == hits + 3);
    CHECK(value_or_zero(text, "alpha_hits_total{outcome=\"late\"}") >= 1);
    CHECK(value(text, "alpha_hit_seconds_count") == observed + 4);
    CHECK(value(text, "alpha_hit_seconds_bucket{le=\"1\"}").has_value());
    CHECK(text.find("# TYPE alpha_hits_total counter") != std::string::npos);

    // The reloaded instance registers the same metrics again and counts on.
    auto reloaded = server.host().reload();
    REQUIRE(reloaded.reloaded);
    CHECK(server.get("/alpha/metric/hit?outcome=ok").status == 200);
    text = scrape(server);
    CHECK(value(text, "alpha_hits_total{outcome=\"ok\"}") == hits + 4);
    CHECK(value(text, "trellis_plugin_events_total{event=\"reload\",plugin=\"alpha\"}") == reloads + 1);
}

TEST_CASE("a metric name without the plugin's prefix is refused with a clear message", "[metrics][abi]") {
    TestServer server(config_yaml("  alpha:\n    config: {extra_metric: beta_stolen_total}\n  beta: {}\n"));
    const auto* report = find_report(server.runtime(), "alpha");
    REQUIRE(report->status == runtime::PluginStatus::failed);
    CHECK_THAT(report->reason, Catch::Contains("metric name 'beta_stolen_total' must start with the plugin's "
                                               "prefix 'alpha_'"));
    CHECK(find_report(server.runtime(), "beta")->status == runtime::PluginStatus::loaded);
    const std::string text = scrape(server);
    CHECK(text.find("beta_stolen_total") == std::string::npos);
    CHECK(value_or_zero(text, "trellis_plugin_events_total{event=\"failure\",plugin=\"alpha\"}") >= 1);
}

TEST_CASE("a plugin metric keeps at most 100 label-value sets and counts the dropped updates", "[metrics][abi]") {
    TestServer server(config_yaml("  gamma: {}\n  alpha: {}\n"));
    const double dropped = value_or_zero(scrape(server), "trellis_plugin_metric_updates_dropped_total{plugin=\"gamma\"}");
    CHECK(server.get("/gamma/metric/spread?n=150").status == 200);
    const std::string text = scrape(server);
    CHECK(count_lines_starting(text, "gamma_spread{") == 100);
    CHECK(value(text, "gamma_spread{n=\"99\"}") == 99);
    CHECK_FALSE(value(text, "gamma_spread{n=\"100\"}").has_value());
    CHECK(value(text, "trellis_plugin_metric_updates_dropped_total{plugin=\"gamma\"}") == dropped + 50);
}

TEST_CASE("a plugin's readiness check result is returned by run_health_checks", "[metrics][abi]") {
    TestServer server(config_yaml("  alpha: {}\n  beta:\n    config: {unready: true}\n"));
    auto results = instance_named(server.runtime(), "alpha").run_health_checks();
    REQUIRE(results.size() == 1);
    CHECK(results[0].name == "fixture");
    CHECK(results[0].ok);
    CHECK(results[0].message == "ready as configured");

    results = instance_named(server.runtime(), "beta").run_health_checks();
    REQUIRE(results.size() == 1);
    CHECK_FALSE(results[0].ok);
    CHECK(results[0].message == "told to be unready");

    CHECK(server.get("/alpha/ready/flip").status == 200);
    results = instance_named(server.runtime(), "alpha").run_health_checks();
    CHECK_FALSE(results.at(0).ok);
    CHECK(results.at(0).message == "told to be unready");
}

TEST_CASE("database metrics count query errors and failures per plugin", "[metrics]") {
    TestServer server(config_yaml("  alpha: {}\n"));
    const std::string before = scrape(server);
    CHECK(server.get("/alpha/db/query?sql=SELEC%201").status == 500);
    CHECK(server.get("/alpha/db/ping").status == 200);
    const std::string text = scrape(server);
    CHECK(value_or_zero(text, "trellis_db_query_errors_total") ==
          value_or_zero(before, "trellis_db_query_errors_total") + 1);
    CHECK(value(text, "trellis_plugin_request_failures_total{plugin=\"alpha\"}") == 1);
    CHECK(value(text, "trellis_db_connections_in_use") == 0);
}
