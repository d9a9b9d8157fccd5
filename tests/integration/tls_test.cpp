// HTTPS on the event engine (server.tls): certificates made by `openssl` here, requests by
// curl and `openssl s_client`, every process on loopback and stopped by its PID.
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

using namespace trellis;
using namespace trellis::test;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

struct Ran {
    int code = -1;
    std::string output;
};

// Runs a shell command line (stdin from /dev/null) and waits up to 30 s.
Ran sh(const TempDir& dir, const std::string& command, const std::string& name) {
    Process p({"/bin/sh", "-c", command + " </dev/null"}, minimal_environment(), dir.path() / (name + ".out"));
    auto code = p.wait(30s);
    REQUIRE(code.has_value());
    return {*code, p.output()};
}

// A self-signed certificate for localhost and 127.0.0.1 with this common name.
void make_certificate(const TempDir& dir, const std::string& common_name, const std::string& cert = "cert.pem",
                      const std::string& key = "key.pem") {
    auto made = sh(dir,
                   "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout '" +
                       (dir.path() / key).string() + "' -out '" + (dir.path() / cert).string() + "' -subj '/CN=" +
                       common_name + "' -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1'",
                   "req-" + common_name);
    INFO(made.output);
    REQUIRE(made.code == 0);
}

std::string tls_section(const TempDir& certs) {
    return "  tls:\n    certificate: " + (certs.path() / "cert.pem").string() +
           "\n    key: " + (certs.path() / "key.pem").string() + "\n";
}

// The event engine, whatever TRELLIS_SERVER__ENGINE says (the Poco engine refuses TLS).
const Environment kEvent{{"TRELLIS_SERVER__ENGINE", "event"}};

std::string s_client(const TempDir& dir, std::uint16_t port, const std::string& options, const std::string& name) {
    return sh(dir, "openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " " + options + " 2>&1", name).output;
}

}  // namespace

TEST_CASE("HTTPS on the event engine: TLS 1.2 or newer, ALPN http/1.1, and plain HTTP gets no answer", "[tls]") {
    TempDir certs;
    make_certificate(certs, "one");
    TestServer server(config_yaml("  hello: {}\n  notes: {}\n", "server:\n" + tls_section(certs)), kEvent);
    const std::string url = "https://localhost:" + std::to_string(server.port()) + "/hello/tls";
    auto curl = sh(certs, "curl -sS --max-time 10 --cacert '" + (certs.path() / "cert.pem").string() +
                              "' -w '\\n%{http_code} %{ssl_verify_result}' " + url,
                   "curl");
    INFO(curl.output);
    CHECK(curl.code == 0);
    CHECK_THAT(curl.output, Contains("Hello, tls!") && Contains("\n200 0"));

    auto alpn = s_client(certs, server.port(), "-alpn http/1.1", "alpn");
    CHECK_THAT(alpn, Contains("ALPN protocol: http/1.1") && Contains("subject=CN = one"));
    CHECK_THAT(s_client(certs, server.port(), "-tls1_2", "tls12"), Contains("Protocol  : TLSv1.2"));
    auto legacy = s_client(certs, server.port(), "-tls1_2 -cipher AES128-SHA", "no-forward-secrecy");
    CHECK_THAT(legacy, Contains("handshake failure") || Contains("no cipher"));

    // trellis.base_url is https://: notes' Link to the next page says so.
    const std::string curl_tls = "curl -sS --max-time 10 --cacert '" + (certs.path() / "cert.pem").string() + "' ";
    const std::string notes = "https://localhost:" + std::to_string(server.port()) + "/notes";
    for (const char* title : {"first", "second"})
        REQUIRE(sh(certs, curl_tls + "-H 'Content-Type: application/json' -d '{\"title\": \"" + title + "\"}' " + notes,
                   std::string("post-") + title)
                    .code == 0);
    auto page = sh(certs, curl_tls + "-i '" + notes + "?limit=1'", "page");
    INFO(page.output);
    CHECK_THAT(page.output, Contains("link: <" + notes + "?limit=1&cursor=") ||
                                Contains("Link: <" + notes + "?limit=1&cursor="));

    // A plain HTTP request to the TLS port is not a handshake: the connection closes.
    CHECK_THROWS(http_request(server.port(), "GET", "/hello/plain"));
    // The server goes on serving.
    CHECK(sh(certs, "curl -sS --max-time 10 --cacert '" + (certs.path() / "cert.pem").string() + "' " + url, "again")
              .code == 0);
}

