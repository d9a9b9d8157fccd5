// The bundled auth plugin over real HTTP and SQLite: accounts, argon2id logins, EdDSA access
// tokens (keys made by `openssl genpkey`; forged tokens signed by `openssl pkeyutl`), rotating
// refresh tokens, throttling, the host's scope enforcement, and logs free of secrets.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <sstream>
#include <thread>

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>

#include "support/process.hpp"
#include "support/test_database.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

const Headers json_type{{"Content-Type", "application/json"}};
const std::string admin_token = "admin-token-0123456789abcdef";

struct Ran {
    int code = -1;
    std::string output;
};

Ran sh(const TempDir& dir, const std::string& command) {
    static int count = 0;
    Process p({"/bin/sh", "-c", command + " </dev/null"}, minimal_environment(),
              dir.path() / ("sh-" + std::to_string(++count) + ".out"));
    auto code = p.wait(30s);
    REQUIRE(code.has_value());
    return {*code, p.output()};
}

std::string base64url(const std::string& bytes) {
    std::ostringstream out;
    Poco::Base64Encoder encoder(out, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
    encoder.rdbuf()->setLineLength(0);
    encoder << bytes;
    encoder.close();
    return out.str();
}

// An Ed25519 key pair NAME.pem / NAME.pub in `dir`.
void make_key(const TempDir& dir, const std::string& name) {
    const auto base = (dir.path() / name).string();
    auto made = sh(dir, "openssl genpkey -algorithm ed25519 -out '" + base + ".pem' && openssl pkey -in '" + base +
                            ".pem' -pubout -out '" + base + ".pub'");
    INFO(made.output);
    REQUIRE(made.code == 0);
}

// A compact JWS of `header` and `claims`, signed with the Ed25519 key NAME.pem by openssl.
std::string forge(const TempDir& dir, const json& header, const json& claims, const std::string& key = "k1") {
    const std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
    dir.write("input.txt", input);
    auto signed_ = sh(dir, "openssl pkeyutl -sign -rawin -inkey '" + (dir.path() / (key + ".pem")).string() + "' -in '" +
                               (dir.path() / "input.txt").string() + "' -out '" + (dir.path() / "sig.bin").string() + "'");
    INFO(signed_.output);
    REQUIRE(signed_.code == 0);
    return input + "." + base64url(read_file(dir.path() / "sig.bin"));
}

std::string unbase64url(std::string text) {
    for (char& c : text) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (text.size() % 4) text += '=';
    std::istringstream in(text);
    Poco::Base64Decoder decoder(in);
    return std::string(std::istreambuf_iterator<char>(decoder), {});
}

std::int64_t now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json claims(std::int64_t exp_offset = 300) {
    return {{"iss", "trellis"}, {"aud", "trellis"}, {"sub", "1"}, {"name", "alice"}, {"scope", "notes.read"},
            {"iat", now()},     {"nbf", now()},     {"exp", now() + exp_offset}};
}

// The auth plugin with key k1 (made here), the admin token, cheap argon2id for tests, and
// notes behind the auth middleware. `extra` adds lines under auth's config.
struct AuthServer {
    TestDatabase db;
    TempDir keys;
    std::unique_ptr<TestServer> server;

    explicit AuthServer(const std::string& extra = "", const std::string& more_plugins = "",
                        const std::string& top = "", const std::string& password = "{opslimit: 1, memlimit_kib: 8192}")
        : password_(password) {
        make_key(keys, "k1");
        keys.write("admin.token", admin_token + "\n");
        server = std::make_unique<TestServer>(config_yaml(config(extra) + more_plugins, db.yaml() + top));
    }

    std::string config(const std::string& extra) const {
        return "  auth:\n"
               "    config:\n"
               "      keys:\n"
               "        - {kid: k1, private_key: " + (keys.path() / "k1.pem").string() + "}\n"
               "      admin_token_file: " + (keys.path() / "admin.token").string() + "\n"
               "      password: " + password_ + "\n" + extra +
               "    middleware: [auth]\n"
               "  notes:\n"
               "    middleware: [auth]\n";
    }

    std::string password_;

    HttpResponse post(const std::string& path, const json& body, Headers headers = {}) const {
        headers.insert(headers.end(), json_type.begin(), json_type.end());
        return server->request("POST", path, body.dump(), headers);
    }
    HttpResponse create_user(const std::string& name, const std::string& password,
                             const std::vector<std::string>& scopes = {}) const {
        return post("/auth/users", {{"name", name}, {"password", password}, {"scopes", scopes}},
                    {{"X-Admin-Token", admin_token}});
    }
    HttpResponse login(const std::string& name, const std::string& password) const {
        return post("/auth/login", {{"name", name}, {"password", password}});
    }
    HttpResponse get(const std::string& path, const std::string& token) const {
        return server->get(path, {{"Authorization", "Bearer " + token}});
    }
};

}  // namespace

