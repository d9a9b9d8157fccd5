// Matches a method and a path against route templates ("/items/{id}").
//
// Rules (documented in the README):
//  - a template segment is a literal or a whole-segment {name}; a {name} matches exactly one
//    non-empty segment, percent-decoded before it reaches the handler ("%2F" stays inside);
//  - literals win over parameters at the same position, with backtracking;
//  - HEAD is answered by the GET route when no HEAD route exists;
//  - a path that matches nothing but would match without its trailing slash is redirected
//    (308) to that path; "/x/" never matches a route "/x" directly;
//  - a known path with an unknown method gives 405 with the Allow list.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/small_vector.hpp>
#include <tl/expected.hpp>

#include "http/message.hpp"

namespace trellis::http {

struct RouteMatch {
    enum class Kind { found, not_found, method_not_allowed, redirect, bad_request };
    Kind kind = Kind::not_found;
    std::size_t route_id = 0;  // as given to Router::add
    Fields params;             // decoded path parameters, in template order
    std::string allow;         // "GET, HEAD, POST": for 405 and OPTIONS answers
    std::string location;      // redirect target (path only; the caller appends the query)
};

class Router {
public:
    struct Entry {
        std::string method;
        std::string path_template;
        std::string owner;  // who registered it, for conflict messages
        std::size_t id = 0;
        std::vector<std::string> param_names;
    };

    Router();
    ~Router();
    Router(Router&&) noexcept;
    Router& operator=(Router&&) noexcept;

    // Fails when the template is malformed or when method + template (parameter names
    // ignored) is taken; the message names the owner that has it.
    tl::expected<void, std::string> add(std::string_view method, std::string_view path_template, std::size_t id,
                                        std::string_view owner);

    RouteMatch match(std::string_view method, std::string_view path) const;

    // The entry that add() would collide with, if any (template assumed valid).
    const Entry* conflict(std::string_view method, std::string_view path_template) const;

    const std::vector<Entry>& entries() const { return entries_; }

private:
    struct Node;
    // Segments of a request path and captured values: inline up to 8, no allocation.
    using Views = boost::container::small_vector<std::string_view, 8>;
    std::unique_ptr<Node> root_;
    std::vector<Entry> entries_;

    const Node* find(const Node& node, const Views& segments, std::size_t index, Views& values) const;
    RouteMatch match_segments(std::string_view method, const Views& segments) const;
};

tl::expected<void, std::string> validate_method(std::string_view method);
tl::expected<void, std::string> validate_path_template(std::string_view path_template);

// A plugin route's full path: mount "/hello" + "/{name}" = "/hello/{name}"; mount "/" keeps
// the path; route "/" under "/hello" is "/hello".
std::string join_mount(std::string_view mount, std::string_view path);

}  // namespace trellis::http
