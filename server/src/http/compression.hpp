// Response compression: gzip (zlib) and brotli, chosen by Accept-Encoding (RFC 9110
// §12.5.3), for listed content types above a minimum size.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"

namespace trellis::http {

struct CompressionSettings {
    bool enabled = true;
    std::size_t min_size = 1024;
    // Media types, lower case; "text/*" covers every text type.
    std::vector<std::string> content_types{"text/*",
                                           "application/json",
                                           "application/problem+json",
                                           "application/javascript",
                                           "application/xml",
                                           "application/ld+json",
                                           "application/manifest+json",
                                           "application/wasm",
                                           "image/svg+xml"};
    int gzip_level = 6;      // zlib 1..9
    int brotli_quality = 4;  // 0..11; brotli's default 11 is far too slow for responses
};

enum class Coding { identity, gzip, br };
std::string_view to_string(Coding coding);  // "identity", "gzip", "br"

// The coding to use for an Accept-Encoding value: the highest q among br and gzip (q=0
// excludes, "*" stands for codings not named), ties prefer br then gzip; identity when
// neither is acceptable, when identity is preferred, or without the header.
Coding choose_coding(const std::string* accept_encoding);

// True when the media type of `content_type` is in the list.
bool compressible_type(std::string_view content_type, const std::vector<std::string>& types);

std::string gzip(std::string_view data, int level);
std::string brotli(std::string_view data, int quality);

// What compress() will do with a response.
enum class Plan {
    none,      // not eligible: nothing to change
    vary,      // eligible type, but not compressed (size, Accept-Encoding): Vary only
    compress,  // compress with the chosen coding
};
struct Decision {
    Plan plan = Plan::none;
    Coding coding = Coding::identity;
};
Decision plan_compression(const Request& request, const Response& response, const CompressionSettings& settings);

// Carries out a decision: adds Vary: Accept-Encoding and, for Plan::compress, replaces
// the body when the result is smaller, sets Content-Encoding and weakens a strong ETag.
void apply_compression(Response& response, const Decision& decision, const CompressionSettings& settings);

}  // namespace trellis::http
