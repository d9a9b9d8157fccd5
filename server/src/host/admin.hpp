// The admin API, served on the admin listener only: GET /admin/plugins, /admin/routes,
// /admin/config, /admin/migrations, /admin/version and POST /admin/reload. With server.admin_token_file set,
// every /admin/* request needs `Authorization: Bearer <token>`; without it, a state-changing
// request needs a Content-Type: application/json body, which a cross-site form cannot send.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/runtime.hpp"

namespace trellis::host {

class Host;

void add_admin_routes(runtime::ListenerRoutes& routes, Host& host);

// The effective configuration with every secret replaced by "***": values of keys whose
// name contains password, secret, token or key (any case), passwords in urls, and the
// plugin config properties their schema marks "writeOnly": true (`runtime` gives the
// schemas of the plugins it loaded; null: none).
nlohmann::json redacted_config(const config::Config& config, const runtime::Runtime* runtime);

// Equal tokens, in time that does not depend on where they differ (SHA-256 digests
// compared with every byte visited).
bool token_matches(std::string_view given, std::string_view expected);

}  // namespace trellis::host
