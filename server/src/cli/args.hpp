// Command-line arguments of the trellis binary.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace trellis::cli {

struct Arguments {
    std::vector<std::string> command;  // "serve", or "plugins" "list"
    std::string config_path;           // -c, else $TRELLIS_CONFIG, else /etc/trellis/trellis.yaml
    bool json = false;                 // --json
    bool reload = false;               // --reload (plugins enable/disable)
    std::string plugin;                // --plugin NAME (migrate)
    std::optional<long long> to;       // --to VERSION (migrate down)
    std::string dir;                   // --dir D (new-plugin)
};

extern const char* const usage;

// nullopt after printing why to stderr.
std::optional<Arguments> parse(int argc, char** argv);

}  // namespace trellis::cli
