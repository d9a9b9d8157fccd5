// Fuzzes route matching and template validation. Input: "METHOD\nPATH".
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/router.hpp"

using trellis::http::RouteMatch;
using trellis::http::Router;

namespace {
const Router& routes() {
    static const Router router = [] {
        Router r;
        const char* templates[] = {"/",        "/items", "/items/{id}", "/items/new", "/items/{id}/tags/{tag}",
                                   "/a/{x}/c", "/a/b/d", "/{any}"};
        std::size_t id = 0;
        for (const char* t : templates)
            for (const char* m : {"GET", "POST"})
                if (!r.add(m, t, id++, "fuzz")) std::abort();
        return r;
    }();
    return router;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    auto newline = input.find('\n');
    std::string_view method = newline == std::string_view::npos ? "GET" : input.substr(0, newline);
    std::string_view path = newline == std::string_view::npos ? input : input.substr(newline + 1);

    RouteMatch m = routes().match(method, path);
    if (m.kind == RouteMatch::Kind::found && m.route_id >= routes().entries().size()) std::abort();
    if (m.kind == RouteMatch::Kind::redirect && m.location + "/" != path) std::abort();
    if (m.kind == RouteMatch::Kind::method_not_allowed && m.allow.empty()) std::abort();

    // Whatever validates must be accepted by a fresh router, and conflict with itself.
    if (trellis::http::validate_path_template(path) && trellis::http::validate_method(method)) {
        Router fresh;
        if (!fresh.add(method, path, 1, "fuzz")) std::abort();
        if (fresh.add(method, path, 2, "fuzz")) std::abort();
        if (!fresh.conflict(method, path)) std::abort();
    }
    return 0;
}
