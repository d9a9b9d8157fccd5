// Loads the configuration: YAML files and TRELLIS_* variables merged into one tree that
// remembers where each value came from, then checked and turned into an immutable Config.
#include "config/config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <iterator>
#include <limits>
#include <numeric>
#include <optional>
#include <regex>
#include <sstream>
#include <span>
#include <string_view>
#include <system_error>

#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "http/forwarded.hpp"

namespace trellis::config {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kEnvPrefix = "TRELLIS_";
constexpr std::string_view kEnvMainFile = "TRELLIS_CONFIG";
// Read by the host for benchmarks (every plugin chain on the worker pool); not a key.
constexpr std::string_view kEnvForceWorkers = "TRELLIS_FORCE_WORKERS";
constexpr std::string_view kEnvSourcePrefix = "environment ";

// ---- The merge tree -------------------------------------------------------------------

struct Entry;

// A YAML value reduced to what merging and checking need. It keeps its origin so that an
// error names the file and line of the value that won the merge.
struct Node {
    enum class Kind { null, scalar, sequence, map };
    Kind kind = Kind::null;
    std::string text;   // scalars only
    bool plain = true;  // unquoted and untagged: only then may `true` be a bool or `5` a number
    std::vector<Node> items;
    std::vector<Entry> entries;
    Origin origin;
};

struct Entry {
    std::string key;
    Origin key_origin;
    Node value;
};

Entry* find_entry(std::vector<Entry>& entries, std::string_view key) {
    const auto it = std::ranges::find(entries, key, &Entry::key);
    return it == entries.end() ? nullptr : &*it;
}

std::string join_key(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string item_key(const std::string& path, std::size_t index) { return path + "[" + std::to_string(index) + "]"; }

// Later sources win; maps merge key by key so that a drop-in can change one setting. An
// empty value (`hello:`) over a map adds nothing rather than wiping what came before.
void merge(Node& base, Node overlay) {
    if (base.kind == Node::Kind::map && overlay.kind == Node::Kind::null) return;
    if (base.kind != Node::Kind::map || overlay.kind != Node::Kind::map) {
        base = std::move(overlay);
        return;
    }
    for (Entry& entry : overlay.entries) {
        if (Entry* existing = find_entry(base.entries, entry.key))
            merge(existing->value, std::move(entry.value));
        else
            base.entries.push_back(std::move(entry));
    }
}

// How a wrong value is shown in a message.
std::string got(const Node& node) {
    switch (node.kind) {
        case Node::Kind::null: return "got nothing (null)";
        case Node::Kind::sequence: return "got a list";
        case Node::Kind::map: return "got a map";
        case Node::Kind::scalar: break;
    }
    return node.plain ? "got '" + node.text + "'" : "got the quoted string '" + node.text + "'";
}

// ---- From yaml-cpp to the tree --------------------------------------------------------

class Converter {
public:
    // Values from the environment take the variable's origin: a position inside a one-line
    // value would only mislead.
    Converter(Origin fixed, bool use_marks, Errors& errors)
        : fixed_(std::move(fixed)), use_marks_(use_marks), errors_(errors) {}

    // Aliases let a few lines of YAML expand into billions of values; a configuration
    // never needs more than these limits, so past them loading fails with an error.
    static constexpr std::size_t max_values = 100000;
    static constexpr std::size_t max_depth = 64;

    Node convert(const YAML::Node& yaml, const std::string& path, std::size_t depth = 0) const {
        Node node;
        node.origin = origin(yaml.Mark());
        if (++values_ > max_values || depth > max_depth) {
            if (!over_limit_)
                errors_.push_back(node.origin.describe() + ": key '" + path + "': the configuration is larger than " +
                                  std::to_string(max_values) + " values or nested deeper than " +
                                  std::to_string(max_depth) + " levels (do YAML aliases expand too far?)");
            over_limit_ = true;
            return node;
        }
        if (yaml.IsScalar()) {
            node.kind = Node::Kind::scalar;
            node.text = yaml.Scalar();
            node.plain = yaml.Tag() == "?";
        } else if (yaml.IsSequence()) {
            node.kind = Node::Kind::sequence;
            for (std::size_t i = 0; i < yaml.size() && !over_limit_; ++i)
                node.items.push_back(convert(yaml[i], item_key(path, i), depth + 1));
        } else if (yaml.IsMap()) {
            node.kind = Node::Kind::map;
            node.entries = convert_entries(yaml, path, depth);
        }
        return node;
    }

private:
    Origin origin(const YAML::Mark& mark) const {
        if (!use_marks_ || mark.is_null()) return {fixed_.source, fixed_.line, fixed_.column};
        return {fixed_.source, mark.line + 1, mark.column + 1};
    }

    std::vector<Entry> convert_entries(const YAML::Node& yaml, const std::string& path, std::size_t depth) const {
        std::vector<Entry> entries;
        for (const auto& pair : yaml) {
            if (over_limit_) break;
            const Origin key_origin = origin(pair.first.Mark());
            if (!pair.first.IsScalar()) {
                errors_.push_back(key_origin.describe() + ": a key must be plain text");
                continue;
            }
            Entry entry{pair.first.Scalar(), key_origin, {}};
            const std::string entry_path = join_key(path, entry.key);
            entry.value = convert(pair.second, entry_path, depth + 1);
            // A block map or an empty value has no useful position of its own (yaml-cpp
            // gives the first child's or the next key's); the line naming it is clearer.
            if (entry.value.kind != Node::Kind::scalar) entry.value.origin = key_origin;
            if (const Entry* first = find_entry(entries, entry.key)) {
                errors_.push_back(key_origin.describe() + ": key '" + entry_path +
                                  "': set twice in one map (first at " + first->key_origin.describe() + ")");
                continue;
            }
            entries.push_back(std::move(entry));
        }
        return entries;
    }

    Origin fixed_;
    bool use_marks_;
    Errors& errors_;
    mutable std::size_t values_ = 0;
    mutable bool over_limit_ = false;
};

// ---- Reading the sources --------------------------------------------------------------

std::optional<std::string> read_text(const fs::path& file, Errors& errors) {
    std::error_code ec;
    std::ifstream in;
    if (std::error_code ignored; fs::is_directory(file, ignored)) {
        ec = std::make_error_code(std::errc::is_a_directory);
    } else {
        errno = 0;
        in.open(file, std::ios::binary);
        if (!in) ec = std::error_code(errno != 0 ? errno : EIO, std::generic_category());
    }
    std::string text;
    if (!ec) text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!ec && in.bad()) ec = std::make_error_code(std::errc::io_error);
    if (ec) {
        errors.push_back(file.string() + ": cannot read configuration: " + ec.message());
        return std::nullopt;
    }
    return text;
}

std::optional<Node> document_root(const std::vector<YAML::Node>& documents, const std::string& source, Errors& errors) {
    if (documents.size() > 1) {
        errors.push_back(source + ": holds " + std::to_string(documents.size()) +
                         " YAML documents; a configuration file holds one");
        return std::nullopt;
    }
    Node root;
    root.kind = Node::Kind::map;
    root.origin = {source, 0, 0};
    if (documents.empty() || documents.front().IsNull()) return root;
    root = Converter({source, 0, 0}, true, errors).convert(documents.front(), "");
    if (root.kind == Node::Kind::map) return root;
    errors.push_back(root.origin.describe() + ": the top of a configuration file must be a map of keys, " + got(root));
    return std::nullopt;
}

// yaml-cpp 0.7 loops forever, allocating, on some malformed input (",-er* e" is one; found
// by tests/fuzz). Its event parser shows the loop, so count events first and give up past a
// bound that no configuration reaches; only then build nodes. Every event of a well-formed
// stream consumes input (at least one byte per event, allowing for the implicit document
// and null events), so the bound follows the text's size: a looping parse is stopped after
// a few thousand events, not a million.
class EventBudget final : public YAML::EventHandler {
public:
    explicit EventBudget(std::size_t text_size) : max_events_(static_cast<long>(2 * text_size) + 1024) {}

