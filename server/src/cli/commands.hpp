// The trellis subcommands; each returns the process exit code.
#pragma once

#include <memory>

#include <string>
#include <vector>

#include "cli/args.hpp"
#include "config/config.hpp"
#include "plugin/loader.hpp"
#include "runtime/runtime.hpp"

namespace trellis::cli {

int serve(const Arguments& args);
int check(const Arguments& args);
int plugins_list(const Arguments& args);
int plugins_edit(const Arguments& args);  // plugins enable|disable NAME [--reload]
int routes(const Arguments& args);
int openapi(const Arguments& args);
int version(const Arguments& args);
int migrate(const Arguments& args);  // migrate status | up | down | repair
int new_plugin(const Arguments& args);  // new-plugin NAME [--dir DIR]

// Loads the configuration named by the arguments; prints every error and returns null.
std::shared_ptr<const config::Config> load_config(const std::string& path);

// Config and plugins loaded as `check` does (nothing listens, no migration runs), with
// logging off: the command reports what matters. Null after printing config errors.
struct Loaded {
    std::shared_ptr<const config::Config> config;
    plugin::LibraryCache libraries;
    runtime::Runtime::Assembly assembly;
};
std::unique_ptr<Loaded> load_quietly(const Arguments& args);
// Logging off for a command that reports what matters itself.
void quiet_logging(const config::Config& config);
// What makes `trellis check` fail for this assembly, one message each.
std::vector<std::string> check_problems(const runtime::Runtime::Assembly& assembly);

// Left-aligned columns, two spaces apart.
void print_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace trellis::cli
