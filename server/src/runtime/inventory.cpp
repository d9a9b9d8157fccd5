// The runtime described for people and scripts.
#include "runtime/inventory.hpp"

namespace trellis::runtime {

using nlohmann::json;

json plugin_json(const PluginReport& r) {
    json out = {{"name", r.name}, {"state", to_string(r.status)}, {"required", r.required}};
    if (!r.version.empty()) out["version"] = r.version;
    if (!r.abi.empty()) out["abi"] = r.abi;
    if (!r.file.empty()) out["file"] = r.file;
    if (r.status != PluginStatus::disabled) out["mount"] = r.mount;
    if (!r.reason.empty()) out["reason"] = r.reason;
    return out;
}

std::vector<RouteRow> route_rows(const Runtime& runtime) {
    std::vector<RouteRow> rows;
    for (const char* path : {"/livez", "/readyz"}) rows.push_back({"GET", path, "(host)", {}});
    for (const auto& target : runtime.targets()) {
        RouteRow row{target.method, target.full_path, target.instance->name(), {}};
        for (const auto* mw : target.chain) row.middleware.push_back(mw->name);
        rows.push_back(std::move(row));
    }
    return rows;
}

json route_json(const RouteRow& row) {
    return {{"method", row.method}, {"path", row.path}, {"plugin", row.plugin}, {"middleware", row.middleware}};
}

json migration_json(const std::string& plugin, const db::MigrationStatus& s) {
    json item = {{"plugin", plugin},
                 {"version", s.version},
                 {"name", s.name},
                 {"state", db::to_string(s.state)},
                 {"checksum", s.checksum},
                 {"recorded_checksum", s.recorded_checksum},
                 {"applied_at", s.applied_at},
                 {"execution_ms", s.execution_ms}};
    if (!s.error.empty()) item["error"] = s.error;
    return item;
}

}  // namespace trellis::runtime
