// notes: a REST resource on the host's database, built through the SDK alone. It shows
// the patterns a resource plugin needs: migrations per dialect, keyset pagination with an
// opaque cursor, whitelisted filters and sorts, request schemas the host enforces (400 /
// 404 / 422) and publishes in the OpenAPI document, ETag with
// If-None-Match (304), If-Match as a conditional UPDATE (412), 409 on a unique key.
#include <trellis/plugin.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using trellis::HttpError;
using trellis::json;
using trellis::Params;

constexpr const char* config_schema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "default_page_size": {"type": "integer", "minimum": 1, "maximum": 100},
    "max_page_size": {"type": "integer", "minimum": 1, "maximum": 1000}
  },
  "additionalProperties": false
})";

constexpr std::size_t kMaxTitle = 200;
constexpr std::size_t kMaxBody = 10000;
constexpr const char* kColumns = "id, title, body, pinned, version, created_at, updated_at";

// Sorts a client may ask for: the name in the query and the column (never client text).
struct SortKey {
    std::string_view name;
    std::string_view column;
    bool integer;
};
constexpr std::array<SortKey, 4> kSorts{SortKey{"id", "id", true}, SortKey{"title", "title", false},
                                        SortKey{"created_at", "created_at", false},
                                        SortKey{"updated_at", "updated_at", false}};

// ---- small helpers --------------------------------------------------------------------

std::string now_iso() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const int ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
    std::tm utc{};
    gmtime_r(&t, &utc);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ms);
    return text;
}

constexpr std::string_view kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view in) {
    std::string out;
    unsigned value = 0;
    int bits = 0;
    for (unsigned char c : in) {
        value = (value << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += kBase64[(value >> bits) & 0x3f];
        }
    }
    if (bits > 0) out += kBase64[(value << (6 - bits)) & 0x3f];
    return out;
}

std::optional<std::string> base64url_decode(std::string_view in) {
    std::string out;
    unsigned value = 0;
    int bits = 0;
    for (char c : in) {
        const auto pos = kBase64.find(c);
        if (pos == std::string_view::npos) return std::nullopt;
        value = (value << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((value >> bits) & 0xff);
        }
    }
    return out;
}

std::optional<std::int64_t> parse_id(std::string_view text) {
    if (text.empty() || text.size() > 18 || text.front() == '0') return std::nullopt;  // one spelling per id
    std::int64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + (c - '0');
    }
    return value > 0 ? std::optional(value) : std::nullopt;
}

std::string etag(std::int64_t id, std::int64_t version) {
    return "\"" + std::to_string(id) + "-" + std::to_string(version) + "\"";
}

// The comma-separated items of a header such as If-Match, trimmed.
std::vector<std::string_view> header_items(std::string_view header) {
    std::vector<std::string_view> items;
    std::size_t start = 0;
    while (start < header.size()) {
        std::size_t end = header.find(',', start);
        if (end == std::string_view::npos) end = header.size();
        std::string_view item = header.substr(start, end - start);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        items.push_back(item);
        start = end + 1;
    }
    return items;
}

// RFC 9110: If-None-Match uses weak comparison, If-Match strong; both take "*" or a list.
bool etag_listed(std::string_view header, const std::string& tag, bool weak) {
    for (std::string_view item : header_items(header)) {
        if (item == "*") return true;
        if (weak && item.substr(0, 2) == "W/") item.remove_prefix(2);
        if (item == tag) return true;
    }
    return false;
}

// "\"12-3\"" -> version 3 of note 12; nullopt when it is not one of ours.
std::optional<std::int64_t> version_from_etag(std::string_view tag, std::int64_t id) {
    const std::string prefix = "\"" + std::to_string(id) + "-";
    if (tag.size() < prefix.size() + 2 || tag.substr(0, prefix.size()) != prefix || tag.back() != '"')
        return std::nullopt;
    return parse_id(tag.substr(prefix.size(), tag.size() - prefix.size() - 1));
}

json note_json(const trellis::Row& row) {
    return {{"id", row.get<std::int64_t>("id")},
            {"title", row.get<std::string>("title")},
            {"body", row.get<std::string>("body")},
            {"pinned", row.get<bool>("pinned")},
            {"version", row.get<std::int64_t>("version")},
            {"created_at", row.get<std::string>("created_at")},
            {"updated_at", row.get<std::string>("updated_at")}};
}

// ---- the API's schemas ------------------------------------------------------------------
// The host validates requests against them before a handler runs (ABI 1.4) and publishes
// them in the OpenAPI document, so the handlers below read input that already fits.

