// The bundled api_keys plugin over real HTTP and a real SQLite file: keys shown once, both
// headers, principal and scopes for other plugins (notes), revocation, expiry, rotation with
// its overlap (and concurrent rotations), no scope escalation, wrong secrets, last_used_at,
// pagination, no secret in any log line, config errors, the OpenAPI document, and a key made
// by a user logged in through the auth plugin.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <Poco/Base64Encoder.h>
#include <nlohmann/json.hpp>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

const Headers json_type{{"Content-Type", "application/json"}};

// A key text of the plugin's form, made the way an admin makes the bootstrap file.
std::string random_key_text() {
    std::random_device random;
    std::string prefix;
    static constexpr char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; ++i) prefix += digits[random() % 16];
    std::string secret(32, '\0');
    for (char& c : secret) c = static_cast<char>(random() & 0xff);
    std::ostringstream encoded;
    Poco::Base64Encoder encoder(encoded, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
    encoder.rdbuf()->setLineLength(0);
    encoder << secret;
    encoder.close();
    return "trk_" + prefix + "_" + encoded.str();
}

// After "trk_" and the 16 hex digits of the prefix and '_' (the secret may hold '_' itself).
std::string secret_of(const std::string& key) { return key.substr(4 + 16 + 1); }
std::string prefix_of(const std::string& key) { return key.substr(4, 16); }

Headers with_key(const std::string& key, Headers headers = {}) {
    headers.emplace_back("X-API-Key", key);
    return headers;
}
Headers with_authorization(const std::string& key, Headers headers = {}) {
    headers.emplace_back("Authorization", "ApiKey " + key);
    return headers;
}

// A server with api_keys (its middleware guards its own routes and notes'), notes, and a
// bootstrap key that may grant notes.read and notes.write.
struct Fixture {
    TempDir files;
    TestDatabase db;
    std::string bootstrap = random_key_text();
    std::unique_ptr<TestServer> server;

    explicit Fixture(const std::string& api_keys_config = "", const std::string& top = "",
                     const std::string& notes_extra = "") {
        const auto key_file = files.write("bootstrap.key", bootstrap + "\n");
        std::filesystem::permissions(key_file,
                                     std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        server = std::make_unique<TestServer>(
            config_yaml("  api_keys:\n"
                        "    middleware: [api_keys.key]\n"
                        "    config:\n"
                        "      bootstrap_key_file: \"" +
                            key_file.string() +
                            "\"\n"
                            "      bootstrap_scopes: [notes.read, notes.write]\n" +
                            api_keys_config +
                            "  notes:\n"
                            "    middleware: [api_keys]\n"  // the plugin's only middleware: its name alone works too
                            "    scopes:\n"
                            "      \"GET /notes\": [notes.read]\n"
                            "      \"GET /notes/{id}\": [notes.read]\n"
                            "      \"POST /notes\": [notes.write]\n" +
                            notes_extra,
                        db.yaml() + top));
        const auto* report = find_report(server->runtime(), "api_keys");
        REQUIRE(report);
        INFO(report->reason);
        REQUIRE(report->status == runtime::PluginStatus::loaded);
    }

    // Creates a key with the bootstrap (admin) key; the whole answer.
    HttpResponse create_raw(const json& body, const std::string& by) const {
        return server->request("POST", "/api_keys/keys", body.dump(), with_key(by, json_type));
    }
    // Creates a key for `principal` and returns its text.
    std::string create(const std::string& principal, const json& scopes, const json& extra = json::object()) const {
        json body = extra;
        body["scopes"] = scopes;
        body["principal"] = {{"id", principal}, {"name", principal + " name"}};
        auto r = create_raw(body, bootstrap);
        INFO(r.body);
        REQUIRE(r.status == 201);
        return r.json()["key"].get<std::string>();
    }
    HttpResponse notes(const std::string& key) const { return server->get("/notes", with_key(key)); }
};

bool is_invalid_key(const HttpResponse& r) {
    return r.status == 401 && r.header("Content-Type") == "application/problem+json" &&
           r.json()["code"] == "invalid_api_key" && r.header("WWW-Authenticate") == "ApiKey";
}

}  // namespace

