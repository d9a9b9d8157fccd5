// In-process Trellis for tests.
#include "support/test_server.hpp"

#include <cstdlib>
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

Environment with_engine(Environment environment) {
    for (const auto& [name, value] : environment)
        if (name == "TRELLIS_SERVER__ENGINE") return environment;
    if (const char* engine = std::getenv("TRELLIS_SERVER__ENGINE")) environment.emplace_back("TRELLIS_SERVER__ENGINE", engine);
    return environment;
}

TestServer::TestServer(const std::string& yaml, const Environment& environment) {
    auto loaded = load_config(dir_, yaml, with_engine(environment));
    auto config = std::make_shared<config::Config>(*loaded);
    config->server.listen.port = 0;  // free ports
    config->server.admin_listen.port = 0;
    config_ = config;
    logging::configure(config->logging);
    auto file = dir_.path() / "trellis.yaml";
    auto env = with_engine(environment);
    auto made = host::Host::create(config_, [file, env] { return config::load({file, env}); });
    if (!made) {
        std::string all;
        for (const auto& error : made.error()) all += error + "\n";
        throw std::runtime_error("the server did not start:\n" + all);
    }
    host_ = std::move(*made);
    host_->start();
}

TestServer::~TestServer() {
    if (host_) host_->drain();
}

const runtime::PluginReport* find_report(const runtime::Runtime& runtime, const std::string& name) {
    for (const auto& report : runtime.plugins())
        if (report.name == name) return &report;
    return nullptr;
}

}  // namespace trellis::test
