// Request validation against a route's JSON Schemas (draft-07) with valijson. valijson
// checks "pattern" with std::regex, whose recursion a long client-chosen string overflows
// (a 50 000-character string against "^[a-z0-9-]+$" crashes an 8 MiB stack), so patterns
// are handed to RE2 instead: the schema's "pattern" keywords are renamed to a keyword of our
// own before valijson parses it, and a custom constraint checks them in linear time.
#include "plugin/request_schema.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <new>
#include <set>

#include <re2/re2.h>
#include <trellis/plugin.hpp>
// valijson's JSON Pointer code trips g++ 12's -Wrestrict false positive (see schema.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/constraint_builder.hpp>
#include <valijson/constraints/concrete_constraints.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "plugin/schema_errors.hpp"

namespace trellis::plugin {
namespace {

using nlohmann::json;

constexpr std::string_view kPatternKeyword = "x-trellis-pattern";
// additionalProperties: false becomes {"x-trellis-unlisted": true}: valijson reports only the
// first property a false schema refuses, this keyword every one, each at its own pointer.
constexpr std::string_view kUnlistedKeyword = "x-trellis-unlisted";

std::string escape_token(std::string_view token) {
    std::string out;
    for (char c : token) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}

// ---- what the host can check --------------------------------------------------------

const std::set<std::string_view> kAnnotations = {"title",   "description", "default",  "examples",
                                                 "$comment", "readOnly",   "writeOnly"};
const std::set<std::string_view> kPlainKeywords = {
    "type",      "enum",      "const",    "multipleOf", "maximum",     "exclusiveMaximum", "minimum",
    "exclusiveMinimum",       "maxLength", "minLength",  "maxItems",    "minItems",         "uniqueItems",
    "maxProperties",          "minProperties",          "required"};
const std::set<std::string_view> kSubschemaKeywords = {"additionalItems", "additionalProperties", "contains", "if",
                                                       "then",           "else",                 "not",      "propertyNames"};
const std::set<std::string_view> kSchemaListKeywords = {"allOf", "anyOf", "oneOf"};
const std::set<std::string_view> kSchemaMapKeywords = {"properties", "definitions"};

// Checks `schema` (at `pointer`) and renames its "pattern" keywords; the reason when the host
// cannot check a keyword.
std::optional<std::string> check_schema(json& schema, const std::string& pointer) {
    if (schema.is_boolean()) return std::nullopt;
    if (!schema.is_object()) return "'" + pointer + "' is not a schema (an object or a boolean)";
    std::optional<std::string> pattern;
    for (auto& [key, value] : schema.items()) {
        const std::string at = pointer + "/" + escape_token(key);
        if (key.rfind("x-trellis-", 0) == 0)
            return "'" + at + "': keywords starting with x-trellis- are the host's own";
        if (key.rfind("x-", 0) == 0 || kAnnotations.count(key) || kPlainKeywords.count(key)) continue;
        if (key == "$schema") {
            if (!value.is_string() || (value != "http://json-schema.org/draft-07/schema#" &&
                                       value != "http://json-schema.org/draft-07/schema"))
                return "'" + at + "': only JSON Schema draft-07 is supported";
        } else if (key == "$ref") {
            if (!value.is_string() || value.get_ref<const std::string&>().rfind('#', 0) != 0)
                return "'" + at + "': a $ref must point into the same schema (\"#/...\")";
        } else if (key == "format") {
            if (value != "date" && value != "time" && value != "date-time")
                return "'" + at + "': format " + value.dump() +
                       " is not checked by the host (date, time and date-time are); use pattern, enum or "
                       "maxLength, or check it in the handler";
        } else if (key == "pattern") {
            if (!value.is_string()) return "'" + at + "' must be a string";
            RE2::Options options;
            options.set_log_errors(false);
            RE2 compiled(value.get_ref<const std::string&>(), options);
            if (!compiled.ok())
                return "'" + at + "': the pattern cannot be checked (RE2: " + compiled.error() +
                       "; look-around and back-references are not supported)";
            pattern = value.get<std::string>();
        } else if (kSubschemaKeywords.count(key)) {
            if (key == "additionalProperties" && value == false)
                value = {{std::string(kUnlistedKeyword), true}};  // our own: not checked again
            else if (auto error = check_schema(value, at))
                return error;
        } else if (key == "items") {
            if (value.is_array()) {
                for (std::size_t i = 0; i < value.size(); ++i)
                    if (auto error = check_schema(value[i], at + "/" + std::to_string(i))) return error;
            } else if (auto error = check_schema(value, at)) {
                return error;
            }
        } else if (kSchemaListKeywords.count(key)) {
            if (!value.is_array() || value.empty()) return "'" + at + "' must be a non-empty array of schemas";
            for (std::size_t i = 0; i < value.size(); ++i)
                if (auto error = check_schema(value[i], at + "/" + std::to_string(i))) return error;
        } else if (kSchemaMapKeywords.count(key)) {
            if (!value.is_object()) return "'" + at + "' must be an object of schemas";
            for (auto& [name, sub] : value.items())
                if (auto error = check_schema(sub, at + "/" + escape_token(name))) return error;
        } else if (key == "dependencies") {
            if (!value.is_object()) return "'" + at + "' must be an object";
            for (auto& [name, sub] : value.items())
                if (!sub.is_array())
                    if (auto error = check_schema(sub, at + "/" + escape_token(name))) return error;
        } else if (key == "patternProperties") {
            return "'" + at +
                   "': patternProperties is not supported (its patterns would run on client-chosen names with "
                   "std::regex); list the properties, or use propertyNames with a pattern";
        } else {
            return "'" + at + "': keyword '" + key + "' is not one the host checks (draft-07 validation keywords, " +
                   "annotations and \"x-\" extensions are)";
        }
    }
    if (pattern) {
        schema.erase("pattern");
        schema[std::string(kPatternKeyword)] = *pattern;
    }
    return std::nullopt;
}

// ---- RE2 in place of std::regex for "pattern" ---------------------------------------

class SafePattern final : public valijson::constraints::PolyConstraint {
public:
    explicit SafePattern(std::shared_ptr<const RE2> regex) : regex_(std::move(regex)) {}

