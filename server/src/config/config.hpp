// The validated, immutable configuration of a Trellis process, and how it is loaded:
// main YAML file, then conf.d/*.yaml beside it in lexical order, then TRELLIS_* variables.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "http/compression.hpp"

namespace trellis::config {

// Where a value came from, for error messages: "config/trellis.yaml:12:5" or
// "environment TRELLIS_SERVER__LISTEN".
struct Origin {
    std::string source;  // file path as given, or "environment NAME"
    int line = 0;        // 1-based; 0 when not from a file
    int column = 0;      // 1-based; 0 when not from a file
    std::string describe() const;
};

struct Endpoint {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::string text() const;  // "127.0.0.1:8080"
};

// `server.engine`: the event engine (Asio loops, Beast's parser) or Poco's HTTPServer, kept
// as a fallback that serves one connection per thread.
enum class EngineKind { event, poco };
std::string_view to_string(EngineKind kind);  // "event" / "poco"

// The admin listener's connection budget: fixed, so that a flood on the public port's
// budget can never lock operators out of /metrics and /admin.
inline constexpr int admin_max_connections = 64;

struct ServerConfig {
    Endpoint listen{"127.0.0.1", 8080};
    Endpoint admin_listen{"127.0.0.1", 9180};
    bool admin_enabled = true;
    EngineKind engine = EngineKind::event;
    // Event loops. 0 only before loading: load() resolves an unset value to the CPUs in the
    // process's affinity mask (so `taskset -c 0` gives 1).
    int io_threads = 0;
    int workers = 16;                                 // threads for handlers that may block
    int worker_queue = 1024;                          // requests waiting for a worker; beyond, 503 with Retry-After
    int max_connections = 16384;                      // public listener; the admin one has admin_max_connections
    std::chrono::milliseconds header_timeout{10000};  // the whole request head
    std::chrono::milliseconds body_timeout{60000};    // the body, from the end of the head
    std::chrono::milliseconds send_timeout{60000};    // a response making no progress this long closes
    std::size_t max_header_bytes = 16 * 1024;         // request head; 431 beyond
    int max_headers = 100;                            // header fields; 431 beyond
    std::size_t max_uri_bytes = 8 * 1024;             // request target; 414 beyond
    std::chrono::milliseconds inline_warn{5};         // an inline handler running longer is logged
    // Poco engine only. Thread per connection: max_threads bounds concurrent keep-alive
    // connections that are served at once; beyond that they wait in the queue.
    int max_threads = 512;
    int max_queued = 1024;
    std::chrono::milliseconds keep_alive_timeout{5000};
    int max_keep_alive_requests = 1000;
    std::size_t max_body_bytes = 1024 * 1024;
    // On SIGTERM/SIGINT, how long requests in flight may take to finish before the
    // process exits anyway (exit code 1).
    std::chrono::milliseconds drain_timeout{30000};
    // On SIGTERM/SIGINT, how long /readyz answers 503 while the listeners keep serving,
    // so that a load balancer takes the instance out before the drain begins.
    std::chrono::milliseconds shutdown_delay{5000};
    // A file holding the bearer token the admin API requires (empty: no token). Read at
    // start and at every reload; admin_token is its content without surrounding white space.
    std::filesystem::path admin_token_file;
    std::string admin_token;
    // Where `trellis serve` writes its process id while it serves (empty: nowhere); relative
    // to the file. Its directory must exist and be writable.
    std::filesystem::path pid_file;
    // Where Trellis keeps its files (the embedded SQLite database); relative to the file.
    std::filesystem::path data_dir{"/var/lib/trellis"};
    // Peers (CIDR or single addresses) whose Forwarded / X-Forwarded-* headers are believed.
    std::vector<std::string> trusted_proxies;
    // Host values served; empty: loopback listeners allow localhost names only, others any.
    std::vector<std::string> allowed_hosts;
    // `server.tls`: HTTPS on the public listener (event engine only). PEM files, relative to
    // the file that names them, read at start and again at every reload.
    struct Tls {
        std::filesystem::path certificate;  // the certificate chain, leaf first
        std::filesystem::path key;          // its private key, unencrypted
        Origin origin;                      // where `tls:` was written
    };
    std::optional<Tls> tls;
};

enum class Dialect { sqlite, postgresql };
std::string_view to_string(Dialect dialect);

// `database:`. The url is kept as written (it may hold a password): show `display` only.
struct DatabaseConfig {
    Dialect dialect = Dialect::sqlite;
    std::string url = "sqlite://trellis.db";  // as configured
    std::string connect;                      // what the driver receives
    std::string display;                      // the url with any password replaced by ***
    std::filesystem::path sqlite_file;        // absolute, for sqlite
    int pool_size = 8;
    std::chrono::milliseconds acquire_timeout{2000};
    std::chrono::milliseconds busy_timeout{5000};  // SQLite: how long a writer waits for the lock
    bool migrate_on_start = true;  // apply pending migrations at `serve`; else such plugins fail
    Origin origin;                 // where url was set
};

// Parses sqlite://PATH (relative to data_dir; sqlite:///abs for absolute), postgresql://...
// or postgres://... URIs, and libpq keyword strings ("host=... dbname=..."); the error
// says what is wrong without repeating the url (it may hold a password).
tl::expected<DatabaseConfig, std::string> parse_database_url(std::string url, const std::filesystem::path& data_dir);

// The url with any password replaced by ***.
std::string redact_database_url(std::string_view url);

struct LoggingConfig {
    std::string level = "info";   // trace, debug, info, warn, error, critical, off
    std::string format = "text";  // text or json
    bool access_log = true;
    std::map<std::string, std::string> levels;  // logger (plugin, trellis, access, database) -> level
    std::string output = "stderr";              // stderr or an absolute file path
    std::string access_output;                  // empty: with the other lines; else stderr or a path
    std::size_t buffer_size = 1024 * 1024;      // bytes waiting per output before lines are dropped
};

// `health:`.
struct HealthConfig {
    bool readyz_requires_database = false;  // a database outage turns /readyz 503
};

struct MetricsConfig {
    bool enabled = true;  // request instrumentation (GET /metrics on the admin listener stays)
};

// `openapi:`: the document the host generates from the enabled plugins' routes.
struct OpenApiConfig {
    bool enabled = true;                  // GET <path> on the public listener
    std::string path = "/openapi.json";  // a path the plugins' routes may not take
    std::string title = "Trellis API";   // info.title
};

// A route's required scopes as the admin configured them (plugins.NAME.scopes).
struct RouteScopes {
    std::vector<std::string> scopes;  // may be empty: authentication without a scope
    Origin origin;                    // where the key was set
};

struct PluginConfig {
    std::string name;
    bool enabled = true;
    bool required = false;
    std::string mount;                    // "/<name>" unless configured; "/" allowed
    std::vector<std::string> middleware;  // applied to this plugin's routes, in order
    // "METHOD /mount/path" as in the attribute trellis.route: the scopes that route requires,
    // instead of those its metadata declares. The host enforces them after the middleware.
    std::map<std::string, RouteScopes> scopes;
    nlohmann::json config = nlohmann::json::object();
    // JSON pointer inside `config` ("" for the section itself, "/greeting", "/a/0")
    // mapped to where that value was set, so schema errors can name file and line.
    std::map<std::string, Origin> config_origins;
    Origin origin;  // where the plugin's section starts
};

struct Config {
    ServerConfig server;
    LoggingConfig logging;
    MetricsConfig metrics;
    http::CompressionSettings compression;  // `compression:`
    DatabaseConfig database;
    HealthConfig health;
    OpenApiConfig openapi;
    std::vector<std::string> middleware;  // global, applied to every request, in order
    std::vector<std::filesystem::path> plugin_search_paths{"/usr/lib/trellis/plugins"};  // absolute
    std::vector<PluginConfig> plugins;                                                   // sorted by name
    std::vector<std::string> sources;  // every file read, in merge order, then env names

