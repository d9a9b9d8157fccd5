// Decoders for tests that check what the server compressed: zlib's and brotli's own.
#pragma once

#include <string>

namespace trellis::test {

// The gzip member in `data`, inflated; fails the test on a malformed stream.
std::string gunzip(const std::string& data);
// The brotli stream in `data`, decoded; fails the test on a malformed stream.
std::string unbrotli(const std::string& data);

}  // namespace trellis::test
