// key_text.hpp - the api_keys plugin's key format: trk_<prefix>_<secret>, made, parsed and
// hashed with libsodium (randombytes, base64url, BLAKE2b, constant-time comparison).
#pragma once

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace api_keys {

constexpr std::string_view kKeyTag = "trk_";
constexpr std::size_t kPrefixBytes = 8;  // 16 hex digits
constexpr std::size_t kSecretBytes = 32;
constexpr std::size_t kSecretChars = 43;                      // base64url, no padding, of 32 bytes
constexpr std::size_t kHashBytes = crypto_generichash_BYTES;  // 32

inline std::string base64url(const unsigned char* bytes, std::size_t size) {
    std::string out(sodium_base64_encoded_len(size, sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
    sodium_bin2base64(out.data(), out.size(), bytes, size, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    out.resize(out.size() - 1);  // the terminating NUL
    return out;
}

// Strict: the whole text, no padding, no white space.
inline std::optional<std::string> base64url_decode(std::string_view text, std::size_t max_bytes) {
    std::string out(max_bytes, '\0');
    std::size_t size = 0;
    const char* end = nullptr;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                          &size, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != text.data() + text.size())
        return std::nullopt;
    out.resize(size);
    return out;
}

inline std::string hex(const unsigned char* bytes, std::size_t size) {
    std::string out(size * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), bytes, size);
    out.pop_back();
    return out;
}

// The stored form of a key: hex of BLAKE2b-256 over the whole key text.
inline std::string key_hash(std::string_view key_text) {
    std::array<unsigned char, kHashBytes> digest{};
    crypto_generichash(digest.data(), digest.size(), reinterpret_cast<const unsigned char*>(key_text.data()),
                       key_text.size(), nullptr, 0);
    return hex(digest.data(), digest.size());
}

inline bool same_hash(const std::string& a, const std::string& b) {
    return a.size() == b.size() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

struct NewKey {
    std::string prefix;
    std::string text;  // the whole key, shown once
};

inline NewKey generate_key() {
    std::array<unsigned char, kPrefixBytes> prefix{};
    std::array<unsigned char, kSecretBytes> secret{};
    randombytes_buf(prefix.data(), prefix.size());
    randombytes_buf(secret.data(), secret.size());
    NewKey key;
    key.prefix = hex(prefix.data(), prefix.size());
    key.text = std::string(kKeyTag) + key.prefix + "_" + base64url(secret.data(), secret.size());
    sodium_memzero(secret.data(), secret.size());
    return key;
}

inline bool is_prefix(std::string_view text) {
    return text.size() == kPrefixBytes * 2 && std::all_of(text.begin(), text.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// The prefix of a well-formed key text, or nullopt.
inline std::optional<std::string> parse_key(std::string_view text) {
    if (text.substr(0, kKeyTag.size()) != kKeyTag) return std::nullopt;
    text.remove_prefix(kKeyTag.size());
    const auto underscore = text.find('_');
    if (underscore == std::string_view::npos || !is_prefix(text.substr(0, underscore))) return std::nullopt;
    const std::string_view secret = text.substr(underscore + 1);
    if (secret.size() != kSecretChars) return std::nullopt;
    const auto bytes = base64url_decode(secret, kSecretBytes);
    if (!bytes || bytes->size() != kSecretBytes) return std::nullopt;
    return std::string(text.substr(0, underscore));
}

}  // namespace api_keys
