// trellis new-plugin NAME [--dir D]: writes a plugin project (source, test, packaging) that
// builds against the installed SDK alone. The templates are server/src/cli/scaffold/*.in.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "cli/commands.hpp"
#include "cli/scaffold_templates.hpp"

namespace trellis::cli {
namespace {

namespace fs = std::filesystem;

// Names that pass the host's rule but cannot name a plugin project: the key beside the
// plugins under `plugins:`, targets CMake reserves, and the SDK's aggregate package target.
constexpr std::array<std::string_view, 12> kReserved{"search_paths", "all",          "clean",
                                                     "help",         "install",      "test",
                                                     "package",      "package_source", "edit_cache",
                                                     "rebuild_cache", "depend",      "plugins"};

// Why NAME cannot name a plugin, or nullopt. The host's rule (config.cpp is_plugin_name):
// lower case letters, digits and '_', starting with a letter.
std::optional<std::string> name_problem(const std::string& name) {
    const bool valid = !name.empty() && name[0] >= 'a' && name[0] <= 'z' &&
                       std::all_of(name.begin(), name.end(), [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                       });
    if (!valid) return "a plugin name is lower case letters, digits and '_', starting with a letter";
    if (std::find(kReserved.begin(), kReserved.end(), name) != kReserved.end())
        return "'" + name + "' is reserved (a configuration key or a build target name)";
    return std::nullopt;
}

std::string class_name(const std::string& name) {  // my_plugin -> MyPlugin
    std::string out;
    bool upper = true;
    for (char c : name) {
        if (c == '_') {
            upper = true;
            continue;
        }
        out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
        upper = false;
    }
    return out;
}

std::string env(const char* name) {
    const char* value = std::getenv(name);
    return value ? value : "";
}

// "Full Name <address>" for the package: DEBFULLNAME and DEBEMAIL (as dch reads them), else
// the login and host names.
std::string maintainer() {
    std::string full = env("DEBFULLNAME");
    std::string email = env("DEBEMAIL");
    if (email.empty()) email = env("EMAIL");
    std::string login = env("USER");
    if (login.empty()) login = env("LOGNAME");
    if (login.empty()) login = "root";
    if (email.empty() || email.find('@') == std::string::npos || email.find_first_of("<> ") != std::string::npos) {
        std::array<char, 256> host{};
        const bool named = gethostname(host.data(), host.size() - 1) == 0 && host[0] != '\0';
        email = login + "@" + (named ? std::string(host.data()) : std::string("localhost"));
    }
    if (full.empty() || full.find_first_of("<>\"") != std::string::npos) full = login;
    return full + " <" + email + ">";
}

std::string replace_all(std::string text, std::string_view from, const std::string& to) {
    for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

}  // namespace

int new_plugin(const Arguments& args) {
    if (args.command.size() != 2) {
        std::cerr << "trellis: usage: trellis new-plugin NAME [--dir DIR]\n";
        return 2;
    }
    const std::string& name = args.command[1];
    if (auto problem = name_problem(name)) {
        std::cerr << "trellis: cannot create plugin '" << name << "': " << *problem << "\n";
        return 2;
    }
    const fs::path dir = args.dir.empty() ? fs::path(name) : fs::path(args.dir);
    std::error_code error;
    if (fs::exists(dir, error)) {
        if (!fs::is_directory(dir, error)) {
            std::cerr << "trellis: cannot create plugin '" << name << "' in " << dir.string()
                      << ": it exists and is not a folder\n";
            return 1;
        }
        const bool empty = fs::is_empty(dir, error);
        if (error) {
            std::cerr << "trellis: cannot create plugin '" << name << "' in " << dir.string() << ": "
                      << error.message() << "\n";
            return 1;
        }
        if (!empty) {
            std::cerr << "trellis: cannot create plugin '" << name << "' in " << dir.string()
                      << ": the folder is not empty (nothing was written; choose another with --dir)\n";
            return 1;
        }
    }

    std::string package = "trellis-plugin-" + name;
    std::replace(package.begin(), package.end(), '_', '-');  // Debian package names have no '_'
    const std::string author = maintainer();
    auto fill = [&](std::string_view text) {
        std::string out(text);
        out = replace_all(std::move(out), "@NAME@", name);
        out = replace_all(std::move(out), "@CLASS@", class_name(name));
        out = replace_all(std::move(out), "@PACKAGE@", package);
        return replace_all(std::move(out), "@MAINTAINER@", author);
    };
    for (const auto& file : scaffold::templates) {
        const fs::path path = dir / fill(file.path);
        fs::create_directories(path.parent_path(), error);
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << fill(file.text);
        out.close();
        if (error || !out) {
            std::cerr << "trellis: cannot write " << path.string() << ": "
                      << (error ? error.message() : std::string("write failed")) << "\n";
            return 1;
        }
    }
    std::cout << "Created the plugin project '" << name << "' in " << dir.string() << ":\n";
    for (const auto& file : scaffold::templates) std::cout << "  " << fill(file.path) << "\n";
    std::cout << "Package maintainer: " << author
              << (env("DEBEMAIL").empty() && env("EMAIL").empty()
                      ? " (from your login; set DEBFULLNAME and DEBEMAIL, or edit MAINTAINER in CMakeLists.txt)\n"
                      : "\n");
    std::cout << "Next:\n"
              << "  cd " << dir.string() << "\n"
              << "  cmake -S . -B build && cmake --build build && ctest --test-dir build\n"
              << "  cmake --build build --target package-" << name << "   # build/packages/" << package
              << "_*.deb and .rpm\n";
    return 0;
}

}  // namespace trellis::cli
