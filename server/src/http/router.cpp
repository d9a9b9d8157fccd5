// Segment trie router; see router.hpp for the matching rules.
#include "http/router.hpp"

#include <algorithm>
#include <cctype>
#include <set>

namespace trellis::http {

struct Router::Node {
    std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
    std::unique_ptr<Node> param;
    std::map<std::string, std::size_t, std::less<>> methods;  // method -> index in entries_
};

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

namespace {

// Views into `path`: "/a/b/" gives "a", "b", "".
template <typename Out = std::vector<std::string_view>>
Out split_segments(std::string_view path) {
    Out out;
    if (path == "/") return out;
    std::size_t start = 1;
    while (true) {
        auto slash = path.find('/', start);
        out.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return out;
}

// True when `location` is a path on this origin: it starts with one '/' that is not followed
// (after the characters browsers skip: tab, CR, LF) by another '/' or a '\'.
bool safe_local_location(std::string_view location) {
    if (location.empty() || location.front() != '/') return false;
    for (std::size_t i = 1; i < location.size(); ++i) {
        const char c = location[i];
        if (c == '\t' || c == '\r' || c == '\n') continue;
        return c != '/' && c != '\\';
    }
    return true;
}

bool is_param(std::string_view segment) {
    return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

bool is_identifier(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    auto first = static_cast<unsigned char>(name[0]);
    if (!(std::isalpha(first) || first == '_')) return false;
    return std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_'; });
}

}  // namespace

tl::expected<void, std::string> validate_method(std::string_view method) {
    if (method.empty() || method.size() > 20 ||
        !std::all_of(method.begin(), method.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
        return tl::unexpected("invalid method '" + std::string(method) + "': expected upper-case letters");
    return {};
}

tl::expected<void, std::string> validate_path_template(std::string_view path_template) {
    auto fail = [&](std::string_view why) {
        return tl::unexpected("invalid path '" + std::string(path_template) + "': " + std::string(why));
    };
    if (path_template.empty() || path_template.front() != '/') return fail("must start with '/'");
    if (path_template == "/") return {};
    std::set<std::string_view> names;
    for (auto segment : split_segments(path_template)) {
        if (segment.empty()) return fail("empty segment (a '//' or a trailing '/')");
        if (is_param(segment)) {
            auto name = segment.substr(1, segment.size() - 2);
            if (!is_identifier(name)) return fail("parameter names are [A-Za-z_][A-Za-z0-9_]*");
            if (!names.insert(name).second) return fail("parameter '" + std::string(name) + "' repeated");
            continue;
        }
        if (segment.find_first_of("{}?#% \t") != std::string_view::npos)
            return fail("a segment is a literal or a whole {name}; '{', '}', '?', '#', '%' and spaces are not allowed");
    }
    return {};
}

std::string join_mount(std::string_view mount, std::string_view path) {
    if (mount.empty() || mount == "/") return std::string(path);
    if (path == "/") return std::string(mount);
    return std::string(mount) + std::string(path);
}

tl::expected<void, std::string> Router::add(std::string_view method, std::string_view path_template, std::size_t id,
                                            std::string_view owner) {
    if (auto ok = validate_method(method); !ok) return ok;
    if (auto ok = validate_path_template(path_template); !ok) return ok;
    Node* node = root_.get();
    std::vector<std::string> param_names;
    for (auto segment : split_segments(path_template)) {
        if (is_param(segment)) {
            param_names.emplace_back(segment.substr(1, segment.size() - 2));
            if (!node->param) node->param = std::make_unique<Node>();
            node = node->param.get();
        } else {
            auto it = node->literals.find(segment);
            if (it == node->literals.end())
                it = node->literals.emplace(std::string(segment), std::make_unique<Node>()).first;
            node = it->second.get();
        }
    }
    if (auto it = node->methods.find(method); it != node->methods.end()) {
        const Entry& existing = entries_[it->second];
        return tl::unexpected(std::string(method) + " " + std::string(path_template) + " conflicts with " +
                              existing.method + " " + existing.path_template + " of " + existing.owner);
    }
    node->methods.emplace(std::string(method), entries_.size());
    entries_.push_back(
        Entry{std::string(method), std::string(path_template), std::string(owner), id, std::move(param_names)});
    return {};
}

const Router::Entry* Router::conflict(std::string_view method, std::string_view path_template) const {
    const Node* node = root_.get();
    for (auto segment : split_segments(path_template)) {
        if (is_param(segment)) {
            node = node->param.get();
        } else {
            auto it = node->literals.find(segment);
            node = it == node->literals.end() ? nullptr : it->second.get();
        }
        if (!node) return nullptr;
    }
    auto it = node->methods.find(method);
    return it == node->methods.end() ? nullptr : &entries_[it->second];
}

const Router::Node* Router::find(const Node& node, const Views& segments, std::size_t index, Views& values) const {
    if (index == segments.size()) return node.methods.empty() ? nullptr : &node;
    std::string_view segment = segments[index];
    if (auto it = node.literals.find(segment); it != node.literals.end())
        if (auto* found = find(*it->second, segments, index + 1, values)) return found;
    if (node.param && !segment.empty()) {
        values.push_back(segment);
        if (auto* found = find(*node.param, segments, index + 1, values)) return found;
        values.pop_back();
    }
    return nullptr;
}

RouteMatch Router::match_segments(std::string_view method, const Views& segments) const {
    RouteMatch result;
    Views values;
    const Node* node = find(*root_, segments, 0, values);
    if (!node) return result;

    auto it = node->methods.find(method);
    if (it == node->methods.end() && method == "HEAD") it = node->methods.find("GET");
    if (it == node->methods.end()) {
        result.kind = RouteMatch::Kind::method_not_allowed;
        std::set<std::string> allowed;
        for (const auto& [name, index] : node->methods) allowed.insert(name);
        if (allowed.count("GET")) allowed.insert("HEAD");
        allowed.insert("OPTIONS");
        for (const auto& name : allowed) result.allow += (result.allow.empty() ? "" : ", ") + name;
        return result;
    }
    const Entry& entry = entries_[it->second];
    result.kind = RouteMatch::Kind::found;
    result.route_id = entry.id;
    result.params.reserve(std::min(values.size(), entry.param_names.size()));
    for (std::size_t i = 0; i < values.size() && i < entry.param_names.size(); ++i)
        result.params.emplace_back(entry.param_names[i], std::string(values[i]));
    return result;
}

RouteMatch Router::match(std::string_view method, std::string_view path) const {
    RouteMatch result;
    if (path.empty() || path.front() != '/') return result;
    // Segments view the path itself; only those with escapes are decoded, into `decoded`,
    // which is reserved up front so that the views into it stay valid.
    auto segments = split_segments<Views>(path);
    std::vector<std::string> decoded;
    for (auto& segment : segments) {
        if (segment.find('%') == std::string_view::npos) continue;
        auto plain = percent_decode(segment, false);
        if (!plain) {
            result.kind = RouteMatch::Kind::bad_request;
            return result;
        }
        if (decoded.empty()) decoded.reserve(segments.size());
        segment = decoded.emplace_back(std::move(*plain));
    }
    result = match_segments(method, segments);
    if (result.kind != RouteMatch::Kind::not_found) return result;

    // Trailing-slash rule: "/x/" redirects to "/x" when "/x" exists (any method). Never to
    // a Location that a browser reads as another host: "//evil.example" and
    // "/\evil.example" (browsers treat '\' as '/' and drop tabs and line breaks first)
    // stay 404 instead.
    if (path.size() > 1 && path.back() == '/') {
        segments.pop_back();
        std::string location(path.substr(0, path.size() - 1));
        if (safe_local_location(location) && match_segments(method, segments).kind != RouteMatch::Kind::not_found) {
            result.kind = RouteMatch::Kind::redirect;
            result.location = std::move(location);
        }
    }
    return result;
}

}  // namespace trellis::http
