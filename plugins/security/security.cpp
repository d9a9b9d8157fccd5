// security: two middleware for the browser-facing edge of an API.
//   security.headers  adds security response headers (nosniff, frame and referrer policy, CSP,
//                     optionally HSTS) unless the handler already set them;
//   security.cors     answers CORS preflights and adds CORS headers for allowed origins.
// Apply them globally (`middleware: [security.cors, security.headers]`) or per plugin.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <trellis/plugin.hpp>

namespace {

constexpr const char* config_schema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "headers": {
      "type": "object",
      "description": "Header name to value; an empty value turns a default off.",
      "additionalProperties": {"type": "string", "pattern": "^[^\r\n]*$"},
      "propertyNames": {"pattern": "^[A-Za-z0-9-]+$"}
    },
    "cors": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "allowed_origins": {"type": "array", "items": {"type": "string", "pattern": "^(\\*|https?://[^/\\s]+)$"}},
        "allowed_methods": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]+$"}},
        "allowed_headers": {"type": "array", "items": {"type": "string", "pattern": "^(\\*|[A-Za-z0-9-]+)$"}},
        "exposed_headers": {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9-]+$"}},
        "allow_credentials": {"type": "boolean"},
        "max_age": {"type": "integer", "minimum": 0, "maximum": 86400}
      }
    }
  }
})";

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
    return out;
}

// Splits a comma-separated header value into trimmed, non-empty items.
std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        auto item = text.substr(start, comma - start);
        while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
        while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        start = comma + 1;
    }
    return out;
}

// Appends to Vary without repeating a token already there.
void add_vary(trellis::Response& response, const std::vector<std::string>& tokens) {
    auto current = split_list(response.header("Vary").value_or(""));
    std::set<std::string> seen;
    for (const auto& t : current) seen.insert(lower(t));
    for (const auto& t : tokens)
        if (seen.insert(lower(t)).second) current.push_back(t);
    response.header("Vary", join(current));
}

struct CorsPolicy {
    bool any_origin = false;
    std::set<std::string> origins;  // exact "scheme://host[:port]"
    std::vector<std::string> methods{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    bool any_header = false;
    std::set<std::string> headers{"content-type", "authorization", "x-request-id"};  // lower case
    std::vector<std::string> exposed{"X-Request-ID"};
    bool credentials = false;
    int max_age = 600;

    bool allows_origin(const std::string& origin) const { return any_origin || origins.count(origin) > 0; }
    bool allows_method(std::string_view method) const {
        return std::find(methods.begin(), methods.end(), method) != methods.end();
    }
    // With credentials the literal "*" is not allowed by browsers: echo the origin instead.
    std::string allow_origin_value(const std::string& origin) const {
        return any_origin && !credentials ? "*" : origin;
    }
};

class Security final : public trellis::Plugin {
public:
    static trellis::PluginInfo info() {
        return {"security", SECURITY_VERSION, "Security response headers and CORS", {}, config_schema};
    }

