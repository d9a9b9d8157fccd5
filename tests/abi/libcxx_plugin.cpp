// ABI fixture: a plugin written with the C++ SDK and built by clang++ with libc++ (see
// tests/fixtures/CMakeLists.txt), loaded by the g++/libstdc++ host. It uses the standard
// library and exceptions freely on its own side of the boundary.
#include <map>
#include <stdexcept>
#include <string>

#include <trellis/plugin.hpp>

namespace {

class LibcxxPlugin final : public trellis::Plugin {
public:
    static trellis::PluginInfo info() { return {"libcxx", "1.0.0", "built with clang++ and libc++", {}, {}}; }

    void init(trellis::Context& context) override {
        context.post("/items/{id}", [this](trellis::Request& request, trellis::Response& response) {
            auto body = request.json_body();
            std::map<std::string, int> counts;
            for (const auto& tag : body.value("tags", std::vector<std::string>{})) ++counts[tag];
            std::string caught;
            try {
                throw std::runtime_error("thrown and caught inside the plugin");
            } catch (const std::exception& e) {
                caught = e.what();
            }
            response.status(201).json({{"id", std::string(*request.param("id"))},
                                       {"name", body.value("name", std::string())},
                                       {"tag_counts", counts},
                                       {"caught", caught},
                                       {"calls", ++calls_},
                                       {"stdlib", stdlib()}});
        });
        // 1.2: the non-blocking flag from an SDK built with another toolchain.
        context.non_blocking().get("/invalid", [](trellis::Request&, trellis::Response&) {
            throw trellis::HttpError(422, "invalid", "thrown across the plugin's own frames");
        });
    }

private:
    static const char* stdlib() {
#ifdef _LIBCPP_VERSION
        return "libc++";
#else
        return "other";
#endif
    }
    int calls_ = 0;
};

}  // namespace

TRELLIS_PLUGIN(LibcxxPlugin)