TEST_CASE("a created key is shown once: in the create answer, never in a listing, never stored", "[api_keys]") {
    Fixture f;
    auto created = f.create_raw(
        {{"name", "ci deploy"}, {"scopes", {"notes.read"}}, {"principal", {{"id", "alice"}, {"name", "Alice"}}}},
        f.bootstrap);
    INFO(created.body);
    REQUIRE(created.status == 201);
    const json doc = created.json();
    const std::string key = doc["key"].get<std::string>();
    CHECK(std::regex_match(key, std::regex("trk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}")));
    CHECK(doc["id"] == prefix_of(key));
    CHECK(doc["principal"] == json{{"id", "alice"}, {"name", "Alice"}});
    CHECK(doc["scopes"] == json{"notes.read"});
    CHECK(doc["status"] == "active");
    CHECK(doc["name"] == "ci deploy");
    CHECK(created.header("Cache-Control") == "no-store");
    CHECK(created.header("Location") == "/api_keys/keys/" + prefix_of(key));

    auto listed = f.server->get("/api_keys/keys", with_key(f.bootstrap));
    REQUIRE(listed.status == 200);
    REQUIRE(listed.json()["items"].size() == 1);
    CHECK(listed.json()["items"][0]["id"] == prefix_of(key));
    CHECK_FALSE(listed.json()["items"][0].contains("key"));
    CHECK_THAT(listed.body, !Contains(secret_of(key)));
    auto one = f.server->get("/api_keys/keys/" + prefix_of(key), with_key(key));
    REQUIRE(one.status == 200);
    CHECK_FALSE(one.json().contains("key"));
    CHECK_THAT(one.body, !Contains(secret_of(key)));

    // The database holds a hash of the key, not the key.
    auto rows = f.db.rows("SELECT prefix, hash FROM api_keys");
    REQUIRE(rows.size() == 1);
    CHECK(rows[0][0] == prefix_of(key));
    CHECK(rows[0][1].size() == 64);
    CHECK(rows[0][1].find(secret_of(key)) == std::string::npos);
}