    bool validate(const valijson::adapters::Adapter& target, const std::vector<std::string>& context,
                  valijson::ValidationResults* results) const override {
        if (!target.isString()) return true;  // like every string keyword, others pass
        if (RE2::PartialMatch(target.asString(), *regex_)) return true;
        if (results) results->pushError(context, "Failed to match the pattern " + regex_->pattern() + ".");
        return false;
    }

private:
    valijson::constraints::Constraint* cloneInto(void* memory) const override { return new (memory) SafePattern(*this); }
    size_t sizeOf() const override { return sizeof(SafePattern); }

    std::shared_ptr<const RE2> regex_;
};

class SafePatternBuilder final : public valijson::ConstraintBuilder {
public:
    valijson::constraints::Constraint* make(const valijson::adapters::Adapter& value) const override {
        RE2::Options options;
        options.set_log_errors(false);
        return new SafePattern(std::make_shared<const RE2>(value.asString(), options));
    }
};

// Refuses any value: the schema of the properties an object does not list.
class Unlisted final : public valijson::constraints::PolyConstraint {
public:
    bool validate(const valijson::adapters::Adapter&, const std::vector<std::string>& context,
                  valijson::ValidationResults* results) const override {
        if (results) results->pushError(context, "is not allowed here (not a listed property)");
        return false;
    }

private:
    valijson::constraints::Constraint* cloneInto(void* memory) const override { return new (memory) Unlisted(*this); }
    size_t sizeOf() const override { return sizeof(Unlisted); }
};

class UnlistedBuilder final : public valijson::ConstraintBuilder {
public:
    valijson::constraints::Constraint* make(const valijson::adapters::Adapter&) const override { return new Unlisted; }
};

// ---- query and path values as JSON ------------------------------------------------------

std::vector<std::string> types_of(const json* schema) {
    std::vector<std::string> types;
    if (!schema || !schema->is_object()) return types;
    auto it = schema->find("type");
    if (it == schema->end()) return types;
    if (it->is_string()) types.push_back(it->get<std::string>());
    if (it->is_array())
        for (const auto& type : *it)
            if (type.is_string()) types.push_back(type.get<std::string>());
    return types;
}

bool has(const std::vector<std::string>& types, std::string_view type) {
    return std::find(types.begin(), types.end(), type) != types.end();
}

// The text as the first of integer, number, boolean the schema allows and the text is.
json convert(const std::string& text, const std::vector<std::string>& types) {
    if ((has(types, "integer") || has(types, "number")) && !text.empty() && text.size() < 40) {
        const char* begin = text.c_str();
        char* end = nullptr;
        errno = 0;
        if (has(types, "integer") && text.find_first_not_of("-0123456789") == std::string::npos) {
            const long long value = std::strtoll(begin, &end, 10);
            if (errno == 0 && end == begin + text.size()) return value;
        }
        if (has(types, "number") && text.find_first_not_of("-+.0123456789eE") == std::string::npos) {
            errno = 0;
            const double value = std::strtod(begin, &end);
            if (errno == 0 && end == begin + text.size() && std::isfinite(value)) return value;
        }
    }
    if (has(types, "boolean") && (text == "true" || text == "false")) return text == "true";
    return text;
}

}  // namespace

// One compiled schema and the document it was compiled from (for the query's types).
struct RequestSchemas::Compiled {
    json document;  // as declared (patterns not renamed)
    valijson::Schema schema;
};

namespace {

std::pair<json, json> as_object(const http::Fields& fields, const json& schema) {
    const json* properties = nullptr;
    if (schema.is_object())
        if (auto it = schema.find("properties"); it != schema.end() && it->is_object()) properties = &*it;
    json object = json::object();
    json repeated = json::array();
    std::vector<std::string> order;
    for (const auto& [name, value] : fields) {
        const json* property = nullptr;
        if (properties)
            if (auto it = properties->find(name); it != properties->end()) property = &*it;
        const auto types = types_of(property);
        if (has(types, "array")) {
            const json* items = property->contains("items") ? &(*property)["items"] : nullptr;
            object[name].push_back(convert(value, types_of(items)));
        } else if (object.contains(name)) {
            if (std::find(order.begin(), order.end(), name) == order.end()) {
                order.push_back(name);
                repeated.push_back({{"field", "/" + escape_token(name)}, {"message", "must be given at most once"}});
            }
        } else {
            object[name] = convert(value, types);
        }
    }
    return {std::move(object), std::move(repeated)};
}

// The innermost errors as {field, message}, at most kMaxListedErrors listed.
void collect(const valijson::ValidationResults& results, SchemaFailure& failure) {
    for (auto& error : innermost_errors(results)) {
        if (failure.errors.size() < kMaxListedErrors)
            failure.errors.push_back({{"field", std::move(error.pointer)}, {"message", std::move(error.message)}});
        else
            ++failure.omitted;
    }
}

std::optional<SchemaFailure> validate(const RequestSchemas::Compiled& compiled, const json& value, json early_errors,
                                      int status, std::string code, std::string detail) {
    SchemaFailure failure{status, std::move(code), std::move(detail), json::array(), 0};
    for (auto& entry : early_errors) failure.errors.push_back(std::move(entry));
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter target(value);
    if (validator.validate(compiled.schema, target, &results) && failure.errors.empty()) return std::nullopt;
    collect(results, failure);
    if (failure.errors.empty()) failure.errors.push_back({{"field", ""}, {"message", "does not match the schema"}});
    return failure;
}

tl::expected<std::unique_ptr<RequestSchemas::Compiled>, std::string> compile_one(std::string_view text,
                                                                                 std::string_view what) {
    auto compiled = std::make_unique<RequestSchemas::Compiled>();
    json renamed;
    try {
        compiled->document = json::parse(text);
    } catch (const json::exception& e) {
        return tl::unexpected("the " + std::string(what) + " is not JSON: " + e.what());
    }
    if (!compiled->document.is_object() && !compiled->document.is_boolean())
        return tl::unexpected("the " + std::string(what) + " is not a schema (an object or a boolean)");
    renamed = compiled->document;
    if (auto error = check_schema(renamed, "")) return tl::unexpected("the " + std::string(what) + ": " + *error);
    try {
        valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
        parser.addConstraintBuilder(std::string(kPatternKeyword), new SafePatternBuilder);
        parser.addConstraintBuilder(std::string(kUnlistedKeyword), new UnlistedBuilder);
        valijson::adapters::NlohmannJsonAdapter adapter(renamed);
        parser.populateSchema(adapter, compiled->schema);
    } catch (const std::exception& e) {
        return tl::unexpected("the " + std::string(what) + " is not valid: " + e.what());
    }
    return compiled;
}

}  // namespace

RequestSchemas::RequestSchemas() = default;
RequestSchemas::~RequestSchemas() = default;

tl::expected<std::shared_ptr<const RequestSchemas>, std::string> RequestSchemas::compile(std::string_view body_schema,
                                                                                          std::string_view query_schema,
                                                                                          std::string_view path_schema) {
    std::shared_ptr<RequestSchemas> schemas(new RequestSchemas);
    const std::pair<std::string_view, std::unique_ptr<Compiled>*> parts[] = {
        {body_schema, &schemas->body_}, {query_schema, &schemas->query_}, {path_schema, &schemas->path_}};
    const char* names[] = {"request body schema", "query schema", "path parameter schema"};
    for (std::size_t i = 0; i < std::size(parts); ++i) {
        if (parts[i].first.empty()) continue;
        auto compiled = compile_one(parts[i].first, names[i]);
        if (!compiled) return tl::unexpected(compiled.error());
        *parts[i].second = std::move(*compiled);
    }
    if (!schemas->body_ && !schemas->query_ && !schemas->path_) return std::shared_ptr<const RequestSchemas>();
    return std::shared_ptr<const RequestSchemas>(std::move(schemas));
}

std::optional<SchemaFailure> RequestSchemas::check(const http::Request& request) const {
    if (path_) {
        auto [object, repeated] = as_object(request.path_params, path_->document);
        if (auto failure = validate(*path_, object, std::move(repeated), 404, "not_found",
                                    "No resource matches this path."))
            return failure;
    }
    if (query_) {
        auto [object, repeated] = as_object(request.query_params, query_->document);
        if (auto failure = validate(*query_, object, std::move(repeated), 400, "invalid_query",
                                    "The query has invalid parameters."))
            return failure;
    }
    if (body_) {
        json body;
        try {
            const auto* type = request.header("Content-Type");
            trellis::require_json_media_type(type ? std::optional<std::string_view>(*type) : std::nullopt);
            body = trellis::parse_json_body(request.body);
        } catch (const trellis::HttpError& e) {
            return SchemaFailure{e.status(), e.code(), e.detail(), json::array(), 0};
        }
        if (auto failure = validate(*body_, body, json::array(), 422, "validation_failed",
                                    "The request body does not match the schema of this route."))
            return failure;
    }
    return std::nullopt;
}

const nlohmann::json& known_security_schemes() {
    static const nlohmann::json schemes = {
        {"bearer",
         {{"type", "http"},
          {"scheme", "bearer"},
          {"bearerFormat", "JWT"},
          {"description", "An access token: Authorization: Bearer <token>"}}},
        {"apiKey",
         {{"type", "apiKey"},
          {"in", "header"},
          {"name", "X-API-Key"},
          {"description", "An API key in X-API-Key (or Authorization: ApiKey <key>)"}}},
    };
    return schemes;
}

}  // namespace trellis::plugin
