// In-process Trellis for tests.
#include "support/test_server.hpp"

#include <stdexcept>

#include <catch2/catch.hpp>

#include "runtime/logging.hpp"

namespace trellis::test {

std::string config_yaml(const std::string& plugins_body, const std::string& top) {
    return top + "plugins:\n  search_paths: [\"" TRELLIS_TEST_FIXTURE_DIR "\", \"" TRELLIS_TEST_PLUGIN_DIR "\"]\n" +
           plugins_body;
}

std::shared_ptr<const config::Config> load_config(const TempDir& dir, const std::string& yaml,
                                                  const Environment& environment) {
    auto file = dir.write("trellis.yaml", yaml);
    auto loaded = config::load({file, environment});
    if (!loaded) {
        std::string all;
        for (const auto& error : loaded.error()) all += error + "\n";
        FAIL("configuration did not load:\n" << all);
    }
    return *loaded;
}

TestServer::TestServer(const std::string& yaml, const Environment& environment) {
    auto config = load_config(dir_, yaml, environment);
    logging::configure(config->logging);
    auto built = runtime::Runtime::build(config, libraries_);
    if (!built) {
        std::string all;
        for (const auto& error : built.error()) all += error + "\n";
        throw std::runtime_error("runtime did not build:\n" + all);
    }
    pipeline_ = std::make_unique<runtime::Pipeline>(*built);
    engine::Options options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.max_threads = 32;
    options.max_body_bytes = config->server.max_body_bytes;
    options.keep_alive_timeout = config->server.keep_alive_timeout;
    auto* pipeline = pipeline_.get();
    auto made = engine::make_poco_engine(options, [pipeline](http::Request& request, http::Response& response) {
        pipeline->handle(request, response, runtime::Listener::public_);
    });
    if (!made) throw std::runtime_error(made.error());
    engine_ = std::move(*made);
    engine_->start();
}

TestServer::~TestServer() {
    if (engine_) engine_->stop();
}

const runtime::PluginReport* find_report(const runtime::Runtime& runtime, const std::string& name) {
    for (const auto& report : runtime.plugins())
        if (report.name == name) return &report;
    return nullptr;
}

}  // namespace trellis::test
