// The host behind trellis/embed.h: configuration from text, a temporary data folder, and a
// blocking exchange that hands each request to the pipeline and waits for its completion.
#include "embed/embedded_host.hpp"

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "engine/engine.hpp"
#include "http/problem.hpp"
#include "plugin/thread_role.hpp"
#include "runtime/logging.hpp"

namespace trellis::embed {
namespace {

namespace fs = std::filesystem;

std::string join(const config::Errors& errors) {
    std::string all;
    for (const auto& error : errors) all += (all.empty() ? "" : "\n") + error;
    return all;
}

bool is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// The engines' refusals before a request reaches the pipeline (engine/http1.cpp and
// engine/poco_engine.cpp answer these without a request id).
bool refuse_over_limits(const http::Request& request, const config::ServerConfig& limits, http::Response& response) {
    const std::size_t target_bytes = request.path.size() + (request.query.empty() ? 0 : request.query.size() + 1);
    if (target_bytes > limits.max_uri_bytes) {
        http::set_problem(response, request, 414, "uri_too_long", "The request target is too long.");
        return true;
    }
    if (request.headers.size() > static_cast<std::size_t>(limits.max_headers)) {
        http::set_problem(response, request, 431, "header_fields_too_large", "The request has too many header fields.");
        return true;
    }
    std::size_t head_bytes = request.method.size() + target_bytes + request.version.size() + 4 + 2;
    for (const auto& [name, value] : request.headers) head_bytes += name.size() + value.size() + 4;
    if (head_bytes > limits.max_header_bytes) {
        http::set_problem(response, request, 431, "header_fields_too_large", "The request head is too large.");
        return true;
    }
    return false;
}

}  // namespace

tl::expected<http::Fields, std::string> parse_header_lines(std::string_view text) {
    http::Fields fields;
    std::size_t number = 0;
    while (!text.empty()) {
        ++number;
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        const auto colon = line.find(':');
        const std::string where = "header line " + std::to_string(number) + " (\"" + std::string(line.substr(0, 60)) + "\")";
        if (colon == std::string_view::npos) return tl::unexpected(where + " has no ':' after the field name");
        const std::string_view name = line.substr(0, colon);
        if (name.empty()) return tl::unexpected(where + " has an empty field name");
        for (const char c : name)
            if (!is_tchar(static_cast<unsigned char>(c)))
                return tl::unexpected(where + ": the field name is not a token (white space before the colon?)");
        const std::string_view value = trim(line.substr(colon + 1));
        for (const char c : value)
            if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
                return tl::unexpected(where + ": the value contains a control character");
        fields.emplace_back(name, value);
    }
    return fields;
}

tl::expected<std::unique_ptr<EmbeddedHost>, std::string> EmbeddedHost::create(std::string yaml, fs::path base_dir) {
    std::unique_ptr<EmbeddedHost> self(new EmbeddedHost());
    std::error_code ec;
    self->base_dir_ = fs::absolute(base_dir.empty() ? fs::path(".") : base_dir, ec).lexically_normal();
    if (ec) return tl::unexpected("base_dir '" + base_dir.string() + "': " + ec.message());

    std::string pattern = (fs::temp_directory_path(ec) / "trellis-embed-XXXXXX").string();
    if (ec) return tl::unexpected("no temporary folder for the data directory: " + ec.message());
    if (::mkdtemp(pattern.data()) == nullptr)
        return tl::unexpected("cannot create a temporary data folder from " + pattern + ": " +
                              std::generic_category().message(errno));
    self->temp_dir_ = pattern;

    auto config = self->load(yaml);
    if (!config) return tl::unexpected(join(config.error()));
    if ((*config)->server.data_dir != self->temp_dir_) {
        fs::remove_all(self->temp_dir_, ec);
        self->temp_dir_.clear();
    }
    self->data_dir_ = (*config)->server.data_dir.string();
    self->event_engine_ = (*config)->server.engine == config::EngineKind::event;
    self->limits_ = (*config)->server;
    logging::configure((*config)->logging);

    EmbeddedHost* host = self.get();  // outlives host_, which it owns
    auto made = host::Host::create_local(*config, [host] { return host->load(host->reload_yaml_); });
    if (!made) return tl::unexpected(join(made.error()));
    self->host_ = std::move(*made);
    self->host_->start();
    return self;
}

EmbeddedHost::~EmbeddedHost() {
    if (host_) host_->drain();
    host_.reset();
    if (!temp_dir_.empty()) {
        std::error_code ignored;
        fs::remove_all(temp_dir_, ignored);
    }
}

tl::expected<std::shared_ptr<const config::Config>, config::Errors> EmbeddedHost::load(const std::string& yaml) const {
    config::LoadOptions options;
    options.main_file = "config";
    options.main_text = yaml;
    options.base_dir = base_dir_;
    // A reload keeps the folder in use when its configuration names none.
    options.default_data_dir = data_dir_.empty() ? temp_dir_ : fs::path(data_dir_);
    auto loaded = config::load(options);
    if (!loaded) return loaded;
    // A test must not pass against a plugin that did not load: every enabled one is required.
    auto strict = std::make_shared<config::Config>(**loaded);
    for (auto& plugin : strict->plugins)
        if (plugin.enabled) plugin.required = true;
    return strict;
}

tl::expected<void, std::string> EmbeddedHost::reload(std::string yaml) {
    std::lock_guard lock(reload_mutex_);
    reload_yaml_ = std::move(yaml);
    auto result = host_->reload(true);
    if (!result.reloaded) return tl::unexpected(join(result.errors));
    logging::configure(host_->config()->logging);
    return {};
}

http::Response EmbeddedHost::request(http::Request request) const {
    if (!request.header("Host")) request.headers.emplace_back("Host", "localhost");
    if (!request.body.empty() && !request.header("Content-Length") && !request.header("Transfer-Encoding"))
        request.headers.emplace_back("Content-Length", std::to_string(request.body.size()));
    if (request.body.size() > limits_.max_body_bytes) {
        request.body_too_large = true;  // as the engines: the pipeline answers 413
        request.body.clear();
    }
    engine::BlockingExchange exchange(event_engine_);
    exchange.request = std::move(request);
    if (refuse_over_limits(exchange.request, limits_, exchange.response)) return std::move(exchange.response);
    {
        // As on an event loop: a database call from a chain that runs inline is refused.
        std::optional<plugin::EventLoopThreadScope> loop;
        if (event_engine_) loop.emplace();
        host_->serve_local(exchange);
    }
    exchange.wait();
    http::Response response = std::move(exchange.response);
    const int status = response.status;
    if (exchange.request.method == "HEAD" || status < 200 || status == 204 || status == 304) response.body.clear();
    return response;
}

}  // namespace trellis::embed
