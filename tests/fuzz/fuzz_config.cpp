// Fuzzes configuration loading: the input is written as the main YAML file; lines after a
// "#env" line become TRELLIS_ variables. Loading must succeed or name at least one error.
#include <unistd.h>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace {
const std::filesystem::path& work_dir() {
    static const std::filesystem::path dir = [] {
        auto d = std::filesystem::temp_directory_path() / ("trellis-fuzz-config-" + std::to_string(::getpid()));
        std::filesystem::create_directories(d);
        return d;
    }();
    return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    std::string_view yaml = input;
    std::vector<std::pair<std::string, std::string>> env;
    if (auto marker = input.find("\n#env\n"); marker != std::string_view::npos) {
        yaml = input.substr(0, marker);
        std::string_view rest = input.substr(marker + 6);
        while (!rest.empty()) {
            auto end = rest.find('\n');
            auto line = rest.substr(0, end);
            if (auto eq = line.find('='); eq != std::string_view::npos)
                env.emplace_back("TRELLIS_" + std::string(line.substr(0, eq)), std::string(line.substr(eq + 1)));
            rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
        }
    }
    auto file = work_dir() / "trellis.yaml";
    std::ofstream(file, std::ios::binary | std::ios::trunc) << yaml;
    auto loaded = trellis::config::load({file, env});
    if (!loaded && loaded.error().empty()) std::abort();
    if (loaded && !*loaded) std::abort();
    return 0;
}
