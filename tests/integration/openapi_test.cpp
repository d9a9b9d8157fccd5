// The OpenAPI 3.1 document the host generates (GET /openapi.json, `trellis openapi`): every
// route of the enabled plugins, their schemas and security, checked by an external validator.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

// Every bundled plugin and a fixture with validated routes; auth's signing key is made in
// `keys` by openssl.
std::string bundled(const TempDir& keys) {
    const auto key = keys.path() / "auth.pem";
    if (!std::filesystem::exists(key)) {
        Process made({"/usr/bin/openssl", "genpkey", "-algorithm", "ed25519", "-out", key.string()}, minimal_environment(),
                     keys.path() / "openssl.out");
        REQUIRE(made.wait(30s) == 0);
    }
    return "  hello: {}\n  notes: {}\n  security: {}\n"
           "  auth:\n    config:\n      keys: [{kid: k1, private_key: " + key.string() + "}]\n"
           "  api_keys: {}\n  rate_limit: {}\n"
           "  alpha:\n    config: {validation: true}\n";
}
const std::vector<std::string> kBundledPlugins{"hello", "notes", "security", "auth", "api_keys", "rate_limit"};

// "GET /notes/{id}" for every operation of the document.
std::set<std::string> operations(const json& doc) {
    std::set<std::string> out;
    for (const auto& [path, item] : doc["paths"].items())
        for (const auto& [method, operation] : item.items()) {
            std::string upper = method;
            for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            out.insert(upper + " " + path);
        }
    return out;
}

const json& operation(const json& doc, const std::string& path, const std::string& method) {
    REQUIRE(doc["paths"].contains(path));
    REQUIRE(doc["paths"][path].contains(method));
    return doc["paths"][path][method];
}

}  // namespace