TEST_CASE("a key works in both headers and carries its principal into notes' ownership", "[api_keys]") {
    Fixture f;
    const std::string alice = f.create("alice", {"notes.read", "notes.write"});
    const std::string bob = f.create("bob", {"notes.read", "notes.write"});

    auto note = f.server->request("POST", "/notes", R"({"title": "alice's"})", with_key(alice, json_type));
    INFO(note.body);
    REQUIRE(note.status == 201);
    const std::string path = "/notes/" + std::to_string(note.json()["id"].get<std::int64_t>());

    auto by_authorization = f.server->get(path, with_authorization(alice));
    CHECK(by_authorization.status == 200);
    CHECK(by_authorization.json()["title"] == "alice's");
    CHECK(f.server->get("/notes", {{"Authorization", "apikey  " + alice}}).json()["items"].size() == 1);

    // Bob's key is another principal: notes shows him nothing of Alice's.
    CHECK(f.server->get(path, with_key(bob)).status == 404);
    CHECK(f.notes(bob).json()["items"].empty());

    // Keys are managed by their owner only: Bob neither sees nor revokes Alice's keys.
    auto bobs = f.server->get("/api_keys/keys", with_key(bob));
    REQUIRE(bobs.status == 200);
    REQUIRE(bobs.json()["items"].size() == 1);
    CHECK(bobs.json()["items"][0]["id"] == prefix_of(bob));
    CHECK(f.server->get("/api_keys/keys/" + prefix_of(alice), with_key(bob)).status == 404);
    CHECK(f.server->request("DELETE", "/api_keys/keys/" + prefix_of(alice), {}, with_key(bob)).status == 404);
    CHECK(f.server->get("/api_keys/keys?principal=alice", with_key(bob)).status == 403);
    CHECK(f.notes(alice).status == 200);
    // The admin sees both.
    CHECK(f.server->get("/api_keys/keys", with_key(f.bootstrap)).json()["items"].size() == 2);
    CHECK(f.server->get("/api_keys/keys?principal=bob", with_key(f.bootstrap)).json()["items"].size() == 1);

    // Two different keys in one request are refused.
    CHECK(is_invalid_key(f.server->get("/notes", with_authorization(alice, with_key(bob)))));
}

TEST_CASE("a revoked key is refused with 401 invalid_api_key", "[api_keys]") {
    Fixture f;
    const std::string key = f.create("alice", {"notes.read"});
    REQUIRE(f.notes(key).status == 200);
    // A key may revoke itself.
    auto revoked = f.server->request("DELETE", "/api_keys/keys/" + prefix_of(key), {}, with_key(key));
    CHECK(revoked.status == 204);
    auto refused = f.notes(key);
    CHECK(is_invalid_key(refused));
    CHECK(refused.json()["detail"] == "The API key was revoked.");
    CHECK(is_invalid_key(f.server->get("/api_keys/keys", with_key(key))));
    auto listed = f.server->get("/api_keys/keys/" + prefix_of(key), with_key(f.bootstrap));
    CHECK(listed.json()["status"] == "revoked");
    CHECK(listed.json()["revoked_at"].is_string());
    // Revoking again changes nothing.
    CHECK(f.server->request("DELETE", "/api_keys/keys/" + prefix_of(key), {}, with_key(f.bootstrap)).status == 204);
    // The bootstrap key lives in its file, not in the database: it is not revoked through the API.
    CHECK(f.server->request("DELETE", "/api_keys/keys/" + prefix_of(f.bootstrap), {}, with_key(f.bootstrap)).status ==
          404);
    CHECK(f.server->get("/api_keys/keys", with_key(f.bootstrap)).status == 200);
}

TEST_CASE("an expired key is refused", "[api_keys]") {
    Fixture f;
    const std::string key = f.create("alice", {"notes.read"}, {{"expires_in", 1}});
    CHECK(f.notes(key).status == 200);
    std::this_thread::sleep_for(1200ms);
    auto refused = f.notes(key);
    CHECK(is_invalid_key(refused));
    CHECK(refused.json()["detail"] == "The API key has expired.");
    CHECK(f.server->get("/api_keys/keys/" + prefix_of(key), with_key(f.bootstrap)).json()["status"] == "expired");
    // Beyond the configured maximum is refused by the schema.
    auto too_long = f.create_raw({{"scopes", json::array()}, {"expires_in", 31536001}}, f.bootstrap);
    CHECK(too_long.status == 422);
}

TEST_CASE("a rotated key stays valid for the overlap, then only its successor works", "[api_keys]") {
    Fixture f("      rotation_overlap: 2\n");
    const std::string old_key = f.create("alice", {"notes.read"}, {{"name", "deploy"}});
    auto rotated = f.server->request("POST", "/api_keys/keys/" + prefix_of(old_key) + "/rotate", "{}",
                                     with_key(old_key, json_type));
    INFO(rotated.body);
    REQUIRE(rotated.status == 201);
    const std::string new_key = rotated.json()["key"].get<std::string>();
    CHECK(new_key != old_key);
    CHECK(rotated.json()["rotated_from"] == prefix_of(old_key));
    CHECK(rotated.json()["scopes"] == json{"notes.read"});
    CHECK(rotated.json()["principal"]["id"] == "alice");
    CHECK(rotated.json()["name"] == "deploy");
    CHECK(rotated.header("Location") == "/api_keys/keys/" + prefix_of(new_key));

    CHECK(f.notes(old_key).status == 200);  // within the overlap
    CHECK(f.notes(new_key).status == 200);
    auto old_doc = f.server->get("/api_keys/keys/" + prefix_of(old_key), with_key(new_key)).json();
    CHECK(old_doc["rotated_to"] == prefix_of(new_key));
    // A key is rotated once: its successor is the one to rotate next.
    auto again = f.server->request("POST", "/api_keys/keys/" + prefix_of(old_key) + "/rotate", "{}",
                                   with_key(new_key, json_type));
    CHECK(again.status == 409);

    std::this_thread::sleep_for(2200ms);
    CHECK(is_invalid_key(f.notes(old_key)));
    CHECK(f.notes(new_key).status == 200);
}

TEST_CASE("concurrent rotations of one key make exactly one successor", "[api_keys]") {
    Fixture f;
    const std::string key = f.create("alice", {"notes.read"});
    std::vector<int> statuses(4, 0);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < statuses.size(); ++i)
        threads.emplace_back([&, i] {
            statuses[i] =
                f.server
                    ->request("POST", "/api_keys/keys/" + prefix_of(key) + "/rotate", "{}", with_key(key, json_type))
                    .status;
        });
    for (auto& thread : threads) thread.join();
    CHECK(std::count(statuses.begin(), statuses.end(), 201) == 1);
    CHECK(std::count(statuses.begin(), statuses.end(), 409) == 3);
    CHECK(f.db.rows("SELECT COUNT(*) FROM api_keys WHERE rotated_from = '" + prefix_of(key) + "'")[0][0] == "1");
}

