// TLS for the event engine (server.tls): an OpenSSL 3 server context made from PEM files,
// through Boost.Asio's ssl layer. TLS 1.2 at least, forward-secret AEAD ciphers for 1.2
// (OpenSSL's TLS 1.3 suites as they are), no compression, no renegotiation, ALPN http/1.1.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include <tl/expected.hpp>

namespace boost::asio::ssl {
class context;
}

namespace trellis::engine {

class TlsContext {
public:
    // Reads the certificate chain and the private key; the error names the file and what is
    // wrong with it ("server.tls.key /etc/trellis/tls.key: does not match the certificate").
    static tl::expected<std::shared_ptr<TlsContext>, std::string> load(const std::filesystem::path& certificate,
                                                                        const std::filesystem::path& key);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    boost::asio::ssl::context& native() { return *context_; }

private:
    TlsContext();
    std::unique_ptr<boost::asio::ssl::context> context_;
};

}  // namespace trellis::engine
