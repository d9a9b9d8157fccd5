// trellis check, plugins list, routes, openapi, version: load like serve does, never listen, and
// report as text for people or --json for scripts.
#include <iomanip>
#include <iostream>

#include <trellis/abi.h>
#include <nlohmann/json.hpp>

#include "cli/admin_client.hpp"
#include "cli/commands.hpp"
#include "engine/tls.hpp"
#include "host/version.hpp"
#include "runtime/inventory.hpp"
#include "runtime/logging.hpp"
#include "runtime/openapi.hpp"
#include "runtime/runtime.hpp"

namespace trellis::cli {
namespace {

using nlohmann::json;
using runtime::plugin_json;

std::string join(const std::vector<std::string>& parts, const char* separator) {
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : separator) + part;
    return out;
}

}  // namespace

std::unique_ptr<Loaded> load_quietly(const Arguments& args) {
    auto loaded = std::make_unique<Loaded>();
    loaded->config = load_config(args.config_path);
    if (!loaded->config) return nullptr;
    quiet_logging(*loaded->config);
    loaded->assembly = runtime::Runtime::assemble(loaded->config, loaded->libraries);
    return loaded;
}

void quiet_logging(const config::Config& config) {
    config::LoggingConfig quiet = config.logging;
    quiet.level = "off";
    quiet.levels.clear();  // no logger left at a level of its own
    quiet.output = "stderr";  // nor a log file opened or created by an inspecting command
    quiet.access_output.clear();
    logging::configure(quiet);
}

std::vector<std::string> check_problems(const runtime::Runtime::Assembly& assembly) {
    std::vector<std::string> problems = assembly.errors;
    // The certificate and key as `serve` will read them (ExecStartPre=trellis check).
    if (const auto& tls = assembly.runtime->config().server.tls)
        if (auto context = engine::TlsContext::load(tls->certificate, tls->key); !context)
            problems.push_back(context.error());
    for (const auto& r : assembly.runtime->plugins())
        if (r.status == runtime::PluginStatus::failed && !r.required)
            problems.push_back(runtime::describe(r) + ": " + r.reason);
    return problems;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths;
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (widths.size() <= i) widths.push_back(0);
            widths[i] = std::max(widths[i], row[i].size());
        }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
        }
        std::cout << line << "\n";
    }
}

std::shared_ptr<const config::Config> load_config(const std::string& path) {
    auto loaded = config::load({path, config::process_environment()});
    if (!loaded) {
        for (const auto& error : loaded.error()) std::cerr << error << "\n";
        std::cerr << "trellis: configuration has " << loaded.error().size() << " error(s)\n";
        return nullptr;
    }
    return *loaded;
}

int check(const Arguments& args) {
    auto loaded = load_quietly(args);
    if (!loaded) return 1;
    const auto& runtime = *loaded->assembly.runtime;
    const std::vector<std::string> problems = check_problems(loaded->assembly);
    if (args.json) {
        json plugins = json::array();
        for (const auto& r : runtime.plugins()) plugins.push_back(plugin_json(r));
        std::cout << json{{"ok", problems.empty()},
                          {"config", args.config_path},
                          {"errors", problems},
                          {"plugins", plugins}}
                         .dump(2)
                  << "\n";
        return problems.empty() ? 0 : 1;
    }
    for (const auto& problem : problems) std::cerr << problem << "\n";
    std::size_t loaded_count = 0;
    for (const auto& r : runtime.plugins()) loaded_count += r.status == runtime::PluginStatus::loaded;
    if (!problems.empty()) {
        std::cerr << "trellis: check failed for " << args.config_path << ": " << problems.size() << " problem(s)\n";
        return 1;
    }
    std::cout << "trellis: " << args.config_path << " is valid; " << loaded_count << " plugin(s) loaded, "
              << runtime.targets().size() << " route(s)\n";
    return 0;
}

int plugins_list(const Arguments& args) {
    auto loaded = load_quietly(args);
    if (!loaded) return 1;
    const auto& runtime = *loaded->assembly.runtime;
    // What the running server refused at its last reload (an upgrade that failed).
    const auto reload_errors = served_reload_errors(*loaded->config);
    if (args.json) {
        json out = json::array();
        for (const auto& r : runtime.plugins()) {
            out.push_back(plugin_json(r));
            if (auto it = reload_errors.find(r.name); it != reload_errors.end()) out.back()["reload_error"] = it->second;
        }
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> rows{{"NAME", "STATE", "VERSION", "ABI", "FILE / REASON"}};
    for (const auto& r : runtime.plugins()) {
        std::string detail = r.status == runtime::PluginStatus::failed ? r.reason : r.file;
        rows.push_back({r.name, std::string(runtime::to_string(r.status)), r.version.empty() ? "-" : r.version,
                        r.abi.empty() ? "-" : r.abi, detail.empty() ? "-" : detail});
    }
    print_table(rows);
    for (const auto& [name, error] : reload_errors)
        std::cout << "plugin '" << name << "': the running server (" << admin_address(*loaded->config)
                  << ") refused it at its last reload and serves the version it had: " << error << "\n";
    return 0;
}

int routes(const Arguments& args) {
    auto loaded = load_quietly(args);
    if (!loaded) return 1;
    const auto& runtime = *loaded->assembly.runtime;
    const std::vector<runtime::RouteRow> rows = runtime::route_rows(runtime);
    if (args.json) {
        json out = json::array();
        for (const auto& row : rows) out.push_back(runtime::route_json(row));
        std::cout << out.dump(2) << "\n";
        return 0;
    }
    std::vector<std::vector<std::string>> table{{"METHOD", "PATH", "PLUGIN", "MIDDLEWARE"}};
    for (const auto& row : rows)
        table.push_back({row.method, row.path, row.plugin, row.middleware.empty() ? "-" : join(row.middleware, ", ")});
    print_table(table);
    return 0;
}

int openapi(const Arguments& args) {
    auto loaded = load_quietly(args);
    if (!loaded) return 1;
    std::cout << runtime::openapi_document(*loaded->assembly.runtime).dump(2) << "\n";
    return 0;
}

int version(const Arguments& args) {
    if (args.json) {
        std::cout << host::version_info().dump(2) << "\n";  // the document GET /admin/version answers
        return 0;
    }
    std::cout << "trellis " << TRELLIS_VERSION << "\nplugin ABI " << TRELLIS_ABI_MAJOR << "." << TRELLIS_ABI_MINOR
              << "\naccepts plugins built for ABI " << join(host::accepted_abi_versions(), ", ") << "\n";
    return 0;
}

}  // namespace trellis::cli
