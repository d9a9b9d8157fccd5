// What a runtime holds, as the CLI (`trellis plugins list`, `routes`, `migrate status`) and
// the admin API (/admin/plugins, /admin/routes, /admin/migrations) both report it: one
// description, so the two never disagree.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "db/migrations.hpp"
#include "runtime/runtime.hpp"

namespace trellis::runtime {

// {name, state, required, version?, abi?, file?, mount?, reason?}
nlohmann::json plugin_json(const PluginReport& report);

// Every route a public listener serves: the host's own first, then the plugins' in order.
struct RouteRow {
    std::string method;
    std::string path;
    std::string plugin;  // "(host)" for the host's own
    std::vector<std::string> middleware;
};
std::vector<RouteRow> route_rows(const Runtime& runtime);
nlohmann::json route_json(const RouteRow& row);  // {method, path, plugin, middleware}

// {plugin, version, name, state, checksum, recorded_checksum, applied_at, execution_ms, error?}
nlohmann::json migration_json(const std::string& plugin, const db::MigrationStatus& status);

}  // namespace trellis::runtime