    void OnDocumentStart(const YAML::Mark& mark) override { count(mark); }
    void OnDocumentEnd() override { count(last_); }
    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { count(mark); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { count(mark); }
    void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string&) override {
        count(mark);
    }
    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
        count(mark);
    }
    void OnSequenceEnd() override { count(last_); }
    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        count(mark);
    }
    void OnMapEnd() override { count(last_); }

private:
    void count(const YAML::Mark& mark) {
        last_ = mark;
        if (++events_ > max_events_)
            throw YAML::ParserException(mark, "the YAML parser does not come to an end here (over " +
                                                  std::to_string(max_events_) + " events); the file is malformed");
    }
    long max_events_;
    long events_ = 0;
    YAML::Mark last_ = YAML::Mark::null_mark();
};

std::vector<YAML::Node> load_all_bounded(const std::string& text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    EventBudget budget(text.size());
    while (parser.HandleNextDocument(budget)) {
    }
    return YAML::LoadAll(text);
}

std::optional<Node> parse_text(const std::string& text, const std::string& source, Errors& errors);

// One file as a map; nullopt once the reason it is unusable has been reported.
std::optional<Node> load_file(const fs::path& file, Errors& errors, const std::optional<std::string>& given = {}) {
    const auto text = given ? given : read_text(file, errors);
    if (!text) return std::nullopt;
    return parse_text(*text, file.string(), errors);
}

// A configuration given as text; `source` names it in messages.
std::optional<Node> parse_text(const std::string& text, const std::string& source, Errors& errors) {
    try {
        return document_root(load_all_bounded(text), source, errors);
    } catch (const YAML::Exception& e) {
        const Origin at = e.mark.is_null() ? Origin{source, 0, 0} : Origin{source, e.mark.line + 1, e.mark.column + 1};
        errors.push_back(at.describe() + ": invalid YAML: " + e.msg);
        return std::nullopt;
    }
}

// conf.d/*.yaml beside the main file, in lexical order so that "10-a" comes before "20-b".
std::vector<fs::path> drop_in_files(const fs::path& main_file, Errors& errors) {
    const fs::path dir = main_file.parent_path() / "conf.d";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return {};
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code type_ec;
        if (it->path().extension() == ".yaml" && it->is_regular_file(type_ec)) files.push_back(it->path());
    }
    if (ec) errors.push_back(dir.string() + ": cannot list drop-in files: " + ec.message());
    std::ranges::sort(files);
    return files;
}

// "TRELLIS_PLUGINS__HELLO__ENABLED" -> plugins, hello, enabled; empty when a level is empty.
std::vector<std::string> env_key_path(std::string_view name) {
    std::vector<std::string> path;
    std::string_view rest = name.substr(kEnvPrefix.size());
    for (;;) {
        const auto cut = rest.find("__");
        std::string level(rest.substr(0, cut));
        if (level.empty()) return {};
        std::ranges::transform(level, level.begin(), [](unsigned char c) { return std::tolower(c); });
        path.push_back(std::move(level));
        if (cut == std::string_view::npos) return path;
        rest.remove_prefix(cut + 2);
    }
}

// Parsed as YAML so that `false`, `8080` and `[a, b]` mean what they mean in a file. Only
// flow collections count as collections: "a: b" or "- x" in a variable is meant as text.
std::optional<Node> env_value(const std::string& text, const Origin& origin, const std::string& path, Errors& errors) {
    const auto first = text.find_first_not_of(" \t");
    const bool flow = first != std::string::npos && (text[first] == '[' || text[first] == '{');
    try {
        const auto documents = load_all_bounded(text);
        const YAML::Node yaml = documents.empty() ? YAML::Node() : documents.front();
        if (flow || yaml.IsScalar() || yaml.IsNull()) return Converter(origin, false, errors).convert(yaml, path);
    } catch (const YAML::Exception& e) {
        if (flow) {
            errors.push_back(origin.describe() + ": invalid YAML: " + e.msg);
            return std::nullopt;
        }
    }
    Node node;
    node.kind = Node::Kind::scalar;
    node.text = text;
    node.origin = origin;
    return node;
}

// The value wrapped in one map per level of its key path.
Node nest(const std::vector<std::string>& path, Node value, const Origin& origin) {
    for (auto level = path.rbegin(); level != path.rend(); ++level) {
        Node map;
        map.kind = Node::Kind::map;
        map.origin = origin;
        map.entries.push_back(Entry{*level, origin, std::move(value)});
        value = std::move(map);
    }
    return value;
}

void apply_environment(const LoadOptions& options, Node& root, std::vector<std::string>& sources, Errors& errors) {
    for (const auto& [name, value] : options.environment) {
        if (!name.starts_with(kEnvPrefix) || name == kEnvMainFile || name == kEnvForceWorkers) continue;
        const Origin origin{std::string(kEnvSourcePrefix) + name, 0, 0};
        const auto path = env_key_path(name);
        if (path.empty()) {
            errors.push_back(origin.describe() +
                             ": cannot tell which key this sets; write TRELLIS_ and the key path in "
                             "upper case with '__' between levels, such as TRELLIS_SERVER__LISTEN");
            continue;
        }
        const std::string dotted = std::accumulate(path.begin() + 1, path.end(), path.front(), join_key);
        if (auto node = env_value(value, origin, dotted, errors)) {
            merge(root, nest(path, std::move(*node), origin));
            sources.push_back(origin.source);
        }
    }
}

// ---- Checking values ------------------------------------------------------------------

