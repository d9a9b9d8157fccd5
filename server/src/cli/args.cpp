// Parsing the trellis command line.
#include "cli/args.hpp"

#include <cstdlib>
#include <iostream>

namespace trellis::cli {

const char* const usage = R"(usage: trellis COMMAND [OPTIONS]

commands:
  serve          load the configuration and the enabled plugins, then serve HTTP
  check          load the configuration and the enabled plugins without listening;
                 exit 0 when all is well, 1 with every reason otherwise
  plugins list   every configured plugin: state (loaded, disabled, failed with reason),
                 version, ABI and file; and, when the server answers on its admin
                 listener, why its last reload refused a plugin (a failed upgrade)
  plugins disable NAME [--reload]
                 write conf.d/90-disabled-NAME.yaml beside the main file (it sets
                 plugins.NAME.enabled: false; no package owns or overwrites it)
  plugins enable NAME [--reload]
                 remove that file; refused when NAME.so is not installed. Both
                 refuse, changing nothing, a configuration that would fail `check`;
                 --reload then reloads the running server (POST /admin/reload on
                 server.admin_listen) and reports its answer
  routes         every route: method, full path, plugin, middleware chain
  openapi        the OpenAPI 3.1 document of the enabled plugins' routes (what
                 GET /openapi.json answers), as JSON
  version        the product version, the plugin ABI version and the ABI versions
                 whose plugins load
  migrate status         per plugin and migration: applied, pending, failed, drift
                         (changed after it was applied) or missing; exit 1 on failed
                         or drift
  migrate up [--plugin NAME]
                         apply pending migrations (and retry failed ones, after you
                         fixed them) of every loaded plugin, or of NAME
  migrate down --plugin NAME --to VERSION
                         revert NAME's applied migrations above VERSION, newest first
  migrate repair --plugin NAME
                         forget NAME's failed migrations (they run again at the next
                         up) and accept the changed SQL of drifted ones
  new-plugin NAME [--dir DIR]
                 write a plugin project (route, middleware, migration, Catch2 test,
                 deb/rpm packaging) into DIR (default ./NAME), which must not exist
                 or be empty; it builds against the installed SDK (trellis-dev)
  help           this text

options:
  -c, --config PATH   main configuration file (default: $TRELLIS_CONFIG, else
                      /etc/trellis/trellis.yaml); conf.d/*.yaml beside it and
                      TRELLIS_* environment variables are applied on top
  --json              machine-readable output (check, plugins list, routes, version,
                      migrate status)
)";

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
        } else if (word == "--plugin" || word == "--to") {
            if (i + 1 >= words.size()) {
                std::cerr << "trellis: " << word << " needs a value\n";
                return std::nullopt;
            }
            const std::string& value = words[++i];
            if (word == "--plugin") {
                args.plugin = value;
            } else {
                char* end = nullptr;
                const long long to = std::strtoll(value.c_str(), &end, 10);
                if (value.empty() || *end != '\0' || to < 0) {
                    std::cerr << "trellis: --to needs a version number (0 reverts everything), not '" << value
                              << "'\n";
                    return std::nullopt;
                }
                args.to = to;
            }
        } else if (word == "--dir") {
            if (i + 1 >= words.size() || words[i + 1].empty()) {
                std::cerr << "trellis: --dir needs a folder\n";
                return std::nullopt;
            }
            args.dir = words[++i];
        } else if (word == "--json") {
            args.json = true;
        } else if (word == "--reload") {
            args.reload = true;
        } else if (word == "-h" || word == "--help") {
            args.command = {"help"};
        } else if (!word.empty() && word[0] == '-') {
            std::cerr << "trellis: unknown option '" << word << "'\n" << usage;
            return std::nullopt;
        } else {
            args.command.push_back(word);
        }
    }
    if (args.command.empty()) args.command = {"help"};
    if (args.config_path.empty()) {
        const char* env = std::getenv("TRELLIS_CONFIG");
        args.config_path = env && *env ? env : "/etc/trellis/trellis.yaml";
    }
    return args;
}

}  // namespace trellis::cli
