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

// What tells one plugin file from another at the same path: a package upgrade renames a new
// file over the old one (another inode); an edit in place changes the size or the time.
struct FileId {
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const FileId&) const = default;
    bool same_inode(const FileId& other) const { return device == other.device && inode == other.inode; }
};
tl::expected<FileId, std::string> file_id(const std::filesystem::path& path);

// A loaded plugin library and the facts of its descriptor, copied out.
struct Library {
    std::filesystem::path path;
    FileId file;  // the file loaded (as it was just before dlopen)
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
// a reload old and new instances live side by side in one copy of the code. When the file
// at a path is another one than the library loaded from it (an upgrade), the new file is
// loaded beside the old, which stays mapped until the last runtime using it is released.
class LibraryCache {
public:
    LibraryCache() = default;
    ~LibraryCache();  // removes the private folder of upgrade loads, if one was made
    LibraryCache(const LibraryCache&) = delete;
    LibraryCache& operator=(const LibraryCache&) = delete;

    // Loads `path` (RTLD_NOW | RTLD_LOCAL) and checks its descriptor. The error says what
    // failed and what to do; the caller adds the plugin's name and file.
    tl::expected<std::shared_ptr<const Library>, std::string> load(const std::filesystem::path& path);

private:
    // glibc's dlopen returns the library already loaded under the same name, or from the
    // same inode, even when the file at that name was replaced since: a changed file is
    // opened through a name of its own in a private folder (a symlink, or a copy when the
    // inode is the same), removed once loaded.
    struct PathState {
        std::vector<std::weak_ptr<const Library>> alive;  // every version some runtime uses
        std::optional<FileId> by_name;                    // what dlopen(path) itself maps
        std::vector<FileId> mapped;                       // every file loaded from the path
    };
    tl::expected<std::filesystem::path, std::string> private_name(const std::filesystem::path& path, bool copy);

    std::mutex mutex_;
    std::map<std::filesystem::path, PathState> libraries_;
    std::filesystem::path private_dir_;
    unsigned long loads_ = 0;
};

// "<dir>/<name>.so" in the first search path that has it.
std::optional<std::filesystem::path> find_plugin_file(std::string_view name,
                                                      const std::vector<std::filesystem::path>& search_paths);

std::string abi_version_string(std::uint16_t major, std::uint16_t minor);

}  // namespace trellis::plugin
