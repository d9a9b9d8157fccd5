// trellis migrate status | up | down | repair: the admin's hands on each plugin's schema.
// Plugins are loaded as `check` loads them, so the migrations are exactly those the
// installed plugin files register; the database is the configured one.
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "db/migrations.hpp"
#include "runtime/inventory.hpp"

namespace trellis::cli {
namespace {

using nlohmann::json;

struct Target {
    const plugin::Instance* instance;
    std::vector<db::Migration> migrations;
};

// The loaded plugins that register migrations (all, or --plugin's); null after printing why
// --plugin cannot be served.
std::optional<std::vector<Target>> targets(const Loaded& loaded, const Arguments& args, bool need_plugin) {
    const auto& runtime = *loaded.assembly.runtime;
    if (need_plugin && args.plugin.empty()) {
        std::cerr << "trellis: migrate " << args.command[1] << " needs --plugin NAME\n";
        return std::nullopt;
    }
    if (!args.plugin.empty()) {
        const auto report = std::ranges::find(runtime.plugins(), args.plugin, &runtime::PluginReport::name);
        if (report == runtime.plugins().end()) {
            std::cerr << "trellis: plugin '" << args.plugin << "' is not configured in " << args.config_path << "\n";
            return std::nullopt;
        }
        if (report->status != runtime::PluginStatus::loaded) {
            std::cerr << "trellis: " << runtime::describe(*report) << " is " << runtime::to_string(report->status)
                      << (report->reason.empty() ? "" : ": " + report->reason)
                      << "; its migrations are only known once it loads\n";
            return std::nullopt;
        }
    }
    std::vector<Target> out;
    for (const auto& instance : runtime.instances()) {
        if (!args.plugin.empty() && instance->name() != args.plugin) continue;
        if (instance->migrations().empty() && args.plugin.empty()) continue;
        out.push_back({instance.get(), db::for_dialect(instance->migrations(), runtime.database().dialect())});
    }
    return out;
}

void complain(const Target& target, const std::string& error) {
    std::cerr << "trellis: plugin '" << target.instance->name() << "': " << error << "\n";
}

int status(const Loaded& loaded, const Arguments& args) {
    auto chosen = targets(loaded, args, false);
    if (!chosen) return 1;
    db::Migrator migrator(loaded.assembly.runtime->database());
    json out = json::array();
    std::vector<std::vector<std::string>> table{{"PLUGIN", "VERSION", "NAME", "STATE", "APPLIED AT", "DETAIL"}};
    bool trouble = false;
    for (const auto& target : *chosen) {
        auto states = migrator.status(target.instance->name(), target.migrations);
        if (!states) {
            complain(target, states.error());
            return 1;
        }
        for (const auto& s : *states) {
            trouble |= s.state == db::State::failed || s.state == db::State::drift;
            std::string detail = s.state == db::State::failed  ? s.error
                                 : s.state == db::State::drift ? "recorded checksum " + s.recorded_checksum +
                                                                     ", registered now " + s.checksum
                                 : s.state == db::State::missing
                                     ? "applied, but the plugin no longer registers it"
                                     : "";
            table.push_back({target.instance->name(), std::to_string(s.version), s.name,
                             std::string(db::to_string(s.state)), s.applied_at.empty() ? "-" : s.applied_at,
                             detail.empty() ? "-" : detail});
            out.push_back(runtime::migration_json(target.instance->name(), s));
        }
    }
    if (args.json)
        std::cout << json{{"database", loaded.config->database.display}, {"migrations", out}}.dump(2) << "\n";
    else
        print_table(table);
    return trouble ? 1 : 0;
}

int up(const Loaded& loaded, const Arguments& args) {
    auto chosen = targets(loaded, args, false);
    if (!chosen) return 1;
    db::Migrator migrator(loaded.assembly.runtime->database());
    int failures = 0;
    for (const auto& target : *chosen) {
        auto applied = migrator.up(target.instance->name(), target.migrations, true);
        if (!applied) {
            complain(target, applied.error());
            ++failures;
            continue;
        }
        std::cout << target.instance->name() << ": "
                  << (*applied ? "applied " + std::to_string(*applied) + " migration(s)" : std::string("up to date"))
                  << "\n";
    }
    return failures ? 1 : 0;
}

int down(const Loaded& loaded, const Arguments& args) {
    if (!args.to) {
        std::cerr << "trellis: migrate down needs --to VERSION (the last version to keep; 0 reverts all)\n";
        return 1;
    }
    auto chosen = targets(loaded, args, true);
    if (!chosen) return 1;
    db::Migrator migrator(loaded.assembly.runtime->database());
    const auto& target = chosen->front();
    auto reverted = migrator.down(target.instance->name(), target.migrations, *args.to);
    if (!reverted) {
        complain(target, reverted.error());
        return 1;
    }
    std::cout << target.instance->name() << ": reverted " << *reverted << " migration(s); now at version " << *args.to
              << " or below\n";
    return 0;
}

int repair(const Loaded& loaded, const Arguments& args) {
    auto chosen = targets(loaded, args, true);
    if (!chosen) return 1;
    db::Migrator migrator(loaded.assembly.runtime->database());
    const auto& target = chosen->front();
    auto changes = migrator.repair(target.instance->name(), target.migrations);
    if (!changes) {
        complain(target, changes.error());
        return 1;
    }
    if (changes->empty()) std::cout << target.instance->name() << ": nothing to repair\n";
    for (const auto& change : *changes) std::cout << target.instance->name() << ": " << change << "\n";
    return 0;
}

}  // namespace

int migrate(const Arguments& args) {
    const std::string what = args.command.size() == 2 ? args.command[1] : "";
    if (what != "status" && what != "up" && what != "down" && what != "repair") {
        std::cerr << "trellis: migrate needs one of status, up, down, repair\n" << usage;
        return 2;
    }
    auto loaded = load_quietly(args);
    if (!loaded) return 1;
    if (what == "status") return status(*loaded, args);
    if (what == "up") return up(*loaded, args);
    if (what == "down") return down(*loaded, args);
    return repair(*loaded, args);
}

}  // namespace trellis::cli
