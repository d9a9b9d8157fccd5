// auth: user accounts and the tokens that prove who calls.
//   - users in the host's database, passwords hashed with argon2id (libsodium crypto_pwhash_str);
//   - access tokens: JWTs signed with Ed25519 (EdDSA), `kid` in the header, keys read from PEM
//     files so that every instance shares them, published at /.well-known/jwks.json;
//   - refresh tokens: opaque, stored hashed, rotated on every use; reusing a rotated one revokes
//     its whole family;
//   - the middleware `auth` (auth.bearer) verifies bearer tokens and sets auth.principal,
//     auth.scopes and user.id; the host enforces each route's required scopes with them.
// Security events go to the log as `audit event=...` lines, never with a secret.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cctype>
#include <cstring>
#include <memory>
#include <cstdint>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sodium.h>

#include <trellis/plugin.hpp>

namespace {

using trellis::HttpError;
using trellis::json;

constexpr const char* config_schema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "additionalProperties": false,
  "required": ["keys"],
  "properties": {
    "issuer": {"type": "string", "minLength": 1, "description": "iss of the tokens; default trellis"},
    "audience": {"type": "string", "minLength": 1, "description": "aud of the tokens; default trellis"},
    "access_token_ttl": {"type": "integer", "minimum": 1, "maximum": 86400},
    "refresh_token_ttl": {"type": "integer", "minimum": 60, "maximum": 31536000},
    "clock_skew": {"type": "integer", "minimum": 0, "maximum": 300},
    "keys": {
      "type": "array", "minItems": 1,
      "items": {
        "type": "object", "additionalProperties": false, "required": ["kid"],
        "properties": {
          "kid": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
          "private_key": {"type": "string", "minLength": 1},
          "public_key": {"type": "string", "minLength": 1},
          "revoked": {"type": "boolean"}
        }
      }
    },
    "signing_key": {"type": "string"},
    "registration": {"enum": ["closed", "open"]},
    "default_scopes": {"type": "array", "items": {"type": "string", "pattern": "^[!#-\\[\\]-~]+$"}},
    "admin_token_file": {"type": "string", "minLength": 1},
    "password": {
      "type": "object", "additionalProperties": false,
      "properties": {
        "opslimit": {"type": "integer", "minimum": 1, "maximum": 20},
        "memlimit_kib": {"type": "integer", "minimum": 8192, "maximum": 4194304},
        "min_length": {"type": "integer", "minimum": 8, "maximum": 128}
      }
    },
    "throttle": {
      "type": "object", "additionalProperties": false,
      "properties": {
        "account_failures": {"type": "integer", "minimum": 1},
        "address_failures": {"type": "integer", "minimum": 1},
        "window": {"type": "integer", "minimum": 1, "maximum": 86400}
      }
    }
  }
})";

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string base64url(const unsigned char* data, std::size_t size) {
    std::string out(sodium_base64_encoded_len(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
    sodium_bin2base64(out.data(), out.size(), data, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    out.resize(std::char_traits<char>::length(out.c_str()));
    return out;
}
std::string base64url(std::string_view text) {
    return base64url(reinterpret_cast<const unsigned char*>(text.data()), text.size());
}

// Strict: unpadded base64url with nothing else around it; nullopt otherwise.
std::optional<std::string> from_base64url(std::string_view text) {
    std::string out(text.size(), '\0');
    std::size_t length = 0;
    const char* end = nullptr;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                          &length, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != text.data() + text.size())
        return std::nullopt;
    out.resize(length);
    return out;
}

std::string random_token(std::size_t bytes = 32) {
    std::vector<unsigned char> buffer(bytes);
    randombytes_buf(buffer.data(), buffer.size());
    return base64url(buffer.data(), buffer.size());
}

// What the database keeps of a refresh token: BLAKE2b-256 of it. Tokens have 256 random
// bits, so a fast hash is enough; the database never holds a usable token.
std::string token_hash(std::string_view token) {
    unsigned char digest[crypto_generichash_BYTES];
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(token.data()), token.size(),
                       nullptr, 0);
    return base64url(digest, sizeof digest);
}

// Compares two secrets in time independent of where they differ (their hashes, so that the
// lengths match too).
bool same_secret(std::string_view a, std::string_view b) {
    const std::string ha = token_hash(a), hb = token_hash(b);
    return sodium_memcmp(ha.data(), hb.data(), ha.size()) == 0;
}

std::string read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::invalid_argument(std::string(what) + " '" + path + "' cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The DER inside a PEM block with the given label ("PRIVATE KEY", "PUBLIC KEY").
std::optional<std::string> pem_der(const std::string& pem, const std::string& label) {
    const std::string begin = "-----BEGIN " + label + "-----", end = "-----END " + label + "-----";
    const auto from = pem.find(begin), to = pem.find(end);
    if (from == std::string::npos || to == std::string::npos || to < from) return std::nullopt;
    const std::string body = pem.substr(from + begin.size(), to - from - begin.size());
    std::string der(body.size(), '\0');
    std::size_t length = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(der.data()), der.size(), body.data(), body.size(),
                          " \t\r\n", &length, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
        return std::nullopt;
    der.resize(length);
    return der;
}

// PKCS#8 and SubjectPublicKeyInfo of Ed25519 (RFC 8410) are fixed prefixes before the key.
constexpr unsigned char kPrivatePrefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                            0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
constexpr unsigned char kPublicPrefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

template <std::size_t N>
std::optional<std::string> after_prefix(const std::optional<std::string>& der, const unsigned char (&prefix)[N]) {
    if (!der || der->size() != N + 32 || std::memcmp(der->data(), prefix, N) != 0) return std::nullopt;
    return der->substr(N);
}

struct SigningKey {
    std::string kid;
    unsigned char public_key[crypto_sign_PUBLICKEYBYTES]{};
    unsigned char secret_key[crypto_sign_SECRETKEYBYTES]{};
    bool has_secret = false;
    bool revoked = false;

    ~SigningKey() { sodium_memzero(secret_key, sizeof secret_key); }
};

SigningKey load_key(const json& entry) {
    SigningKey key;
    key.kid = entry["kid"].get<std::string>();
    key.revoked = entry.value("revoked", false);
    const std::string where = "key '" + key.kid + "'";
    if (entry.contains("private_key")) {
        const std::string path = entry["private_key"].get<std::string>();
        std::string pem = read_file(path, (where + ": private_key").c_str());
        auto seed = after_prefix(pem_der(pem, "PRIVATE KEY"), kPrivatePrefix);
        sodium_memzero(pem.data(), pem.size());
        if (!seed)
            throw std::invalid_argument(where + ": private_key '" + path +
                                        "' is not an Ed25519 private key in PKCS#8 PEM (make one with "
                                        "`openssl genpkey -algorithm ed25519 -out FILE`)");
        crypto_sign_seed_keypair(key.public_key, key.secret_key, reinterpret_cast<const unsigned char*>(seed->data()));
        sodium_memzero(seed->data(), seed->size());
        key.has_secret = true;
    }
    if (entry.contains("public_key")) {
        const std::string path = entry["public_key"].get<std::string>();
        auto raw = after_prefix(pem_der(read_file(path, (where + ": public_key").c_str()), "PUBLIC KEY"), kPublicPrefix);
        if (!raw)
            throw std::invalid_argument(where + ": public_key '" + path +
                                        "' is not an Ed25519 public key in PEM (make it with "
                                        "`openssl pkey -in PRIVATE.pem -pubout -out FILE`)");
        if (key.has_secret && std::memcmp(raw->data(), key.public_key, crypto_sign_PUBLICKEYBYTES) != 0)
            throw std::invalid_argument(where + ": public_key '" + path + "' does not belong to its private_key");
        std::memcpy(key.public_key, raw->data(), crypto_sign_PUBLICKEYBYTES);
    }
    if (!entry.contains("private_key") && !entry.contains("public_key"))
        throw std::invalid_argument(where + ": give private_key (to sign and verify) or public_key (to verify only)");
    return key;
}

// Failed logins per account and per client address, in this process: after `limit` failures
// within `window` seconds the key is refused until the window ends.
class Throttle {
public:
    Throttle(int limit, int window) : limit_(limit), window_(window) {}

    // Seconds until the key may try again, or 0.
    std::int64_t blocked_for(const std::string& key, std::int64_t now) {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(key);
        if (it == entries_.end() || now >= it->second.start + window_) return 0;
        return it->second.failures >= limit_ ? it->second.start + window_ - now : 0;
    }
    void fail(const std::string& key, std::int64_t now) {
        std::lock_guard lock(mutex_);
        if (entries_.size() >= kMaxEntries) sweep(now);
        auto& entry = entries_[key];
        if (now >= entry.start + window_) entry = {now, 0};
        ++entry.failures;
    }
    void clear(const std::string& key) {
        std::lock_guard lock(mutex_);
        entries_.erase(key);
    }
    // Takes back one counted attempt that turned out to succeed.
    void forgive(const std::string& key) {
        std::lock_guard lock(mutex_);
        if (auto it = entries_.find(key); it != entries_.end() && it->second.failures > 0) --it->second.failures;
    }

private:
    static constexpr std::size_t kMaxEntries = 100000;
    struct Entry {
        std::int64_t start = 0;
        int failures = 0;
    };
    // Drops ended windows; if all are live (a flood of addresses), the oldest half goes.
    void sweep(std::int64_t now) {
        for (auto it = entries_.begin(); it != entries_.end();)
            it = now >= it->second.start + window_ ? entries_.erase(it) : std::next(it);
        if (entries_.size() < kMaxEntries) return;
        std::vector<std::int64_t> starts;
        for (const auto& [key, entry] : entries_) starts.push_back(entry.start);
        std::nth_element(starts.begin(), starts.begin() + static_cast<std::ptrdiff_t>(starts.size() / 2), starts.end());
        const std::int64_t cut = starts[starts.size() / 2];
        for (auto it = entries_.begin(); it != entries_.end();) it = it->second.start <= cut ? entries_.erase(it) : std::next(it);
    }

    const int limit_;
    const std::int64_t window_;
    std::mutex mutex_;
    std::map<std::string, Entry> entries_;
};

json string_schema(int min, int max, const char* pattern = nullptr) {
    json schema = {{"type", "string"}, {"minLength", min}, {"maxLength", max}};
    if (pattern) schema["pattern"] = pattern;
    return schema;
}

const char* const kNamePattern = "^[A-Za-z0-9._@-]+$";
const char* const kScopePattern = "^[!#-\\[\\]-~]+$";  // printable ASCII without space, " and backslash

json object_schema(json properties, std::vector<std::string> required) {
    return {{"type", "object"},
            {"additionalProperties", false},
            {"required", std::move(required)},
            {"properties", std::move(properties)}};
}

json token_answer_schema() {
    return object_schema({{"access_token", {{"type", "string"}}},
                          {"token_type", {{"const", "Bearer"}}},
                          {"expires_in", {{"type", "integer"}}},
                          {"refresh_token", {{"type", "string"}}},
                          {"refresh_expires_in", {{"type", "integer"}}},
                          {"scope", {{"type", "string"}}}},
                         {"access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in", "scope"});
}

json user_schema() {
    return object_schema({{"id", {{"type", "string"}}},
                          {"name", {{"type", "string"}}},
                          {"scopes", {{"type", "array"}, {"items", {{"type", "string"}}}}}},
                         {"id", "name", "scopes"});
}

class Auth final : public trellis::Plugin {
public:
    static trellis::PluginInfo info() {
        return {"auth", AUTH_VERSION, "Users, argon2id passwords, EdDSA access tokens and rotating refresh tokens", {},
                config_schema};
    }

    void init(trellis::Context& context) override {
        if (sodium_init() < 0) throw std::runtime_error("libsodium could not be initialised");
        const json& config = context.config();
        log_.emplace(context.log());
        db_.emplace(context.database());
        issuer_ = config.value("issuer", "trellis");
        audience_ = config.value("audience", "trellis");
        access_ttl_ = config.value("access_token_ttl", 900);
        refresh_ttl_ = config.value("refresh_token_ttl", 30 * 24 * 3600);
        skew_ = config.value("clock_skew", 30);
        open_registration_ = config.value("registration", "closed") == "open";
        default_scopes_ = config.value("default_scopes", std::vector<std::string>{});
        read_keys(config);
        if (config.contains("admin_token_file")) {
            admin_token_ = read_file(config["admin_token_file"].get<std::string>(), "admin_token_file");
            while (!admin_token_.empty() && std::isspace(static_cast<unsigned char>(admin_token_.back())))
                admin_token_.pop_back();
            if (admin_token_.size() < 16)
                throw std::invalid_argument("admin_token_file '" + config["admin_token_file"].get<std::string>() +
                                            "' holds fewer than 16 characters");
        }
        const json password = config.value("password", json::object());
        opslimit_ = password.value("opslimit", static_cast<unsigned long long>(crypto_pwhash_OPSLIMIT_INTERACTIVE));
        memlimit_ = password.value("memlimit_kib", static_cast<std::size_t>(crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024)) * 1024;
        min_password_ = password.value("min_length", 10);
        const json throttle = config.value("throttle", json::object());
        const int window = throttle.value("window", 900);
        accounts_.emplace(throttle.value("account_failures", 5), window);
        addresses_.emplace(throttle.value("address_failures", 20), window);
        // An unknown user's login verifies against this, so that it costs what a wrong
        // password costs and the answer time does not tell which names exist.
        dummy_hash_ = hash_password(random_token());

        migrations(context);
        routes(context);
        // Verifying a token needs no database: the middleware can run on the event loop.
        context.non_blocking().middleware("bearer", [this](trellis::Request& request, trellis::Response& response,
                                                          trellis::Next& next) { bearer(request, response, next); });
    }

private:
    struct Principal {
        std::string id;
        std::string name;
        std::vector<std::string> scopes;
    };

    void read_keys(const json& config) {
        for (const auto& entry : config["keys"]) {
            auto key = std::make_unique<SigningKey>(load_key(entry));
            for (const auto& other : keys_)
                if (other->kid == key->kid) throw std::invalid_argument("key '" + key->kid + "' is listed twice");
            keys_.push_back(std::move(key));
        }
        const std::string chosen = config.value("signing_key", "");
        for (const auto& key : keys_)
            if (key->has_secret && !key->revoked && (chosen.empty() || key->kid == chosen)) {
                signing_ = key.get();
                break;
            }
        if (!signing_)
            throw std::invalid_argument(chosen.empty() ? "no key can sign: give one key a private_key and do not revoke it"
                                                       : "signing_key '" + chosen +
                                                             "' is not a listed key with a private_key that is not revoked");
    }

    void migrations(trellis::Context& context) {
        const std::string users =
            "CREATE TABLE auth_users (\n"
            "  id {ID},\n"
            "  name TEXT NOT NULL UNIQUE,\n"
            "  password_hash TEXT NOT NULL,\n"
            "  scopes TEXT NOT NULL DEFAULT '[]',\n"
            "  created_at BIGINT NOT NULL,\n"
            "  password_changed_at BIGINT NOT NULL\n"
            ");\n"
            "CREATE TABLE auth_refresh_tokens (\n"
            "  id {ID},\n"
            "  token_hash TEXT NOT NULL UNIQUE,\n"
            "  user_id BIGINT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,\n"
            "  family TEXT NOT NULL,\n"
            "  created_at BIGINT NOT NULL,\n"
            "  expires_at BIGINT NOT NULL,\n"
            "  used_at BIGINT,\n"
            "  revoked_at BIGINT\n"
            ");\n"
            "CREATE INDEX auth_refresh_tokens_family ON auth_refresh_tokens (family);\n"
            "CREATE INDEX auth_refresh_tokens_user ON auth_refresh_tokens (user_id);";
        const std::string down = "DROP TABLE auth_refresh_tokens;\nDROP TABLE auth_users;";
        auto with_id = [&](const std::string& id) {
            std::string sql = users;
            for (auto at = sql.find("{ID}"); at != std::string::npos; at = sql.find("{ID}")) sql.replace(at, 4, id);
            return sql;
        };
        context.migration({1, "create users and refresh tokens", with_id("INTEGER PRIMARY KEY AUTOINCREMENT"), down, "sqlite"});
        context.migration(
            {1, "create users and refresh tokens", with_id("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"), down, "postgresql"});
    }

    void routes(trellis::Context& context) {
        const json credentials = object_schema(
            {{"name", string_schema(1, 64, kNamePattern)}, {"password", string_schema(1, 1024)}}, {"name", "password"});
        const json refresh = object_schema({{"refresh_token", string_schema(1, 256)}}, {"refresh_token"});
        const json bearer = json::array({json{{"bearer", json::array()}}});

        context.post("/register", [this](trellis::Request& rq, trellis::Response& rs) { register_user(rq, rs); },
                     {"Register an account (when registration is open)", {"auth"}, credentials, user_schema()});
        trellis::RouteInfo create{"Create an account with scopes (admin: auth.admin scope or the admin token)",
                                  {"auth"},
                                  object_schema({{"name", string_schema(1, 64, kNamePattern)},
                                                 {"password", string_schema(1, 1024)},
                                                 {"scopes", {{"type", "array"},
                                                             {"maxItems", 100},
                                                             {"items", string_schema(1, 128, kScopePattern)}}}},
                                                {"name", "password"}),
                                  user_schema()};
        context.post("/users", [this](trellis::Request& rq, trellis::Response& rs) { create_user(rq, rs); }, create);
        context.post("/login", [this](trellis::Request& rq, trellis::Response& rs) { login(rq, rs); },
                     {"Exchange a name and password for an access and a refresh token", {"auth"}, credentials,
                      token_answer_schema()});
        context.post("/refresh", [this](trellis::Request& rq, trellis::Response& rs) { refresh_tokens(rq, rs); },
                     {"Exchange a refresh token for new tokens (the old one stops working)", {"auth"}, refresh,
                      token_answer_schema()});
        context.post("/logout", [this](trellis::Request& rq, trellis::Response& rs) { logout(rq, rs); },
                     {"Revoke a refresh token and every token rotated from the same login", {"auth"}, refresh, nullptr});
        trellis::RouteInfo password{"Change the caller's password; revokes all of its refresh tokens",
                                    {"auth"},
                                    object_schema({{"current_password", string_schema(1, 1024)},
                                                   {"new_password", string_schema(1, 1024)}},
                                                  {"current_password", "new_password"}),
                                    nullptr};
        password.security = bearer;
        context.post("/password", [this](trellis::Request& rq, trellis::Response& rs) { change_password(rq, rs); },
                     password);
        trellis::RouteInfo me{"The caller's account", {"auth"}, nullptr, user_schema()};
        me.security = bearer;
        context.get("/me", [this](trellis::Request& rq, trellis::Response& rs) { whoami(rq, rs); }, me);

        // Account administration: the host lets only callers with auth.admin through.
        const json id_path = object_schema({{"id", {{"type", "integer"}, {"minimum", 1}}}}, {"id"});
        trellis::RouteInfo list{"List the accounts (admin)", {"auth"}, nullptr,
                                {{"type", "object"},
                                 {"required", {"items"}},
                                 {"properties", {{"items", {{"type", "array"}, {"items", user_schema()}}}}}}};
        list.scopes = {"auth.admin"};
        list.security = bearer;
        context.get("/users", [this](trellis::Request&, trellis::Response& rs) { list_users(rs); }, list);
        trellis::RouteInfo change{"Change an account's scopes, or set a new password (admin); either revokes its "
                                  "refresh tokens",
                                  {"auth"},
                                  {{"type", "object"},
                                   {"additionalProperties", false},
                                   {"minProperties", 1},
                                   {"properties",
                                    {{"scopes", {{"type", "array"},
                                                 {"maxItems", 100},
                                                 {"items", string_schema(1, 128, kScopePattern)}}},
                                     {"password", string_schema(1, 1024)}}}},
                                  user_schema()};
        change.path_schema = id_path;
        change.scopes = {"auth.admin"};
        change.security = bearer;
        context.patch("/users/{id}", [this](trellis::Request& rq, trellis::Response& rs) { change_user(rq, rs); },
                      change);
        trellis::RouteInfo remove{"Delete an account and its refresh tokens (admin)", {"auth"}, nullptr, nullptr};
        remove.path_schema = id_path;
        remove.scopes = {"auth.admin"};
        remove.security = bearer;
        context.del("/users/{id}", [this](trellis::Request& rq, trellis::Response& rs) { delete_user(rq, rs); },
                    remove);
        // Public keys only: no database, so it can answer on the event loop.
        context.non_blocking().get(
            "/.well-known/jwks.json", [this](trellis::Request&, trellis::Response& rs) { jwks(rs); },
            {"The public keys that verify access tokens (JWKS)", {"auth"}, nullptr, nullptr});
    }

    // ---- passwords and accounts ---------------------------------------------------------

    std::string hash_password(const std::string& password) const {
        char out[crypto_pwhash_STRBYTES];
        if (crypto_pwhash_str(out, password.data(), password.size(), opslimit_, memlimit_) != 0)
            throw std::runtime_error("argon2id hashing ran out of memory (password.memlimit_kib)");
        return out;
    }

    void check_password_policy(const std::string& password) const {
        if (password.size() < static_cast<std::size_t>(min_password_))
            throw HttpError(422, "validation_failed", "The password is too short.",
                            {{"errors", json::array({{{"field", "/password"},
                                                      {"message", "Expected at least " + std::to_string(min_password_) +
                                                                      " characters"}}})}});
    }

    json insert_user(const std::string& name, const std::string& password, const std::vector<std::string>& scopes) {
        check_password_policy(password);
        const std::string hash = hash_password(password);
        auto connection = db_->connect();
        const std::int64_t now = now_seconds();
        try {
            auto rows = connection.query(
                "INSERT INTO auth_users (name, password_hash, scopes, created_at, password_changed_at) "
                "VALUES (:name, :hash, :scopes, :created, :changed) RETURNING id",
                {{"name", name}, {"hash", hash}, {"scopes", json(scopes).dump()}, {"created", now}, {"changed", now}});
            return {{"id", std::to_string(rows[0].get<std::int64_t>("id"))}, {"name", name}, {"scopes", scopes}};
        } catch (const trellis::DbConflict& e) {
            throw HttpError(409, "name_taken", "An account with this name exists.");
        }
    }

    static std::string lower(std::string text) {
        std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
        return text;
    }

    void register_user(trellis::Request& request, trellis::Response& response) {
        if (!open_registration_)
            throw HttpError(403, "registration_closed",
                            "Registration is closed; an administrator creates accounts.");
        const json body = request.json_body();
        json user = insert_user(lower(body["name"]), body["password"], default_scopes_);
        audit(request, "user_registered", {{"user", user["name"]}});
        response.status(201).json(user);
    }

    // The first administrator is made with the admin token (the file admin_token_file names,
    // sent as X-Admin-Token); after that, by a caller holding the scope auth.admin.
    void create_user(trellis::Request& request, trellis::Response& response) {
        bool allowed = false;
        if (auto token = request.header("X-Admin-Token")) {
            allowed = !admin_token_.empty() && same_secret(*token, admin_token_);
            if (!allowed) {
                audit(request, "admin_token_refused", {});
                throw HttpError(401, "invalid_admin_token", "The admin token is not valid.");
            }
        } else if (auto scopes = request.attribute("auth.scopes")) {
            const json granted = json::parse(*scopes, nullptr, false);
            allowed = granted.is_array() && std::find(granted.begin(), granted.end(), "auth.admin") != granted.end();
            if (!allowed) throw HttpError(403, "insufficient_scope", "Creating accounts needs the scope auth.admin.");
        }
        if (!allowed)
            throw HttpError(401, "unauthenticated",
                            "Creating accounts needs a bearer token with the scope auth.admin, or the admin token.");
        const json body = request.json_body();
        json user = insert_user(lower(body["name"]), body["password"],
                                body.value("scopes", std::vector<std::string>{}));
        audit(request, "user_created", {{"user", user["name"]}, {"scopes", user["scopes"]}});
        response.status(201).json(user);
    }

    void list_users(trellis::Response& response) {
        auto connection = db_->connect();
        json items = json::array();
        for (const auto& row : connection.query("SELECT id, name, scopes FROM auth_users ORDER BY id")) {
            json scopes = json::parse(row.get<std::string>("scopes"), nullptr, false);
            items.push_back({{"id", std::to_string(row.get<std::int64_t>("id"))},
                             {"name", row.get<std::string>("name")},
                             {"scopes", scopes.is_array() ? scopes : json::array()}});
        }
        response.json({{"items", items}});
    }

    // New scopes or a new password: the account's refresh tokens are revoked, so the change
    // holds as soon as its access tokens expire.
    void change_user(trellis::Request& request, trellis::Response& response) {
        const std::int64_t id = std::stoll(std::string(*request.param("id")));
        const json body = request.json_body();
        std::optional<std::string> hash;
        if (body.contains("password")) {
            check_password_policy(body["password"]);
            hash = hash_password(body["password"]);
        }
        const std::int64_t now = now_seconds();
        auto connection = db_->connect();
        auto transaction = connection.transaction();
        auto user = find_user(connection, "id", id);
        if (!user) throw HttpError(404, "not_found", "There is no account with this id.");
        if (body.contains("scopes")) {
            user->scopes = body["scopes"].get<std::vector<std::string>>();
            connection.execute("UPDATE auth_users SET scopes = :scopes WHERE id = :id",
                               {{"scopes", json(user->scopes).dump()}, {"id", id}});
        }
        if (hash)
            connection.execute("UPDATE auth_users SET password_hash = :hash, password_changed_at = :now WHERE id = :id",
                               {{"hash", *hash}, {"now", now}, {"id", id}});
        connection.execute("UPDATE auth_refresh_tokens SET revoked_at = :now WHERE user_id = :id AND revoked_at IS NULL",
                           {{"now", now}, {"id", id}});
        transaction.commit();
        audit(request, "user_changed",
              {{"user", user->name}, {"scopes", user->scopes}, {"password_set", hash.has_value()}});
        response.json({{"id", user->id}, {"name", user->name}, {"scopes", user->scopes}});
    }

    void delete_user(trellis::Request& request, trellis::Response& response) {
        const std::int64_t id = std::stoll(std::string(*request.param("id")));
        auto connection = db_->connect();
        auto transaction = connection.transaction();
        auto user = find_user(connection, "id", id);
        if (!user) throw HttpError(404, "not_found", "There is no account with this id.");
        connection.execute("DELETE FROM auth_refresh_tokens WHERE user_id = :id", {{"id", id}});
        connection.execute("DELETE FROM auth_users WHERE id = :id", {{"id", id}});
        transaction.commit();
        audit(request, "user_deleted", {{"user", user->name}});
        response.status(204);
    }

    std::optional<Principal> find_user(trellis::Connection& connection, const std::string& column,
                                       const trellis::Value& value, std::string* hash = nullptr) {
        auto rows = connection.query("SELECT id, name, password_hash, scopes FROM auth_users WHERE " + column + " = :v",
                                     {{"v", value}});
        if (rows.empty()) return std::nullopt;
        Principal principal{std::to_string(rows[0].get<std::int64_t>("id")), rows[0].get<std::string>("name"), {}};
        const json scopes = json::parse(rows[0].get<std::string>("scopes"), nullptr, false);
        if (scopes.is_array())
            for (const auto& scope : scopes)
                if (scope.is_string()) principal.scopes.push_back(scope);
        if (hash) *hash = rows[0].get<std::string>("password_hash");
        return principal;
    }

    void login(trellis::Request& request, trellis::Response& response) {
        const json body = request.json_body();
        const std::string name = lower(body["name"]);
        const std::string password = body["password"];
        const std::string address(request.attribute("trellis.client_address").value_or("unknown"));
        const std::int64_t now = now_seconds();
        // Throttled before any password work, whether the password would be right or not.
        const std::int64_t wait = std::max(accounts_->blocked_for(name, now), addresses_->blocked_for(address, now));
        if (wait > 0) {
            audit(request, "login_throttled", {{"user", name}});
            response.header("Retry-After", std::to_string(wait));
            throw HttpError(429, "too_many_attempts", "Too many failed logins; try again later.");
        }

        std::string hash;
        auto principal = [&] {
            auto connection = db_->connect();  // not held during the argon2id work
            return find_user(connection, "name", name, &hash);
        }();
        // Counted before the verification, so that concurrent guesses cannot all pass the
        // check above; a success takes its count back.
        accounts_->fail(name, now);
        addresses_->fail(address, now);
        // Unknown names verify against a dummy hash: the same work and the same answer.
        const bool match = crypto_pwhash_str_verify(principal ? hash.c_str() : dummy_hash_.c_str(), password.data(),
                                                    password.size()) == 0;
        if (!principal || !match) {
            audit(request, "login_failed", {{"user", name}});
            throw HttpError(401, "invalid_credentials", "The name or the password is wrong.");
        }
        accounts_->clear(name);
        addresses_->forgive(address);
        auto connection = db_->connect();
        if (crypto_pwhash_str_needs_rehash(hash.c_str(), opslimit_, memlimit_) != 0)
            connection.execute("UPDATE auth_users SET password_hash = :hash WHERE id = :id",
                               {{"hash", hash_password(password)}, {"id", std::stoll(principal->id)}});
        const std::string family = random_token(16);
        const std::string refresh = issue_refresh(connection, principal->id, family, now);
        audit(request, "login", {{"user", name}});
        answer_tokens(response, *principal, refresh, now);
    }

    // ---- refresh tokens -------------------------------------------------------------------

    std::string issue_refresh(trellis::Connection& connection, const std::string& user_id, const std::string& family,
                              std::int64_t now) {
        std::string token = random_token();
        connection.execute(
            "INSERT INTO auth_refresh_tokens (token_hash, user_id, family, created_at, expires_at) "
            "VALUES (:hash, :user, :family, :now, :expires)",
            {{"hash", token_hash(token)}, {"user", std::stoll(user_id)}, {"family", family}, {"now", now},
             {"expires", now + refresh_ttl_}});
        return token;
    }

    void revoke_family(trellis::Connection& connection, const std::string& family, std::int64_t now) {
        connection.execute("UPDATE auth_refresh_tokens SET revoked_at = :now WHERE family = :family AND revoked_at IS NULL",
                           {{"now", now}, {"family", family}});
    }

    void refresh_tokens(trellis::Request& request, trellis::Response& response) {
        const std::string token = request.json_body()["refresh_token"];
        const std::int64_t now = now_seconds();
        auto connection = db_->connect();
        auto transaction = connection.transaction();
        auto rows = connection.query(
            "SELECT id, user_id, family, expires_at, used_at, revoked_at FROM auth_refresh_tokens WHERE token_hash = :hash",
            {{"hash", token_hash(token)}});
        const auto refuse = [] {
            return HttpError(401, "invalid_refresh_token", "The refresh token is not valid; log in again.");
        };
        if (rows.empty()) throw refuse();
        const auto row = rows[0];
        const std::string family = row.get<std::string>("family");
        const std::string user_id = std::to_string(row.get<std::int64_t>("user_id"));
        const bool spent = row["used_at"].optional<std::int64_t>().has_value();
        const bool revoked = row["revoked_at"].optional<std::int64_t>().has_value();
        // A rotated token coming back means two parties hold the family: end all of it.
        // The conditional update also catches two concurrent uses of one token.
        const bool reused =
            spent || (!revoked && connection.execute("UPDATE auth_refresh_tokens SET used_at = :now "
                                                     "WHERE id = :id AND used_at IS NULL AND revoked_at IS NULL",
                                                     {{"now", now}, {"id", row.get<std::int64_t>("id")}}) == 0);
        if (reused) {
            revoke_family(connection, family, now);
            transaction.commit();
            audit(request, "refresh_token_reuse", {{"user_id", user_id}, {"family", family.substr(0, 8)}});
            throw refuse();
        }
        if (revoked || row.get<std::int64_t>("expires_at") <= now) throw refuse();
        auto principal = find_user(connection, "id", std::stoll(user_id));
        if (!principal) throw refuse();
        const std::string next = issue_refresh(connection, principal->id, family, now);
        transaction.commit();
        answer_tokens(response, *principal, next, now);
    }

    void logout(trellis::Request& request, trellis::Response& response) {
        const std::string token = request.json_body()["refresh_token"];
        auto connection = db_->connect();
        auto rows = connection.query("SELECT family FROM auth_refresh_tokens WHERE token_hash = :hash",
                                     {{"hash", token_hash(token)}});
        // An unknown token is already logged out: the same answer, nothing to tell apart.
        if (!rows.empty()) {
            revoke_family(connection, rows[0].get<std::string>("family"), now_seconds());
            audit(request, "logout", {});
        }
        response.status(204);
    }

    void change_password(trellis::Request& request, trellis::Response& response) {
        const json principal = json::parse(request.attribute("auth.principal").value_or("{}"), nullptr, false);
        if (!principal.is_object() || principal.value("type", "") != "user")
            throw HttpError(403, "user_token_required", "Only a user's own access token can change its password.");
        const json body = request.json_body();
        const std::string current = body["current_password"], replacement = body["new_password"];
        const std::string address(request.attribute("trellis.client_address").value_or("unknown"));
        const std::string account = "id:" + principal.value("id", "0");
        std::int64_t now = now_seconds();
        // Guessing the current password with a stolen access token is throttled like a login.
        if (const std::int64_t wait = std::max(accounts_->blocked_for(account, now), addresses_->blocked_for(address, now));
            wait > 0) {
            response.header("Retry-After", std::to_string(wait));
            throw HttpError(429, "too_many_attempts", "Too many failed attempts; try again later.");
        }
        std::string hash;
        auto user = [&] {
            auto connection = db_->connect();  // not held during the argon2id work
            return find_user(connection, "id", std::stoll(principal.value("id", "0")), &hash);
        }();
        accounts_->fail(account, now);  // counted first: concurrent guesses cannot all pass the check
        addresses_->fail(address, now);
        if (!user || crypto_pwhash_str_verify(hash.c_str(), current.data(), current.size()) != 0) {
            audit(request, "password_change_refused", {{"user_id", principal.value("id", "")}});
            throw HttpError(403, "invalid_credentials", "The current password is wrong.");
        }
        accounts_->clear(account);
        addresses_->forgive(address);
        check_password_policy(replacement);
        const std::string new_hash = hash_password(replacement);
        now = now_seconds();
        auto connection = db_->connect();
        auto transaction = connection.transaction();
        connection.execute("UPDATE auth_users SET password_hash = :hash, password_changed_at = :now WHERE id = :id",
                           {{"hash", new_hash}, {"now", now}, {"id", std::stoll(user->id)}});
        connection.execute(
            "UPDATE auth_refresh_tokens SET revoked_at = :now WHERE user_id = :id AND revoked_at IS NULL",
            {{"now", now}, {"id", std::stoll(user->id)}});
        transaction.commit();
        audit(request, "password_changed", {{"user", user->name}});
        response.status(204);
    }

    void whoami(trellis::Request& request, trellis::Response& response) {
        const json principal = json::parse(request.attribute("auth.principal").value_or("{}"), nullptr, false);
        const json scopes = json::parse(request.attribute("auth.scopes").value_or("[]"), nullptr, false);
        response.json({{"id", principal.value("id", "")}, {"name", principal.value("name", "")}, {"scopes", scopes}});
    }

    // ---- access tokens --------------------------------------------------------------------

    std::string sign(const Principal& principal, std::int64_t now) const {
        std::string scope;
        for (const auto& s : principal.scopes) scope += (scope.empty() ? "" : " ") + s;
        const json header = {{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", signing_->kid}};
        const json claims = {{"iss", issuer_},         {"aud", audience_}, {"sub", principal.id},
                             {"name", principal.name}, {"scope", scope},   {"iat", now},
                             {"nbf", now},             {"exp", now + access_ttl_}, {"jti", random_token(16)}};
        const std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
        unsigned char signature[crypto_sign_BYTES];
        crypto_sign_detached(signature, nullptr, reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                             signing_->secret_key);
        return input + "." + base64url(signature, sizeof signature);
    }

    void answer_tokens(trellis::Response& response, const Principal& principal, const std::string& refresh,
                       std::int64_t now) const {
        std::string scope;
        for (const auto& s : principal.scopes) scope += (scope.empty() ? "" : " ") + s;
        response.header("Cache-Control", "no-store");
        response.json({{"access_token", sign(principal, now)},
                       {"token_type", "Bearer"},
                       {"expires_in", access_ttl_},
                       {"refresh_token", refresh},
                       {"refresh_expires_in", refresh_ttl_},
                       {"scope", scope}});
    }

    void jwks(trellis::Response& response) const {
        json keys = json::array();
        for (const auto& key : keys_)
            if (!key->revoked)
                keys.push_back({{"kty", "OKP"},
                                {"crv", "Ed25519"},
                                {"kid", key->kid},
                                {"alg", "EdDSA"},
                                {"use", "sig"},
                                {"x", base64url(key->public_key, sizeof key->public_key)}});
        response.header("Cache-Control", "public, max-age=300");
        response.json({{"keys", keys}});
    }

    // The checks of RFC 8725 for one algorithm: the header must say EdDSA with a kid we hold
    // (so `none`, HMAC and anything else fail before a signature is looked at).
    std::optional<Principal> verify(trellis::Request& request, std::string_view token, std::string& why) const {
        const auto first = token.find('.'), second = token.find('.', first == std::string_view::npos ? 0 : first + 1);
        if (first == std::string_view::npos || second == std::string_view::npos ||
            token.find('.', second + 1) != std::string_view::npos) {
            why = "The access token is not a JWS in compact form.";
            return std::nullopt;
        }
        const auto header_text = from_base64url(token.substr(0, first));
        const auto claims_text = from_base64url(token.substr(first + 1, second - first - 1));
        const auto signature = from_base64url(token.substr(second + 1));
        const json header = header_text ? json::parse(*header_text, nullptr, false) : json();
        const json claims = claims_text ? json::parse(*claims_text, nullptr, false) : json();
        if (!header.is_object() || !claims.is_object() || !signature) {
            why = "The access token is not a JWS in compact form.";
            return std::nullopt;
        }
        if (header.value("alg", json()) != "EdDSA" || header.contains("crit")) {
            why = "The access token's algorithm is not accepted.";
            return std::nullopt;
        }
        const SigningKey* key = nullptr;
        for (const auto& candidate : keys_)
            if (header.value("kid", json()) == candidate->kid) key = candidate.get();
        if (!key) {
            why = "The access token was signed by an unknown key.";
            return std::nullopt;
        }
        if (signature->size() != crypto_sign_BYTES ||
            crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature->data()),
                                        reinterpret_cast<const unsigned char*>(token.data()), second,
                                        key->public_key) != 0) {
            why = "The access token's signature is not valid.";
            return std::nullopt;
        }
        if (key->revoked) {
            audit(request, "token_key_revoked", {{"kid", key->kid}});
            why = "The access token was signed by a revoked key.";
            return std::nullopt;
        }
        const std::int64_t now = now_seconds();
        const auto number = [&](const char* name) -> std::optional<std::int64_t> {
            const auto it = claims.find(name);
            if (it == claims.end() || !it->is_number_integer()) return std::nullopt;
            return it->get<std::int64_t>();
        };
        const auto audience = claims.value("aud", json());
        const bool audience_ok = audience == audience_ || (audience.is_array() && std::find(audience.begin(), audience.end(),
                                                                                             audience_) != audience.end());
        if (!number("exp") || *number("exp") + skew_ <= now) why = "The access token has expired.";
        else if (claims.contains("nbf") && (!number("nbf") || *number("nbf") - skew_ > now))
            why = "The access token is not valid yet.";
        else if (claims.value("iss", json()) != issuer_) why = "The access token's issuer is not accepted.";
        else if (!audience_ok) why = "The access token is not meant for this audience.";
        else if (!claims.value("sub", json()).is_string()) why = "The access token names no subject.";
        if (!why.empty()) return std::nullopt;

        Principal principal{claims["sub"], claims.value("name", ""), {}};
        const std::string scope = claims.value("scope", json("")).is_string() ? claims.value("scope", "") : "";
        for (std::size_t start = 0; start < scope.size();) {
            auto end = std::min(scope.find(' ', start), scope.size());
            if (end > start) principal.scopes.push_back(scope.substr(start, end - start));
            start = end + 1;
        }
        return principal;
    }

    void bearer(trellis::Request& request, trellis::Response& response, trellis::Next& next) const {
        const auto authorization = request.header("Authorization");
        if (!authorization || authorization->size() < 7 || lower(std::string(authorization->substr(0, 7))) != "bearer ")
            return next();  // not ours: another middleware may accept it, the host decides
        std::string_view token = authorization->substr(7);
        while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
        std::string why;
        auto principal = verify(request, token, why);
        if (!principal) {
            log_->debug("access token refused: " + why);
            response.header("WWW-Authenticate", "Bearer realm=\"trellis\", error=\"invalid_token\"");
            response.problem(401, "invalid_token", why, request.path());
            return;
        }
        log_->debug("access token accepted: sub=" + principal->id + " scopes=" + json(principal->scopes).dump());
        request.set_attribute("auth.principal",
                              json{{"id", principal->id}, {"name", principal->name}, {"type", "user"}}.dump());
        request.set_attribute("auth.scopes", json(principal->scopes).dump());
        request.set_attribute("user.id", json(principal->id).dump());
        next();
    }

    // One line per security event: the event, who, the client and the request id; never a
    // password, a token or a key.
    void audit(const trellis::Request& request, const char* event, const json& details) const {
        std::string line = std::string("audit event=") + event;
        for (const auto& [name, value] : details.items()) line += " " + name + "=" + value.dump();
        line += " client=" + std::string(request.attribute("trellis.client_address").value_or("-"));
        line += " request_id=" + std::string(request.request_id());
        log_->warn(line);
    }

    std::optional<trellis::Logger> log_;
    std::optional<trellis::Database> db_;
    std::string issuer_, audience_;
    std::int64_t access_ttl_ = 900, refresh_ttl_ = 0, skew_ = 30;
    bool open_registration_ = false;
    std::vector<std::string> default_scopes_;
    std::vector<std::unique_ptr<SigningKey>> keys_;
    const SigningKey* signing_ = nullptr;
    std::string admin_token_;
    unsigned long long opslimit_ = 0;
    std::size_t memlimit_ = 0;
    int min_password_ = 10;
    std::optional<Throttle> accounts_, addresses_;
    std::string dummy_hash_;
};

}  // namespace

TRELLIS_PLUGIN(Auth)
