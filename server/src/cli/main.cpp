// The trellis command line: serve, version.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <pthread.h>
#include <trellis/abi.h>

#include "config/config.hpp"
#include "engine/engine.hpp"
#include "runtime/logging.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/runtime.hpp"

namespace {

constexpr const char* usage = R"(usage: trellis COMMAND [OPTIONS]

commands:
  serve      load the configuration and the enabled plugins, then serve HTTP
  version    print the product version and the plugin ABI version
  help       print this text

options:
  -c, --config PATH   main configuration file (default: $TRELLIS_CONFIG, else
                      /etc/trellis/trellis.yaml); conf.d/*.yaml beside it and
                      TRELLIS_* environment variables are applied on top
)";

struct Arguments {
    std::string command;
    std::string config_path;
};

std::optional<Arguments> parse(int argc, char** argv) {
    Arguments args;
    std::vector<std::string> words(argv + 1, argv + argc);
    for (std::size_t i = 0; i < words.size(); ++i) {
        const auto& word = words[i];
        if (word == "-c" || word == "--config") {
            if (i + 1 >= words.size()) {
                std::cerr << "trellis: " << word << " needs a path\n";
                return std::nullopt;
            }
            args.config_path = words[++i];
        } else if (word.rfind("--config=", 0) == 0) {
            args.config_path = word.substr(9);
        } else if (word == "-h" || word == "--help") {
            args.command = "help";
        } else if (!word.empty() && word[0] == '-') {
            std::cerr << "trellis: unknown option '" << word << "'\n" << usage;
            return std::nullopt;
        } else if (args.command.empty()) {
            args.command = word;
        } else {
            std::cerr << "trellis: unexpected argument '" << word << "'\n";
            return std::nullopt;
        }
    }
    if (args.command.empty()) args.command = "help";
    if (args.config_path.empty()) {
        const char* env = std::getenv("TRELLIS_CONFIG");
        args.config_path = env && *env ? env : "/etc/trellis/trellis.yaml";
    }
    return args;
}

trellis::engine::Options engine_options(const trellis::config::ServerConfig& server, bool admin) {
    trellis::engine::Options options;
    options.name = admin ? "admin" : "public";
    const auto& endpoint = admin ? server.admin_listen : server.listen;
    options.host = endpoint.host;
    options.port = endpoint.port;
    options.max_threads = admin ? 16 : server.max_threads;
    options.max_queued = admin ? 64 : server.max_queued;
    options.keep_alive_timeout = server.keep_alive_timeout;
    options.max_keep_alive_requests = server.max_keep_alive_requests;
    options.max_body_bytes = server.max_body_bytes;
    return options;
}

std::shared_ptr<const trellis::config::Config> load_config(const std::string& path) {
    auto loaded = trellis::config::load({path, trellis::config::process_environment()});
    if (!loaded) {
        for (const auto& error : loaded.error()) std::cerr << error << "\n";
        std::cerr << "trellis: configuration has " << loaded.error().size() << " error(s)\n";
        return nullptr;
    }
    return *loaded;
}

int serve(const Arguments& args) {
    namespace rt = trellis::runtime;
    // Block the signals we wait for before any thread starts, so that only sigwait sees them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto config = load_config(args.config_path);
    if (!config) return 1;
    trellis::logging::configure(config->logging);
    auto log = trellis::logging::get("trellis");
    log->info("Trellis {} (plugin ABI {}.{}) starting with {}", TRELLIS_VERSION, TRELLIS_ABI_MAJOR, TRELLIS_ABI_MINOR,
              args.config_path);

    trellis::plugin::LibraryCache libraries;
    auto runtime = rt::Runtime::build(config, libraries);
    if (!runtime) {
        for (const auto& error : runtime.error()) log->critical("{}", error);
        log->critical("start-up failed");
        return 1;
    }
    rt::Pipeline pipeline(*runtime);

    std::vector<std::unique_ptr<trellis::engine::Engine>> engines;
    auto add_engine = [&](bool admin) {
        auto listener = admin ? rt::Listener::admin : rt::Listener::public_;
        auto made = trellis::engine::make_poco_engine(
            engine_options(config->server, admin),
            [&pipeline, listener](auto& request, auto& response) { pipeline.handle(request, response, listener); });
        if (!made) {
            log->critical("{}", made.error());
            return false;
        }
        engines.push_back(std::move(*made));
        return true;
    };
    if (!add_engine(false) || (config->server.admin_enabled && !add_engine(true))) return 1;
    for (auto& engine : engines) engine->start();
    log->info("listening on {} (public){}", config->server.listen.text(),
              config->server.admin_enabled ? ", " + config->server.admin_listen.text() + " (admin)" : "");

    while (true) {
        int signal = 0;
        sigwait(&signals, &signal);
        if (signal != SIGHUP) {
            log->info("received {}, stopping", signal == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        // Reload: the same path as start-up; on any error the current runtime keeps serving.
        log->info("received SIGHUP, reloading {}", args.config_path);
        auto next_config = load_config(args.config_path);
        if (!next_config) {
            log->error("reload aborted: configuration has errors; still serving the previous one");
            continue;
        }
        if (next_config->server.listen.text() != config->server.listen.text() ||
            next_config->server.admin_listen.text() != config->server.admin_listen.text())
            log->warn("listener addresses changed; they take effect after a restart");
        trellis::logging::configure(next_config->logging);
        auto next = rt::Runtime::build(next_config, libraries);
        if (!next) {
            for (const auto& error : next.error()) log->error("{}", error);
            log->error("reload aborted; still serving the previous runtime");
            continue;
        }
        pipeline.replace(*next);
        log->info("reloaded");
    }
    pipeline.set_ready(false);
    for (auto& engine : engines) engine->stop();
    log->info("stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    auto args = parse(argc, argv);
    if (!args) return 2;
    if (args->command == "help") {
        std::cout << usage;
        return 0;
    }
    if (args->command == "version") {
        std::cout << "trellis " << TRELLIS_VERSION << "\nplugin ABI " << TRELLIS_ABI_MAJOR << "." << TRELLIS_ABI_MINOR
                  << "\n";
        return 0;
    }
    if (args->command == "serve") return serve(*args);
    std::cerr << "trellis: unknown command '" << args->command << "'\n" << usage;
    return 2;
}
