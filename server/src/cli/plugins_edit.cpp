// trellis plugins enable|disable NAME [--reload]: the admin's switch, as a drop-in file
// conf.d/90-disabled-NAME.yaml that no package owns (so upgrades keep it). The change is
// checked as `trellis check` would check it before the folder is touched.
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "cli/admin_client.hpp"
#include "cli/commands.hpp"

namespace trellis::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// As the configuration requires: lower case letters, digits and '_', starting with a letter.
bool valid_name(const std::string& name) {
    if (name.empty() || name.front() < 'a' || name.front() > 'z') return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

std::string user_name() {
    if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name) return pw->pw_name;
    return "uid " + std::to_string(::geteuid());
}

std::string marker_text(const std::string& name) {
    return "# Written by `trellis plugins disable " + name + "` (user " + user_name() + ").\n" +
           "# Disables plugin '" + name + "' whatever the files before it say. No package owns\n" +
           "# this file, so package upgrades keep it. Undo: `trellis plugins enable " + name +
           "`\n# (or delete this file), then reload: `systemctl reload trellis`.\n" + "plugins:\n  " + name +
           ":\n    enabled: false\n";
}

// plugins.NAME.enabled as this YAML text sets it, if it does.
std::optional<bool> enabled_in(const std::string& text, const std::string& name) {
    try {
        const YAML::Node root = YAML::Load(text);
        if (!root.IsMap() || !root["plugins"].IsMap() || !root["plugins"][name].IsMap()) return std::nullopt;
        const YAML::Node value = root["plugins"][name]["enabled"];
        if (!value.IsScalar()) return std::nullopt;
        return value.as<bool>();
    } catch (const YAML::Exception&) {
        return std::nullopt;
    }
}

std::optional<std::string> read_text(const fs::path& file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return std::nullopt;
    std::string text;
    FILE* in = std::fopen(file.c_str(), "rb");
    if (!in) return std::nullopt;
    char buffer[4096];
    for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, in)) > 0;) text.append(buffer, n);
    std::fclose(in);
    return text;
}

// The last source (a file, or the environment variable) that sets plugins.NAME.enabled, with
// the value it sets; nullopt when none does (enabled by default).
struct Setter {
    std::string source;
    bool enabled = true;
};
std::optional<Setter> last_setter(const config::Config& config, const std::string& name,
                                  const config::LoadOptions& options) {
    std::optional<Setter> found;
    for (const auto& source : config.sources) {
        const fs::path file(source);
        std::optional<std::string> text;
        if (auto it = options.drop_in_overrides.find(file); it != options.drop_in_overrides.end())
            text = it->second;
        else
            text = read_text(file);
        if (!text) continue;
        if (auto value = enabled_in(*text, name)) found = Setter{source, *value};
    }
    std::string variable = "TRELLIS_PLUGINS__" + name + "__ENABLED";
    for (auto& c : variable) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& [key, value] : options.environment)
        if (key == variable)
            if (auto parsed = enabled_in("plugins: {" + name + ": {enabled: " + value + "}}", name))
                found = Setter{"the environment variable " + variable + "=" + value, *parsed};
    return found;
}

// Loads the configuration as it would be with `overrides`, and builds its runtime as
// `trellis check` does. Prints why and returns nullopt when it would not pass.
struct Checked {
    std::shared_ptr<const config::Config> config;
    std::optional<Setter> setter;
    runtime::PluginStatus status = runtime::PluginStatus::disabled;
    std::string version;
};

std::optional<Checked> check_change(const config::LoadOptions& options, const std::string& name,
                                    const std::string& refusal) {
    auto loaded = config::load(options);
    if (!loaded) {
        std::cerr << "trellis: " << refusal << ": the configuration would have errors:\n";
        for (const auto& error : loaded.error()) std::cerr << "  " << error << "\n";
        std::cerr << "trellis: nothing was changed\n";
        return std::nullopt;
    }
    quiet_logging(**loaded);
    plugin::LibraryCache libraries;
    auto assembly = runtime::Runtime::assemble(*loaded, libraries);
    const auto problems = check_problems(assembly);
    if (!problems.empty()) {
        std::cerr << "trellis: " << refusal << ": the configuration would not pass `trellis check`:\n";
        for (const auto& problem : problems) std::cerr << "  " << problem << "\n";
        std::cerr << "trellis: nothing was changed\n";
        return std::nullopt;
    }
    Checked checked{*loaded, last_setter(**loaded, name, options), runtime::PluginStatus::disabled, {}};
    for (const auto& r : assembly.runtime->plugins())
        if (r.name == name) {
            checked.status = r.status;
            checked.version = r.version;
        }
    return checked;
}