    void init(trellis::Context& context) override {
        read_headers(context.config().value("headers", trellis::json::object()));
        read_cors(context.config().value("cors", trellis::json::object()));
        // Both only read config and headers: non-blocking, so they keep fast routes inline.
        trellis::Context non_blocking = context.non_blocking();
        non_blocking.middleware("headers", [this](trellis::Request&, trellis::Response& response, trellis::Next& next) {
            next();
            for (const auto& [name, value] : headers_)
                if (!response.header(name)) response.header(name, value);
        });
        non_blocking.middleware("cors", [this](trellis::Request& request, trellis::Response& response,
                                               trellis::Next& next) { cors(request, response, next); });
    }

private:
    void read_headers(const trellis::json& configured) {
        headers_ = {
            {"X-Content-Type-Options", "nosniff"},
            {"X-Frame-Options", "DENY"},
            {"Referrer-Policy", "no-referrer"},
            {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
            {"Cross-Origin-Opener-Policy", "same-origin"},
        };
        for (const auto& [name, value] : configured.items()) {
            // Match defaults case-insensitively so "x-frame-options" replaces, not duplicates.
            for (auto it = headers_.begin(); it != headers_.end();)
                it = lower(it->first) == lower(name) ? headers_.erase(it) : std::next(it);
            if (!value.get<std::string>().empty()) headers_[name] = value.get<std::string>();
        }
    }

    void read_cors(const trellis::json& c) {
        for (const auto& origin : c.value("allowed_origins", std::vector<std::string>{})) {
            if (origin == "*")
                cors_.any_origin = true;
            else
                cors_.origins.insert(origin);
        }
        if (c.contains("allowed_methods")) cors_.methods = c["allowed_methods"].get<std::vector<std::string>>();
        if (c.contains("allowed_headers")) {
            cors_.headers.clear();
            for (const auto& h : c["allowed_headers"].get<std::vector<std::string>>()) {
                if (h == "*")
                    cors_.any_header = true;
                else
                    cors_.headers.insert(lower(h));
            }
        }
        if (c.contains("exposed_headers")) cors_.exposed = c["exposed_headers"].get<std::vector<std::string>>();
        cors_.credentials = c.value("allow_credentials", false);
        cors_.max_age = c.value("max_age", 600);
        if (cors_.credentials && (cors_.any_origin || cors_.any_header))
            throw std::invalid_argument(
                "cors: allow_credentials cannot be combined with '*' in allowed_origins or allowed_headers; "
                "list the origins and headers explicitly");
    }

    void cors(trellis::Request& request, trellis::Response& response, trellis::Next& next) const {
        auto origin_header = request.header("Origin");
        if (!origin_header) return next();  // not a cross-origin browser request
        std::string origin(*origin_header);
        auto requested_method = request.header("Access-Control-Request-Method");
        if (request.method() == "OPTIONS" && requested_method) return preflight(request, response, origin);

        next();
        add_vary(response, {"Origin"});
        if (!cors_.allows_origin(origin)) return;
        response.header("Access-Control-Allow-Origin", cors_.allow_origin_value(origin));
        if (cors_.credentials) response.header("Access-Control-Allow-Credentials", "true");
        if (!cors_.exposed.empty()) response.header("Access-Control-Expose-Headers", join(cors_.exposed));
    }

    // A preflight never reaches the route: it is answered here, 204 when allowed and 403
    // problem+json (naming what was refused) when not.
    void preflight(trellis::Request& request, trellis::Response& response, const std::string& origin) const {
        add_vary(response, {"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"});
        std::string method(*request.header("Access-Control-Request-Method"));
        auto requested = split_list(request.header("Access-Control-Request-Headers").value_or(""));
        std::vector<std::string> refused;
        for (const auto& h : requested)
            if (!cors_.any_header && !cors_.headers.count(lower(h))) refused.push_back(h);
        std::string why = !cors_.allows_origin(origin)   ? "origin '" + origin + "' is not allowed"
                          : !cors_.allows_method(method) ? "method '" + method + "' is not allowed"
                          : !refused.empty()             ? "headers not allowed: " + join(refused)
                                                         : "";
        if (!why.empty()) {
            response.problem(403, "cors_rejected", "CORS preflight refused: " + why + ".", request.path());
            return;
        }
        response.status(204);
        response.header("Access-Control-Allow-Origin", cors_.allow_origin_value(origin));
        response.header("Access-Control-Allow-Methods", join(cors_.methods));
        if (!requested.empty()) response.header("Access-Control-Allow-Headers", join(requested));
        if (cors_.credentials) response.header("Access-Control-Allow-Credentials", "true");
        response.header("Access-Control-Max-Age", std::to_string(cors_.max_age));
    }

    std::map<std::string, std::string> headers_;  // set once in init, read-only while serving
    CorsPolicy cors_;
};

}  // namespace

TRELLIS_PLUGIN(Security)