TEST_CASE("a key without a route's scope gets 403, and no credentials get 401", "[api_keys]") {
    Fixture f;
    const std::string reader = f.create("alice", {"notes.read"});
    CHECK(f.notes(reader).status == 200);
    auto write = f.server->request("POST", "/notes", R"({"title": "x"})", with_key(reader, json_type));
    CHECK(write.status == 403);
    CHECK(write.json()["code"] == "insufficient_scope");
    // No key at all: the middleware lets the request through and the host asks for credentials.
    auto anonymous = f.server->get("/notes");
    CHECK(anonymous.status == 401);
    CHECK(anonymous.json()["code"] == "unauthenticated");
    CHECK(f.server->get("/api_keys/keys").status == 401);
    // Another kind of credential is not the key middleware's business either.
    CHECK(f.server->get("/notes", {{"Authorization", "Bearer abc"}}).json()["code"] == "unauthenticated");
    // api_keys.admin is needed to create keys for someone else.
    auto other =
        f.server->request("POST", "/api_keys/keys", R"({"scopes": [], "principal": {"id": "bob", "name": "Bob"}})",
                          with_key(reader, json_type));
    CHECK(other.status == 403);
}

TEST_CASE("a key cannot be given scopes its creator lacks", "[api_keys]") {
    Fixture f;
    const std::string reader = f.create("alice", {"notes.read"});
    auto escalated = f.create_raw({{"scopes", {"notes.read", "notes.write"}}}, reader);
    CHECK(escalated.status == 403);
    CHECK(escalated.json()["code"] == "scope_escalation");
    CHECK(escalated.json()["missing_scopes"] == json{"notes.write"});
    auto admin = f.create_raw({{"scopes", {"api_keys.admin"}}}, reader);
    CHECK(admin.status == 403);
    // Nor through the bootstrap key beyond its own scopes.
    CHECK(f.create_raw({{"scopes", {"billing.write"}}}, f.bootstrap).status == 403);
    // A subset is fine, and the new key belongs to the creator.
    auto subset = f.create_raw({{"scopes", {"notes.read"}}}, reader);
    REQUIRE(subset.status == 201);
    CHECK(subset.json()["principal"]["id"] == "alice");
    CHECK(subset.json()["principal"]["name"] == "alice name");

    // Rotation is no way around it: a key of Alice's with fewer scopes cannot rotate a wider one.
    const std::string writer = f.create("alice", {"notes.read", "notes.write"});
    auto rotated =
        f.server->request("POST", "/api_keys/keys/" + prefix_of(writer) + "/rotate", "{}", with_key(reader, json_type));
    CHECK(rotated.status == 403);
    CHECK(rotated.json()["code"] == "scope_escalation");
    CHECK(f.notes(writer).status == 200);  // and the wider key is untouched
    CHECK(f.server->get("/api_keys/keys/" + prefix_of(writer), with_key(writer)).json()["rotated_to"].is_null());
}

TEST_CASE("a key cannot mint a key that outlives it", "[api_keys]") {
    Fixture f;
    const std::string short_lived = f.create("alice", {"notes.read"}, {{"expires_in", 60}});
    const auto parent = f.server->get("/api_keys/keys/" + prefix_of(short_lived), with_key(short_lived)).json();
    auto child = f.create_raw({{"scopes", {"notes.read"}}, {"expires_in", 86400}}, short_lived);
    REQUIRE(child.status == 201);
    CHECK(child.json()["expires_at"] == parent["expires_at"]);
    // Nor by rotating itself into a longer-lived key.
    auto rotated = f.server->request("POST", "/api_keys/keys/" + prefix_of(short_lived) + "/rotate",
                                     R"({"expires_in": 86400})", with_key(short_lived, json_type));
    REQUIRE(rotated.status == 201);
    CHECK(rotated.json()["expires_at"] == parent["expires_at"]);
    // An admin's key may give a longer life.
    auto by_admin = f.create_raw({{"scopes", {"notes.read"}}, {"expires_in", 86400}}, f.bootstrap);
    REQUIRE(by_admin.status == 201);
    CHECK(by_admin.json()["expires_at"] > parent["expires_at"]);
}

