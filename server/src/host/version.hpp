// One answer to "which Trellis is this": the product version (CMake's project(VERSION)), the
// plugin ABI it implements, every ABI version whose plugins it loads, and how it was built.
// `trellis version --json` and GET /admin/version print the same document.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace trellis::host {

// "1.0" … "1.N": the host loads plugins built for the same major and any minor up to its own.
std::vector<std::string> accepted_abi_versions();

// {"version", "abi", "abi_accepted", "build": {"compiler", "build_type", "engines"}}.
nlohmann::json version_info();

}  // namespace trellis::host
