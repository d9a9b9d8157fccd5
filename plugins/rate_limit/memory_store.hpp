// rate_limit: the in-memory backend. Sharded maps of theoretical arrival times under short
// mutex holds, so it may run inline on an event loop; expired entries are swept and the
// number of live entries is capped, so memory stays bounded however many clients come.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy.hpp"

namespace rate_limit {

class MemoryStore {
public:
    static constexpr std::size_t kShards = 32;
    static constexpr std::int64_t kSweepEveryUs = 1000000;

    // max_keys: live partitions across all policies (each shard holds max_keys / kShards).
    explicit MemoryStore(std::size_t max_keys) : per_shard_(std::max<std::size_t>(1, max_keys / kShards)) {}

    // Decides for one request and consumes when allowed. nullopt when a partition would need a
    // new entry in a shard that is full of live ones (the plugin answers 429).
    // `now` is in microseconds of a monotonic clock.
    std::optional<Decision> check(const std::vector<Applicable>& list, std::int64_t now) {
        std::vector<std::string> keys;
        std::vector<std::size_t> shard_of;
        for (std::size_t i = 0; i < list.size(); ++i) {
            // The policy's name keeps two policies with the same key value apart.
            keys.push_back(list[i].policy->name + '\n' + list[i].key);
            shard_of.push_back(std::hash<std::string>{}(keys.back()) % kShards);
        }
        // Lock each shard involved once, in index order (no deadlock between requests).
        std::vector<std::size_t> order(shard_of);
        std::sort(order.begin(), order.end());
        order.erase(std::unique(order.begin(), order.end()), order.end());
        std::vector<std::unique_lock<std::mutex>> locks;
        for (std::size_t s : order) locks.emplace_back(shards_[s].mutex);

        std::vector<std::int64_t> stored;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            Shard& shard = shards_[shard_of[i]];
            if (now - shard.last_sweep >= kSweepEveryUs) sweep(shard, now);
            auto it = shard.tats.find(keys[i]);
            if (it == shard.tats.end() && shard.tats.size() >= per_shard_) {
                // At most one extra sweep per shard per 100 ms, so a full shard under a flood
                // of new keys does not sweep on every request.
                if (now - shard.last_sweep >= kSweepEveryUs / 10) sweep(shard, now);
                if (shard.tats.size() >= per_shard_) return std::nullopt;
            }
            stored.push_back(it == shard.tats.end() ? 0 : it->second);
        }
        Decision d = decide(now, policies_of(list), stored);
        if (d.allowed)
            for (std::size_t i = 0; i < keys.size(); ++i) shards_[shard_of[i]].tats[keys[i]] = d.new_tats[i];
        return d;
    }

    // Live and not yet swept entries, for tests and the note on memory use.
    std::size_t size() {
        std::size_t n = 0;
        for (auto& shard : shards_) {
            std::lock_guard<std::mutex> lock(shard.mutex);
            n += shard.tats.size();
        }
        return n;
    }

private:
    struct Shard {
        std::mutex mutex;
        std::unordered_map<std::string, std::int64_t> tats;
        std::int64_t last_sweep = 0;
    };

    // An entry whose arrival time has passed is the same as no entry: drop it.
    static void sweep(Shard& shard, std::int64_t now) {
        for (auto it = shard.tats.begin(); it != shard.tats.end();)
            it = it->second <= now ? shard.tats.erase(it) : std::next(it);
        shard.last_sweep = now;
    }

    std::size_t per_shard_;
    std::array<Shard, kShards> shards_;
};

}  // namespace rate_limit
