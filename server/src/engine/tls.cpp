#include "engine/tls.hpp"

#include <utility>  // before Boost 1.74's Asio with g++ 12 in C++20

#include <boost/asio/ssl/context.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace trellis::engine {
namespace {

// Mozilla's "intermediate" TLS 1.2 suites: ECDHE key exchange, AEAD only.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// OpenSSL's error queue as one line, emptied.
std::string openssl_errors() {
    std::string text;
    while (unsigned long code = ERR_get_error()) {
        char line[256];
        ERR_error_string_n(code, line, sizeof line);
        if (!text.empty()) text += "; ";
        text += line;
    }
    return text.empty() ? "unknown OpenSSL error" : text;
}

// ALPN: HTTP/1.1 is all this server speaks; a client offering only others gets no ALPN
// answer (and may go on with HTTP/1.1 or give up).
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_length, const unsigned char* in,
                unsigned int in_length, void*) {
    static constexpr unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, out_length, http11, sizeof http11, in, in_length) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace

TlsContext::TlsContext() : context_(std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server)) {}
TlsContext::~TlsContext() = default;

tl::expected<std::shared_ptr<TlsContext>, std::string> TlsContext::load(const std::filesystem::path& certificate,
                                                                         const std::filesystem::path& key) {
    std::shared_ptr<TlsContext> tls(new TlsContext);
    SSL_CTX* ctx = tls->context_->native_handle();
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1)
        return tl::unexpected("server.tls: the cipher list is refused: " + openssl_errors());
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    // An encrypted key fails to load instead of asking for a passphrase on the terminal.
    SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
    if (SSL_CTX_use_certificate_chain_file(ctx, certificate.c_str()) != 1)
        return tl::unexpected("server.tls.certificate " + certificate.string() +
                              ": not a PEM certificate chain (" + openssl_errors() + ")");
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        const std::string detail = openssl_errors();
        if (mismatch)
            return tl::unexpected("server.tls.key " + key.string() + ": does not match the certificate " +
                                  certificate.string());
        return tl::unexpected("server.tls.key " + key.string() + ": not an unencrypted PEM private key (" + detail + ")");
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return tl::unexpected("server.tls.key " + key.string() + ": does not match the certificate " +
                              certificate.string());
    return tls;
}

}  // namespace trellis::engine