TEST_CASE("a key with a known prefix and a wrong secret, an unknown or a malformed key get 401", "[api_keys]") {
    Fixture f;
    const std::string key = f.create("alice", {"notes.read"});
    std::string wrong = key;
    wrong.back() = wrong.back() == 'A' ? 'Q' : 'A';  // a different, still well-formed secret
    CHECK(is_invalid_key(f.notes(wrong)));
    CHECK(is_invalid_key(f.server->get("/notes", with_authorization(wrong))));
    std::string bootstrap_wrong = f.bootstrap;
    bootstrap_wrong.back() = bootstrap_wrong.back() == 'A' ? 'Q' : 'A';
    CHECK(is_invalid_key(f.server->get("/api_keys/keys", with_key(bootstrap_wrong))));
    CHECK(is_invalid_key(f.notes(random_key_text())));
    CHECK(is_invalid_key(f.notes("trk_short")));
    CHECK(is_invalid_key(f.notes("")));
    CHECK(f.notes(key).status == 200);  // the real one still works
}

TEST_CASE("last_used_at is written on first use and then at most once a minute", "[api_keys]") {
    Fixture f;
    const std::string key = f.create("alice", {"notes.read"});
    const std::string item = "/api_keys/keys/" + prefix_of(key);
    CHECK(f.server->get(item, with_key(f.bootstrap)).json()["last_used_at"].is_null());
    REQUIRE(f.notes(key).status == 200);
    const auto first = f.db.rows("SELECT last_used_at FROM api_keys WHERE prefix = '" + prefix_of(key) + "'");
    REQUIRE(first.size() == 1);
    CHECK(first[0][0] != "NULL");
    CHECK(f.server->get(item, with_key(f.bootstrap)).json()["last_used_at"].is_string());
    std::this_thread::sleep_for(20ms);
    REQUIRE(f.notes(key).status == 200);
    CHECK(f.db.rows("SELECT last_used_at FROM api_keys WHERE prefix = '" + prefix_of(key) + "'") == first);
}

TEST_CASE("keys are listed a page at a time with a cursor and a Link header", "[api_keys]") {
    Fixture f;
    for (const char* who : {"a", "b", "c"}) f.create(who, json::array());
    auto first = f.server->get("/api_keys/keys?limit=2", with_key(f.bootstrap));
    REQUIRE(first.status == 200);
    CHECK(first.json()["items"].size() == 2);
    const std::string next = first.json()["next"].get<std::string>();
    CHECK_THAT(first.header("Link").value_or(""), Contains(next) && Contains("rel=\"next\""));
    auto second = f.server->get(next, with_key(f.bootstrap));
    REQUIRE(second.status == 200);
    REQUIRE(second.json()["items"].size() == 1);
    CHECK(second.json()["items"][0]["principal"]["id"] == "c");
    CHECK(second.json()["next"].is_null());
    CHECK(f.server->get("/api_keys/keys?cursor=bm9wZQ", with_key(f.bootstrap)).json()["code"] == "invalid_cursor");
    CHECK(f.server->get("/api_keys/keys?limit=0", with_key(f.bootstrap)).status == 400);
}

TEST_CASE("with logging at debug no key secret appears in any log line", "[api_keys]") {
    TempDir logs;
    const auto log_path = logs.path() / "trellis.log";
    std::vector<std::string> secrets;
    std::string first_key;
    std::vector<std::string> hashes;
    {
        Fixture f("      rotation_overlap: 0\n", "logging:\n  level: debug\n  output: \"" + log_path.string() + "\"\n");
        secrets.push_back(secret_of(f.bootstrap));
        const std::string key = f.create("alice", {"notes.read", "notes.write"});
        secrets.push_back(secret_of(key));
        first_key = key;
        CHECK(f.server->request("POST", "/notes", R"({"title": "t"})", with_authorization(key, json_type)).status ==
              201);
        std::string wrong = key;
        wrong.back() = wrong.back() == 'A' ? 'Q' : 'A';
        CHECK(is_invalid_key(f.notes(wrong)));
        auto rotated =
            f.server->request("POST", "/api_keys/keys/" + prefix_of(key) + "/rotate", "{}", with_key(key, json_type));
        REQUIRE(rotated.status == 201);
        const std::string new_key = rotated.json()["key"].get<std::string>();
        secrets.push_back(secret_of(new_key));
        CHECK(is_invalid_key(f.notes(key)));  // no overlap
        CHECK(f.server->request("DELETE", "/api_keys/keys/" + prefix_of(new_key), {}, with_key(new_key)).status == 204);
        CHECK(is_invalid_key(f.notes(new_key)));
        for (const auto& row : f.db.rows("SELECT hash FROM api_keys")) hashes.push_back(row[0]);
    }
    std::string log;
    for (int i = 0; i < 100 && log.find("event=api_key_revoked") == std::string::npos; ++i) {
        std::this_thread::sleep_for(50ms);
        if (std::filesystem::exists(log_path)) log = read_file(log_path);
    }
    // The audit trail is there, with prefixes...
    CHECK_THAT(log, Contains("audit event=api_key_created") && Contains("audit event=api_key_rotated") &&
                        Contains("audit event=api_key_revoked") &&
                        Contains("audit event=api_key_refused reason=wrong_secret") && Contains("reason=expired") &&
                        Contains("reason=revoked") && Contains("request_id="));
    CHECK_THAT(log, Contains("api key accepted key=" + prefix_of(first_key)));  // debug lines were written
    // ...and no secret, nor a hash, anywhere.
    for (const auto& secret : secrets) REQUIRE(secret.size() == 43);
    std::vector<std::string> needles = secrets;
    for (const auto& secret : secrets) needles.push_back(secret.substr(0, 16));
    REQUIRE(hashes.size() == 2);
    needles.insert(needles.end(), hashes.begin(), hashes.end());
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
        for (const auto& needle : needles) {
            INFO(line);
            CHECK(line.find(needle) == std::string::npos);
        }
}