TEST_CASE("a client that allows TLS 1.1 reaches openssl s_server with TLS 1.1 but is refused by Trellis", "[tls]") {
    TempDir certs;
    make_certificate(certs, "one");
    // The client: TLS 1.1 only, at OpenSSL security level 0 (which TLS 1.1 needs in OpenSSL 3).
    const std::string tls11 = "-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'";

    // First shown to work: s_server allowing TLS 1.1 on a free loopback port (-www: it answers
    // by itself; without it s_server serves stdin and quits at its end).
    const std::uint16_t port = free_port();
    Process s_server({"/bin/sh", "-c",
                      "exec openssl s_server -www -accept 127.0.0.1:" + std::to_string(port) + " -tls1_1 " +
                          "-cipher 'DEFAULT:@SECLEVEL=0' -cert '" + (certs.path() / "cert.pem").string() + "' -key '" +
                          (certs.path() / "key.pem").string() + "' </dev/null"},
                     minimal_environment(), certs.path() / "s_server.out");
    for (auto until = std::chrono::steady_clock::now() + 10s;
         s_server.output().find("ACCEPT") == std::string::npos && std::chrono::steady_clock::now() < until;)
        std::this_thread::sleep_for(50ms);
    REQUIRE_THAT(s_server.output(), Contains("ACCEPT"));  // listening
    auto reference = s_client(certs, port, tls11, "reference");
    INFO(reference);
    CHECK_THAT(reference, Contains("Protocol  : TLSv1.1"));
    CHECK_THAT(reference, !Contains("Cipher is (NONE)"));
    s_server.signal(SIGTERM);
    s_server.wait(5s);

    TestServer server(config_yaml("  hello: {}\n", "server:\n" + tls_section(certs)), kEvent);
    auto refused = s_client(certs, server.port(), tls11, "refused");
    INFO(refused);
    CHECK_THAT(refused, Contains("alert protocol version"));
    CHECK_THAT(refused, Contains("Cipher is (NONE)"));
}

TEST_CASE("a renewed certificate is served after a reload, and a broken one refuses the reload", "[tls]") {
    TempDir certs;
    make_certificate(certs, "one");
    TestServer server(config_yaml("  hello: {}\n", "server:\n" + tls_section(certs)), kEvent);
    CHECK_THAT(s_client(certs, server.port(), "", "before"), Contains("subject=CN = one"));

    make_certificate(certs, "two");  // renewed in place, as certbot or an ACME client does
    auto reloaded = server.host().reload(true);
    REQUIRE(reloaded.reloaded);
    CHECK_THAT(s_client(certs, server.port(), "", "after"), Contains("subject=CN = two"));

    // A key that does not match: the reload is refused and "two" is still served.
    make_certificate(certs, "three", "other-cert.pem", "key.pem");
    auto refused = server.host().reload(true);
    CHECK_FALSE(refused.reloaded);
    std::string errors;
    for (const auto& error : refused.errors) errors += error + "\n";
    CHECK_THAT(errors, Contains("server.tls.key " + (certs.path() / "key.pem").string()) &&
                           Contains("does not match the certificate"));
    CHECK_THAT(s_client(certs, server.port(), "", "kept"), Contains("subject=CN = two"));
}

TEST_CASE("a missing certificate, a bad key and the Poco engine with TLS are clear errors", "[tls]") {
    TempDir certs;
    make_certificate(certs, "one");
    {
        TempDir dir;
        auto file = dir.write("trellis.yaml", "server:\n  tls:\n    certificate: missing.pem\n    key: " +
                                                  (certs.path() / "key.pem").string() + "\n");
        auto loaded = config::load({file, {}});
        REQUIRE_FALSE(loaded.has_value());
        CHECK_THAT(loaded.error().front(), Contains("trellis.yaml:3:18: key 'server.tls.certificate': cannot read " +
                                                    (dir.path() / "missing.pem").string() +
                                                    ": No such file or directory"));
    }
    {
        TempDir dir;
        auto file = dir.write("trellis.yaml", "server:\n  engine: poco\n" + tls_section(certs));
        auto loaded = config::load({file, {}});
        REQUIRE_FALSE(loaded.has_value());
        CHECK_THAT(loaded.error().front(), Contains("key 'server.tls'") && Contains("event engine only"));
    }
    {
        // `trellis check` reads the files as serve does: a key that is not a key fails it.
        TempDir dir;
        std::ofstream(certs.path() / "not-a-key.pem") << "-----BEGIN PRIVATE KEY-----\nnot base64\n";
        dir.write("trellis.yaml", config_yaml("  hello: {}\n", "server:\n  tls:\n    certificate: " +
                                                                 (certs.path() / "cert.pem").string() + "\n    key: " +
                                                                 (certs.path() / "not-a-key.pem").string() + "\n"));
        std::vector<std::string> environment;
        for (auto& entry : minimal_environment())
            if (entry.rfind("TRELLIS_SERVER__ENGINE=", 0) != 0) environment.push_back(entry);
        Process check({TRELLIS_TEST_BINARY, "check", "-c", (dir.path() / "trellis.yaml").string()}, environment,
                      dir.path() / "check.out");
        auto code = check.wait(30s);
        REQUIRE(code.has_value());
        CHECK(*code == 1);
        CHECK_THAT(check.output(), Contains("server.tls.key " + (certs.path() / "not-a-key.pem").string()) &&
                                       Contains("not an unencrypted PEM private key"));
    }
}