TEST_CASE("registration is closed by default and the first account is made with the admin token", "[auth]") {
    AuthServer a;
    auto closed = a.post("/auth/register", {{"name", "mallory"}, {"password", "long enough password"}});
    CHECK(closed.status == 403);
    CHECK(closed.json()["code"] == "registration_closed");

    CHECK(a.post("/auth/users", {{"name", "eve"}, {"password", "long enough password"}}).status == 401);
    auto wrong = a.post("/auth/users", {{"name", "eve"}, {"password", "long enough password"}},
                        {{"X-Admin-Token", admin_token + "x"}});
    CHECK(wrong.status == 401);
    CHECK(wrong.json()["code"] == "invalid_admin_token");

    auto made = a.create_user("Root", "correct horse battery", {"auth.admin"});
    REQUIRE(made.status == 201);
    CHECK(made.json()["name"] == "root");  // names are kept in lower case
    CHECK(a.create_user("root", "another long password").status == 409);
    CHECK(a.create_user("short", "tiny").status == 422);

    // An admin's bearer token creates accounts too; a token without auth.admin cannot.
    const auto admin = a.login("root", "correct horse battery").json()["access_token"].get<std::string>();
    auto by_admin = a.post("/auth/users", {{"name", "bob"}, {"password", "bob's long password"}},
                           {{"Authorization", "Bearer " + admin}});
    CHECK(by_admin.status == 201);
    const auto bob = a.login("bob", "bob's long password").json()["access_token"].get<std::string>();
    CHECK(a.post("/auth/users", {{"name", "carol"}, {"password", "carol's long password"}},
                 {{"Authorization", "Bearer " + bob}})
              .status == 403);
}

TEST_CASE("open registration gives the default scopes", "[auth]") {
    AuthServer a("      registration: open\n      default_scopes: [notes.read]\n");
    auto made = a.post("/auth/register", {{"name", "dave"}, {"password", "dave's long password"}});
    REQUIRE(made.status == 201);
    CHECK(made.json()["scopes"] == json::array({"notes.read"}));
    auto token = a.login("dave", "dave's long password").json();
    CHECK(token["scope"] == "notes.read");
}