TEST_CASE("a bootstrap key file that does not hold a key refuses the plugin with the reason", "[api_keys]") {
    TempDir files;
    TestDatabase db;
    const auto bad = files.write("bad.key", "not a key\n");
    TestServer server(
        config_yaml("  api_keys:\n    config:\n      bootstrap_key_file: \"" + bad.string() + "\"\n", db.yaml()));
    const auto* report = find_report(server.runtime(), "api_keys");
    REQUIRE(report);
    CHECK(report->status == runtime::PluginStatus::failed);
    CHECK_THAT(report->reason, Contains("bootstrap_key_file") && Contains("does not hold a key"));

    TestServer missing(config_yaml(
        "  api_keys:\n    config:\n      bootstrap_key_file: \"" + (files.path() / "absent").string() + "\"\n",
        db.yaml()));
    CHECK_THAT(find_report(missing.runtime(), "api_keys")->reason, Contains("cannot be read"));
}

TEST_CASE("inconsistent or out-of-range config refuses the plugin with the reason", "[api_keys]") {
    TestDatabase db;
    TestServer inverted(
        config_yaml("  api_keys:\n    config: {default_expires_in: 100, max_expires_in: 10}\n", db.yaml()));
    CHECK_THAT(find_report(inverted.runtime(), "api_keys")->reason,
               Contains("default_expires_in (100) is above max_expires_in (10)"));
    TestServer unknown(config_yaml("  api_keys:\n    config: {rotation_overlap: -1}\n", db.yaml()));
    CHECK(find_report(unknown.runtime(), "api_keys")->status == runtime::PluginStatus::failed);
    CHECK_THAT(find_report(unknown.runtime(), "api_keys")->reason, Contains("rotation_overlap"));
}

TEST_CASE("the OpenAPI document describes the key routes and passes the external validator", "[api_keys]") {
    Fixture f;
    auto r = f.server->get("/openapi.json");
    REQUIRE(r.status == 200);
    const json doc = r.json();
    for (const auto& [path, method] :
         std::vector<std::pair<std::string, std::string>>{{"/api_keys/keys", "post"},
                                                          {"/api_keys/keys", "get"},
                                                          {"/api_keys/keys/{id}", "get"},
                                                          {"/api_keys/keys/{id}", "delete"},
                                                          {"/api_keys/keys/{id}/rotate", "post"}}) {
        INFO(method << " " << path);
        REQUIRE(doc["paths"].contains(path));
        const json& operation = doc["paths"][path][method];
        CHECK(operation["security"] == json::parse(R"([{"bearer": []}, {"apiKey": []}])"));
    }
    CHECK(doc["paths"]["/api_keys/keys"]["post"]["requestBody"].dump().find("expires_in") != std::string::npos);

    const std::filesystem::path validator = TRELLIS_TEST_SOURCE_DIR "/tests/openapi/validate.mjs";
    INFO("the validator is installed by ./dev deps into tests/openapi/node_modules (npm ci)");
    REQUIRE(std::filesystem::exists(validator.parent_path() / "node_modules/@seriousme/openapi-schema-validator"));
    const auto file = f.files.path() / "openapi.json";
    std::ofstream(file) << r.body;
    Process node({"/usr/bin/env", "node", validator.string(), file.string()}, minimal_environment(),
                 f.files.path() / "validator.out");
    auto code = node.wait(60s);
    REQUIRE(code.has_value());
    INFO(node.output());
    CHECK(*code == 0);
    CHECK_THAT(node.output(), Contains("OpenAPI 3.1: valid"));
}

