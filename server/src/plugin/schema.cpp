// JSON Schema validation of plugin config sections with valijson (nlohmann adapter).
#include "plugin/schema.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "plugin/schema_errors.hpp"
// valijson's JSON Pointer code (std::string::replace of "~1" by "/") trips g++ 12's
// -Wrestrict false positive (GCC bug 105329) once inlined into an optimised build; the
// warning is in the library's code, so it is silenced for these headers only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace trellis::plugin {
namespace {

std::string key_path(const std::string& plugin, const std::string& pointer) {
    std::string out = "plugins." + plugin + ".config";
    for (char c : pointer) out += c == '/' ? '.' : c;
    return out;
}

// The origin of the nearest enclosing value that has one.
config::Origin origin_of(const config::PluginConfig& plugin, std::string pointer) {
    while (true) {
        if (auto it = plugin.config_origins.find(pointer); it != plugin.config_origins.end()) return it->second;
        if (pointer.empty()) return plugin.origin;
        pointer.erase(pointer.rfind('/'));
    }
}

}  // namespace

tl::expected<void, std::vector<std::string>> validate_config(const config::PluginConfig& plugin,
                                                             std::string_view schema_json) {
    if (schema_json.empty()) return {};
    valijson::Schema schema;
    try {
        auto schema_doc = nlohmann::json::parse(schema_json);
        valijson::SchemaParser parser;
        valijson::adapters::NlohmannJsonAdapter schema_adapter(schema_doc);
        parser.populateSchema(schema_adapter, schema);
    } catch (const std::exception& e) {
        return tl::unexpected(
            std::vector<std::string>{"the plugin's config schema is invalid: " + std::string(e.what())});
    }

    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(plugin.config);
    if (validator.validate(schema, target, &results)) return {};

    std::vector<std::string> errors;
    for (const auto& error : innermost_errors(results)) {
        std::string line = origin_of(plugin, error.pointer).describe() + ": key '" + key_path(plugin.name, error.pointer) +
                           "': " + error.message;
        if (std::find(errors.begin(), errors.end(), line) == errors.end()) errors.push_back(std::move(line));
    }
    return tl::unexpected(std::move(errors));
}

}  // namespace trellis::plugin