TEST_CASE("a login gives an EdDSA access token with kid that the middleware accepts, and the JWKS publishes the key",
          "[auth]") {
    AuthServer a;
    REQUIRE(a.create_user("alice", "alice's long password", {"notes.read", "notes.write"}).status == 201);
    auto login = a.login("alice", "alice's long password");
    REQUIRE(login.status == 200);
    CHECK(login.header("Cache-Control") == "no-store");
    const json tokens = login.json();
    CHECK(tokens["token_type"] == "Bearer");
    CHECK(tokens["expires_in"] == 900);
    const std::string access = tokens["access_token"];
    const json header = json::parse(unbase64url(access.substr(0, access.find('.'))));
    CHECK(header == json{{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", "k1"}});
    const json payload = json::parse(unbase64url(access.substr(access.find('.') + 1, access.rfind('.') - access.find('.') - 1)));
    CHECK(payload["iss"] == "trellis");
    CHECK(payload["aud"] == "trellis");
    CHECK(payload["name"] == "alice");
    CHECK(payload["scope"] == "notes.read notes.write");
    CHECK(payload["exp"].get<std::int64_t>() - payload["iat"].get<std::int64_t>() == 900);

    auto me = a.get("/auth/me", access);
    REQUIRE(me.status == 200);
    CHECK(me.json()["name"] == "alice");
    CHECK(me.json()["scopes"] == json::array({"notes.read", "notes.write"}));
    CHECK(a.server->get("/auth/me").status == 401);

    auto jwks = a.server->get("/auth/.well-known/jwks.json");
    REQUIRE(jwks.status == 200);
    const json key = jwks.json()["keys"][0];
    CHECK(key["kty"] == "OKP");
    CHECK(key["crv"] == "Ed25519");
    CHECK(key["kid"] == "k1");
    CHECK(key["alg"] == "EdDSA");
    // x is the raw public key: the last 32 bytes of the SubjectPublicKeyInfo openssl wrote.
    std::string pem = read_file(a.keys.path() / "k1.pub");
    pem = pem.substr(pem.find('\n') + 1);
    pem = pem.substr(0, pem.find("-----"));
    std::istringstream pem_in(pem);
    Poco::Base64Decoder pem_decoder(pem_in);
    const std::string der(std::istreambuf_iterator<char>(pem_decoder), {});
    REQUIRE(der.size() == 44);
    const std::string raw = der.substr(12);
    CHECK(key["x"] == base64url(raw));

    // A token signed by openssl with the same key is accepted: the signature is plain Ed25519.
    auto forged = forge(a.keys, {{"alg", "EdDSA"}, {"kid", "k1"}}, claims());
    CHECK(a.get("/auth/me", forged).status == 200);
}

TEST_CASE("attacks on access tokens are answered 401 problem+json", "[auth][attack]") {
    AuthServer a;
    make_key(a.keys, "stranger");
    const std::string pub = read_file(a.keys.path() / "k1.pub");
    struct Case {
        const char* name;
        std::string token;
        const char* says;
    };
    const std::string unsigned_input = base64url(json{{"alg", "none"}, {"typ", "JWT"}}.dump()) + "." + base64url(claims().dump());
    // HS256 keyed with the public key (the classic algorithm confusion).
    const std::string hs_input = base64url(json{{"alg", "HS256"}, {"kid", "k1"}}.dump()) + "." + base64url(claims().dump());
    a.keys.write("hs.txt", hs_input);
    a.keys.write("hskey.txt", pub);
    auto mac = sh(a.keys, "openssl dgst -sha256 -binary -mac HMAC -macopt \"key:$(cat '" +
                              (a.keys.path() / "hskey.txt").string() + "')\" '" + (a.keys.path() / "hs.txt").string() +
                              "' > '" + (a.keys.path() / "mac.bin").string() + "'");
    REQUIRE(mac.code == 0);
    const std::string hs_token = hs_input + "." + base64url(read_file(a.keys.path() / "mac.bin"));
    json wrong_aud = claims(), wrong_iss = claims(), future = claims(), expired = claims(-120);
    wrong_aud["aud"] = "someone-else";
    wrong_iss["iss"] = "https://evil.example";
    future["nbf"] = now() + 600;
    const json eddsa{{"alg", "EdDSA"}, {"kid", "k1"}};
    std::string tampered = forge(a.keys, eddsa, claims());
    {  // another subject, the signature kept
        json other = claims();
        other["sub"] = "2";
        tampered = tampered.substr(0, tampered.find('.') + 1) + base64url(other.dump()) + tampered.substr(tampered.rfind('.'));
    }

    for (const Case& c : {Case{"alg none", unsigned_input + ".", "algorithm is not accepted"},
                          Case{"alg none, no signature part", unsigned_input, "not a JWS"},
                          Case{"HMAC keyed with the public key", hs_token, "algorithm is not accepted"},
                          Case{"unknown key, unknown kid", forge(a.keys, {{"alg", "EdDSA"}, {"kid", "k9"}}, claims(), "stranger"),
                               "unknown key"},
                          Case{"unknown key, known kid", forge(a.keys, eddsa, claims(), "stranger"), "signature is not valid"},
                          Case{"tampered claims", tampered, "signature is not valid"},
                          Case{"expired", forge(a.keys, eddsa, expired), "expired"},
                          Case{"not yet valid", forge(a.keys, eddsa, future), "not valid yet"},
                          Case{"wrong audience", forge(a.keys, eddsa, wrong_aud), "audience"},
                          Case{"wrong issuer", forge(a.keys, eddsa, wrong_iss), "issuer"},
                          Case{"garbage", "a.b.c", "not a JWS"}}) {
        INFO(c.name);
        auto r = a.get("/auth/me", c.token);
        CHECK(r.status == 401);
        CHECK(r.header("Content-Type") == "application/problem+json");
        CHECK(r.json()["code"] == "invalid_token");
        CHECK_THAT(r.json()["detail"].get<std::string>(), Contains(c.says));
        CHECK_THAT(r.header("WWW-Authenticate").value_or(""), Contains("error=\"invalid_token\""));
    }
    // Within the configured clock skew (30 s) an expired token still passes.
    CHECK(a.get("/auth/me", forge(a.keys, eddsa, claims(-10))).status == 200);
}

TEST_CASE("a revoked key's tokens are refused and audited while a second key keeps serving", "[auth][attack]") {
    TestDatabase db;
    TempDir keys;
    make_key(keys, "old");
    make_key(keys, "new");
    keys.write("admin.token", admin_token);
    const auto file = [&](const char* name) { return (keys.path() / name).string(); };
    TestServer server(config_yaml("  auth:\n    config:\n      keys:\n"
                                  "        - {kid: new, private_key: " + file("new.pem") + "}\n"
                                  "        - {kid: old, public_key: " + file("old.pub") + ", revoked: true}\n"
                                  "    middleware: [auth]\n",
                                  db.yaml()));
    const json eddsa_old{{"alg", "EdDSA"}, {"kid", "old"}}, eddsa_new{{"alg", "EdDSA"}, {"kid", "new"}};
    auto revoked = server.get("/auth/me", {{"Authorization", "Bearer " + forge(keys, eddsa_old, claims(), "old")}});
    CHECK(revoked.status == 401);
    CHECK_THAT(revoked.json()["detail"].get<std::string>(), Contains("revoked key"));
    CHECK(server.get("/auth/me", {{"Authorization", "Bearer " + forge(keys, eddsa_new, claims(), "new")}}).status == 200);
    auto jwks = server.get("/auth/.well-known/jwks.json").json();
    CHECK(jwks["keys"].size() == 1);
    CHECK(jwks["keys"][0]["kid"] == "new");
}

TEST_CASE("a refresh token rotates on every use and its reuse revokes the whole family", "[auth][attack]") {
    AuthServer a;
    REQUIRE(a.create_user("alice", "alice's long password").status == 201);
    const json first = a.login("alice", "alice's long password").json();
    auto second = a.post("/auth/refresh", {{"refresh_token", first["refresh_token"]}});
    REQUIRE(second.status == 200);
    const std::string second_refresh = second.json()["refresh_token"];
    CHECK(second_refresh != first["refresh_token"]);
    CHECK(a.get("/auth/me", second.json()["access_token"]).status == 200);

    // The rotated token comes back: refused, and the token it was exchanged for dies too.
    auto reuse = a.post("/auth/refresh", {{"refresh_token", first["refresh_token"]}});
    CHECK(reuse.status == 401);
    CHECK(reuse.json()["code"] == "invalid_refresh_token");
    CHECK(a.post("/auth/refresh", {{"refresh_token", second_refresh}}).status == 401);

    // Another login is another family, untouched; logout ends it.
    const json other = a.login("alice", "alice's long password").json();
    CHECK(a.post("/auth/logout", {{"refresh_token", other["refresh_token"]}}).status == 204);
    CHECK(a.post("/auth/refresh", {{"refresh_token", other["refresh_token"]}}).status == 401);
    CHECK(a.post("/auth/refresh", {{"refresh_token", "not-a-token"}}).status == 401);
}

TEST_CASE("a password change revokes the user's refresh tokens", "[auth]") {
    AuthServer a;
    REQUIRE(a.create_user("alice", "alice's long password").status == 201);
    const json tokens = a.login("alice", "alice's long password").json();
    const Headers bearer{{"Authorization", "Bearer " + tokens["access_token"].get<std::string>()}};
    auto wrong = a.post("/auth/password", {{"current_password", "nope"}, {"new_password", "a new long password"}}, bearer);
    CHECK(wrong.status == 403);
    CHECK(a.post("/auth/password", {{"current_password", "alice's long password"}, {"new_password", "a new long password"}})
              .status == 401);
    REQUIRE(a.post("/auth/password",
                   {{"current_password", "alice's long password"}, {"new_password", "a new long password"}}, bearer)
                .status == 204);
    CHECK(a.post("/auth/refresh", {{"refresh_token", tokens["refresh_token"]}}).status == 401);
    CHECK(a.login("alice", "alice's long password").status == 401);
    CHECK(a.login("alice", "a new long password").status == 200);
}

TEST_CASE("an unknown user and a wrong password get the same answer after comparable work", "[auth][attack]") {
    // The default argon2id cost (64 MiB), so that the work is what production does.
    AuthServer a("      throttle: {account_failures: 100, address_failures: 100}\n", "", "", "{opslimit: 2, memlimit_kib: 65536}");
    REQUIRE(a.create_user("alice", "alice's long password").status == 201);
    auto unknown = a.login("nobody", "alice's long password");
    auto wrong = a.login("alice", "not the password");
    CHECK(unknown.status == 401);
    CHECK(wrong.status == 401);
    CHECK(unknown.json()["code"] == wrong.json()["code"]);
    CHECK(unknown.json()["detail"] == wrong.json()["detail"]);
    CHECK(unknown.header("WWW-Authenticate") == wrong.header("WWW-Authenticate"));

    // Medians of five: without the dummy verification an unknown name answers in well under
    // a millisecond while a wrong password costs an argon2id verification (tens of ms).
    const auto median_ms = [&](const std::string& name, const std::string& password) {
        std::vector<double> times;
        for (int i = 0; i < 5; ++i) {
            const auto start = std::chrono::steady_clock::now();
            REQUIRE(a.login(name, password).status == 401);
            times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
        }
        std::sort(times.begin(), times.end());
        return times[2];
    };
    const double unknown_ms = median_ms("nobody", "whatever"), wrong_ms = median_ms("alice", "whatever");
    INFO("unknown user " << unknown_ms << " ms, wrong password " << wrong_ms << " ms");
    CHECK(unknown_ms > 0.3 * wrong_ms);
}

TEST_CASE("login brute force is throttled per account and per client address", "[auth][attack]") {
    AuthServer a("      throttle: {account_failures: 3, address_failures: 6, window: 60}\n");
    REQUIRE(a.create_user("alice", "alice's long password").status == 201);
    REQUIRE(a.create_user("bob", "bob's long password").status == 201);
    for (int i = 0; i < 3; ++i) CHECK(a.login("alice", "guess " + std::to_string(i)).status == 401);
    // Now even the right password waits: the attacker learns nothing from the answer.
    auto throttled = a.login("alice", "alice's long password");
    CHECK(throttled.status == 429);
    CHECK(throttled.json()["code"] == "too_many_attempts");
    const int retry = std::stoi(throttled.header("Retry-After").value_or("0"));
    CHECK(retry > 0);
    CHECK(retry <= 60);
    // Another account still logs in, until the address has failed six times in all.
    CHECK(a.login("bob", "bob's long password").status == 200);
    for (int i = 0; i < 3; ++i) CHECK(a.login("nobody" + std::to_string(i), "guess").status == 401);
    CHECK(a.login("bob", "bob's long password").status == 429);
}

TEST_CASE("config scopes make notes need notes.read and the token's subject owns the notes", "[auth][scopes]") {
    AuthServer a;
    // A second server with scopes on notes (the same keys, so the same tokens work).
    TestDatabase db;
    TestServer server(config_yaml(a.config("") +
                                      "    scopes:\n"
                                      "      \"GET /notes\": [notes.read]\n"
                                      "      \"POST /notes\": [notes.write]\n",
                                  db.yaml()));
    const auto post = [&](const std::string& path, const json& body, Headers headers = {}) {
        headers.insert(headers.end(), json_type.begin(), json_type.end());
        return server.request("POST", path, body.dump(), headers);
    };
    REQUIRE(post("/auth/users", {{"name", "alice"}, {"password", "alice's long password"}, {"scopes", {"notes.read", "notes.write"}}},
                 {{"X-Admin-Token", admin_token}})
                .status == 201);
    REQUIRE(post("/auth/users", {{"name", "bob"}, {"password", "bob's long password"}, {"scopes", {"notes.read"}}},
                 {{"X-Admin-Token", admin_token}})
                .status == 201);
    const auto token = [&](const std::string& name, const std::string& password) {
        return "Bearer " + post("/auth/login", {{"name", name}, {"password", password}}).json()["access_token"].get<std::string>();
    };
    const std::string alice = token("alice", "alice's long password"), bob = token("bob", "bob's long password");

    CHECK(server.get("/notes").status == 401);
    CHECK(post("/notes", {{"title", "alice's"}}, {{"Authorization", bob}}).status == 403);
    REQUIRE(post("/notes", {{"title", "alice's"}}, {{"Authorization", alice}}).status == 201);
    auto mine = server.get("/notes", {{"Authorization", alice}});
    REQUIRE(mine.status == 200);
    CHECK(mine.json()["items"].size() == 1);
    auto theirs = server.get("/notes", {{"Authorization", bob}});
    REQUIRE(theirs.status == 200);
    CHECK(theirs.json()["items"].empty());
}

TEST_CASE("a missing or broken key file refuses the plugin, naming the key and the file", "[auth]") {
    TempDir keys;
    keys.write("broken.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    for (const auto& [file, says] : {std::pair<std::string, std::string>{"missing.pem", "cannot be read"},
                                     {"broken.pem", "is not an Ed25519 private key in PKCS#8 PEM"}}) {
        INFO(file);
        const auto path = (keys.path() / file).string();
        TestServer server(config_yaml("  auth:\n    config:\n      keys: [{kid: k1, private_key: " + path + "}]\n"));
        const auto* report = find_report(server.runtime(), "auth");
        REQUIRE(report != nullptr);
        CHECK(report->status == runtime::PluginStatus::failed);
        CHECK_THAT(report->reason, Contains("key 'k1'") && Contains(path) && Contains(says));
    }
}

TEST_CASE("with logging at debug no password, token or key reaches any log line", "[auth][logging]") {
    TempDir keys;
    make_key(keys, "k1");
    keys.write("admin.token", admin_token);
    TempDir dir;
    const std::uint16_t port = free_port(), admin_port = free_port();
    dir.write("trellis.yaml", "server:\n  data_dir: " + dir.path().string() +
                                  "\nlogging:\n  level: debug\n  output: " + (dir.path() / "trellis.log").string() + "\n" +
                                  config_yaml("  auth:\n    config:\n      keys: [{kid: k1, private_key: " +
                                              (keys.path() / "k1.pem").string() + "}]\n      admin_token_file: " +
                                              (keys.path() / "admin.token").string() +
                                              "\n      password: {opslimit: 1, memlimit_kib: 8192}\n"
                                              "    middleware: [auth]\n"));
    auto env = minimal_environment();
    env.push_back("TRELLIS_SERVER__LISTEN=127.0.0.1:" + std::to_string(port));
    env.push_back("TRELLIS_SERVER__ADMIN_LISTEN=127.0.0.1:" + std::to_string(admin_port));
    Process trellis({TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / "trellis.yaml").string()}, env,
                    dir.path() / "output.log");
    REQUIRE(wait_until_listening(port, 20s));
    const auto post = [&](const std::string& path, const json& body, Headers headers = {}) {
        headers.insert(headers.end(), json_type.begin(), json_type.end());
        return http_request(port, "POST", path, body.dump(), headers);
    };
    const std::string password = "secret-password-4f1c9", wrong = "wrong-password-77ab2";
    REQUIRE(post("/auth/users", {{"name", "alice"}, {"password", password}}, {{"X-Admin-Token", admin_token}}).status == 201);
    CHECK(post("/auth/login", {{"name", "alice"}, {"password", wrong}}).status == 401);
    const json tokens = post("/auth/login", {{"name", "alice"}, {"password", password}}).json();
    const std::string access = tokens["access_token"], refresh = tokens["refresh_token"];
    CHECK(http_request(port, "GET", "/auth/me", "", {{"Authorization", "Bearer " + access}}).status == 200);
    const json rotated = post("/auth/refresh", {{"refresh_token", refresh}}).json();
    CHECK(post("/auth/refresh", {{"refresh_token", refresh}}).status == 401);  // reuse: audited
    CHECK(http_request(port, "GET", "/auth/me", "", {{"Authorization", "Bearer " + access + "x"}}).status == 401);
    trellis.signal(SIGTERM);
    REQUIRE(trellis.wait(30s) == 0);

    const std::string log = read_file(dir.path() / "trellis.log") + trellis.output();
    CHECK_THAT(log, Contains("audit event=login_failed") && Contains("audit event=refresh_token_reuse"));
    CHECK_THAT(log, Contains(" debug [auth] access token accepted"));
    // The private key's 32-byte seed (the end of its PKCS#8 DER) in every usual spelling.
    std::string pem = read_file(keys.path() / "k1.pem");
    pem = pem.substr(pem.find('\n') + 1);
    pem = pem.substr(0, pem.find("-----"));
    std::istringstream pem_in(pem);
    Poco::Base64Decoder pem_decoder(pem_in);
    const std::string der(std::istreambuf_iterator<char>(pem_decoder), {});
    REQUIRE(der.size() == 48);
    const std::string seed = der.substr(16);
    std::string seed_hex;
    for (unsigned char c : seed) seed_hex += "0123456789abcdef"[c >> 4], seed_hex += "0123456789abcdef"[c & 15];
    std::string seed_base64 = base64url(seed);
    for (char& c : seed_base64) c = c == '-' ? '+' : c == '_' ? '/' : c;
    for (const std::string& secret :
         {password, wrong, admin_token, access, access.substr(access.rfind('.') + 1), refresh,
          rotated["refresh_token"].get<std::string>(), rotated["access_token"].get<std::string>(), base64url(seed),
          seed_base64, seed_hex, seed}) {
        INFO("secret: " << secret.substr(0, 12) << "...");
        CHECK(log.find(secret) == std::string::npos);
    }
}

TEST_CASE("an admin lists, changes and deletes accounts, and a change revokes the account's refresh tokens",
          "[auth]") {
    AuthServer a;
    REQUIRE(a.create_user("root", "root's long password", {"auth.admin"}).status == 201);
    const auto bob_id = a.create_user("bob", "bob's long password", {"notes.read"}).json()["id"].get<std::string>();
    const std::string admin = a.login("root", "root's long password").json()["access_token"];
    const json bob = a.login("bob", "bob's long password").json();
    const Headers as_admin{{"Authorization", "Bearer " + admin}};
    const Headers as_bob{{"Authorization", "Bearer " + bob["access_token"].get<std::string>()}};

    auto listed = a.server->get("/auth/users", as_admin);
    REQUIRE(listed.status == 200);
    CHECK(listed.json()["items"].size() == 2);
    CHECK_FALSE(listed.body.find("argon2") != std::string::npos);
    CHECK(a.server->get("/auth/users", as_bob).status == 403);  // the host: auth.admin is missing
    CHECK(a.server->get("/auth/users").status == 401);

    auto changed = a.server->request("PATCH", "/auth/users/" + bob_id, R"({"scopes": ["notes.read", "notes.write"]})",
                                     {as_admin[0], json_type[0]});
    REQUIRE(changed.status == 200);
    CHECK(changed.json()["scopes"] == json{"notes.read", "notes.write"});
    CHECK(a.post("/auth/refresh", {{"refresh_token", bob["refresh_token"]}}).status == 401);
    CHECK(a.login("bob", "bob's long password").json()["scope"] == "notes.read notes.write");
    CHECK(a.server->request("PATCH", "/auth/users/999", R"({"scopes": []})", {as_admin[0], json_type[0]}).status == 404);
    CHECK(a.server->request("PATCH", "/auth/users/" + bob_id, R"({})", {as_admin[0], json_type[0]}).status == 422);

    CHECK(a.server->request("DELETE", "/auth/users/" + bob_id, "", as_admin).status == 204);
    CHECK(a.login("bob", "bob's long password").status == 401);
    CHECK(a.server->request("DELETE", "/auth/users/" + bob_id, "", as_admin).status == 404);
}
