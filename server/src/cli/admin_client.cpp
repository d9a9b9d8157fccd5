// The admin API client: Boost.Beast's message model over one Asio socket (the CLI sends one
// request, so the engine's speed concerns do not apply).
#include "cli/admin_client.hpp"

#include <nlohmann/json.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace trellis::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

std::string connect_host(const config::Config& config) {
    const std::string& host = config.server.admin_listen.host;
    if (host.empty() || host == "0.0.0.0" || host == "*") return "127.0.0.1";
    if (host == "::" || host == "[::]") return "::1";
    return host;
}

}  // namespace

std::string admin_address(const config::Config& config) {
    return config::Endpoint{connect_host(config), config.server.admin_listen.port}.text();
}

tl::expected<AdminAnswer, std::string> admin_request(const config::Config& config, const std::string& method,
                                                     const std::string& target, std::chrono::milliseconds timeout) {
    try {
        asio::io_context io;
        asio::ip::tcp::resolver resolver(io);
        beast::tcp_stream stream(io);
        stream.expires_after(timeout);
        const auto endpoints =
            resolver.resolve(connect_host(config), std::to_string(config.server.admin_listen.port));
        stream.connect(endpoints);

        http::request<http::string_body> request(http::string_to_verb(method), target, 11);
        request.set(http::field::host, admin_address(config));
        request.set(http::field::user_agent, "trellis-cli/" TRELLIS_VERSION);
        if (!config.server.admin_token.empty())
            request.set(http::field::authorization, "Bearer " + config.server.admin_token);
        if (method != "GET") {
            request.set(http::field::content_type, "application/json");
            request.body() = "{}";
        }
        request.prepare_payload();
        http::write(stream, request);

        beast::flat_buffer buffer;
        http::response<http::string_body> response;
        http::read(stream, buffer, response);
        beast::error_code ignored;
        stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        return AdminAnswer{static_cast<int>(response.result_int()), std::move(response.body())};
    } catch (const beast::system_error& e) {
        const bool timed_out = e.code() == beast::error::timeout;
        return tl::unexpected(timed_out ? "no answer within " + std::to_string(timeout.count()) + " ms"
                                        : e.code().message());
    }
}

std::map<std::string, std::string> served_reload_errors(const config::Config& config) {
    std::map<std::string, std::string> errors;
    if (!config.server.admin_enabled || config.server.admin_listen.port == 0) return errors;
    auto answer = admin_request(config, "GET", "/admin/plugins", std::chrono::milliseconds(1000));
    if (!answer || answer->status != 200) return errors;
    const auto body = nlohmann::json::parse(answer->body, nullptr, false);
    if (!body.is_object() || !body.contains("plugins") || !body["plugins"].is_array()) return errors;
    for (const auto& plugin : body["plugins"])
        if (plugin.is_object() && plugin.contains("reload_error") && plugin["reload_error"].is_string())
            errors[plugin.value("name", "")] = plugin["reload_error"].get<std::string>();
    return errors;
}

}  // namespace trellis::cli
