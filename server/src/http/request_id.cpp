// Request ids: validation and generation (per-thread generator, no locks on the hot path).
#include "http/request_id.hpp"

#include <array>
#include <cstdint>
#include <random>

namespace trellis::http {

bool is_sane_request_id(std::string_view candidate) {
    if (candidate.empty() || candidate.size() > 128) return false;
    for (unsigned char c : candidate) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::string generate_request_id() {
    thread_local std::mt19937_64 engine = [] {
        std::random_device device;
        std::seed_seq seed{device(), device(), device(), device()};
        return std::mt19937_64(seed);
    }();
    static constexpr char digits[] = "0123456789abcdef";
    std::string id(32, '0');
    for (int half = 0; half < 2; ++half) {
        std::uint64_t bits = engine();
        for (int i = 0; i < 16; ++i) {
            id[half * 16 + i] = digits[bits & 0xF];
            bits >>= 4;
        }
    }
    return id;
}

std::string choose_request_id(const std::string* incoming) {
    if (incoming && is_sane_request_id(*incoming)) return *incoming;
    return generate_request_id();
}

}  // namespace trellis::http
