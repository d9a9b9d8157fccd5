// The host's side of the ABI: what the opaque handles of abi.h are inside Trellis, and
// the function table handed to every plugin instance.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <trellis/abi.h>

#include "db/migrations.hpp"
#include "db/pool.hpp"
#include "http/message.hpp"
#include "metrics/metrics.hpp"
#include "plugin/request_schema.hpp"

namespace trellis::plugin {

struct RouteRegistration {
    std::string method;
    std::string path;  // relative to the plugin's mount
    trellis_on_request_fn on_request = nullptr;
    void* user_data = nullptr;
    std::string summary;
    std::string tags_json;
    std::string request_schema_json;
    std::string response_schema_json;
    bool non_blocking = false;  // 1.2: TRELLIS_ROUTE_NON_BLOCKING, may run on an event-loop thread
    std::string query_schema_json;  // 1.4
    std::string path_schema_json;   // 1.4
    std::string scopes_json;        // 1.4: JSON array of strings, or empty
    std::string security_json;      // 1.4: OpenAPI security requirements, or empty
    // 1.4: the schemas the host enforces (null for none, and for plugins built before 1.4,
    // whose request_schema_json stays documentation).
    std::shared_ptr<const RequestSchemas> schemas;
};

struct MiddlewareRegistration {
    std::string name;
    trellis_on_middleware_fn on_middleware = nullptr;
    void* user_data = nullptr;
    bool non_blocking = false;  // 1.2: TRELLIS_MIDDLEWARE_NON_BLOCKING
};

// 1.3: a readiness check an instance registered.
struct CheckRegistration {
    std::string name;
    trellis_on_check_fn check = nullptr;
    void* user_data = nullptr;
};

// The function table every instance receives; one static table for the whole process.
const trellis_host_api& host_api();

}  // namespace trellis::plugin

// Definitions of the opaque handles (global namespace, as declared in abi.h).

struct trellis_metric {
    trellis::metrics::PluginFamily* family = nullptr;
};

struct trellis_check {
    std::string message;
};

struct trellis_host {
    std::string plugin_name;
    std::string config_json;
    std::string error;         // set_error during a lifecycle call
    std::string refusal;       // why the host last refused a registration (1.4: schemas), for the init error
    bool registering = false;  // registration is open only during on_init
    std::vector<trellis::plugin::RouteRegistration> routes;
    std::vector<trellis::plugin::MiddlewareRegistration> middleware;
    std::shared_ptr<spdlog::logger> logger;
    std::shared_ptr<trellis::db::Pool> database;      // 1.1
    std::vector<trellis::db::Migration> migrations;  // 1.1, as registered
    bool creating = false;                                  // 1.3: on_create is running (checks may register)
    std::vector<trellis::plugin::CheckRegistration> checks;  // 1.3
    std::deque<trellis_metric> metrics;                       // 1.3: handles, stable addresses
    std::mutex metrics_mutex;                                 // 1.3: metric_register from any thread
    std::string metric_error;                                 // 1.3: error_out of metric_register
};


struct trellis_db {
    trellis::db::Connection connection;
    std::string error;  // db_error
};

struct trellis_rows {
    trellis::db::Result result;
};

struct trellis_request {
    trellis::http::Request* http = nullptr;
    std::string error;  // request_set_error
};

struct trellis_response {
    trellis::http::Response* http = nullptr;
};

namespace trellis::plugin {
// A middleware chain being run for one request; trellis_next points into it.
struct ChainRun;
}  // namespace trellis::plugin

struct trellis_next {
    trellis::plugin::ChainRun* run = nullptr;
    std::size_t index = 0;
    bool used = false;
};