// Writes through a temporary file in the same folder and a rename, so that a reader (a
// reload, a package's maintainer script) sees the old file or the new, never a part.
tl::expected<void, std::string> write_atomically(const fs::path& file, const std::string& text) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    if (ec) return tl::unexpected("cannot create " + file.parent_path().string() + ": " + ec.message());
    // Not *.yaml, so that a reload running meanwhile never reads it.
    // Appended piece by piece: `"." + std::string` trips g++ 12's -Wrestrict false positive at -O3.
    std::string name = ".";
    name += file.filename().string();
    name += ".XXXXXX";
    std::string temporary = (file.parent_path() / name).string();
    const int fd = ::mkstemp(temporary.data());
    if (fd < 0) return tl::unexpected("cannot write in " + file.parent_path().string() + ": " + std::strerror(errno));
    auto fail = [&](const std::string& what) {
        const std::string reason = std::strerror(errno);
        ::close(fd);
        ::unlink(temporary.c_str());
        return tl::unexpected("cannot " + what + " " + file.string() + ": " + reason);
    };
    if (::fchmod(fd, 0644) != 0) return fail("set the mode of");
    for (std::size_t done = 0; done < text.size();) {
        const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail("write");
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) return fail("write");
    ::close(fd);
    if (::rename(temporary.c_str(), file.c_str()) != 0) {
        const std::string reason = std::strerror(errno);
        ::unlink(temporary.c_str());
        return tl::unexpected("cannot write " + file.string() + ": " + reason);
    }
    if (const int dir = ::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
    return {};
}

// POST /admin/reload and what it answered. 0 when the server reloaded and `name` is in the
// state the change meant (loaded / disabled).
int reload(const config::Config& config, const std::string& name, bool enabling) {
    const std::string where = admin_address(config);
    if (!config.server.admin_enabled) {
        std::cerr << "trellis: cannot reload: the admin API is off (server.admin_enabled: false); reload the server "
                     "with `systemctl reload trellis` or SIGHUP\n";
        return 1;
    }
    auto answer = admin_request(config, "POST", "/admin/reload", std::chrono::seconds(120));
    if (!answer) {
        std::cerr << "trellis: cannot reload: no answer from the admin API on " << where
                  << " (server.admin_listen): " << answer.error()
                  << "; the change takes effect when the server starts or reloads\n";
        return 1;
    }
    const json body = json::parse(answer->body, nullptr, false);
    if (answer->status != 200) {
        std::cerr << "trellis: the reload on " << where << " failed (HTTP " << answer->status << ")";
        if (body.is_object() && body.contains("detail")) std::cerr << ": " << body["detail"].get<std::string>();
        std::cerr << "\n";
        if (body.is_object() && body.contains("errors") && body["errors"].is_array())
            for (const auto& error : body["errors"]) std::cerr << "  " << error.get<std::string>() << "\n";
        return 1;
    }
    std::string state = "not configured";
    std::string reason;
    if (body.is_object() && body.contains("plugins"))
        for (const auto& plugin : body["plugins"])
            if (plugin.value("name", "") == name) {
                state = plugin.value("state", "");
                reason = plugin.value("reason", "");
            }
    const bool as_meant = enabling ? state == "loaded" : state == "disabled";
    (as_meant ? std::cout : std::cerr) << "trellis: reloaded the server on " << where << "; plugin '" << name
                                       << "' is " << state << (reason.empty() ? "" : ": " + reason) << "\n";
    return as_meant ? 0 : 1;
}

int disable(const Arguments& args, const std::string& name, config::LoadOptions options, const fs::path& marker) {
    const auto existing = read_text(marker);
    if (existing && enabled_in(*existing, name) == false) {
        std::cout << "trellis: plugin '" << name << "' is already disabled by " << marker.string()
                  << "; nothing changed\n";
        if (!args.reload) return 0;
        const auto current = load_config(args.config_path);
        return current ? reload(*current, name, false) : 1;
    }
    std::string already;  // who disables it already, if someone does
    if (auto before = config::load(options)) {
        const auto* section = (*before)->plugin(name);
        // A name no file configures and no search path has is a typo, not a plugin to disable.
        if (!section && !plugin::find_plugin_file(name, (*before)->plugin_search_paths)) {
            std::cerr << "trellis: not disabling plugin '" << name << "': no configuration file has a section for it "
                      << "and no " << name << ".so is installed; nothing was changed\n";
            return 1;
        }
        if (section && !section->enabled) {
            const auto setter = last_setter(**before, name, options);
            already = setter ? setter->source : "the configuration";
        }
    }
    const std::string text = marker_text(name);
    options.drop_in_overrides[marker] = text;
    const auto checked = check_change(options, name, "not disabling plugin '" + name + "'");
    if (!checked) return 1;
    if (checked->setter && checked->setter->enabled) {
        std::cerr << "trellis: not disabling plugin '" << name << "': " << checked->setter->source
                  << " sets plugins." << name << ".enabled: true after " << marker.string()
                  << ", so the plugin would stay enabled; nothing was changed\n";
        return 1;
    }
    if (auto written = write_atomically(marker, text); !written) {
        std::cerr << "trellis: not disabling plugin '" << name << "': " << written.error() << "\n";
        return 1;
    }
    if (!already.empty())
        std::cout << "trellis: plugin '" << name << "' was already disabled by " << already
                  << "; wrote " << marker.string() << " as well, which package upgrades keep\n";
    else
        std::cout << "trellis: plugin '" << name << "' disabled: wrote " << marker.string()
                  << "; undo with `trellis plugins enable " << name << "`\n";
    return args.reload ? reload(*checked->config, name, false) : 0;
}