json note_fields_schema(bool title_required) {
    json schema = {{"type", "object"},
                   {"additionalProperties", false},
                   {"properties",
                    {{"title", {{"type", "string"}, {"minLength", 1}, {"maxLength", kMaxTitle}}},
                     {"body", {{"type", "string"}, {"maxLength", kMaxBody}, {"description", "defaults to \"\""}}},
                     {"pinned", {{"type", "boolean"}, {"description", "defaults to false"}}}}}};
    if (title_required) schema["required"] = {"title"};
    return schema;
}

json note_schema() {
    return {{"type", "object"},
            {"required", {"id", "title", "body", "pinned", "version", "created_at", "updated_at"}},
            {"properties",
             {{"id", {{"type", "integer"}, {"minimum", 1}}},
              {"title", {{"type", "string"}}},
              {"body", {{"type", "string"}}},
              {"pinned", {{"type", "boolean"}}},
              {"version", {{"type", "integer"}, {"minimum", 1}, {"description", "also the ETag's second part"}}},
              {"created_at", {{"type", "string"}, {"format", "date-time"}}},
              {"updated_at", {{"type", "string"}, {"format", "date-time"}}}}}};
}

json id_schema() {
    return {{"type", "object"},
            {"required", {"id"}},
            {"properties", {{"id", {{"type", "integer"}, {"minimum", 1}, {"description", "the note's id"}}}}}};
}

json list_query_schema(int max_limit) {
    json sorts = json::array();
    for (const auto& key : kSorts) {
        sorts.push_back(std::string(key.name));
        sorts.push_back("-" + std::string(key.name));
    }
    return {{"type", "object"},
            {"additionalProperties", false},
            {"properties",
             {{"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", max_limit}, {"description", "page size"}}},
              {"cursor", {{"type", "string"}, {"description", "the `next` of the previous page"}}},
              {"sort", {{"enum", sorts}, {"description", "a leading '-' sorts descending; default id"}}},
              {"pinned", {{"type", "boolean"}}},
              {"title", {{"type", "string"}, {"description", "exact title"}}},
              {"q", {{"type", "string"}, {"description", "case-insensitive substring of the title"}}}}}};
}

struct Input {
    std::optional<std::string> title;
    std::optional<std::string> body;
    std::optional<bool> pinned;
};

// Reads a note from a body the host has checked against note_fields_schema. PUT/POST
// default what is absent, PATCH (JSON merge patch) changes only what is present.
Input read_input(const trellis::Request& request) {
    const json doc = request.json_body();
    Input in;
    if (auto it = doc.find("title"); it != doc.end()) in.title = it->get<std::string>();
    if (auto it = doc.find("body"); it != doc.end()) in.body = it->get<std::string>();
    if (auto it = doc.find("pinned"); it != doc.end()) in.pinned = it->get<bool>();
    return in;
}

// ---- the plugin -------------------------------------------------------------------------

class Notes final : public trellis::Plugin {
public:
    static trellis::PluginInfo info() {
        return {"notes", NOTES_VERSION, "Notes: a REST resource stored in the host's database", {}, config_schema};
    }

