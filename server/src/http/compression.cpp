// Response compression; see compression.hpp.
#include "http/compression.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

#include <brotli/encode.h>
#include <zlib.h>

namespace trellis::http {
namespace {

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

// "1", "0.5", "0.000", "1.0" (RFC 9110 §12.4.2: at most three decimals, 0..1); nullopt otherwise.
std::optional<double> parse_qvalue(std::string_view text) {
    if (text.empty() || text.size() > 5 || (text[0] != '0' && text[0] != '1')) return std::nullopt;
    if (text.size() > 1 && text[1] != '.') return std::nullopt;
    if (text.size() > 2 && !std::ranges::all_of(text.substr(2), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    double value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > 1.0) return std::nullopt;
    return value;
}

bool has_token(std::string_view list, std::string_view token) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        if (iequals(trim(list.substr(0, comma)), token)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
    return false;
}

}  // namespace

std::string_view to_string(Coding coding) {
    switch (coding) {
        case Coding::gzip: return "gzip";
        case Coding::br: return "br";
        case Coding::identity: break;
    }
    return "identity";
}

Coding choose_coding(const std::string* accept_encoding) {
    if (!accept_encoding) return Coding::identity;
    std::optional<double> br, gzip_q, identity, star;
    std::string_view rest = *accept_encoding;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        std::string_view item = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (item.empty()) continue;
        const auto semicolon = item.find(';');
        const std::string_view coding = trim(item.substr(0, semicolon));
        double q = 1.0;
        if (semicolon != std::string_view::npos) {
            std::string_view param = trim(item.substr(semicolon + 1));
            if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=') continue;  // malformed: ignored
            const auto parsed = parse_qvalue(trim(param.substr(2)));
            if (!parsed) continue;
            q = *parsed;
        }
        if (iequals(coding, "br"))
            br = q;
        else if (iequals(coding, "gzip") || iequals(coding, "x-gzip"))
            gzip_q = q;
        else if (iequals(coding, "identity"))
            identity = q;
        else if (coding == "*")
            star = q;
    }
    const double br_q = br.value_or(star.value_or(0.0));
    const double gz_q = gzip_q.value_or(star.value_or(0.0));
    const double best = std::max(br_q, gz_q);
    if (best <= 0.0) return Coding::identity;
    // identity is acceptable unless excluded; it wins only when the client prefers it.
    if (identity && *identity > best) return Coding::identity;
    return br_q >= gz_q ? Coding::br : Coding::gzip;
}

bool compressible_type(std::string_view content_type, const std::vector<std::string>& types) {
    std::string_view media = trim(content_type.substr(0, content_type.find(';')));
    if (media.empty()) return false;
    return std::ranges::any_of(types, [&](const std::string& type) {
        if (type.ends_with("/*")) {
            const std::string_view prefix = std::string_view(type).substr(0, type.size() - 1);  // "text/"
            return media.size() > prefix.size() && iequals(media.substr(0, prefix.size()), prefix);
        }
        return iequals(media, type);
    });
}

std::string gzip(std::string_view data, int level) {
    z_stream stream{};
    // windowBits 15 + 16: a gzip wrapper rather than zlib's.
    if (deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("gzip: deflateInit2 failed");
    std::string out(deflateBound(&stream, static_cast<uLong>(data.size())) + 32, '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(out.size());
    const int result = deflate(&stream, Z_FINISH);
    const auto written = stream.total_out;
    deflateEnd(&stream);
    if (result != Z_STREAM_END) throw std::runtime_error("gzip: deflate did not finish");
    out.resize(written);
    return out;
}

std::string brotli(std::string_view data, int quality) {
    std::size_t size = BrotliEncoderMaxCompressedSize(data.size());
    if (size == 0) throw std::runtime_error("brotli: input too large");
    std::string out(size, '\0');
    if (!BrotliEncoderCompress(quality, 22, BROTLI_MODE_TEXT, data.size(),
                               reinterpret_cast<const std::uint8_t*>(data.data()), &size,
                               reinterpret_cast<std::uint8_t*>(out.data())))
        throw std::runtime_error("brotli: compression failed");
    out.resize(size);
    return out;
}

Decision plan_compression(const Request& request, const Response& response, const CompressionSettings& settings) {
    Decision decision;
    if (!settings.enabled) return decision;
    const int status = response.status;
    if (status < 200 || status == 204 || status == 206 || status == 304) return decision;
    if (response.header("Content-Encoding") || response.header("Content-Range")) return decision;
    const std::string* type = response.header("Content-Type");
    if (!type || !compressible_type(*type, settings.content_types)) return decision;
    if (const std::string* cache = response.header("Cache-Control"); cache && has_token(*cache, "no-transform"))
        return decision;
    decision.plan = Plan::vary;
    if (response.body.size() < settings.min_size) return decision;
    decision.coding = choose_coding(request.header("Accept-Encoding"));
    if (decision.coding != Coding::identity) decision.plan = Plan::compress;
    return decision;
}

void apply_compression(Response& response, const Decision& decision, const CompressionSettings& settings) {
    if (decision.plan == Plan::none) return;
    if (const std::string* vary = response.header("Vary")) {
        if (!has_token(*vary, "*") && !has_token(*vary, "Accept-Encoding"))
            response.set_header("Vary", *vary + ", Accept-Encoding");
    } else {
        response.set_header("Vary", "Accept-Encoding");
    }
    if (decision.plan != Plan::compress) return;
    std::string encoded = decision.coding == Coding::br ? brotli(response.body, settings.brotli_quality)
                                                        : gzip(response.body, settings.gzip_level);
    if (encoded.size() >= response.body.size()) return;  // not worth it: sent as is
    response.body = std::move(encoded);
    response.set_header("Content-Encoding", to_string(decision.coding));
    // The compressed bytes differ from the identity ones: a strong validator would claim
    // they are byte-for-byte the same.
    if (const std::string* etag = response.header("ETag"); etag && etag->starts_with('"'))
        response.set_header("ETag", "W/" + *etag);
}

}  // namespace trellis::http