TEST_CASE("a user logged in through auth creates a key that acts as that user", "[api_keys][auth]") {
    TempDir files;
    TestDatabase db;
    const auto pem = (files.path() / "k1.pem").string();
    Process openssl({"/usr/bin/env", "openssl", "genpkey", "-algorithm", "ed25519", "-out", pem}, minimal_environment(),
                    files.path() / "openssl.out");
    REQUIRE(openssl.wait(30s) == 0);
    const std::string admin_token = "admin-token-" + prefix_of(random_key_text());
    const auto token_file = files.write("admin.token", admin_token);
    const std::string chain = "    middleware: [auth.bearer, api_keys.key]\n";
    TestServer server(config_yaml("  auth:\n    config:\n      keys: [{kid: k1, private_key: \"" + pem +
                                      "\"}]\n      admin_token_file: \"" + token_file.string() +
                                      "\"\n      password: {opslimit: 1, memlimit_kib: 8192}\n"
                                      "  api_keys:\n" +
                                      chain + "  notes:\n" + chain +
                                      "    scopes:\n"
                                      "      \"GET /notes\": [notes.read]\n"
                                      "      \"POST /notes\": [notes.write]\n",
                                  db.yaml()));
    for (const char* plugin : {"auth", "api_keys", "notes"}) {
        const auto* report = find_report(server.runtime(), plugin);
        REQUIRE(report);
        INFO(plugin << ": " << report->reason);
        REQUIRE(report->status == runtime::PluginStatus::loaded);
    }
    auto user = server.request(
        "POST", "/auth/users",
        json{{"name", "carol"}, {"password", "correct horse battery"}, {"scopes", {"notes.read", "notes.write"}}}
            .dump(),
        {{"Content-Type", "application/json"}, {"X-Admin-Token", admin_token}});
    INFO(user.body);
    REQUIRE(user.status == 201);
    auto login =
        server.request("POST", "/auth/login", R"({"name": "carol", "password": "correct horse battery"})", json_type);
    INFO(login.body);
    REQUIRE(login.status == 200);
    const Headers bearer{{"Authorization", "Bearer " + login.json()["access_token"].get<std::string>()}};
    auto with_bearer = [&](Headers headers) {
        headers.insert(headers.end(), bearer.begin(), bearer.end());
        return headers;
    };

    // Carol, by her access token, makes a read-only key; it belongs to her account.
    auto created = server.request("POST", "/api_keys/keys", R"({"name": "reports", "scopes": ["notes.read"]})",
                                  with_bearer(json_type));
    INFO(created.body);
    REQUIRE(created.status == 201);
    const std::string key = created.json()["key"].get<std::string>();
    CHECK(created.json()["principal"]["id"] == user.json()["id"]);
    CHECK(created.json()["principal"]["name"] == "carol");
    // Nor can she give a key a scope she lacks.
    auto escalated = server.request("POST", "/api_keys/keys", R"({"scopes": ["auth.admin"]})", with_bearer(json_type));
    CHECK(escalated.status == 403);

    // A note written with her token is hers, and her key (in Authorization, past auth.bearer) sees it.
    REQUIRE(server.request("POST", "/notes", R"({"title": "quarterly"})", with_bearer(json_type)).status == 201);
    auto read = server.get("/notes", with_authorization(key));
    REQUIRE(read.status == 200);
    REQUIRE(read.json()["items"].size() == 1);
    CHECK(read.json()["items"][0]["title"] == "quarterly");
    // The key is read-only.
    CHECK(server.request("POST", "/notes", R"({"title": "x"})", with_key(key, json_type)).status == 403);
    // Her token lists the key; the key may revoke itself.
    auto listed = server.get("/api_keys/keys", bearer);
    REQUIRE(listed.status == 200);
    CHECK(listed.json()["items"].size() == 1);
    CHECK(server.request("DELETE", "/api_keys/keys/" + prefix_of(key), {}, bearer).status == 204);
    CHECK(is_invalid_key(server.get("/notes", with_key(key))));
}