    void init(trellis::Context& context) override {
        db_.emplace(context.database());
        default_limit_ = context.config().value("default_page_size", 20);
        max_limit_ = context.config().value("max_page_size", 100);
        if (default_limit_ > max_limit_) throw std::invalid_argument("default_page_size is above max_page_size");

        context.migration({1, "create notes",
                           "CREATE TABLE notes (\n"
                           "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
                           "  owner TEXT NOT NULL,\n"
                           "  title TEXT NOT NULL,\n"
                           "  body TEXT NOT NULL DEFAULT '',\n"
                           "  pinned INTEGER NOT NULL DEFAULT 0,\n"
                           "  version INTEGER NOT NULL DEFAULT 1,\n"
                           "  created_at TEXT NOT NULL,\n"
                           "  updated_at TEXT NOT NULL,\n"
                           "  UNIQUE (owner, title)\n"
                           ");",
                           "DROP TABLE notes;", "sqlite"});
        context.migration({1, "create notes",
                           "CREATE TABLE notes (\n"
                           "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
                           "  owner TEXT NOT NULL,\n"
                           "  title TEXT NOT NULL,\n"
                           "  body TEXT NOT NULL DEFAULT '',\n"
                           "  pinned INTEGER NOT NULL DEFAULT 0,\n"
                           "  version BIGINT NOT NULL DEFAULT 1,\n"
                           "  created_at TEXT NOT NULL,\n"
                           "  updated_at TEXT NOT NULL,\n"
                           "  UNIQUE (owner, title)\n"
                           ");",
                           "DROP TABLE notes;", "postgresql"});
        context.migration({2, "index notes for listing",
                           "CREATE INDEX notes_owner_created ON notes (owner, created_at, id);\n"
                           "CREATE INDEX notes_owner_updated ON notes (owner, updated_at, id);",
                           "DROP INDEX notes_owner_created;\nDROP INDEX notes_owner_updated;", ""});

        const json item = note_schema();
        const json page = {{"type", "object"},
                           {"required", {"items", "next"}},
                           {"properties",
                            {{"items", {{"type", "array"}, {"items", item}}},
                             {"next",
                              {{"type", {"string", "null"}},
                               {"description", "the next page's path and query; also in the Link header"}}}}}};
        trellis::RouteInfo list_doc{"List notes, a page at a time, by the chosen sort", {"notes"}, nullptr, page};
        list_doc.query_schema = list_query_schema(max_limit_);
        context.get("/", [this](trellis::Request& rq, trellis::Response& rs) { list(rq, rs); }, list_doc);
        context.post("/", [this](trellis::Request& rq, trellis::Response& rs) { create(rq, rs); },
                     {"Create a note", {"notes"}, note_fields_schema(true), item});
        auto by_id = [&](std::string summary, json body) {
            trellis::RouteInfo info{std::move(summary), {"notes"}, std::move(body), item};
            info.path_schema = id_schema();
            return info;
        };
        context.get("/{id}", [this](trellis::Request& rq, trellis::Response& rs) { get(rq, rs); },
                    by_id("Get a note (If-None-Match gives 304)", nullptr));
        context.put("/{id}", [this](trellis::Request& rq, trellis::Response& rs) { update(rq, rs, true); },
                    by_id("Replace a note (If-Match makes it conditional)", note_fields_schema(true)));
        context.patch("/{id}", [this](trellis::Request& rq, trellis::Response& rs) { update(rq, rs, false); },
                      by_id("Change some fields of a note (JSON merge patch)", note_fields_schema(false)));
        trellis::RouteInfo remove_doc = by_id("Delete a note (If-Match makes it conditional)", nullptr);
        remove_doc.response_schema = nullptr;
        context.del("/{id}", [this](trellis::Request& rq, trellis::Response& rs) { remove(rq, rs); }, remove_doc);
    }

private:
    // Until an auth plugin sets the attribute `user.id` (JSON text), all notes have one owner.
    static std::string owner(const trellis::Request& request) {
        if (auto attribute = request.attribute("user.id")) {
            const json value = json::parse(*attribute, nullptr, false);
            if (value.is_string()) return value.get<std::string>();
        }
        return "default";
    }

    static std::int64_t id_of(const trellis::Request& request) {
        auto id = parse_id(request.param("id").value_or(""));
        if (!id) throw HttpError(404, "not_found", "There is no note with this id.");
        return *id;
    }

    // The collection's path as the client used it (the mount is the admin's choice).
    static std::string collection(const trellis::Request& request, bool item) {
        std::string path(request.path());
        if (item) path.erase(path.rfind('/'));
        while (path.size() > 1 && path.back() == '/') path.pop_back();
        return path;
    }

