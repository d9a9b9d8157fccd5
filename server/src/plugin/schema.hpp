// Checking a plugin's config section against the JSON Schema its descriptor declares,
// before the plugin's init ever sees it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "config/config.hpp"

namespace trellis::plugin {

// Each error names where the offending value was set and its key path:
// "conf.d/10-hello.yaml:4:15: key 'plugins.hello.config.greeting': Value type not permitted ...".
tl::expected<void, std::vector<std::string>> validate_config(const config::PluginConfig& plugin,
                                                             std::string_view schema_json);

}  // namespace trellis::plugin
