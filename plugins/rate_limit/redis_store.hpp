// rate_limit: the Redis backend. One EVALSHA per request decides every applicable policy
// atomically on the Redis server (its clock, its state), so several Trellis instances share
// one budget. A small pool of blocking hiredis connections with connect/command timeouts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy.hpp"

struct redisContext;

namespace rate_limit {

// Redis could not answer (unreachable, timeout, an error reply): the caller fails open or closed.
class BackendError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class RedisStore {
public:
    // Reads the password file (throws std::invalid_argument when it cannot); connects lazily.
    explicit RedisStore(RedisSettings settings);
    ~RedisStore();
    RedisStore(const RedisStore&) = delete;
    RedisStore& operator=(const RedisStore&) = delete;

    // One round trip (two after Redis lost the script: EVALSHA answered NOSCRIPT, then EVAL).
    Decision check(const std::vector<Applicable>& list);
    // PING through the pool, for the readiness check.
    void ping();

private:
    class Lease;
    redisContext* acquire();
    void release(redisContext* context, bool healthy);
    redisContext* connect();

    RedisSettings settings_;
    std::string password_;
    std::mutex mutex_;
    std::condition_variable available_;
    std::vector<redisContext*> idle_;
    int open_ = 0;                                          // connections that exist, idle or leased
    std::chrono::steady_clock::time_point next_connect_{};  // no new connection before (backoff)
    std::string last_connect_error_;
    std::string sha_;  // of the script, once SCRIPT LOAD answered
};

}  // namespace rate_limit