    // The host has checked the query against list_query_schema: limit is an integer in range,
    // sort one of kSorts (optionally with '-'), pinned true or false.
    void list(trellis::Request& request, trellis::Response& response) {
        int limit = default_limit_;
        if (auto text = request.query("limit")) limit = std::stoi(std::string(*text));
        std::string sort_text(request.query("sort").value_or("id"));
        const bool descending = !sort_text.empty() && sort_text.front() == '-';
        const std::string_view sort_name = descending ? std::string_view(sort_text).substr(1) : sort_text;
        const SortKey* sort = &kSorts.front();
        for (const auto& key : kSorts)
            if (key.name == sort_name) sort = &key;
        std::optional<bool> pinned;
        if (auto text = request.query("pinned")) pinned = *text == "true";

        std::string sql = std::string("SELECT ") + kColumns + " FROM notes WHERE owner = :owner";
        Params params{{"owner", owner(request)}};
        if (pinned) {
            sql += " AND pinned = :pinned";
            params.emplace_back("pinned", *pinned);
        }
        if (auto title = request.query("title")) {
            sql += " AND title = :title";
            params.emplace_back("title", *title);
        }
        if (auto q = request.query("q")) {
            std::string pattern = "%";
            for (char c : *q) {
                if (c == '%' || c == '_' || c == '\\') pattern += '\\';
                pattern += c;
            }
            pattern += '%';
            sql += " AND LOWER(title) LIKE LOWER(:q) ESCAPE '\\'";
            params.emplace_back("q", pattern);
        }
        const std::string column(sort->column);
        const char* cmp = descending ? "<" : ">";
        if (auto cursor = request.query("cursor")) {
            const auto decoded = base64url_decode(*cursor);
            const json state = decoded ? json::parse(*decoded, nullptr, false) : json();
            // Checked member by member: a cursor is client text, and json's typed reads throw.
            const bool valid = state.is_object() && state.contains("s") && state["s"].is_string() &&
                               state["s"].get_ref<const std::string&>() == sort_text && state.contains("id") &&
                               state["id"].is_number_integer() && state.contains("v") &&
                               (sort->integer ? state["v"].is_number_integer() : state["v"].is_string());
            if (!valid)
                throw HttpError(400, "invalid_cursor",
                                "The cursor is not one this server gave out for this sort; start again without it.");
            if (sort->integer) {
                sql += " AND id " + std::string(cmp) + " :after_id";
            } else {
                sql += " AND (" + column + " " + cmp + " :after_value OR (" + column + " = :after_value AND id " +
                       cmp + " :after_id))";
                params.emplace_back("after_value", state["v"].get<std::string>());
            }
            params.emplace_back("after_id", state["id"].get<std::int64_t>());
        }
        const char* direction = descending ? " DESC" : " ASC";
        sql += " ORDER BY " + column + direction;
        if (!sort->integer) sql += std::string(", id") + direction;
        sql += " LIMIT :limit";
        params.emplace_back("limit", limit + 1);

        auto rows = db_->query(sql, params);
        json items = json::array();
        for (std::size_t i = 0; i < rows.size() && i < static_cast<std::size_t>(limit); ++i)
            items.push_back(note_json(rows[i]));

        json next = nullptr;
        if (rows.size() > static_cast<std::size_t>(limit)) {
            const json& last = items.back();
            json state = {{"s", sort_text}, {"id", last["id"]}, {"v", last[std::string(sort->name)]}};
            std::string query = "?limit=" + std::to_string(limit) + "&cursor=" + base64url_encode(state.dump());
            if (request.query("sort")) query += "&sort=" + trellis::url_encode(sort_text);
            for (const char* filter : {"pinned", "title", "q"})
                if (auto value = request.query(filter)) query += std::string("&") + filter + "=" + trellis::url_encode(*value);
            next = collection(request, false) + query;
            // Absolute, on the URL base the client used (behind a trusted proxy: its scheme and host).
            const std::string base(request.attribute("trellis.base_url").value_or(""));
            response.header("Link", "<" + base + next.get<std::string>() + ">; rel=\"next\"");
        }
        response.json({{"items", items}, {"next", next}});
    }

    void get(trellis::Request& request, trellis::Response& response) {
        const std::int64_t id = id_of(request);
        auto rows = db_->query(std::string("SELECT ") + kColumns + " FROM notes WHERE id = :id AND owner = :owner",
                               {{"id", id}, {"owner", owner(request)}});
        if (rows.empty()) throw HttpError(404, "not_found", "There is no note with this id.");
        const std::string tag = etag(id, rows[0].get<std::int64_t>("version"));
        response.header("ETag", tag);
        if (auto match = request.header("If-None-Match"); match && etag_listed(*match, tag, true)) {
            response.status(304);
            return;
        }
        response.json(note_json(rows[0]));
    }

    void create(trellis::Request& request, trellis::Response& response) {
        const Input in = read_input(request);
        const std::string now = now_iso();
        trellis::Rows rows = [&] {
            try {
                return db_->query(std::string("INSERT INTO notes (owner, title, body, pinned, version, created_at, "
                                              "updated_at) VALUES (:owner, :title, :body, :pinned, 1, :now, :now) "
                                              "RETURNING ") +
                                      kColumns,
                                  {{"owner", owner(request)},
                                   {"title", *in.title},
                                   {"body", in.body.value_or("")},
                                   {"pinned", in.pinned.value_or(false)},
                                   {"now", now}});
            } catch (const trellis::DbConflict&) {
                throw HttpError(409, "duplicate_title", "A note with this title exists already.");
            }
        }();
        const json note = note_json(rows[0]);
        const std::int64_t id = note["id"].get<std::int64_t>();
        response.status(201);
        std::string location = collection(request, false);  // "/" when mounted at the root
        if (location.back() != '/') location += '/';
        response.header("Location", location + std::to_string(id));
        response.header("ETag", etag(id, note["version"].get<std::int64_t>()));
        response.json(note);
    }

