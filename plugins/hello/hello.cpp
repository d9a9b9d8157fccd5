// hello: GET /{name} answers the configured greeting as JSON. The smallest complete plugin.
#include <trellis/plugin.hpp>

namespace {

constexpr const char* config_schema = R"({
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "greeting": {"type": "string", "minLength": 1, "maxLength": 200}
  },
  "additionalProperties": false
})";

class Hello final : public trellis::Plugin {
public:
    static trellis::PluginInfo info() {
        return {"hello", HELLO_VERSION, "Greets whoever the path names", {}, config_schema};
    }

    void init(trellis::Context& context) override {
        greeting_ = context.config().value("greeting", std::string("Hello"));
        trellis::RouteInfo doc;
        doc.summary = "Greet someone";
        doc.tags = {"hello"};
        doc.response_schema = {{"type", "object"},
                               {"properties", {{"greeting", {{"type", "string"}}}, {"name", {{"type", "string"}}}}}};
        // Never blocks (no database, no I/O): it may run inline on an event-loop thread.
        context.non_blocking().get(
            "/{name}",
            [this](trellis::Request& request, trellis::Response& response) {
                std::string name(request.param("name").value_or(""));
                // What response.json({{"greeting", ...}, {"name", name}}) sends, written
                // directly: building and freeing the json object cost more than the host's
                // whole request path.
                std::string body;
                body.reserve(32 + greeting_.size() + 2 * name.size());  // grows only for escapes
                body += "{\"greeting\":";
                trellis::append_json_string(body, greeting_ + ", " + name + "!");
                body += ",\"name\":";
                trellis::append_json_string(body, name);
                body += '}';
                response.header("Content-Type", "application/json").body(body);
            },
            doc);
    }

private:
    std::string greeting_;  // set once in init, read-only while serving
};

}  // namespace

TRELLIS_PLUGIN(Hello)