TEST_CASE("GET /openapi.json lists every route of the enabled plugins with their schemas", "[openapi]") {
    TempDir keys;
    TestServer server(config_yaml(bundled(keys)));
    for (const auto& name : kBundledPlugins) {
        INFO(name);
        REQUIRE(find_report(server.runtime(), name)->status == runtime::PluginStatus::loaded);
    }
    auto r = server.get("/openapi.json");
    REQUIRE(r.status == 200);
    CHECK(r.header("Content-Type") == "application/json");
    const json doc = r.json();
    CHECK(doc["openapi"] == "3.1.0");
    CHECK(doc["jsonSchemaDialect"] == "http://json-schema.org/draft-07/schema#");
    CHECK(doc["info"]["version"] == TRELLIS_VERSION);

    std::set<std::string> served;
    for (const auto& target : server.runtime().targets()) served.insert(target.method + " " + target.full_path);
    REQUIRE(served.size() > 10);
    CHECK(operations(doc) == served);

    const json& create = operation(doc, "/notes", "post");
    CHECK(create["x-trellis-plugin"] == "notes");
    CHECK(create["requestBody"]["content"]["application/json"]["schema"]["required"] == json{"title"});
    CHECK(create["responses"]["2XX"]["content"]["application/json"]["schema"]["properties"].contains("version"));
    CHECK(create["responses"]["4XX"]["content"]["application/problem+json"]["schema"]["$ref"] ==
          "#/components/schemas/Problem");
    const json& list = operation(doc, "/notes", "get");
    std::set<std::string> query;
    for (const auto& parameter : list["parameters"]) {
        CHECK(parameter["in"] == "query");
        query.insert(parameter["name"].get<std::string>());
    }
    CHECK(query == std::set<std::string>{"limit", "cursor", "sort", "pinned", "title", "q"});
    const json& item = operation(doc, "/notes/{id}", "get");
    REQUIRE(item["parameters"].size() == 1);
    CHECK(item["parameters"][0] == json{{"name", "id"},
                                         {"in", "path"},
                                         {"required", true},
                                         {"description", "the note's id"},
                                         {"schema", {{"type", "integer"}, {"minimum", 1}, {"description", "the note's id"}}}});
    // hello declares no path schema: its {name} is still a required path parameter.
    const json& hello = operation(doc, "/hello/{name}", "get");
    CHECK(hello["parameters"][0]["name"] == "name");
    CHECK(hello["parameters"][0]["required"] == true);

    const json& items = operation(doc, "/alpha/items", "get");
    CHECK(items["security"] == json::parse(R"([{"bearer": ["items:read"]}])"));
    CHECK(items["x-trellis-scopes"] == json{"items:read"});
    CHECK(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");

    std::set<std::string> ids;
    for (const auto& [path, entry] : doc["paths"].items())
        for (const auto& [method, op] : entry.items()) CHECK(ids.insert(op["operationId"].get<std::string>()).second);

    // The bundled plugins describe every route: a summary, and a schema for every body.
    for (const auto& [path, entry] : doc["paths"].items())
        for (const auto& [method, op] : entry.items()) {
            if (op["x-trellis-plugin"] == "alpha") continue;
            INFO(method << " " << path);
            CHECK(op.contains("summary"));
            if (method == "post" || method == "put" || method == "patch")
                CHECK(op["requestBody"]["content"]["application/json"].contains("schema"));
        }
    const json& me = operation(doc, "/auth/me", "get");
    CHECK(me["security"] == json::parse(R"([{"bearer": []}])"));
    CHECK(me["responses"].contains("401"));
    CHECK(operation(doc, "/auth/login", "post")["requestBody"]["content"]["application/json"]["schema"]["required"] ==
          json{"name", "password"});
}

TEST_CASE("the OpenAPI document passes an external OpenAPI 3.1 validator", "[openapi]") {
    const std::filesystem::path validator = TRELLIS_TEST_SOURCE_DIR "/tests/openapi/validate.mjs";
    INFO("the validator is installed by ./dev deps into tests/openapi/node_modules (npm ci)");
    REQUIRE(std::filesystem::exists(validator.parent_path() / "node_modules/@seriousme/openapi-schema-validator"));

    TempDir keys;
    TestServer server(config_yaml(bundled(keys)));
    auto r = server.get("/openapi.json");
    REQUIRE(r.status == 200);
    const auto file = server.dir().path() / "openapi.json";
    std::ofstream(file) << r.body;
    Process node({"/usr/bin/env", "node", validator.string(), file.string()}, minimal_environment(),
                 server.dir().path() / "validator.out");
    auto code = node.wait(60s);
    REQUIRE(code.has_value());
    INFO(node.output());
    CHECK(*code == 0);
    CHECK_THAT(node.output(), Contains("OpenAPI 3.1: valid"));

    // The validator does refuse a broken document (a path parameter that is not required).
    json broken = r.json();
    broken["paths"]["/notes/{id}"]["get"]["parameters"][0]["required"] = false;
    std::ofstream(file, std::ios::trunc) << broken.dump();
    Process again({"/usr/bin/env", "node", validator.string(), file.string()}, minimal_environment(),
                  server.dir().path() / "validator-broken.out");
    auto broken_code = again.wait(60s);
    REQUIRE(broken_code.has_value());
    CHECK(*broken_code == 1);
}

TEST_CASE("openapi.path moves the document, openapi.enabled: false removes it, and plugins cannot take it",
          "[openapi]") {
    {
        TestServer moved(config_yaml("  hello: {}\n", "openapi:\n  path: /api/spec.json\n  title: Notes service\n"));
        CHECK(moved.get("/openapi.json").status == 404);
        auto r = moved.get("/api/spec.json");
        REQUIRE(r.status == 200);
        CHECK(r.json()["info"]["title"] == "Notes service");
    }
    {
        TestServer off(config_yaml("  hello: {}\n", "openapi:\n  enabled: false\n"));
        CHECK(off.get("/openapi.json").status == 404);
    }
    {
        TestServer taken(config_yaml("  alpha: {}\n", "openapi:\n  path: /alpha/count\n"));
        const auto* alpha = find_report(taken.runtime(), "alpha");
        REQUIRE(alpha != nullptr);
        CHECK(alpha->status == runtime::PluginStatus::failed);
        CHECK_THAT(alpha->reason, Contains("GET /alpha/count") && Contains("openapi.path"));
    }
}

TEST_CASE("a bad openapi section names the file, the line and the key", "[openapi]") {
    TempDir dir;
    auto file = dir.write("trellis.yaml", "openapi:\n  path: openapi.json\n  colour: red\n");
    auto loaded = config::load({file, {}});
    REQUIRE_FALSE(loaded.has_value());
    std::string all;
    for (const auto& error : loaded.error()) all += error + "\n";
    CHECK_THAT(all, Contains("trellis.yaml:2:9: key 'openapi.path': expected a path such as /openapi.json"));
    CHECK_THAT(all, Contains("trellis.yaml:3") && Contains("openapi.colour"));
}

TEST_CASE("trellis openapi prints the document GET /openapi.json serves", "[openapi][cli]") {
    TempDir keys;
    TestServer server(config_yaml(bundled(keys)));
    const json served = server.get("/openapi.json").json();

    TempDir dir;
    auto config = dir.write("trellis.yaml", config_yaml(bundled(keys)));
    Process p({TRELLIS_TEST_BINARY, "openapi", "-c", config.string()}, minimal_environment(), dir.path() / "out");
    auto code = p.wait(60s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    INFO(p.output());
    CHECK(json::parse(p.output()) == served);
}
