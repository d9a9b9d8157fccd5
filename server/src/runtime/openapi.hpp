// The OpenAPI 3.1 document of what a runtime serves: every enabled plugin's routes at their
// mounts, with the summaries, tags, schemas (JSON Schema draft-07, the jsonSchemaDialect),
// scopes and security requirements the plugins declared (ABI 1.4). Served at
// GET /openapi.json (config `openapi:`) and printed by `trellis openapi`.
#pragma once

#include <nlohmann/json.hpp>

#include "runtime/runtime.hpp"

namespace trellis::runtime {

nlohmann::json openapi_document(const Runtime& runtime);

}  // namespace trellis::runtime
