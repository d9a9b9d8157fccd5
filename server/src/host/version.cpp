// The version document (see version.hpp).
#include "host/version.hpp"

#include <cstdint>

#include <trellis/abi.h>

#include "plugin/loader.hpp"

#ifndef TRELLIS_BUILD_TYPE
#define TRELLIS_BUILD_TYPE ""
#endif

namespace trellis::host {
namespace {

std::string compiler() {
#if defined(__clang__)
    return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    return std::string("g++ ") + __VERSION__;
#else
    return "unknown";
#endif
}

}  // namespace

std::vector<std::string> accepted_abi_versions() {
    // The loader's rule (plugin/loader.cpp): same major, minor not above ours.
    std::vector<std::string> versions;
    for (int accepted = 0; accepted <= TRELLIS_ABI_MINOR; ++accepted)
        versions.push_back(plugin::abi_version_string(TRELLIS_ABI_MAJOR, static_cast<std::uint16_t>(accepted)));
    return versions;
}

nlohmann::json version_info() {
    const std::string build_type = TRELLIS_BUILD_TYPE;
    return {{"version", TRELLIS_VERSION},
            {"abi", plugin::abi_version_string(TRELLIS_ABI_MAJOR, TRELLIS_ABI_MINOR)},
            {"abi_accepted", accepted_abi_versions()},
            {"build",
             {{"compiler", compiler()},
              {"build_type", build_type.empty() ? "unspecified" : build_type},
              {"engines", {"event", "poco"}}}}};
}

}  // namespace trellis::host