    const PluginConfig* plugin(std::string_view name) const;
};

struct LoadOptions {
    std::filesystem::path main_file;
    // TRELLIS_* variables to apply (name, value); other names are ignored, and so is
    // TRELLIS_CONFIG, which only selects the main file.
    std::vector<std::pair<std::string, std::string>> environment;
    // conf.d files as they would be after an edit not made yet (`trellis plugins disable`
    // checks its change first): a path in conf.d mapped to the text read instead of the
    // file, or to nullopt for a file read as if it were absent.
    std::map<std::filesystem::path, std::optional<std::string>> drop_in_overrides = {};
    // The embedding API (server/src/embed): the main configuration as text instead of the
    // file main_file, which then only names it in messages ("config:3:5: ...") and must have
    // no folder; relative paths in it resolve against base_dir, and no conf.d is read.
    std::optional<std::string> main_text{};
    std::filesystem::path base_dir{};
    // server.data_dir when the configuration sets none; empty: /var/lib/trellis.
    std::filesystem::path default_data_dir{};
};

// Every problem found, each "ORIGIN: key 'a.b': what is wrong"; loading never stops at
// the first error so that an admin can fix a file in one pass.
using Errors = std::vector<std::string>;

tl::expected<std::shared_ptr<const Config>, Errors> load(const LoadOptions& options);

// The process environment's TRELLIS_* variables, for LoadOptions::environment.
std::vector<std::pair<std::string, std::string>> process_environment();

}  // namespace trellis::config