// Keys whose value is a secret: an error about them never repeats the value.
bool is_secret_key(std::string_view path) {
    std::string name(path.substr(path.find_last_of('.') == std::string_view::npos ? 0 : path.find_last_of('.') + 1));
    std::ranges::transform(name, name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (std::string_view word : {"password", "passwd", "secret", "token", "key", "url", "dsn", "credential"})
        if (name.find(word) != std::string::npos) return true;
    return false;
}

void fail(Errors& errors, const Origin& origin, const std::string& path, const std::string& reason) {
    std::string shown = reason;
    if (is_secret_key(path)) {
        // got(): "got 'VALUE'" or "got the quoted string 'VALUE'" up to the last quote.
        static const std::regex value(R"(got (the quoted string )?'[\s\S]*')");
        shown = std::regex_replace(shown, value, "got a value that is not shown (the key may hold a secret)");
    }
    errors.push_back(origin.describe() + ": key '" + path + "': " + shown);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), std::size_t{0});
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::optional<std::string_view> closest(std::string_view key, std::span<const std::string_view> known) {
    std::optional<std::string_view> best;
    std::size_t best_distance = 3;  // further than two edits is a different word, not a typo
    for (const std::string_view candidate : known) {
        if (const auto distance = edit_distance(key, candidate); distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    return best;
}

void unknown_key(const Entry& entry, const std::string& path, std::span<const std::string_view> known, Errors& errors) {
    std::string message = entry.key_origin.describe() + ": unknown key '" + path + "'";
    if (const auto guess = closest(entry.key, known)) message += " (did you mean '" + std::string(*guess) + "'?)";
    errors.push_back(std::move(message));
}

template <class T, class U>
void assign(T& target, const std::optional<U>& value) {
    if (value) target = static_cast<T>(*value);
}

// Decimal only, with an optional sign: `0x10` and `1e3` are not integers here.
std::optional<std::int64_t> parse_integer(std::string_view text) {
    static const std::regex pattern("[-+]?[0-9]+");
    if (!std::regex_match(text.begin(), text.end(), pattern)) return std::nullopt;
    if (text.starts_with('+')) text.remove_prefix(1);  // from_chars takes '-' but not '+'
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<std::int64_t> read_integer(const Node& node, const std::string& path, std::int64_t min, std::int64_t max,
                                         Errors& errors) {
    if (node.kind == Node::Kind::scalar && node.plain) {
        if (const auto value = parse_integer(node.text); value && *value >= min && *value <= max) return value;
    }
    fail(errors, node.origin, path,
         "expected an integer from " + std::to_string(min) + " to " + std::to_string(max) + ", " + got(node));
    return std::nullopt;
}

// yaml-cpp's own reading of booleans (true/false, yes/no, on/off), but only when unquoted.
std::optional<bool> read_bool(const Node& node, const std::string& path, Errors& errors) {
    bool value = false;
    if (node.kind == Node::Kind::scalar && node.plain && YAML::convert<bool>::decode(YAML::Node(node.text), value))
        return value;
    fail(errors, node.origin, path, "expected true or false (without quotes), " + got(node));
    return std::nullopt;
}

std::optional<std::string> read_choice(const Node& node, const std::string& path,
                                       std::span<const std::string_view> choices, Errors& errors) {
    if (node.kind == Node::Kind::scalar && std::ranges::find(choices, node.text) != choices.end()) return node.text;
    std::string listed;
    for (const std::string_view choice : choices) listed += (listed.empty() ? "" : ", ") + std::string(choice);
    fail(errors, node.origin, path, "expected one of " + listed + ", " + got(node));
    return std::nullopt;
}

struct Unit {
    std::string_view name;
    std::int64_t factor;
};
constexpr std::array kDurationUnits{Unit{"", 1}, Unit{"ms", 1}, Unit{"s", 1000}, Unit{"m", 60'000}};
constexpr std::array kSizeUnits{Unit{"", 1}, Unit{"B", 1}, Unit{"KiB", 1024}, Unit{"MiB", 1024 * 1024},
                                Unit{"GiB", 1024 * 1024 * 1024}};

// "<digits><unit>", the unit optional; nullopt when malformed or too large to hold.
std::optional<std::int64_t> parse_quantity(const Node& node, std::span<const Unit> units) {
    static const std::regex pattern(R"(([0-9]+) *([A-Za-z]*))");
    std::smatch match;
    if (node.kind != Node::Kind::scalar || !std::regex_match(node.text, match, pattern)) return std::nullopt;
    const std::string unit_name = match[2].str();
    const auto unit = std::ranges::find(units, std::string_view(unit_name), &Unit::name);
    const auto count = parse_integer(match[1].str());
    if (unit == units.end() || !count || *count > std::numeric_limits<std::int64_t>::max() / unit->factor)
        return std::nullopt;
    return *count * unit->factor;
}

std::optional<std::chrono::milliseconds> read_duration(const Node& node, const std::string& path, Errors& errors) {
    if (const auto ms = parse_quantity(node, kDurationUnits)) return std::chrono::milliseconds(*ms);
    fail(errors, node.origin, path,
         "expected a duration such as 500ms, 5s or 1m (a bare integer is milliseconds), " + got(node));
    return std::nullopt;
}

// For deadlines, where zero would close every connection at once rather than mean "none".
std::optional<std::chrono::milliseconds> read_positive_duration(const Node& node, const std::string& path,
                                                                Errors& errors) {
    if (const auto ms = parse_quantity(node, kDurationUnits); ms && *ms > 0) return std::chrono::milliseconds(*ms);
    fail(errors, node.origin, path,
         "expected a duration above zero such as 500ms, 5s or 1m (a bare integer is milliseconds), " + got(node));
    return std::nullopt;
}

std::optional<std::size_t> read_size(const Node& node, const std::string& path, Errors& errors) {
    if (const auto bytes = parse_quantity(node, kSizeUnits)) return static_cast<std::size_t>(*bytes);
    fail(errors, node.origin, path,
         "expected a size such as 1048576, 512KiB or 1MiB (units B, KiB, MiB, GiB), " + got(node));
    return std::nullopt;
}

// A byte count in the largest unit that divides it: 1024 -> "1KiB", 256 -> "256B".
std::string show_size(std::int64_t bytes) {
    for (auto unit = kSizeUnits.rbegin(); unit != kSizeUnits.rend(); ++unit) {
        if (!unit->name.empty() && bytes != 0 && bytes % unit->factor == 0)
            return std::to_string(bytes / unit->factor) + std::string(unit->name);
    }
    return std::to_string(bytes) + "B";
}

std::optional<std::size_t> read_size(const Node& node, const std::string& path, std::int64_t min, std::int64_t max,
                                     Errors& errors) {
    if (const auto bytes = parse_quantity(node, kSizeUnits); bytes && *bytes >= min && *bytes <= max)
        return static_cast<std::size_t>(*bytes);
    const std::string range = "from " + show_size(min) + " to " + show_size(max);
    fail(errors, node.origin, path, "expected a size " + range + " (units B, KiB, MiB, GiB), " + got(node));
    return std::nullopt;
}

bool is_ip_address(int family, const std::string& host) {
    std::array<unsigned char, 16> buffer{};
    return inet_pton(family, host.c_str(), buffer.data()) == 1;
}

// "host:port", with an IPv6 host in brackets as in URLs: "[::1]:8080".
std::optional<Endpoint> parse_endpoint(const std::string& text) {
    static const std::regex pattern(R"((?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5}))");
    static const std::regex dotted_numbers(R"([0-9.]+)");
    std::smatch match;
    if (!std::regex_match(text, match, pattern)) return std::nullopt;
    const auto port = parse_integer(match[3].str());
    const bool v6 = match[1].matched;
    std::string host = v6 ? match[1].str() : match[2].str();
    if (!port || *port > 65535) return std::nullopt;
    if (v6 && !is_ip_address(AF_INET6, host)) return std::nullopt;
    if (!v6 && std::regex_match(host, dotted_numbers) && !is_ip_address(AF_INET, host)) return std::nullopt;
    return Endpoint{std::move(host), static_cast<std::uint16_t>(*port)};
}

std::optional<Endpoint> read_endpoint(const Node& node, const std::string& path, Errors& errors) {
    if (node.kind == Node::Kind::scalar) {
        if (auto endpoint = parse_endpoint(node.text)) return endpoint;
    }
    fail(errors, node.origin, path,
         "expected host:port with a port from 0 to 65535, such as 127.0.0.1:8080 or [::1]:8080, " + got(node));
    return std::nullopt;
}

// Mounts are joined with route paths, so they must neither end in "/" nor hold templates.
bool is_mount(std::string_view mount) {
    if (mount == "/") return true;
    return mount.starts_with('/') && !mount.ends_with('/') && mount.find("//") == std::string_view::npos &&
           mount.find_first_of("{}?#") == std::string_view::npos;
}

std::optional<std::string> read_mount(const Node& node, const std::string& path, Errors& errors) {
    if (node.kind == Node::Kind::scalar && is_mount(node.text)) return node.text;
    fail(errors, node.origin, path,
         "expected a path such as /hello or / (starting with '/', without a trailing '/', '//', "
         "'{', '}', '?' or '#'), " +
             got(node));
    return std::nullopt;
}

bool is_plugin_name(const std::string& name) {
    static const std::regex pattern("[a-z][a-z0-9_]*");
    return std::regex_match(name, pattern);
}

bool is_middleware_name(const std::string& name) {
    static const std::regex pattern(R"([a-z][a-z0-9_]*(\.\S+)?)");
    return std::regex_match(name, pattern);
}

// The items of a list key; an empty value is an empty list. nullopt once reported.
std::optional<std::span<const Node>> list_items(const Node& node, const std::string& path, const std::string& what,
                                                Errors& errors) {
    if (node.kind == Node::Kind::sequence) return std::span<const Node>(node.items);
    if (node.kind == Node::Kind::null) return std::span<const Node>();
    fail(errors, node.origin, path, "expected " + what + ", " + got(node));
    return std::nullopt;
}

std::optional<std::vector<std::string>> read_middleware(const Node& node, const std::string& path, Errors& errors) {
    const auto items = list_items(node, path, "a list of middleware names", errors);
    if (!items) return std::nullopt;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < items->size(); ++i) {
        const Node& item = (*items)[i];
        if (item.kind == Node::Kind::scalar && is_middleware_name(item.text))
            names.push_back(item.text);
        else
            fail(errors, item.origin, item_key(path, i),
                 "expected a middleware name PLUGIN or PLUGIN.NAME, such as cors or auth.jwt, " + got(item));
    }
    return names;
}

// A list of strings, each checked by `check` (which says what is wrong with one).
template <class Check>
std::optional<std::vector<std::string>> read_checked_list(const Node& node, const std::string& path,
                                                          const std::string& what, Check check, Errors& errors) {
    const auto items = list_items(node, path, what, errors);
    if (!items) return std::nullopt;
    std::vector<std::string> values;
    for (std::size_t i = 0; i < items->size(); ++i) {
        const Node& item = (*items)[i];
        if (item.kind != Node::Kind::scalar) {
            fail(errors, item.origin, item_key(path, i), "expected a string, " + got(item));
            continue;
        }
        if (auto checked = check(item.text); !checked) {
            fail(errors, item.origin, item_key(path, i), checked.error() + ", " + got(item));
            continue;
        }
        values.push_back(item.text);
    }
    return values;
}

tl::expected<void, std::string> check_media_type(std::string_view text) {
    static const std::regex pattern(R"([A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/(\*|[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*))");
    if (std::regex_match(text.begin(), text.end(), pattern)) return {};
    return tl::unexpected(std::string("expected a media type such as application/json or text/*"));
}

// ---- Checking sections ----------------------------------------------------------------

constexpr std::array<std::string_view, 9> kTopKeys{"server",  "logging", "database",    "middleware", "plugins",
                                                   "health",  "metrics", "compression", "openapi"};
constexpr std::array<std::string_view, 3> kOpenApiKeys{"enabled", "path", "title"};
constexpr std::array<std::string_view, 1> kHealthKeys{"readyz_requires_database"};
// Both engines' keys, then the event engine's, then the Poco engine's; counted by the compiler.
constexpr auto kServerKeys = std::to_array<std::string_view>(
    {"listen", "admin_listen", "admin_enabled", "engine", "keep_alive_timeout", "max_keep_alive_requests",
     "max_body_bytes", "drain_timeout", "data_dir", "io_threads", "workers", "worker_queue", "max_connections",
     "header_timeout", "body_timeout", "send_timeout", "max_header_bytes", "max_headers", "max_uri_bytes",
     "inline_warn", "max_threads", "max_queued", "shutdown_delay", "admin_token_file", "pid_file",
     "trusted_proxies", "allowed_hosts", "tls"});
constexpr std::array<std::string_view, 2> kTlsKeys{"certificate", "key"};
constexpr auto kCompressionKeys =
    std::to_array<std::string_view>({"enabled", "min_size", "content_types", "gzip_level", "brotli_quality"});
constexpr std::array<std::string_view, 5> kDatabaseKeys{"url", "pool_size", "acquire_timeout", "busy_timeout",
                                                        "migrate_on_start"};
constexpr std::array<std::string_view, 7> kLoggingKeys{"level",  "format",        "access_log", "levels",
                                                       "output", "access_output", "buffer_size"};
constexpr std::array<std::string_view, 1> kMetricsKeys{"enabled"};
constexpr std::array<std::string_view, 6> kPluginKeys{"enabled", "required", "mount", "middleware", "scopes", "config"};
constexpr std::array<std::string_view, 7> kLevels{"trace", "debug", "info", "warn", "error", "critical", "off"};
constexpr std::array<std::string_view, 2> kFormats{"text", "json"};
constexpr std::array<std::string_view, 2> kEngines{"event", "poco"};
constexpr std::string_view kSearchPaths = "search_paths";

// A section may be left empty (`server:`) to mean all defaults.
bool is_section(const Node& node, const std::string& path, const std::string& hint, Errors& errors) {
    if (node.kind == Node::Kind::map) return true;
    if (node.kind != Node::Kind::null)
        fail(errors, node.origin, path, "expected a map of settings, " + got(node) + hint);
    return false;
}

fs::path resolve(const Origin& origin, const std::string& text, const fs::path& env_base_dir);

std::optional<EngineKind> read_engine(const Node& node, const std::string& path, Errors& errors) {
    const auto name = read_choice(node, path, kEngines, errors);
    if (!name) return std::nullopt;
    return *name == "poco" ? EngineKind::poco : EngineKind::event;
}

// The CPUs this process may run on, not the machine's: a server started under taskset, or
// in a container with a cpuset, should not run more loops than it has CPUs.
int affinity_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return std::max(1, CPU_COUNT(&set));
}

// The admin token: the file's content without surrounding white space. The error names the
// file, never its content.
void read_admin_token_file(const Node& node, const std::string& path, ServerConfig& server,
                           const fs::path& env_base_dir, Errors& errors) {
    if (node.kind != Node::Kind::scalar || node.text.empty()) {
        fail(errors, node.origin, path, "expected the path of a file holding the admin token, " + got(node));
        return;
    }
    server.admin_token_file = resolve(node.origin, node.text, env_base_dir);
    errno = 0;
    std::ifstream in(server.admin_token_file, std::ios::binary);
    std::string content;
    if (in && !fs::is_directory(server.admin_token_file)) content.assign(std::istreambuf_iterator<char>(in), {});
    if (!in || in.bad() || fs::is_directory(server.admin_token_file)) {
        const int code = fs::is_directory(server.admin_token_file) ? EISDIR : (errno != 0 ? errno : EIO);
        fail(errors, node.origin, path,
             "cannot read the admin token file " + server.admin_token_file.string() + ": " +
                 std::generic_category().message(code));
        return;
    }
    const std::string* text = &content;
    const auto first = text->find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        fail(errors, node.origin, path, "the admin token file " + server.admin_token_file.string() + " is empty");
        return;
    }
    server.admin_token = text->substr(first, text->find_last_not_of(" \t\r\n") - first + 1);
}

// The pid file: empty (or null) for none. Its directory is `serve`'s to check when it starts
// (host/pid_file.cpp): a runtime directory such as /run/trellis exists only while the service
// runs (systemd's RuntimeDirectory=), and `trellis check` runs before that from ExecStartPre=
// and from the packages' maintainer scripts.
void read_pid_file(const Node& node, const std::string& path, ServerConfig& server, const fs::path& env_base_dir,
                   Errors& errors) {
    if (node.kind == Node::Kind::null || (node.kind == Node::Kind::scalar && node.text.empty())) {
        server.pid_file.clear();
        return;
    }
    if (node.kind != Node::Kind::scalar) {
        fail(errors, node.origin, path, "expected the path of the pid file, " + got(node));
        return;
    }
    const fs::path file = resolve(node.origin, node.text, env_base_dir);
    std::error_code ec;
    if (fs::is_directory(file, ec)) {
        fail(errors, node.origin, path, file.string() + " is a directory; name a file in it, such as trellis.pid");
        return;
    }
    server.pid_file = file;
}

// A PEM file of server.tls: it must be a readable file now (`trellis check` and reloads read
// it again when they build the TLS context, and name it when it is not a certificate or key).
std::optional<fs::path> read_tls_file(const Node& node, const std::string& path, const fs::path& env_base_dir,
                                      Errors& errors) {
    if (node.kind != Node::Kind::scalar || node.text.empty()) {
        fail(errors, node.origin, path, "expected the path of a PEM file, " + got(node));
        return std::nullopt;
    }
    const fs::path file = resolve(node.origin, node.text, env_base_dir);
    errno = 0;
    std::ifstream in(file, std::ios::binary);
    std::error_code ec;
    if (!in || fs::is_directory(file, ec)) {
        const int code = fs::is_directory(file, ec) ? EISDIR : (errno != 0 ? errno : EIO);
        fail(errors, node.origin, path, "cannot read " + file.string() + ": " + std::generic_category().message(code));
        return std::nullopt;
    }
    return file;
}

void read_tls(const Node& node, ServerConfig& server, const fs::path& env_base_dir, Errors& errors) {
    if (node.kind == Node::Kind::null) {
        server.tls.reset();
        return;
    }
    if (!is_section(node, "server.tls", "", errors)) return;
    ServerConfig::Tls tls;
    tls.origin = node.origin;
    bool complete = true;
    for (const char* key : {"certificate", "key"}) {
        const auto it = std::find_if(node.entries.begin(), node.entries.end(),
                                     [&](const Entry& entry) { return entry.key == key; });
        if (it == node.entries.end()) {
            fail(errors, node.origin, "server.tls", std::string("'") + key + "' is required");
            complete = false;
            continue;
        }
        auto file = read_tls_file(it->value, "server.tls." + std::string(key), env_base_dir, errors);
        if (!file) complete = false;
        (std::string(key) == "certificate" ? tls.certificate : tls.key) = file.value_or(fs::path());
    }
    for (const Entry& entry : node.entries)
        if (entry.key != "certificate" && entry.key != "key")
            unknown_key(entry, "server.tls." + entry.key, kTlsKeys, errors);
    if (complete) server.tls = std::move(tls);
}

void read_server_key(const Entry& entry, ServerConfig& server, const fs::path& env_base_dir, Errors& errors) {
    const std::string path = "server." + entry.key;
    const Node& value = entry.value;
    if (entry.key == "listen")
        assign(server.listen, read_endpoint(value, path, errors));
    else if (entry.key == "admin_listen")
        assign(server.admin_listen, read_endpoint(value, path, errors));
    else if (entry.key == "admin_enabled")
        assign(server.admin_enabled, read_bool(value, path, errors));
    else if (entry.key == "engine")
        assign(server.engine, read_engine(value, path, errors));
    else if (entry.key == "io_threads")
        assign(server.io_threads, read_integer(value, path, 1, 256, errors));
    else if (entry.key == "workers")
        assign(server.workers, read_integer(value, path, 1, 4096, errors));
    else if (entry.key == "worker_queue")
        assign(server.worker_queue, read_integer(value, path, 0, 1'000'000, errors));
    else if (entry.key == "max_connections")
        assign(server.max_connections, read_integer(value, path, 1, 10'000'000, errors));
    else if (entry.key == "header_timeout")
        assign(server.header_timeout, read_positive_duration(value, path, errors));
    else if (entry.key == "body_timeout")
        assign(server.body_timeout, read_positive_duration(value, path, errors));
    else if (entry.key == "send_timeout")
        assign(server.send_timeout, read_positive_duration(value, path, errors));
    else if (entry.key == "max_header_bytes")
        assign(server.max_header_bytes, read_size(value, path, 1024, 1024 * 1024, errors));
    else if (entry.key == "max_headers")
        assign(server.max_headers, read_integer(value, path, 1, 10'000, errors));
    else if (entry.key == "max_uri_bytes")
        assign(server.max_uri_bytes, read_size(value, path, 256, 1024 * 1024, errors));
    else if (entry.key == "inline_warn")
        assign(server.inline_warn, read_positive_duration(value, path, errors));
    else if (entry.key == "max_threads")
        assign(server.max_threads, read_integer(value, path, 1, 100'000, errors));
    else if (entry.key == "max_queued")
        assign(server.max_queued, read_integer(value, path, 1, 1'000'000, errors));
    else if (entry.key == "keep_alive_timeout")
        assign(server.keep_alive_timeout, read_duration(value, path, errors));
    else if (entry.key == "drain_timeout")
        assign(server.drain_timeout, read_duration(value, path, errors));
    else if (entry.key == "max_keep_alive_requests")
        assign(server.max_keep_alive_requests, read_integer(value, path, 0, 10'000'000, errors));
    else if (entry.key == "max_body_bytes")
        assign(server.max_body_bytes, read_size(value, path, errors));
    else if (entry.key == "shutdown_delay")
        assign(server.shutdown_delay, read_duration(value, path, errors));
    else if (entry.key == "admin_token_file")
        read_admin_token_file(value, path, server, env_base_dir, errors);
    else if (entry.key == "pid_file")
        read_pid_file(value, path, server, env_base_dir, errors);
    else if (entry.key == "tls")
        read_tls(value, server, env_base_dir, errors);
    else if (entry.key == "trusted_proxies")
        assign(server.trusted_proxies, read_checked_list(value, path, "a list of networks", http::ProxyList::check, errors));
    else if (entry.key == "allowed_hosts")
        assign(server.allowed_hosts, read_checked_list(value, path, "a list of host names", http::AllowedHosts::check, errors));
    else if (entry.key == "data_dir" && value.kind == Node::Kind::scalar && !value.text.empty())
        server.data_dir = resolve(value.origin, value.text, env_base_dir);
    else if (entry.key == "data_dir")
        fail(errors, value.origin, path, "expected a directory, " + got(value));
    else
        unknown_key(entry, path, kServerKeys, errors);
}

// The url is parsed once the whole config is read, because a relative SQLite path depends
// on server.data_dir, which may come later or from another file.
struct DatabaseInput {
    std::optional<Node> url;
    DatabaseConfig settings;
};

void read_database_key(const Entry& entry, DatabaseInput& database, Errors& errors) {
    const std::string path = "database." + entry.key;
    const Node& value = entry.value;
    DatabaseConfig& settings = database.settings;
    if (entry.key == "url" && value.kind == Node::Kind::scalar && !value.text.empty())
        database.url = value;
    else if (entry.key == "url")
        fail(errors, value.origin, path, "expected a url such as sqlite://trellis.db or postgresql://host/db");
    else if (entry.key == "pool_size")
        assign(settings.pool_size, read_integer(value, path, 1, 1000, errors));
    else if (entry.key == "acquire_timeout")
        assign(settings.acquire_timeout, read_duration(value, path, errors));
    else if (entry.key == "busy_timeout")
        assign(settings.busy_timeout, read_duration(value, path, errors));
    else if (entry.key == "migrate_on_start")
        assign(settings.migrate_on_start, read_bool(value, path, errors));
    else
        unknown_key(entry, path, kDatabaseKeys, errors);
}

void finish_database(DatabaseInput& input, const ServerConfig& server, Config& config, Errors& errors) {
    std::string url = input.url ? input.url->text : input.settings.url;
    auto parsed = parse_database_url(std::move(url), server.data_dir);
    if (!parsed) {
        const Origin origin = input.url ? input.url->origin : Origin{"default", 0, 0};
        fail(errors, origin, "database.url", parsed.error());
        return;
    }
    DatabaseConfig& db = config.database;
    db = std::move(*parsed);
    db.pool_size = input.settings.pool_size;
    db.acquire_timeout = input.settings.acquire_timeout;
    db.busy_timeout = input.settings.busy_timeout;
    db.migrate_on_start = input.settings.migrate_on_start;
    if (input.url) db.origin = input.url->origin;
}

std::optional<std::string> read_log_output(const Node& value, const std::string& path, const fs::path& env_base_dir,
                                           Errors& errors) {
    if (value.kind == Node::Kind::scalar && value.text == "stderr") return value.text;
    if (value.kind == Node::Kind::scalar && !value.text.empty()) return resolve(value.origin, value.text, env_base_dir).string();
    fail(errors, value.origin, path, "expected stderr or a file path, " + got(value));
    return std::nullopt;
}

void read_logging_key(const Entry& entry, LoggingConfig& logging, const fs::path& env_base_dir, Errors& errors) {
    const std::string path = "logging." + entry.key;
    if (entry.key == "levels" && is_section(entry.value, path, " such as {notes: debug}", errors)) {
        for (const Entry& level : entry.value.entries)
            if (auto chosen = read_choice(level.value, path + "." + level.key, kLevels, errors))
                logging.levels[level.key] = *chosen;
    } else if (entry.key == "levels")
        return;
    else if (entry.key == "output")
        assign(logging.output, read_log_output(entry.value, path, env_base_dir, errors));
    else if (entry.key == "access_output" && (entry.value.kind == Node::Kind::null ||
                                              (entry.value.kind == Node::Kind::scalar && entry.value.text.empty())))
        logging.access_output.clear();  // with the other lines
    else if (entry.key == "access_output")
        assign(logging.access_output, read_log_output(entry.value, path, env_base_dir, errors));
    else if (entry.key == "buffer_size")
        assign(logging.buffer_size, read_size(entry.value, path, 4096, std::int64_t{1} << 30, errors));
    else if (entry.key == "level")
        assign(logging.level, read_choice(entry.value, path, kLevels, errors));
    else if (entry.key == "format")
        assign(logging.format, read_choice(entry.value, path, kFormats, errors));
    else if (entry.key == "access_log")
        assign(logging.access_log, read_bool(entry.value, path, errors));
    else
        unknown_key(entry, path, kLoggingKeys, errors);
}

void read_health(const Node& node, HealthConfig& health, Errors& errors) {
    if (!is_section(node, "health", "", errors)) return;
    for (const Entry& entry : node.entries) {
        const std::string path = "health." + entry.key;
        if (entry.key == "readyz_requires_database")
            assign(health.readyz_requires_database, read_bool(entry.value, path, errors));
        else
            unknown_key(entry, path, kHealthKeys, errors);
    }
}

void read_compression(const Node& node, http::CompressionSettings& compression, Errors& errors) {
    if (!is_section(node, "compression", "", errors)) return;
    for (const Entry& entry : node.entries) {
        const std::string path = "compression." + entry.key;
        const Node& value = entry.value;
        if (entry.key == "enabled")
            assign(compression.enabled, read_bool(value, path, errors));
        else if (entry.key == "min_size")
            assign(compression.min_size, read_size(value, path, 0, 1024 * 1024 * 1024, errors));
        else if (entry.key == "content_types") {
            if (auto types = read_checked_list(value, path, "a list of media types", check_media_type, errors)) {
                for (auto& type : *types)
                    std::ranges::transform(type, type.begin(), [](unsigned char c) { return std::tolower(c); });
                compression.content_types = std::move(*types);
            }
        } else if (entry.key == "gzip_level")
            assign(compression.gzip_level, read_integer(value, path, 1, 9, errors));
        else if (entry.key == "brotli_quality")
            assign(compression.brotli_quality, read_integer(value, path, 0, 11, errors));
        else
            unknown_key(entry, path, kCompressionKeys, errors);
    }
}

void read_server(const Node& node, ServerConfig& server, const fs::path& env_base_dir, Errors& errors) {
    if (!is_section(node, "server", "", errors)) return;
    for (const Entry& entry : node.entries) read_server_key(entry, server, env_base_dir, errors);
}

void read_database(const Node& node, DatabaseInput& database, Errors& errors) {
    if (!is_section(node, "database", "", errors)) return;
    for (const Entry& entry : node.entries) read_database_key(entry, database, errors);
}

void read_logging(const Node& node, LoggingConfig& logging, const fs::path& env_base_dir, Errors& errors) {
    if (!is_section(node, "logging", "", errors)) return;
    for (const Entry& entry : node.entries) read_logging_key(entry, logging, env_base_dir, errors);
}

void read_metrics(const Node& node, MetricsConfig& metrics, Errors& errors) {
    if (!is_section(node, "metrics", "", errors)) return;
    for (const Entry& entry : node.entries) {
        if (entry.key == "enabled")
            assign(metrics.enabled, read_bool(entry.value, "metrics.enabled", errors));
        else
            unknown_key(entry, "metrics." + entry.key, kMetricsKeys, errors);
    }
}

void read_openapi(const Node& node, OpenApiConfig& openapi, Errors& errors) {
    if (!is_section(node, "openapi", "", errors)) return;
    for (const Entry& entry : node.entries) {
        const std::string path = "openapi." + entry.key;
        if (entry.key == "enabled") {
            assign(openapi.enabled, read_bool(entry.value, path, errors));
        } else if (entry.key == "path") {
            if (entry.value.kind == Node::Kind::scalar && entry.value.text != "/" && is_mount(entry.value.text))
                openapi.path = entry.value.text;
            else
                errors.push_back(entry.value.origin.describe() + ": key '" + path +
                                 "': expected a path such as /openapi.json (a leading '/', no trailing '/', no "
                                 "'{', '}', '?' or '#')");
        } else if (entry.key == "title") {
            if (entry.value.kind == Node::Kind::scalar && !entry.value.text.empty())
                openapi.title = entry.value.text;
            else
                errors.push_back(entry.value.origin.describe() + ": key '" + path + "': expected a non-empty text");
        } else {
            unknown_key(entry, path, kOpenApiKeys, errors);
        }
    }
}

// Relative paths mean relative to the file that wrote them, not to wherever the server was
// started; a value from the environment counts as written beside the main file.
fs::path resolve(const Origin& origin, const std::string& text, const fs::path& env_base_dir) {
    // A source without a folder is a main file named so (env_base_dir is its folder then too)
    // or the embedding API's text, whose base directory env_base_dir is.
    const fs::path written_in = fs::path(origin.source).parent_path();
    const fs::path base = origin.source.starts_with(kEnvSourcePrefix) || written_in.empty() ? env_base_dir : written_in;
    std::error_code ec;
    fs::path resolved = fs::absolute(base / text, ec).lexically_normal();
    if (!resolved.has_filename()) resolved = resolved.parent_path();
    return resolved;
}

std::vector<fs::path> read_search_paths(const Node& node, const fs::path& env_base_dir, Errors& errors) {
    const std::string path = "plugins." + std::string(kSearchPaths);
    std::vector<fs::path> dirs;
    const auto items = list_items(node, path, "a list of directories", errors);
    for (std::size_t i = 0; items && i < items->size(); ++i) {
        const Node& item = (*items)[i];
        if (item.kind == Node::Kind::scalar && !item.text.empty())
            dirs.push_back(resolve(item.origin, item.text, env_base_dir));
        else
            fail(errors, item.origin, item_key(path, i), "expected a directory, " + got(item));
    }
    return dirs;
}

// YAML 1.2 core schema, so that plugin authors see the types any YAML tool would show;
// a quoted value is always a string. (.inf and .nan stay strings: JSON has no such numbers.)
json scalar_to_json(const Node& node) {
    static const std::regex float_pattern(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
    const std::string& text = node.text;
    if (!node.plain) return text;
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    if (const auto integer = parse_integer(text)) return *integer;
    if (std::regex_match(text, float_pattern)) {
        const std::string_view digits = text.starts_with('+') ? std::string_view(text).substr(1) : text;
        double value = 0;
        std::from_chars(digits.data(), digits.data() + digits.size(), value);
        return value;
    }
    return text;
}

json to_json(const Node& node, const json::json_pointer& pointer, std::map<std::string, Origin>& origins) {
    origins[pointer.to_string()] = node.origin;
    switch (node.kind) {
        case Node::Kind::null: return nullptr;
        case Node::Kind::scalar: return scalar_to_json(node);
        case Node::Kind::sequence: {
            json array = json::array();
            for (std::size_t i = 0; i < node.items.size(); ++i)
                array.push_back(to_json(node.items[i], pointer / i, origins));
            return array;
        }
        case Node::Kind::map: break;
    }
    json object = json::object();
    for (const Entry& entry : node.entries) object[entry.key] = to_json(entry.value, pointer / entry.key, origins);
    return object;
}

void read_plugin_config(const Node& node, const std::string& path, PluginConfig& plugin, Errors& errors) {
    if (node.kind != Node::Kind::map && node.kind != Node::Kind::null) {
        fail(errors, node.origin, path, "expected a map of the plugin's own settings, " + got(node));
        return;
    }
    plugin.config_origins.clear();
    plugin.config = to_json(node, json::json_pointer(), plugin.config_origins);
    if (plugin.config.is_null()) plugin.config = json::object();
}

// plugins.NAME.scopes: {"GET /notes/{id}": [notes.read], ...}. Whether each route exists is
// checked when the plugin loads (runtime), since only its registration knows its routes.
void read_route_scopes(const Node& node, const std::string& path, PluginConfig& plugin, Errors& errors) {
    if (!is_section(node, path, " such as {\"GET /notes/{id}\": [notes.read]}", errors)) return;
    static const std::regex route_key(R"([A-Z]+ /[^\s]*)");
    auto check_scope = [](std::string_view scope) -> tl::expected<void, std::string> {
        if (!scope.empty() && std::all_of(scope.begin(), scope.end(), [](unsigned char c) {
                return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
            }))
            return {};
        return tl::unexpected(std::string("expected a scope (printable ASCII, no space, quote or backslash)"));
    };
    for (const Entry& route : node.entries) {
        const std::string key = path + "." + route.key;
        if (!std::regex_match(route.key, route_key)) {
            fail(errors, route.key_origin, key,
                 "expected a route as METHOD and path template, such as \"GET /notes/{id}\" (the mount included)");
            continue;
        }
        auto scopes = read_checked_list(route.value, key, "a list of scopes", check_scope, errors);
        if (scopes) plugin.scopes[route.key] = RouteScopes{std::move(*scopes), route.key_origin};
    }
}

void read_plugin_key(const Entry& entry, PluginConfig& plugin, Errors& errors) {
    const std::string path = "plugins." + plugin.name + "." + entry.key;
    const Node& value = entry.value;
    if (entry.key == "enabled")
        assign(plugin.enabled, read_bool(value, path, errors));
    else if (entry.key == "required")
        assign(plugin.required, read_bool(value, path, errors));
    else if (entry.key == "mount")
        assign(plugin.mount, read_mount(value, path, errors));
    else if (entry.key == "middleware")
        assign(plugin.middleware, read_middleware(value, path, errors));
    else if (entry.key == "scopes")
        read_route_scopes(value, path, plugin, errors);
    else if (entry.key == "config")
        read_plugin_config(value, path, plugin, errors);
    else
        unknown_key(entry, path, kPluginKeys, errors);
}

PluginConfig read_plugin(const Entry& section, Errors& errors) {
    PluginConfig plugin;
    plugin.name = section.key;
    plugin.mount = "/" + plugin.name;
    plugin.origin = section.key_origin;
    plugin.config_origins[""] = plugin.origin;
    // `search_path: [...]` is a valid plugin name with a list value; point at the typo.
    const std::string hint =
        edit_distance(section.key, kSearchPaths) <= 2 ? " (did you mean '" + std::string(kSearchPaths) + "'?)" : "";
    if (is_section(section.value, "plugins." + plugin.name, hint, errors)) {
        for (const Entry& entry : section.value.entries) read_plugin_key(entry, plugin, errors);
    }
    return plugin;
}

void read_plugins(const Node& node, const fs::path& env_base_dir, Config& config, Errors& errors) {
    if (!is_section(node, "plugins", "", errors)) return;
    for (const Entry& entry : node.entries) {
        if (entry.key == kSearchPaths)
            config.plugin_search_paths = read_search_paths(entry.value, env_base_dir, errors);
        else if (is_plugin_name(entry.key))
            config.plugins.push_back(read_plugin(entry, errors));
        else
            fail(errors, entry.key_origin, "plugins." + entry.key,
                 "a plugin name is lower case letters, digits and '_', starting with a letter");
    }
    std::ranges::sort(config.plugins, {}, &PluginConfig::name);
}

Config build(const Node& root, const fs::path& env_base_dir, const fs::path& default_data_dir, Errors& errors) {
    Config config;
    if (!default_data_dir.empty()) config.server.data_dir = default_data_dir;
    DatabaseInput database;
    for (const Entry& entry : root.entries) {
        const Node& value = entry.value;
        if (entry.key == "server")
            read_server(value, config.server, env_base_dir, errors);
        else if (entry.key == "database")
            read_database(value, database, errors);
        else if (entry.key == "logging")
            read_logging(value, config.logging, env_base_dir, errors);
        else if (entry.key == "middleware")
            assign(config.middleware, read_middleware(value, entry.key, errors));
        else if (entry.key == "plugins")
            read_plugins(value, env_base_dir, config, errors);
        else if (entry.key == "health")
            read_health(value, config.health, errors);
        else if (entry.key == "metrics")
            read_metrics(value, config.metrics, errors);
        else if (entry.key == "compression")
            read_compression(value, config.compression, errors);
        else if (entry.key == "openapi")
            read_openapi(value, config.openapi, errors);
        else
            unknown_key(entry, entry.key, kTopKeys, errors);
    }
    finish_database(database, config.server, config, errors);
    if (config.server.tls && config.server.engine == EngineKind::poco)
        fail(errors, config.server.tls->origin, "server.tls",
             "TLS is served by the event engine only; remove server.engine: poco or the tls section");
    // Unset: one loop per CPU we may run on, within the range a configured value may take.
    if (config.server.io_threads == 0) config.server.io_threads = std::min(affinity_cpus(), 256);
    return config;
}

}  // namespace

std::string Origin::describe() const {
    if (line <= 0) return source;
    return source + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string_view to_string(Dialect dialect) { return dialect == Dialect::sqlite ? "sqlite" : "postgresql"; }

std::string_view to_string(EngineKind kind) { return kind == EngineKind::event ? "event" : "poco"; }

std::string redact_database_url(std::string_view url) {
    std::string text(url);
    // URI form: scheme://user:password@host
    if (const auto scheme = text.find("://"); scheme != std::string::npos) {
        const auto at = text.find('@', scheme + 3);
        const auto colon = text.find(':', scheme + 3);
        if (at != std::string::npos && colon != std::string::npos && colon < at)
            text.replace(colon + 1, at - colon - 1, "***");
    }
    // Keyword form and URI query: password=... up to the next space or '&'.
    static const std::regex password(R"((password\s*=\s*)('[^']*'|[^\s&]*))", std::regex::icase);
    // A malformed keyword string ("passwordSECRET=1"): whatever follows "password".
    static const std::regex mangled(R"((^|\s)(\S*password)(?!\s*=)\S*)", std::regex::icase);
    return std::regex_replace(std::regex_replace(text, password, "$1***"), mangled, "$1$2***");
}

tl::expected<DatabaseConfig, std::string> parse_database_url(std::string url, const fs::path& data_dir) {
    DatabaseConfig db;
    db.display = redact_database_url(url);
    if (url.starts_with("sqlite://")) {
        const std::string file = url.substr(std::string_view("sqlite://").size());
        if (file.empty()) return tl::unexpected(std::string("sqlite:// needs a file, such as sqlite://trellis.db"));
        if (file.find('"') != std::string::npos)
            return tl::unexpected(std::string("the SQLite file name must not contain '\"'"));
        db.dialect = Dialect::sqlite;
        db.sqlite_file = fs::path(file).is_absolute() ? fs::path(file) : (data_dir / file).lexically_normal();
        db.connect = "db=\"" + db.sqlite_file.string() + "\"";
        db.display = "sqlite://" + db.sqlite_file.string();
    } else if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        if (url.find('/', url.find("://") + 3) == std::string::npos)
            return tl::unexpected(std::string("a postgresql:// url needs a database: postgresql://user@host:5432/dbname"));
        db.dialect = Dialect::postgresql;
        db.connect = url;
    } else if (url.find('=') != std::string::npos && url.find("://") == std::string::npos) {
        db.dialect = Dialect::postgresql;  // libpq keyword string
        db.connect = url;
    } else {
        return tl::unexpected(std::string(
            "expected sqlite://FILE, postgresql://user:password@host:port/db or a libpq keyword string "
            "(host=... dbname=...)"));
    }
    db.url = std::move(url);
    return db;
}

std::string Endpoint::text() const {
    const std::string shown = host.find(':') == std::string::npos ? host : "[" + host + "]";
    return shown + ":" + std::to_string(port);
}

const PluginConfig* Config::plugin(std::string_view name) const {
    const auto it = std::ranges::find(plugins, name, &PluginConfig::name);
    return it == plugins.end() ? nullptr : &*it;
}

tl::expected<std::shared_ptr<const Config>, Errors> load(const LoadOptions& options) {
    Errors errors;
    std::vector<std::string> sources;
    Node root;
    root.kind = Node::Kind::map;
    if (options.main_text) {
        if (auto node = parse_text(*options.main_text, options.main_file.string(), errors)) merge(root, std::move(*node));
        sources.push_back(options.main_file.string());
    } else {
        std::vector<fs::path> files{options.main_file};
        std::ranges::copy(drop_in_files(options.main_file, errors), std::back_inserter(files));
        for (const auto& [file, text] : options.drop_in_overrides) {
            std::erase(files, file);
            if (text) files.push_back(file);
        }
        std::sort(files.begin() + 1, files.end());
        for (const fs::path& file : files) {
            const auto given = options.drop_in_overrides.find(file);
            const bool overridden = given != options.drop_in_overrides.end();
            if (auto node = load_file(file, errors, overridden ? given->second : std::nullopt)) merge(root, std::move(*node));
            sources.push_back(file.string());
        }
    }
    apply_environment(options, root, sources, errors);
    const fs::path base_dir = options.main_text ? options.base_dir : options.main_file.parent_path();
    Config config = build(root, base_dir, options.default_data_dir, errors);
    if (!errors.empty()) return tl::make_unexpected(std::move(errors));
    config.sources = std::move(sources);
    return std::make_shared<const Config>(std::move(config));
}

std::vector<std::pair<std::string, std::string>> process_environment() {
    std::vector<std::pair<std::string, std::string>> variables;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        const std::string_view text(*entry);
        const auto equals = text.find('=');
        if (text.starts_with(kEnvPrefix) && equals != std::string_view::npos)
            variables.emplace_back(text.substr(0, equals), text.substr(equals + 1));
    }
    // environ's order is arbitrary; by name, a whole section is applied before the
    // variables for its keys, so that the more specific one wins.
    std::ranges::sort(variables);
    return variables;
}

}  // namespace trellis::config
