// Prometheus metrics. The host owns one Metrics (its registry and the HTTP, listener and
// plugin-event families) and serves it as GET /metrics on the admin listener. Layers that
// have no Metrics at hand (the database pool, migrations) count into process-wide atomics
// read at scrape; metrics that plugins register through the ABI (1.3) live in one
// process-wide registry too, so that a reloaded plugin finds its families again.
//
// The request path never looks a series up by its labels: the series of every route of a
// runtime are resolved once when the runtime is installed (install_routes), and a request
// increments the counter and histogram its route target points at.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_type.h>
#include <prometheus/registry.h>

namespace trellis::metrics {

// Counted by the database layer, process-wide (every pool and migrator of the process).
struct DatabaseCounters {
    std::atomic<std::int64_t> connections_in_use{0};
    std::atomic<std::int64_t> acquire_waiting{0};
    std::atomic<std::uint64_t> acquire_timeouts{0};
    std::atomic<std::uint64_t> query_errors{0};
    std::atomic<std::uint64_t> migrations_applied{0};
    std::atomic<std::uint64_t> migrations_failed{0};
};
DatabaseCounters& database();

// Plugin lifecycle events, counted process-wide by the runtime builder: "load" the first time
// a plugin starts in this process, "reload" each later start (a reload builds a new
// runtime), "failure" each time it is refused.
void plugin_started(const std::string& plugin);
void plugin_failed(const std::string& plugin);

// The request methods that get their own label value; any other is "other".
inline constexpr std::array<std::string_view, 7> known_methods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
std::size_t method_index(std::string_view method);  // known_methods.size() for "other"
std::string_view method_label(std::string_view method);

// The route label of requests that matched no route (404, 405, 308, 400, 413).
inline constexpr std::string_view unmatched_route = "unmatched";

class Metrics {
public:
    // `instrument_requests` false (metrics.enabled: false): the request path records nothing;
    // GET /metrics still answers with the process, database and plugin metrics.
    explicit Metrics(bool instrument_requests = true);
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    bool instrument_requests() const { return instrument_requests_; }

    // ---- HTTP requests -------------------------------------------------------------------
    // The series one request updates: its duration and its count per status class.
    struct Series {
        prometheus::Histogram* duration = nullptr;
        std::array<prometheus::Counter*, 5> by_class{};  // 1xx .. 5xx
    };
    // The series of every route target of one runtime, in target order. `key` identifies
    // the runtime; a request whose runtime is not the installed one takes the slow path.
    struct RouteTable {
        const void* key = nullptr;
        std::vector<Series> targets;
    };
    void install_routes(const void* key, const std::vector<std::pair<std::string, std::string>>& method_and_route);
    std::shared_ptr<const RouteTable> routes() const { return routes_.load(std::memory_order_acquire); }
    const Series& unmatched(std::string_view method) const { return unmatched_[method_index(method)]; }
    // By labels, under a lock: host routes (/livez, /metrics) and requests of a runtime that
    // was replaced while they ran.
    const Series& series(std::string_view method, std::string_view route);
    static void record(const Series& series, int status, double seconds);

    void request_started() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
    void request_finished() { in_flight_.fetch_sub(1, std::memory_order_relaxed); }

    // A handler or middleware error that turned into a 5xx, counted per plugin.
    void plugin_request_failed(const std::string& plugin);

    // ---- Values read at scrape -----------------------------------------------------------
    // A counter or gauge whose value is read from `read` at every scrape: queue depths,
    // listener counts, and the log sink's dropped-line count. Series of the same name are
    // one family; their labels must differ.
    void add_callback(std::string name, std::string help, prometheus::MetricType type,
                      std::map<std::string, std::string> labels, std::function<double()> read);

    // The text exposition format 0.0.4 of everything: this registry, the callbacks, the
    // process metrics and the plugins' own metrics.
    std::string scrape() const;

private:
    Series make_series(std::string_view method, std::string_view route);

    bool instrument_requests_;
    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter>* requests_;
    prometheus::Family<prometheus::Histogram>* durations_;
    prometheus::Family<prometheus::Counter>* plugin_failures_;
    std::atomic<std::int64_t> in_flight_{0};
    std::atomic<std::shared_ptr<const RouteTable>> routes_;
    std::array<Series, known_methods.size() + 1> unmatched_;
    std::mutex series_mutex_;  // make_series through series() and install_routes
    std::map<std::pair<std::string, std::string>, Series> by_labels_;

    struct Callback {
        std::string name;
        std::string help;
        prometheus::MetricType type;
        std::map<std::string, std::string> labels;
        std::function<double()> read;
    };
    mutable std::mutex callbacks_mutex_;
    std::vector<Callback> callbacks_;
    double start_time_seconds_;
};

// The default duration buckets (seconds), from 0.5 ms to 10 s.
const std::vector<double>& duration_buckets();

// ---- Metrics registered by plugins (ABI 1.3) -----------------------------------------------

enum class Kind { counter, gauge, histogram };

// One family a plugin registered. Updates go through set-of-label-values lookups under a
// lock; at most max_series distinct label-value sets, further ones are dropped and counted.
class PluginFamily {
public:
    static constexpr std::size_t max_series = 100;

    const std::string& name() const { return name_; }
    const std::string& plugin() const { return plugin_; }
    Kind kind() const { return kind_; }
    std::size_t label_count() const { return label_names_.size(); }

    // value: counters add (>= 0), gauges add (inc/dec) or set, histograms observe.
    enum class Op { add, set, observe };
    // Empty when done; otherwise why the update was refused (wrong label count, negative
    // increment, operation not valid for the kind). A dropped update (cap) returns empty.
    std::string update(Op op, const std::vector<std::string>& label_values, double value);

private:
    friend class PluginRegistry;
    std::string plugin_;
    std::string name_;
    std::string help_;
    Kind kind_ = Kind::counter;
    std::vector<std::string> label_names_;
    std::vector<double> buckets_;
    void* family_ = nullptr;  // prometheus::Family<Counter|Gauge|Histogram>*
    std::mutex mutex_;
    std::map<std::vector<std::string>, void*> series_;
    bool warned_ = false;
};

class PluginRegistry {
public:
    // Registers or finds again (same name, kind, labels and buckets) a family. The error
    // says what is wrong: the name lacks the plugin's prefix, is not a valid Prometheus
    // name, clashes with a family of another kind or labels, or a label name is invalid.
    struct Registered {
        PluginFamily* family = nullptr;
        std::string error;
    };
    Registered add(const std::string& plugin, Kind kind, std::string name, std::string help,
                   std::vector<std::string> label_names, std::vector<double> buckets);

    // Updates dropped at the label cap, per plugin (read by the host's scrape).
    void count_dropped(const std::string& plugin);
    prometheus::Registry& registry() { return *registry_; }
    std::shared_ptr<prometheus::Registry> shared_registry() const { return registry_; }

    std::vector<std::pair<std::string, std::uint64_t>> dropped() const;

private:
    std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<PluginFamily>> families_;
    std::map<std::string, std::uint64_t> dropped_;
};
PluginRegistry& plugin_registry();

// [a-zA-Z_:][a-zA-Z0-9_:]* and [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__").
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

}  // namespace trellis::metrics