int enable(const Arguments& args, const std::string& name, config::LoadOptions options, const fs::path& marker) {
    std::error_code ec;
    const bool has_marker = fs::exists(fs::symlink_status(marker, ec));
    options.drop_in_overrides[marker] = std::nullopt;
    const std::string refusal = "not enabling plugin '" + name + "'";
    // The search paths do not depend on the marker, so the check after the change says it.
    if (auto after = config::load(options)) {
        if (!plugin::find_plugin_file(name, (*after)->plugin_search_paths)) {
            std::string dirs;
            for (const auto& dir : (*after)->plugin_search_paths) dirs += (dirs.empty() ? "" : ", ") + dir.string();
            std::cerr << "trellis: " << refusal << ": it is not installed: no " << name << ".so in plugins.search_paths ("
                      << (dirs.empty() ? "none configured" : dirs) << "); nothing was changed\n";
            return 1;
        }
        if (!(*after)->plugin(name)) {
            std::cerr << "trellis: " << refusal << ": " << name << ".so is installed but no configuration file has a "
                      << "section for it; add one, e.g. `plugins: {" << name << ": {}}` in "
                      << (marker.parent_path() / ("50-" + name + ".yaml")).string() << "\n";
            return 1;
        }
    }
    const auto checked = check_change(options, name, refusal);
    if (!checked) return 1;
    const bool stays_disabled = checked->setter && !checked->setter->enabled;
    if (has_marker && !fs::remove(marker, ec)) {
        std::cerr << "trellis: " << refusal << ": cannot remove " << marker.string() << ": " << ec.message() << "\n";
        return 1;
    }
    if (has_marker)
        if (const int dir = ::open(marker.parent_path().c_str(), O_RDONLY | O_DIRECTORY); dir >= 0) {
            ::fsync(dir);
            ::close(dir);
        }
    if (stays_disabled) {
        std::cerr << "trellis: " << (has_marker ? "removed " + marker.string() + ", but plugin '" : "plugin '") << name
                  << "' stays disabled: " << checked->setter->source << " sets plugins." << name
                  << ".enabled: false; change it there to enable the plugin\n";
        return 1;
    }
    if (has_marker)
        std::cout << "trellis: plugin '" << name << "' enabled" << (checked->version.empty() ? "" : " (version " + checked->version + ")")
                  << ": removed " << marker.string() << "\n";
    else
        std::cout << "trellis: plugin '" << name << "' is already enabled (there is no " << marker.string()
                  << "); nothing changed\n";
    return args.reload ? reload(*checked->config, name, true) : 0;
}

}  // namespace

int plugins_edit(const Arguments& args) {
    const std::string& verb = args.command[1];
    if (args.command.size() != 3) {
        std::cerr << "trellis: usage: trellis plugins " << verb << " NAME [-c CONFIG] [--reload]\n";
        return 2;
    }
    const std::string& name = args.command[2];
    if (!valid_name(name)) {
        std::cerr << "trellis: '" << name << "' is not a plugin name: lower case letters, digits and '_', starting "
                  << "with a letter\n";
        return 2;
    }
    std::error_code ec;
    if (!fs::is_regular_file(args.config_path, ec)) {
        std::cerr << "trellis: cannot " << verb << " plugin '" << name << "': no configuration file "
                  << args.config_path << " (give one with -c)\n";
        return 1;
    }
    // The same path as the loader builds for conf.d, so the override replaces that file.
    const fs::path marker = fs::path(args.config_path).parent_path() / "conf.d" / ("90-disabled-" + name + ".yaml");
    config::LoadOptions options{args.config_path, config::process_environment(), {}};
    return verb == "disable" ? disable(args, name, std::move(options), marker)
                             : enable(args, name, std::move(options), marker);
}

}  // namespace trellis::cli
