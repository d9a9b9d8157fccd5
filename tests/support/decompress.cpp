// Decoders for tests that check what the server compressed.
#include "support/decompress.hpp"

#include <catch2/catch.hpp>

#include <cstdint>

#include <brotli/decode.h>
#include <zlib.h>

namespace trellis::test {

std::string gunzip(const std::string& data) {
    z_stream stream{};
    REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK);
    std::string out(1 << 20, '\0');
    std::string result;
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream.avail_in = static_cast<uInt>(data.size());
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        stream.next_out = reinterpret_cast<Bytef*>(out.data());
        stream.avail_out = static_cast<uInt>(out.size());
        rc = inflate(&stream, Z_NO_FLUSH);
        REQUIRE((rc == Z_OK || rc == Z_STREAM_END));
        result.append(out.data(), out.size() - stream.avail_out);
    }
    inflateEnd(&stream);
    return result;
}

std::string unbrotli(const std::string& data) {
    auto* state = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
    std::string result;
    std::size_t available_in = data.size();
    const auto* next_in = reinterpret_cast<const std::uint8_t*>(data.data());
    BrotliDecoderResult rc = BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT;
    std::string out(1 << 20, '\0');
    while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
        std::size_t available_out = out.size();
        auto* next_out = reinterpret_cast<std::uint8_t*>(out.data());
        rc = BrotliDecoderDecompressStream(state, &available_in, &next_in, &available_out, &next_out, nullptr);
        result.append(out.data(), out.size() - available_out);
    }
    BrotliDecoderDestroyInstance(state);
    REQUIRE(rc == BROTLI_DECODER_RESULT_SUCCESS);
    return result;
}

}  // namespace trellis::test
