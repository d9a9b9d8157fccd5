// Plugin library loading and ABI checks.
#include "plugin/loader.hpp"

#include <dlfcn.h>
#include <cstddef>
#include <system_error>

namespace trellis::plugin {
namespace {

std::string copy(trellis_str s) { return s.data ? std::string(s.data, s.size) : std::string(); }

// Checks in the order that keeps us from reading fields the plugin may not have.
tl::expected<void, std::string> check_descriptor(const trellis_plugin_descriptor* d) {
    if (!d) return tl::unexpected(std::string("the entry point returned no descriptor"));
    const std::string theirs = abi_version_string(d->abi_major, d->abi_minor);
    const std::string ours = abi_version_string(TRELLIS_ABI_MAJOR, TRELLIS_ABI_MINOR);
    if (d->abi_major != TRELLIS_ABI_MAJOR)
        return tl::unexpected("built for ABI " + theirs + " but this host implements ABI " + ours +
                              "; the major versions must match: rebuild the plugin with the SDK of this Trellis");
    if (d->abi_minor > TRELLIS_ABI_MINOR)
        return tl::unexpected("built for ABI " + theirs + ", newer than this host's ABI " + ours +
                              ": upgrade Trellis or rebuild the plugin with an older SDK");
    if (d->struct_size < sizeof(trellis_plugin_descriptor))
        return tl::unexpected("descriptor is " + std::to_string(d->struct_size) + " bytes, ABI " + theirs +
                              " needs at least " + std::to_string(sizeof(trellis_plugin_descriptor)));
    if (!d->on_create || !d->on_init || !d->on_shutdown || !d->on_destroy)
        return tl::unexpected(
            std::string("descriptor lacks a lifecycle function (on_create, on_init, "
                        "on_shutdown and on_destroy are all required)"));
    if (!d->name.data || d->name.size == 0) return tl::unexpected(std::string("descriptor has no name"));
    if (d->dependency_count > 0 && !d->dependencies)
        return tl::unexpected(std::string("descriptor lists dependencies without an array"));
    return {};
}

}  // namespace

std::string abi_version_string(std::uint16_t major, std::uint16_t minor) {
    return std::to_string(major) + "." + std::to_string(minor);
}

std::optional<std::filesystem::path> find_plugin_file(std::string_view name,
                                                      const std::vector<std::filesystem::path>& search_paths) {
    for (const auto& dir : search_paths) {
        auto candidate = dir / (std::string(name) + ".so");
        std::error_code ec;
        if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
    }
    return std::nullopt;
}

tl::expected<std::shared_ptr<const Library>, std::string> LibraryCache::load(const std::filesystem::path& path) {
    std::lock_guard lock(mutex_);
    if (auto it = libraries_.find(path); it != libraries_.end())
        if (auto alive = it->second.lock()) return alive;

    auto library = std::make_shared<Library>();
    library->path = path;
    boost::dll::fs::error_code ec;
    library->handle.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
    if (ec) {
        const char* detail = ::dlerror();
        return tl::unexpected("cannot load the library: " + (detail ? std::string(detail) : ec.message()));
    }
    if (!library->handle.has(TRELLIS_PLUGIN_ENTRY_SYMBOL))
        return tl::unexpected(std::string("not a Trellis plugin: the library does not export '") +
                              TRELLIS_PLUGIN_ENTRY_SYMBOL + "'");
    auto entry = library->handle.get<const trellis_plugin_descriptor*()>(TRELLIS_PLUGIN_ENTRY_SYMBOL);
    const trellis_plugin_descriptor* descriptor = nullptr;
    try {
        descriptor = entry();
    } catch (...) {
        return tl::unexpected(std::string("the entry point threw an exception"));
    }
    if (auto ok = check_descriptor(descriptor); !ok) return tl::unexpected(ok.error());

    library->descriptor = descriptor;
    library->abi_major = descriptor->abi_major;
    library->abi_minor = descriptor->abi_minor;
    library->name = copy(descriptor->name);
    library->version = copy(descriptor->version);
    library->description = copy(descriptor->description);
    library->config_schema_json = copy(descriptor->config_schema_json);
    for (std::size_t i = 0; i < descriptor->dependency_count; ++i)
        library->dependencies.push_back(copy(descriptor->dependencies[i]));

    std::shared_ptr<const Library> shared = std::move(library);
    libraries_[path] = shared;
    return shared;
}

}  // namespace trellis::plugin
