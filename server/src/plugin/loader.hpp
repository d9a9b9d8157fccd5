// Finding plugin files and loading them with Boost.DLL: everything up to and including
// the ABI version check, before any plugin code beyond the entry point runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <trellis/abi.h>
#include <boost/dll/shared_library.hpp>
#include <tl/expected.hpp>

namespace trellis::plugin {

// A loaded plugin library and the facts of its descriptor, copied out.
struct Library {
    std::filesystem::path path;
    boost::dll::shared_library handle;
    const trellis_plugin_descriptor* descriptor = nullptr;
    std::string name;
    std::string version;
    std::string description;
    std::string config_schema_json;
    std::vector<std::string> dependencies;
    std::uint16_t abi_major = 0;
    std::uint16_t abi_minor = 0;
};

// Shares one loaded library between every runtime that uses the same file, so that during
// a reload old and new instances live side by side in one copy of the code.
class LibraryCache {
public:
    // Loads `path` (RTLD_NOW | RTLD_LOCAL) and checks its descriptor. The error says what
    // failed and what to do; the caller adds the plugin's name and file.
    tl::expected<std::shared_ptr<const Library>, std::string> load(const std::filesystem::path& path);

private:
    std::mutex mutex_;
    std::map<std::filesystem::path, std::weak_ptr<const Library>> libraries_;
};

// "<dir>/<name>.so" in the first search path that has it.
std::optional<std::filesystem::path> find_plugin_file(std::string_view name,
                                                      const std::vector<std::filesystem::path>& search_paths);

std::string abi_version_string(std::uint16_t major, std::uint16_t minor);

}  // namespace trellis::plugin
