// An in-process Trellis for tests: real config files, real plugin .so files, the real
// runtime and pipeline, and the real engine on a free loopback port.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "engine/engine.hpp"
#include "host/host.hpp"
#include "plugin/loader.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/runtime.hpp"
#include "support/http_client.hpp"
#include "support/temp_dir.hpp"

namespace trellis::test {

using Environment = std::vector<std::pair<std::string, std::string>>;

// "plugins:\n  search_paths: [<fixtures>, <bundled>]\n" followed by `plugins_body`
// (indented by the caller as entries under plugins:), after `top` (other top-level keys).
std::string config_yaml(const std::string& plugins_body, const std::string& top = "");

// Loads config/trellis.yaml written into `dir`; fails the test with every error otherwise.
std::shared_ptr<const config::Config> load_config(const TempDir& dir, const std::string& yaml,
                                                  const Environment& environment = {});

// The engine the suites run against: `server.engine` from TRELLIS_SERVER__ENGINE when this
// process has it (./dev test runs the suites once per engine), else the configured default.
// TestServer and the CLI tests' child processes both follow it.
Environment with_engine(Environment environment);

// A real host (runtime, worker pool, engine) on a free loopback port; the admin listener is
// on a free port too.
class TestServer {
public:
    explicit TestServer(const std::string& yaml, const Environment& environment = {});
    ~TestServer();

    HttpResponse request(const std::string& method, const std::string& target, const std::string& body = {},
                         const Headers& headers = {}) const {
        return http_request(port(), method, target, body, headers);
    }
    HttpResponse get(const std::string& target, const Headers& headers = {}) const {
        return request("GET", target, {}, headers);
    }

    std::uint16_t port() const { return host_->public_port(); }
    std::uint16_t admin_port() const { return host_->admin_port(); }
    const runtime::Runtime& runtime() const { return *host_->pipeline().current(); }
    runtime::Pipeline& pipeline() { return host_->pipeline(); }
    host::Host& host() { return *host_; }
    plugin::LibraryCache& libraries() { return host_->libraries(); }
    const TempDir& dir() const { return dir_; }
    const config::Config& config() const { return *config_; }

private:
    TempDir dir_;
    std::shared_ptr<const config::Config> config_;
    std::unique_ptr<host::Host> host_;
};

const runtime::PluginReport* find_report(const runtime::Runtime& runtime, const std::string& name);

}  // namespace trellis::test
