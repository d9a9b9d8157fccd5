// The host's metrics registry, scrape-time values, process metrics from /proc/self, and the
// families plugins register through the ABI.
#include "metrics/metrics.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include <prometheus/text_serializer.h>
#include <trellis/abi.h>

#include "runtime/logging.hpp"

namespace trellis::metrics {
namespace {

constexpr std::array<std::string_view, 5> status_classes{"1xx", "2xx", "3xx", "4xx", "5xx"};

prometheus::MetricFamily family_of(std::string name, std::string help, prometheus::MetricType type) {
    prometheus::MetricFamily family;
    family.name = std::move(name);
    family.help = std::move(help);
    family.type = type;
    return family;
}

prometheus::ClientMetric value_of(prometheus::MetricType type, double value,
                                  const std::map<std::string, std::string>& labels = {}) {
    prometheus::ClientMetric metric;
    for (const auto& [name, label] : labels) metric.label.push_back({name, label});
    if (type == prometheus::MetricType::Counter)
        metric.counter.value = value;
    else
        metric.gauge.value = value;
    return metric;
}

void add_single(std::vector<prometheus::MetricFamily>& out, std::string name, std::string help,
                prometheus::MetricType type, double value) {
    auto family = family_of(std::move(name), std::move(help), type);
    family.metric.push_back(value_of(type, value));
    out.push_back(std::move(family));
}

double clock_ticks() {
    static const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return ticks > 0 ? ticks : 100.0;
}

// Fields of /proc/self/stat after the command name (which may contain spaces and ')').
std::vector<std::string> self_stat() {
    std::ifstream in("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> fields;
    const auto close = text.rfind(')');
    if (close == std::string::npos) return fields;
    std::istringstream rest(text.substr(close + 1));
    std::string field;
    while (rest >> field) fields.push_back(field);
    return fields;  // fields[0] is field 3 (state)
}

double boot_time_seconds() {
    std::ifstream in("/proc/stat");
    std::string key;
    while (in >> key) {
        if (key == "btime") {
            double value = 0;
            in >> value;
            return value;
        }
        in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
    }
    return 0;
}

double process_start_time() {
    const auto fields = self_stat();
    // Field 22 (starttime, in clock ticks after boot) is fields[19].
    if (fields.size() > 19) {
        const double boot = boot_time_seconds();
        if (boot > 0) return boot + std::stod(fields[19]) / clock_ticks();
    }
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void add_process_metrics(std::vector<prometheus::MetricFamily>& out, double start_time) {
    const auto fields = self_stat();
    if (fields.size() > 12) {
        // Fields 14 and 15 (utime, stime) are fields[11] and fields[12].
        const double cpu = (std::stod(fields[11]) + std::stod(fields[12])) / clock_ticks();
        add_single(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                   prometheus::MetricType::Counter, cpu);
    }
    {
        std::ifstream statm("/proc/self/statm");
        double size = 0, resident = 0;
        if (statm >> size >> resident)
            add_single(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
                       prometheus::MetricType::Gauge, resident * static_cast<double>(::sysconf(_SC_PAGESIZE)));
    }
    if (DIR* dir = ::opendir("/proc/self/fd")) {
        double open = 0;
        while (const dirent* entry = ::readdir(dir))
            if (entry->d_name[0] != '.') ++open;
        ::closedir(dir);
        add_single(out, "process_open_fds", "Number of open file descriptors.", prometheus::MetricType::Gauge,
                   open - 1);  // not the one opendir holds
    }
    add_single(out, "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.",
               prometheus::MetricType::Gauge, start_time);
}

}  // namespace

DatabaseCounters& database() {
    static DatabaseCounters counters;
    return counters;
}

namespace {
struct PluginEvents {
    std::mutex mutex;
    std::map<std::string, std::array<std::uint64_t, 3>> counts;  // load, reload, failure
};
PluginEvents& plugin_events() {
    static PluginEvents events;
    return events;
}
}  // namespace

void plugin_started(const std::string& plugin) {
    auto& events = plugin_events();
    std::lock_guard lock(events.mutex);
    auto& counts = events.counts[plugin];
    ++counts[counts[0] == 0 ? 0 : 1];
}

void plugin_failed(const std::string& plugin) {
    auto& events = plugin_events();
    std::lock_guard lock(events.mutex);
    ++events.counts[plugin][2];
}

std::size_t method_index(std::string_view method) {
    for (std::size_t i = 0; i < known_methods.size(); ++i)
        if (known_methods[i] == method) return i;
    return known_methods.size();
}

std::string_view method_label(std::string_view method) {
    const std::size_t index = method_index(method);
    return index < known_methods.size() ? known_methods[index] : std::string_view("other");
}

const std::vector<double>& duration_buckets() {
    static const std::vector<double> buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
    return buckets;
}

Metrics::Metrics(bool instrument_requests)
    : instrument_requests_(instrument_requests),
      registry_(std::make_shared<prometheus::Registry>()),
      requests_(&prometheus::BuildCounter()
                     .Name("trellis_http_requests_total")
                     .Help("HTTP requests answered, by method, route template and status class.")
                     .Register(*registry_)),
      durations_(&prometheus::BuildHistogram()
                      .Name("trellis_http_request_duration_seconds")
                      .Help("Time from the parsed request to the response, by method and route template.")
                      .Register(*registry_)),
      plugin_failures_(&prometheus::BuildCounter()
                            .Name("trellis_plugin_request_failures_total")
                            .Help("Requests a plugin's handler or middleware failed with a 5xx answer.")
                            .Register(*registry_)),
      start_time_seconds_(process_start_time()) {
    for (std::size_t i = 0; i <= known_methods.size(); ++i)
        unmatched_[i] = make_series(i < known_methods.size() ? known_methods[i] : "other", unmatched_route);
    prometheus::BuildGauge()
        .Name("trellis_build_info")
        .Help("The Trellis version and plugin ABI of this process; always 1.")
        .Register(*registry_)
        .Add({{"version", TRELLIS_VERSION},
              {"abi", std::to_string(TRELLIS_ABI_MAJOR) + "." + std::to_string(TRELLIS_ABI_MINOR)}})
        .Set(1);
    add_callback("trellis_http_requests_in_flight", "HTTP requests being handled now.", prometheus::MetricType::Gauge,
                 {}, [this] { return static_cast<double>(in_flight_.load(std::memory_order_relaxed)); });
    auto& db = database();
    add_callback("trellis_db_connections_in_use", "Database connections leased from the pool now.",
                 prometheus::MetricType::Gauge, {}, [&db] { return static_cast<double>(db.connections_in_use.load()); });
    add_callback("trellis_db_connections_waiting", "Callers waiting for a database connection now.",
                 prometheus::MetricType::Gauge, {}, [&db] { return static_cast<double>(db.acquire_waiting.load()); });
    add_callback("trellis_db_acquire_timeouts_total", "Leases that found no free database connection in time.",
                 prometheus::MetricType::Counter, {}, [&db] { return static_cast<double>(db.acquire_timeouts.load()); });
    add_callback("trellis_db_query_errors_total", "Database statements that failed.", prometheus::MetricType::Counter,
                 {}, [&db] { return static_cast<double>(db.query_errors.load()); });
    add_callback("trellis_db_migrations_applied_total", "Schema migrations applied by this process.",
                 prometheus::MetricType::Counter, {}, [&db] { return static_cast<double>(db.migrations_applied.load()); });
    add_callback("trellis_db_migrations_failed_total", "Schema migrations that failed and were rolled back.",
                 prometheus::MetricType::Counter, {}, [&db] { return static_cast<double>(db.migrations_failed.load()); });
}

Metrics::~Metrics() = default;

Metrics::Series Metrics::make_series(std::string_view method, std::string_view route) {
    Series series;
    const std::string m(method_label(method)), r(route);
    series.duration = &durations_->Add({{"method", m}, {"route", r}}, duration_buckets());
    for (std::size_t i = 0; i < status_classes.size(); ++i)
        series.by_class[i] =
            &requests_->Add({{"method", m}, {"route", r}, {"status_class", std::string(status_classes[i])}});
    return series;
}

void Metrics::install_routes(const void* key, const std::vector<std::pair<std::string, std::string>>& method_and_route) {
    auto table = std::make_shared<RouteTable>();
    table->key = key;
    table->targets.reserve(method_and_route.size());
    {
        std::lock_guard lock(series_mutex_);
        for (const auto& [method, route] : method_and_route) table->targets.push_back(make_series(method, route));
    }
    routes_.store(std::move(table), std::memory_order_release);
}

const Metrics::Series& Metrics::series(std::string_view method, std::string_view route) {
    std::lock_guard lock(series_mutex_);
    auto key = std::make_pair(std::string(method_label(method)), std::string(route));
    auto it = by_labels_.find(key);
    if (it == by_labels_.end()) it = by_labels_.emplace(key, make_series(method, route)).first;
    return it->second;
}

void Metrics::record(const Series& series, int status, double seconds) {
    const int index = status / 100 - 1;
    if (index >= 0 && index < 5) series.by_class[static_cast<std::size_t>(index)]->Increment();
    series.duration->Observe(seconds);
}

void Metrics::plugin_request_failed(const std::string& plugin) { plugin_failures_->Add({{"plugin", plugin}}).Increment(); }


void Metrics::add_callback(std::string name, std::string help, prometheus::MetricType type,
                           std::map<std::string, std::string> labels, std::function<double()> read) {
    std::lock_guard lock(callbacks_mutex_);
    callbacks_.push_back(Callback{std::move(name), std::move(help), type, std::move(labels), std::move(read)});
}

std::string Metrics::scrape() const {
    std::vector<prometheus::MetricFamily> families = registry_->Collect();
    {
        std::lock_guard lock(callbacks_mutex_);
        std::map<std::string, std::size_t> index;  // name -> position in families
        for (const auto& callback : callbacks_) {
            double value = 0;
            try {
                value = callback.read();
            } catch (...) {
                continue;
            }
            auto [it, added] = index.emplace(callback.name, families.size());
            if (added) families.push_back(family_of(callback.name, callback.help, callback.type));
            families[it->second].metric.push_back(value_of(callback.type, value, callback.labels));
        }
    }
    add_process_metrics(families, start_time_seconds_);
    {
        auto dropped = family_of("trellis_plugin_metric_updates_dropped_total",
                                 "Updates of plugin metrics dropped because the metric reached its cap of "
                                 "distinct label-value sets.",
                                 prometheus::MetricType::Counter);
        for (const auto& [plugin, count] : plugin_registry().dropped())
            dropped.metric.push_back(value_of(prometheus::MetricType::Counter, static_cast<double>(count),
                                              {{"plugin", plugin}}));
        families.push_back(std::move(dropped));
    }
    {
        auto events = family_of("trellis_plugin_events_total",
                                "Plugin lifecycle events: load (first start in this process), reload (a later "
                                "start), failure (refused to start).",
                                prometheus::MetricType::Counter);
        auto& all = plugin_events();
        std::lock_guard lock(all.mutex);
        for (const auto& [plugin, counts] : all.counts)
            for (std::size_t i = 0; i < 3; ++i)
                events.metric.push_back(value_of(prometheus::MetricType::Counter, static_cast<double>(counts[i]),
                                                 {{"plugin", plugin}, {"event", i == 0 ? "load" : i == 1 ? "reload" : "failure"}}));
        families.push_back(std::move(events));
    }
    auto plugin_families = plugin_registry().shared_registry()->Collect();
    families.insert(families.end(), std::make_move_iterator(plugin_families.begin()),
                    std::make_move_iterator(plugin_families.end()));
    return prometheus::TextSerializer().Serialize(families);
}

// ---- Plugin metrics ---------------------------------------------------------------------

bool valid_metric_name(std::string_view name) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

bool valid_label_name(std::string_view name) {
    if (name.empty() || name.starts_with("__")) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

PluginRegistry& plugin_registry() {
    static PluginRegistry registry;
    return registry;
}

namespace {

std::string_view kind_name(Kind kind) {
    switch (kind) {
        case Kind::counter: return "counter";
        case Kind::gauge: return "gauge";
        case Kind::histogram: return "histogram";
    }
    return "metric";
}

std::string joined(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : ", ") + part;
    return out.empty() ? "none" : out;
}

}  // namespace

PluginRegistry::Registered PluginRegistry::add(const std::string& plugin, Kind kind, std::string name,
                                               std::string help, std::vector<std::string> label_names,
                                               std::vector<double> buckets) {
    const std::string prefix = plugin + "_";
    if (!name.starts_with(prefix) || name.size() == prefix.size())
        return {nullptr, "metric name '" + name + "' must start with the plugin's prefix '" + prefix + "'"};
    if (!valid_metric_name(name))
        return {nullptr, "metric name '" + name + "' is not a valid Prometheus name ([a-zA-Z_:][a-zA-Z0-9_:]*)"};
    if (kind == Kind::counter && !name.ends_with("_total"))
        return {nullptr, "counter name '" + name + "' must end with '_total'"};
    if (kind != Kind::counter && name.ends_with("_total"))
        return {nullptr, "metric name '" + name + "' ends with '_total', which only a counter's name may"};
    for (std::size_t i = 0; i < label_names.size(); ++i) {
        const auto& label = label_names[i];
        if (!valid_label_name(label))
            return {nullptr, "metric '" + name + "': label name '" + label +
                                 "' is not valid ([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__')"};
        if (kind == Kind::histogram && label == "le")
            return {nullptr, "metric '" + name + "': a histogram cannot have a label named 'le'"};
        if (std::find(label_names.begin(), label_names.begin() + static_cast<std::ptrdiff_t>(i), label) !=
            label_names.begin() + static_cast<std::ptrdiff_t>(i))
            return {nullptr, "metric '" + name + "': label name '" + label + "' is given twice"};
    }
    if (kind == Kind::histogram) {
        if (buckets.empty()) buckets = duration_buckets();
        for (std::size_t i = 1; i < buckets.size(); ++i)
            if (!(buckets[i] > buckets[i - 1]))
                return {nullptr, "histogram '" + name + "': bucket bounds must increase strictly"};
    } else if (!buckets.empty()) {
        return {nullptr, "metric '" + name + "': only a histogram has buckets"};
    }
    if (help.empty()) help = name;

    std::lock_guard lock(mutex_);
    if (auto it = families_.find(name); it != families_.end()) {
        PluginFamily& existing = *it->second;
        // A reloaded instance registers its metrics again: the same definition finds the
        // family (and its values) it had.
        if (existing.plugin_ != plugin)
            return {nullptr, "metric '" + name + "' is registered by plugin '" + existing.plugin_ + "'"};
        if (existing.kind_ != kind || existing.label_names_ != label_names ||
            (kind == Kind::histogram && existing.buckets_ != buckets))
            return {nullptr, "metric '" + name + "' is already registered as a " + std::string(kind_name(existing.kind_)) +
                                 " with labels (" + joined(existing.label_names_) + ")" +
                                 (kind == Kind::histogram ? " and other buckets" : "")};
        return {&existing, {}};
    }
    auto family = std::make_unique<PluginFamily>();
    family->plugin_ = plugin;
    family->name_ = name;
    family->help_ = help;
    family->kind_ = kind;
    family->label_names_ = std::move(label_names);
    family->buckets_ = std::move(buckets);
    try {
        switch (kind) {
            case Kind::counter:
                family->family_ = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
                break;
            case Kind::gauge: family->family_ = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_); break;
            case Kind::histogram:
                family->family_ = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
                break;
        }
    } catch (const std::exception& e) {
        return {nullptr, "metric '" + name + "': " + e.what()};
    }
    auto* raw = family.get();
    families_.emplace(name, std::move(family));
    return {raw, {}};
}

void PluginRegistry::count_dropped(const std::string& plugin) {
    std::lock_guard lock(mutex_);
    ++dropped_[plugin];
}

std::vector<std::pair<std::string, std::uint64_t>> PluginRegistry::dropped() const {
    std::lock_guard lock(mutex_);
    return {dropped_.begin(), dropped_.end()};
}

std::string PluginFamily::update(Op op, const std::vector<std::string>& label_values, double value) {
    if (label_values.size() != label_names_.size())
        return "metric '" + name_ + "' has " + std::to_string(label_names_.size()) + " label(s), got " +
               std::to_string(label_values.size()) + " value(s)";
    switch (kind_) {
        case Kind::counter:
            if (op != Op::add) return "counter '" + name_ + "' can only be incremented";
            if (!(value >= 0)) return "counter '" + name_ + "' cannot decrease";
            break;
        case Kind::gauge:
            if (op == Op::observe) return "gauge '" + name_ + "' cannot observe; set or add";
            break;
        case Kind::histogram:
            if (op != Op::observe) return "histogram '" + name_ + "' can only observe";
            break;
    }
    std::lock_guard lock(mutex_);
    auto it = series_.find(label_values);
    if (it == series_.end()) {
        if (series_.size() >= max_series) {
            if (!warned_) {
                warned_ = true;
                logging::get("trellis")->warn(
                    "plugin '{}': metric '{}' reached its cap of {} distinct label-value sets; updates of new "
                    "sets are dropped (counted in trellis_plugin_metric_updates_dropped_total)",
                    plugin_, name_, max_series);
            }
            plugin_registry().count_dropped(plugin_);
            return {};
        }
        prometheus::Labels labels;
        for (std::size_t i = 0; i < label_names_.size(); ++i) labels.emplace(label_names_[i], label_values[i]);
        void* series = nullptr;
        switch (kind_) {
            case Kind::counter:
                series = &static_cast<prometheus::Family<prometheus::Counter>*>(family_)->Add(labels);
                break;
            case Kind::gauge: series = &static_cast<prometheus::Family<prometheus::Gauge>*>(family_)->Add(labels); break;
            case Kind::histogram:
                series = &static_cast<prometheus::Family<prometheus::Histogram>*>(family_)->Add(labels, buckets_);
                break;
        }
        it = series_.emplace(label_values, series).first;
    }
    switch (kind_) {
        case Kind::counter: static_cast<prometheus::Counter*>(it->second)->Increment(value); break;
        case Kind::gauge:
            if (op == Op::set)
                static_cast<prometheus::Gauge*>(it->second)->Set(value);
            else
                static_cast<prometheus::Gauge*>(it->second)->Increment(value);
            break;
        case Kind::histogram: static_cast<prometheus::Histogram*>(it->second)->Observe(value); break;
    }
    return {};
}

}  // namespace trellis::metrics
