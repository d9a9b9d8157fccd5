// Plugin upgrades at a reload: a loaded plugin whose file is now another one (a package
// upgrade renames the new file over the old). The reload loads the new file, and loses no
// plugin to it: when an upgraded plugin's new version fails, the reload is refused and the
// old version keeps serving; why is kept for GET /admin/plugins and `trellis plugins list`.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <tl/expected.hpp>

#include "config/config.hpp"
#include "plugin/loader.hpp"
#include "runtime/runtime.hpp"

namespace trellis::host {

// The last reload error of each plugin whose failure refused a reload; cleared by the next
// reload that succeeds. Any thread.
class ReloadErrors {
public:
    void set(std::map<std::string, std::string> errors);
    std::map<std::string, std::string> get() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::string> errors_;
};

struct Upgrade {
    std::string name;
    std::string old_version;
    std::string old_file;
    std::string new_file;
};

// Every plugin loaded in `current` whose file under `next`'s search paths is not the file
// its library was loaded from.
std::vector<Upgrade> find_upgrades(const runtime::Runtime& current, const config::Config& next);

// Runtime::build for a reload: migrations applied or checked as at start-up, and each
// upgraded plugin required, whatever its configuration says.
tl::expected<std::shared_ptr<const runtime::Runtime>, config::Errors> build_for_reload(
    std::shared_ptr<const config::Config> next, const runtime::Runtime* current, plugin::LibraryCache& libraries,
    ReloadErrors& reload_errors, spdlog::logger& log);

}  // namespace trellis::host
