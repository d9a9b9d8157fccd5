#include "runtime/openapi.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>

#include "plugin/instance.hpp"
#include "plugin/request_schema.hpp"

namespace trellis::runtime {
namespace {

using nlohmann::json;

// The {name} segments of a path template, in order.
std::vector<std::string> path_names(const std::string& path) {
    std::vector<std::string> names;
    for (std::size_t open = path.find('{'); open != std::string::npos; open = path.find('{', open + 1)) {
        const auto close = path.find('}', open);
        if (close == std::string::npos) break;
        names.push_back(path.substr(open + 1, close - open - 1));
    }
    return names;
}

// "GET /notes/{id}" -> "notes.get_notes_id": unique per method and path, stable across runs.
std::string operation_id(const std::string& plugin, const std::string& method, const std::string& path) {
    std::string id = plugin + ".";
    for (char c : method) id += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool separator = true;
    for (char c : path) {
        if (std::isalnum(static_cast<unsigned char>(c))) {
            if (separator) id += '_';
            id += c;
            separator = false;
        } else {
            separator = true;
        }
    }
    return id;
}

json parse_or_null(const std::string& text) {
    if (text.empty()) return nullptr;
    return json::parse(text, nullptr, false);  // checked at registration; discarded is never kept
}

// The parameters of one location ("query", "path") from an object schema's properties.
void add_parameters(json& parameters, const json& schema, const char* in, std::set<std::string>& named) {
    if (!schema.is_object()) return;
    const auto properties = schema.find("properties");
    if (properties == schema.end() || !properties->is_object()) return;
    std::set<std::string> required;
    if (auto list = schema.find("required"); list != schema.end() && list->is_array())
        for (const auto& name : *list)
            if (name.is_string()) required.insert(name.get<std::string>());
    for (const auto& [name, property] : properties->items()) {
        json parameter = {{"name", name}, {"in", in}, {"schema", property}};
        if (std::string(in) == "path" || required.count(name)) parameter["required"] = true;
        if (property.is_object() && property.contains("description") && property["description"].is_string())
            parameter["description"] = property["description"];
        if (property.is_object() && property.value("type", json()) == "array") {
            parameter["style"] = "form";
            parameter["explode"] = true;
        }
        parameters.push_back(std::move(parameter));
        named.insert(name);
    }
}

json problem_response(const char* description) {
    return {{"description", description},
            {"content", {{"application/problem+json", {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}};
}

json problem_schema() {
    return {{"type", "object"},
            {"description", "RFC 9457 problem details; `code` is stable and machine-readable"},
            {"required", {"type", "title", "status", "code"}},
            {"properties",
             {{"type", {{"type", "string"}}},
              {"title", {{"type", "string"}}},
              {"status", {{"type", "integer"}}},
              {"code", {{"type", "string"}}},
              {"detail", {{"type", "string"}}},
              {"instance", {{"type", "string"}}},
              {"request_id", {{"type", "string"}}},
              {"errors",
               {{"type", "array"},
                {"maxItems", 20},
                {"items",
                 {{"type", "object"},
                  {"properties",
                   {{"field", {{"type", "string"}, {"description", "a JSON pointer into the body or the parameters"}}},
                    {"message", {{"type", "string"}}}}}}}}},
              {"errors_omitted", {{"type", "integer"}}}}}};
}

}  // namespace

json openapi_document(const Runtime& runtime) {
    const auto& config = runtime.config();
    json paths = json::object();
    std::set<std::string> tags;
    std::set<std::string> schemes_used;
    for (const auto& target : runtime.targets()) {
        const auto& route = *target.route;
        const std::string& plugin = target.instance->name();
        json operation = {{"operationId", operation_id(plugin, target.method, target.full_path)}};
        if (!route.summary.empty()) operation["summary"] = route.summary;
        json route_tags = parse_or_null(route.tags_json);
        if (!route_tags.is_array() || route_tags.empty()) route_tags = json::array({plugin});
        operation["tags"] = route_tags;
        for (const auto& tag : route_tags)
            if (tag.is_string()) tags.insert(tag.get<std::string>());

        json parameters = json::array();
        std::set<std::string> named;
        add_parameters(parameters, parse_or_null(route.path_schema_json), "path", named);
        for (const auto& name : path_names(target.full_path))
            if (!named.count(name))  // undeclared: a non-empty segment
                parameters.push_back(
                    {{"name", name}, {"in", "path"}, {"required", true}, {"schema", {{"type", "string"}, {"minLength", 1}}}});
        add_parameters(parameters, parse_or_null(route.query_schema_json), "query", named);
        if (!parameters.empty()) operation["parameters"] = std::move(parameters);

        if (json body = parse_or_null(route.request_schema_json); !body.is_null() && !body.is_discarded())
            operation["requestBody"] = {{"required", true}, {"content", {{"application/json", {{"schema", body}}}}}};

        json success = {{"description", "Success"}};
        if (json answer = parse_or_null(route.response_schema_json); !answer.is_null() && !answer.is_discarded())
            success["content"] = {{"application/json", {{"schema", answer}}}};
        operation["responses"] = {{"2XX", success},
                                  {"4XX", problem_response("The request was refused (see `code`)")},
                                  {"5XX", problem_response("The server could not answer")}};

        if (target.requires_auth) {
            // The route's requirements, or bearer tokens when only scopes say it needs a
            // principal; the effective scopes (config wins) are listed with each scheme.
            json security = parse_or_null(route.security_json);
            if (!security.is_array() || security.empty()) security = json::array({json{{"bearer", json::array()}}});
            for (auto& requirement : security)
                for (auto& [scheme, scopes] : requirement.items()) {
                    scopes = target.scopes;
                    schemes_used.insert(scheme);
                }
            operation["security"] = std::move(security);
            operation["x-trellis-scopes"] = target.scopes;
            operation["responses"]["401"] = problem_response("No credentials, or credentials the server refuses");
            if (!target.scopes.empty())
                operation["responses"]["403"] = problem_response("The credentials lack a required scope");
        }
        operation["x-trellis-plugin"] = plugin;

        std::string method = target.method;
        std::transform(method.begin(), method.end(), method.begin(), [](unsigned char c) { return std::tolower(c); });
        paths[target.full_path][method] = std::move(operation);
    }

    json components = {{"schemas", {{"Problem", problem_schema()}}}};
    if (!schemes_used.empty()) {
        json schemes = json::object();
        for (const auto& name : schemes_used)
            if (plugin::known_security_schemes().contains(name)) schemes[name] = plugin::known_security_schemes()[name];
        components["securitySchemes"] = std::move(schemes);
    }
    json tag_list = json::array();
    for (const auto& tag : tags) tag_list.push_back({{"name", tag}});

    return {{"openapi", "3.1.0"},
            {"jsonSchemaDialect", "http://json-schema.org/draft-07/schema#"},
            {"info",
             {{"title", config.openapi.title},
              {"version", TRELLIS_VERSION},
              {"description", "Generated by Trellis from the routes of the enabled plugins."}}},
            {"paths", std::move(paths)},
            {"components", std::move(components)},
            {"tags", std::move(tag_list)}};
}

}  // namespace trellis::runtime
