// An in-process Trellis for tests: real config files, real plugin .so files, the real
// runtime and pipeline, and the real engine on a free loopback port.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "engine/engine.hpp"
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

    std::uint16_t port() const { return engine_->port(); }
    const runtime::Runtime& runtime() const { return *pipeline_->current(); }
    runtime::Pipeline& pipeline() { return *pipeline_; }
    plugin::LibraryCache& libraries() { return libraries_; }
    const TempDir& dir() const { return dir_; }

private:
    TempDir dir_;
    plugin::LibraryCache libraries_;
    std::unique_ptr<runtime::Pipeline> pipeline_;
    std::unique_ptr<engine::Engine> engine_;
};

const runtime::PluginReport* find_report(const runtime::Runtime& runtime, const std::string& name);

}  // namespace trellis::test