    // PUT replaces (title required; body and pinned fall back to their defaults), PATCH
    // changes what is present. With If-Match, the version is part of the UPDATE's WHERE,
    // so a concurrent change between reading and writing cannot be overwritten.
    void update(trellis::Request& request, trellis::Response& response, bool full) {
        const std::int64_t id = id_of(request);
        const Input in = read_input(request);
        Params params{{"id", id}, {"owner", owner(request)}, {"now", now_iso()}};
        std::string sql = "UPDATE notes SET version = version + 1, updated_at = :now";
        if (full) {
            sql += ", title = :title, body = :body, pinned = :pinned";
            params.emplace_back("title", *in.title);
            params.emplace_back("body", in.body.value_or(""));
            params.emplace_back("pinned", in.pinned.value_or(false));
        } else {
            if (in.title) {
                sql += ", title = :title";
                params.emplace_back("title", *in.title);
            }
            if (in.body) {
                sql += ", body = :body";
                params.emplace_back("body", *in.body);
            }
            if (in.pinned) {
                sql += ", pinned = :pinned";
                params.emplace_back("pinned", *in.pinned);
            }
        }
        sql += " WHERE id = :id AND owner = :owner";
        const bool conditional = add_if_match(request, id, sql, params);
        sql += std::string(" RETURNING ") + kColumns;

        auto connection = db_->connect();
        trellis::Rows rows = [&] {
            try {
                return connection.query(sql, params);
            } catch (const trellis::DbConflict&) {
                throw HttpError(409, "duplicate_title", "Another note has this title already.");
            }
        }();
        if (rows.empty()) not_changed(connection, request, id, conditional);
        const json note = note_json(rows[0]);
        response.header("ETag", etag(id, note["version"].get<std::int64_t>()));
        response.json(note);
    }

    void remove(trellis::Request& request, trellis::Response& response) {
        const std::int64_t id = id_of(request);
        Params params{{"id", id}, {"owner", owner(request)}};
        std::string sql = "DELETE FROM notes WHERE id = :id AND owner = :owner";
        const bool conditional = add_if_match(request, id, sql, params);
        auto connection = db_->connect();
        if (connection.execute(sql, params) == 0) not_changed(connection, request, id, conditional);
        response.status(204);
    }

    // Appends the If-Match condition; false when the request has none (or "*", which any
    // existing note matches). A tag that is not one of ours can match nothing.
    static bool add_if_match(const trellis::Request& request, std::int64_t id, std::string& sql, Params& params) {
        auto match = request.header("If-Match");
        if (!match || etag_listed(*match, "*", false)) return false;
        std::vector<std::int64_t> versions;
        for (std::string_view item : header_items(*match))
            if (auto version = version_from_etag(item, id)) versions.push_back(*version);
        if (versions.empty()) {
            sql += " AND 1 = 0";
            return true;
        }
        sql += " AND version IN (";
        for (std::size_t i = 0; i < versions.size(); ++i) {
            const std::string name = "if_match_" + std::to_string(i);
            sql += (i ? ", :" : ":") + name;
            params.emplace_back(name, versions[i]);
        }
        sql += ")";
        return true;
    }

    // Nothing was updated or deleted: 412 when the note exists (its version did not match),
    // 404 otherwise.
    [[noreturn]] void not_changed(trellis::Connection& connection, const trellis::Request& request, std::int64_t id,
                                  bool conditional) const {
        if (conditional) {
            auto exists = connection.query("SELECT version FROM notes WHERE id = :id AND owner = :owner",
                                           {{"id", id}, {"owner", owner(request)}});
            if (!exists.empty())
                throw HttpError(412, "precondition_failed",
                                "The note changed since you read it (If-Match does not match its ETag).",
                                {{"etag", etag(id, exists[0].get<std::int64_t>("version"))}});
        }
        throw HttpError(404, "not_found", "There is no note with this id.");
    }

    std::optional<trellis::Database> db_;  // set in init, used by every handler
    int default_limit_ = 20;
    int max_limit_ = 100;
};

}  // namespace

TRELLIS_PLUGIN(Notes)
