// A host without listeners for the embedding API (trellis/embed.h): the configuration comes as
// YAML text, the data folder may be a temporary one, and requests go straight to the host's
// pipeline, as the public listener's engine would hand them over.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "host/host.hpp"
#include "http/message.hpp"

namespace trellis::embed {

class EmbeddedHost {
public:
    // Errors joined into one message, one per line.
    static tl::expected<std::unique_ptr<EmbeddedHost>, std::string> create(std::string yaml, std::filesystem::path base_dir);
    ~EmbeddedHost();  // drains the host, then removes the temporary data folder
    EmbeddedHost(const EmbeddedHost&) = delete;
    EmbeddedHost& operator=(const EmbeddedHost&) = delete;

    tl::expected<void, std::string> reload(std::string yaml);

    // The request as an engine would have parsed it; waits for the response. Throws only
    // for resource exhaustion.
    http::Response request(http::Request request) const;

    const std::string& data_dir() const { return data_dir_; }

private:
    EmbeddedHost() = default;
    tl::expected<std::shared_ptr<const config::Config>, config::Errors> load(const std::string& yaml) const;

    std::filesystem::path base_dir_;
    std::filesystem::path temp_dir_;  // empty when the configuration set server.data_dir
    std::string data_dir_;
    bool event_engine_ = true;  // server.engine at creation: whether a worker pool exists
    config::ServerConfig limits_;  // the request limits at creation
    std::mutex reload_mutex_;
    std::string reload_yaml_;  // what the next reload loads, under reload_mutex_
    std::unique_ptr<host::Host> host_;
};

// Splits "Name: value\r\n..." into fields; an error names the line that is not one.
tl::expected<http::Fields, std::string> parse_header_lines(std::string_view text);

}  // namespace trellis::embed
