// The in-process test harness for plugins: the real Trellis host (loader, router, middleware
// chains, worker pool, database with migrations) without a network listener. Header-only
// C++17 over the C API of trellis/embed.h (libtrellis.so.1), so that a plugin built with any
// compiler and standard library can use it; only std types cross into this header.
//
//   trellis::testing::Host host(R"(
//   plugins:
//     search_paths: [build]
//     hello: {config: {greeting: Hi}}
//   )");
//   auto response = host.get("/hello/world");
//   REQUIRE(response.status == 200);
//   CHECK(response.json()["greeting"] == "Hi, world!");
//
// CMake: target_link_libraries(my_test PRIVATE Trellis::testing Catch2::Catch2).
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <trellis/embed.h>

namespace trellis::testing {

/// Header fields as (name, value) pairs, in order; a name may repeat.
using Headers = std::vector<std::pair<std::string, std::string>>;

/// One response, copied out of the host.
struct Response {
    int status = 0;
    Headers headers;  ///< what the host and the plugins set (no Date/Content-Length/Connection)
    std::string body;

    /// The first value of header `name` (case-insensitive), or "" when absent.
    std::string header(std::string_view name) const {
        for (const auto& [field, value] : headers)
            if (iequals(field, name)) return value;
        return {};
    }

    /// The body parsed as JSON; throws nlohmann::json::parse_error when it is not JSON.
    nlohmann::json json() const { return nlohmann::json::parse(body); }

private:
    static bool iequals(std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i) {
            char x = a[i], y = b[i];
            if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
            if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
            if (x != y) return false;
        }
        return true;
    }
};

/// A running host. Requests may be sent from many threads at once; destroy the host (or let
/// it go out of scope) once they returned. See trellis/embed.h for what a request goes through.
class Host {
public:
    /// Starts a host from YAML text (the format of trellis.yaml); relative paths in it resolve
    /// against `base_dir`. Without server.data_dir, a temporary folder holds the database and
    /// goes away with the host. Every enabled plugin must load: a configuration error (with its
    /// line) or a plugin that fails (with its name, file and reason) throws std::runtime_error.
    explicit Host(const std::string& yaml, const std::string& base_dir = ".") {
        char* error = nullptr;
        host_.reset(trellis_embed_create(yaml.data(), yaml.size(), base_dir.c_str(), &error));
        if (!host_) throw std::runtime_error(take(error, "trellis_embed_create failed"));
    }

    /// Sends one request; `target` is "/path?query". Throws std::runtime_error when the
    /// arguments do not form a request (see trellis_embed_request()).
    Response request(const std::string& method, const std::string& target, const std::string& body = "",
                     const Headers& headers = {}) const {
        std::string lines;
        for (const auto& [name, value] : headers) lines += name + ": " + value + "\r\n";
        char* error = nullptr;
        std::unique_ptr<trellis_embed_response, ResponseFree> response(trellis_embed_request(
            host_.get(), method.c_str(), target.c_str(), lines.data(), lines.size(), body.data(), body.size(), &error));
        if (!response) throw std::runtime_error(take(error, "trellis_embed_request failed"));
        Response out;
        out.status = trellis_embed_response_status(response.get());
        const std::size_t count = trellis_embed_response_header_count(response.get());
        out.headers.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
            const char* name = nullptr;
            const char* value = nullptr;
            std::size_t name_len = 0;
            std::size_t value_len = 0;
            trellis_embed_response_header(response.get(), i, &name, &name_len, &value, &value_len);
            out.headers.emplace_back(std::string(name, name_len), std::string(value, value_len));
        }
        std::size_t body_len = 0;
        const char* body_data = trellis_embed_response_body(response.get(), &body_len);
        out.body.assign(body_data, body_len);
        return out;
    }

    Response get(const std::string& target, const Headers& headers = {}) const {
        return request("GET", target, "", headers);
    }
    Response post(const std::string& target, const std::string& body, const Headers& headers = {}) const {
        return request("POST", target, body, headers);
    }
    Response put(const std::string& target, const std::string& body, const Headers& headers = {}) const {
        return request("PUT", target, body, headers);
    }
    Response patch(const std::string& target, const std::string& body, const Headers& headers = {}) const {
        return request("PATCH", target, body, headers);
    }
    Response del(const std::string& target, const Headers& headers = {}) const {
        return request("DELETE", target, "", headers);
    }

    /// Loads the plugins again from a new configuration (as a SIGHUP reload does); throws
    /// std::runtime_error with the reasons when it does not build, and the old one keeps serving.
    void reload(const std::string& yaml) {
        char* error = nullptr;
        if (!trellis_embed_reload(host_.get(), yaml.data(), yaml.size(), &error))
            throw std::runtime_error(take(error, "trellis_embed_reload failed"));
    }

    /// The folder holding the host's files: the temporary one unless server.data_dir was set.
    std::string data_dir() const { return trellis_embed_data_dir(host_.get()); }

private:
    struct HostFree {
        void operator()(trellis_embed_host* host) const { trellis_embed_destroy(host); }
    };
    struct ResponseFree {
        void operator()(trellis_embed_response* response) const { trellis_embed_response_free(response); }
    };

    static std::string take(char* error, const char* fallback) {
        std::string message = error ? error : fallback;
        trellis_embed_free_string(error);
        return message;
    }

    std::unique_ptr<trellis_embed_host, HostFree> host_;
};

}  // namespace trellis::testing
