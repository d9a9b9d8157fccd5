// GET /metrics on the admin listener, and the host's values read at scrape: listener
// connection counts, the worker queue.
#include "host/host.hpp"
#include "runtime/logging.hpp"

namespace trellis::host {

void Host::add_metrics_route(runtime::ListenerRoutes& routes) {
    routes.add("GET", "/metrics", [this](const http::Request&, http::Response& response) {
        response.status = 200;
        response.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        response.set_header("Cache-Control", "no-store");
        response.body = metrics_->scrape();
    });
}

void Host::add_metrics_callbacks() {
    using prometheus::MetricType;
    for (const auto& listener : listeners_) {
        const engine::Engine* engine = listener.engine.get();
        const std::map<std::string, std::string> labels{{"listener", listener.admin ? "admin" : "public"}};
        metrics_->add_callback("trellis_connections_open", "Connections open now, per listener.", MetricType::Gauge,
                               labels, [engine] { return static_cast<double>(engine->stats().open); });
        metrics_->add_callback("trellis_connections_accepted_total", "Connections accepted, per listener.",
                               MetricType::Counter, labels,
                               [engine] { return static_cast<double>(engine->stats().accepted); });
        metrics_->add_callback("trellis_connections_refused_total",
                               "Connections refused or accepts deferred (connection limit, out of descriptors), "
                               "per listener.",
                               MetricType::Counter, labels,
                               [engine] { return static_cast<double>(engine->stats().refused); });
    }
    const WorkerPool* workers = workers_.get();
    metrics_->add_callback("trellis_worker_queue_depth", "Requests waiting for a worker thread now.", MetricType::Gauge,
                           {}, [workers] { return workers ? static_cast<double>(workers->queued()) : 0.0; });
    const runtime::Pipeline* pipeline = pipeline_.get();
    metrics_->add_callback("trellis_worker_rejections_total",
                           "Requests answered 503 because the worker queue was full.", MetricType::Counter, {},
                           [pipeline] { return static_cast<double>(pipeline->counts().worker_rejections); });
    metrics_->add_callback("trellis_log_lines_dropped_total",
                           "Log lines dropped because an output's buffer was full (a stalled pipe or disk).",
                           MetricType::Counter, {}, [] { return static_cast<double>(logging::dropped_lines()); });
}

}  // namespace trellis::host
