// Reloads that load upgraded plugin files, and refuse to lose a plugin to a broken upgrade.
#include "host/upgrades.hpp"

namespace trellis::host {

void ReloadErrors::set(std::map<std::string, std::string> errors) {
    std::lock_guard lock(mutex_);
    errors_ = std::move(errors);
}

std::map<std::string, std::string> ReloadErrors::get() const {
    std::lock_guard lock(mutex_);
    return errors_;
}

std::vector<Upgrade> find_upgrades(const runtime::Runtime& current, const config::Config& next) {
    std::vector<Upgrade> upgrades;
    for (const auto& instance : current.instances()) {
        const auto* section = next.plugin(instance->name());
        if (!section || !section->enabled) continue;
        const auto file = plugin::find_plugin_file(instance->name(), next.plugin_search_paths);
        if (!file) continue;  // gone: the build reports it as for any plugin
        const auto id = plugin::file_id(*file);
        const auto& library = instance->library();
        if (id && *id == library.file) continue;
        upgrades.push_back(Upgrade{instance->name(), library.version, library.path.string(), file->string()});
    }
    return upgrades;
}

tl::expected<std::shared_ptr<const runtime::Runtime>, config::Errors> build_for_reload(
    std::shared_ptr<const config::Config> next, const runtime::Runtime* current, plugin::LibraryCache& libraries,
    ReloadErrors& reload_errors, spdlog::logger& log) {
    const auto upgrades = current ? find_upgrades(*current, *next) : std::vector<Upgrade>{};
    for (const auto& u : upgrades)
        log.info("plugin '{}': {} changed since version {} was loaded from {}; loading the new file", u.name,
                 u.new_file, u.old_version, u.old_file);
    const auto mode = runtime::Runtime::serving_mode(*next);
    auto assembly = runtime::Runtime::assemble(std::move(next), libraries, mode);
    const auto& built = *assembly.runtime;
    auto report_of = [&](const std::string& name) -> const runtime::PluginReport* {
        for (const auto& r : built.plugins())
            if (r.name == name) return &r;
        return nullptr;
    };
    for (const auto& u : upgrades) {
        const auto* r = report_of(u.name);  // configured and enabled: find_upgrades checked
        // A required plugin that failed is reported by the build already.
        if (!r || r->status == runtime::PluginStatus::loaded || r->required) continue;
        assembly.errors.push_back("plugin '" + u.name + "' (" + u.new_file + ") was upgraded and its new version failed: " +
                                  r->reason + "; version " + u.old_version + " keeps serving");
    }
    if (!assembly.errors.empty()) {
        std::map<std::string, std::string> failed;
        for (const auto& r : built.plugins())
            if (r.status == runtime::PluginStatus::failed)
                failed[r.name] = r.reason + (r.version.empty() ? "" : " (version " + r.version + ", " + r.file + ")");
        reload_errors.set(std::move(failed));
        return tl::unexpected(std::move(assembly.errors));
    }
    reload_errors.set({});
    for (const auto& u : upgrades) {
        const auto* r = report_of(u.name);
        if (r) log.info("plugin '{}': upgraded from version {} to {} ({})", u.name, u.old_version, r->version, r->file);
    }
    return std::move(assembly.runtime);
}

}  // namespace trellis::host
