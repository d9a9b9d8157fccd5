// Plugin library loading and ABI checks.
#include "plugin/loader.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace trellis::plugin {
namespace {

// RTLD_DEEPBIND when the process runs on another C++ runtime than libstdc++ (the owner of
// __cxa_throw in the global scope): a test program built with libc++ over libtrellis.so.1.
// Then a plugin and the libraries it brings (its C++ runtime among them) resolve their
// symbols among themselves first, and libc++abi does not take a g++ plugin's exceptions;
// only C crosses the ABI. Not in a libstdc++ process (the server): there a g++ plugin's
// libstdc++ data copied into the executable (the locale facet ids) would exist twice, and a
// libc++ plugin already works on the host's runtime. AddressSanitizer refuses RTLD_DEEPBIND.
// The same rule as the loader of libtrellis.so.1 (embed/loader.c).
boost::dll::load_mode::type load_mode() {
    static const bool deep_bind = [] {
        // The program's handle searches its global scope, whatever this library's own is.
        void* program = ::dlopen(nullptr, RTLD_NOW);
        if (!program || ::dlsym(program, "__asan_init")) return false;
        void* cxa_throw = ::dlsym(program, "__cxa_throw");
        Dl_info owner{};
        if (!cxa_throw || !::dladdr(cxa_throw, &owner) || !owner.dli_fname) return false;
        return std::strstr(owner.dli_fname, "libstdc++") == nullptr;
    }();
    auto mode = boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local;
    return deep_bind ? mode | boost::dll::load_mode::rtld_deepbind : mode;
}

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

tl::expected<FileId, std::string> file_id(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return tl::unexpected(std::string(std::strerror(errno)));
    return FileId{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                  static_cast<std::int64_t>(st.st_size),
                  static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

LibraryCache::~LibraryCache() {
    if (private_dir_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(private_dir_, ignored);
}

tl::expected<std::filesystem::path, std::string> LibraryCache::private_name(const std::filesystem::path& path,
                                                                            bool copy) {
    std::error_code ec;
    if (private_dir_.empty()) {
        std::string pattern = (std::filesystem::temp_directory_path(ec) / "trellis-plugins-XXXXXX").string();
        if (ec || ::mkdtemp(pattern.data()) == nullptr)
            return tl::unexpected("cannot make a private folder to load the upgraded file from in " +
                                  std::filesystem::temp_directory_path(ec).string() + ": " + std::strerror(errno) +
                                  " (set TMPDIR to a writable folder)");
        private_dir_ = pattern;
    }
    const auto name = private_dir_ / (path.stem().string() + "." + std::to_string(++loads_) + ".so");
    if (copy)
        std::filesystem::copy_file(path, name, ec);
    else
        std::filesystem::create_symlink(std::filesystem::absolute(path), name, ec);
    if (ec)
        return tl::unexpected("cannot " + std::string(copy ? "copy the upgraded file to " : "link the upgraded file as ") +
                              name.string() + ": " + ec.message());
    return name;
}

tl::expected<std::shared_ptr<const Library>, std::string> LibraryCache::load(const std::filesystem::path& path) {
    std::lock_guard lock(mutex_);
    auto id = file_id(path);
    if (!id) return tl::unexpected("cannot load the library: " + path.string() + ": " + id.error());
    auto& state = libraries_[path];
    std::erase_if(state.alive, [](const auto& weak) { return weak.expired(); });
    for (const auto& weak : state.alive)
        if (auto alive = weak.lock(); alive && alive->file == *id) return alive;

    // The plain name maps the first file loaded from it for as long as glibc keeps that one
    // (a library with unique C++ symbols is never unloaded), so later files need a name of
    // their own; a file changed in place keeps its inode, which glibc matches too: a copy.
    std::filesystem::path open_as = path;
    if (state.by_name && *state.by_name != *id) {
        const bool in_place = std::any_of(state.mapped.begin(), state.mapped.end(),
                                          [&](const FileId& old) { return old.same_inode(*id); });
        auto name = private_name(path, in_place);
        if (!name) return tl::unexpected(name.error());
        open_as = *name;
    }

    auto library = std::make_shared<Library>();
    library->path = path;
    library->file = *id;
    boost::dll::fs::error_code ec;
    library->handle.load(open_as, load_mode(), ec);
    const char* detail = ec ? ::dlerror() : nullptr;
    if (open_as != path) {
        std::error_code ignored;
        std::filesystem::remove(open_as, ignored);
    }
    if (ec) return tl::unexpected("cannot load the library: " + (detail ? std::string(detail) : ec.message()));
    if (open_as == path) state.by_name = *id;
    state.mapped.push_back(*id);
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
    state.alive.push_back(shared);
    return shared;
}

}  // namespace trellis::plugin
