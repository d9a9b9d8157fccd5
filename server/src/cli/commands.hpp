// The trellis subcommands; each returns the process exit code.
#pragma once

#include <memory>

#include "cli/args.hpp"
#include "config/config.hpp"

namespace trellis::cli {

int serve(const Arguments& args);
int check(const Arguments& args);
int plugins_list(const Arguments& args);
int routes(const Arguments& args);
int version(const Arguments& args);

// Loads the configuration named by the arguments; prints every error and returns null.
std::shared_ptr<const config::Config> load_config(const std::string& path);

}  // namespace trellis::cli
