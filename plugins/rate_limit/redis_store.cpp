// rate_limit: the Redis backend (see redis_store.hpp).
#include "redis_store.hpp"

#include <sys/time.h>

#include <fstream>
#include <memory>
#include <sstream>

#include <hiredis/hiredis.h>

namespace rate_limit {
namespace {

// KEYS: one partition per applicable policy. ARGV: interval_us and tolerance_us of each
// policy, in KEYS order. The GCRA rule of policy.hpp's decide(), on Redis's clock: consume
// from every policy only when every one allows. Returns {now, stored tat of each key (0: none)}
// and the caller recomputes the outcomes with decide(). Entries expire when they would be
// equal to a fresh partition, so Redis holds only live ones.
constexpr const char* kScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats, allowed = {}, true
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i])) or 0
  tats[i] = tat
  if math.max(tat, now) + tonumber(ARGV[2 * i - 1]) - now > tonumber(ARGV[2 * i]) then allowed = false end
end
if allowed then
  for i = 1, #KEYS do
    local nxt = math.max(tats[i], now) + tonumber(ARGV[2 * i - 1])
    redis.call('SET', KEYS[i], string.format('%.0f', nxt), 'PX', string.format('%.0f', math.ceil((nxt - now) / 1000) + 1))
  end
end
local out = {now}
for i = 1, #KEYS do out[i + 1] = tats[i] end
return out
)lua";

struct ReplyDeleter {
    void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(int ms) { return timeval{ms / 1000, static_cast<suseconds_t>((ms % 1000) * 1000)}; }

Reply command(redisContext* context, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    Reply reply(static_cast<redisReply*>(
        redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
    // No reply: the connection is broken or timed out (context->err says which); it is dropped.
    if (!reply)
        throw BackendError(std::string("Redis did not answer: ") + (context->err ? context->errstr : "no reply"));
    return reply;
}

std::string error_text(const redisReply& reply) { return std::string(reply.str ? reply.str : "", reply.len); }

std::string trim_line(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

}  // namespace

// A connection taken from the pool; given back healthy unless marked broken.
class RedisStore::Lease {
public:
    explicit Lease(RedisStore& store) : store_(store), context_(store.acquire()) {}
    ~Lease() { store_.release(context_, healthy_); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    redisContext* get() const { return context_; }
    void broken() { healthy_ = false; }

private:
    RedisStore& store_;
    redisContext* context_;
    bool healthy_ = true;
};

RedisStore::RedisStore(RedisSettings settings) : settings_(std::move(settings)) {
    if (!settings_.password_file.empty()) {
        std::ifstream in(settings_.password_file);
        if (!in)
            throw std::invalid_argument("cannot read redis.password_file '" + settings_.password_file +
                                        "' (it must be readable by the trellis user)");
        std::stringstream text;
        text << in.rdbuf();
        password_ = trim_line(text.str());
        if (password_.empty())
            throw std::invalid_argument("redis.password_file '" + settings_.password_file + "' is empty");
    }
}

RedisStore::~RedisStore() {
    for (redisContext* context : idle_) redisFree(context);
}

redisContext* RedisStore::connect() {
    std::unique_ptr<redisContext, void (*)(redisContext*)> context(
        redisConnectWithTimeout(settings_.host.c_str(), settings_.port, to_timeval(settings_.timeout_ms)), redisFree);
    const std::string where =
        "cannot connect to Redis at " + settings_.host + ":" + std::to_string(settings_.port) + ": ";
    if (!context) throw BackendError(where + "out of memory");
    if (context->err) throw BackendError(where + context->errstr);
    if (redisSetTimeout(context.get(), to_timeval(settings_.timeout_ms)) != REDIS_OK)
        throw BackendError(where + "cannot set the timeout");
    if (!password_.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!settings_.username.empty()) auth.push_back(settings_.username);
        auth.push_back(password_);
        Reply reply = command(context.get(), auth);
        // The reply text of a failed AUTH never contains the password.
        if (reply->type == REDIS_REPLY_ERROR) throw BackendError(where + "AUTH refused: " + error_text(*reply));
    }
    if (settings_.database != 0) {
        Reply reply = command(context.get(), {"SELECT", std::to_string(settings_.database)});
        if (reply->type == REDIS_REPLY_ERROR) throw BackendError(where + "SELECT refused: " + error_text(*reply));
    }
    return context.release();
}

redisContext* RedisStore::acquire() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(settings_.timeout_ms);
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
        if (!idle_.empty()) {
            redisContext* context = idle_.back();
            idle_.pop_back();
            return context;
        }
        if (open_ < settings_.pool_size) {
            // After a failed connect, fail fast for a while instead of stalling every request
            // (and the worker pool) on connection attempts to a Redis that is down.
            if (std::chrono::steady_clock::now() < next_connect_)
                throw BackendError(last_connect_error_ + " (not retried for 500 ms)");
            ++open_;
            lock.unlock();
            try {
                return connect();
            } catch (const std::exception& e) {
                lock.lock();
                last_connect_error_ = e.what();
                --open_;
                next_connect_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
                available_.notify_one();
                throw;
            }
        }
        if (available_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
            open_ >= settings_.pool_size)
            throw BackendError("no Redis connection became free within redis.timeout_ms (" +
                               std::to_string(settings_.timeout_ms) + " ms; redis.pool_size " +
                               std::to_string(settings_.pool_size) + ")");
    }
}

void RedisStore::release(redisContext* context, bool healthy) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (healthy && !context->err) {
        idle_.push_back(context);
    } else {
        redisFree(context);  // the next acquire reconnects
        --open_;
    }
    available_.notify_one();
}

Decision RedisStore::check(const std::vector<Applicable>& list) {
    std::vector<std::string> keys, args;
    for (const auto& a : list) {
        keys.push_back(settings_.key_prefix + a.policy->name + ":" + a.key);
        args.push_back(std::to_string(a.policy->interval_us()));
        args.push_back(std::to_string(a.policy->tolerance_us()));
    }
    Lease lease(*this);
    try {
        std::string sha;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            sha = sha_;
        }
        if (sha.empty()) {
            Reply loaded = command(lease.get(), {"SCRIPT", "LOAD", kScript});
            if (loaded->type != REDIS_REPLY_STRING) throw BackendError("SCRIPT LOAD failed: " + error_text(*loaded));
            sha = error_text(*loaded);
            std::lock_guard<std::mutex> lock(mutex_);
            sha_ = sha;
        }
        const auto call = [&](const std::string& verb, const std::string& script) {
            std::vector<std::string> argv{verb, script, std::to_string(keys.size())};
            argv.insert(argv.end(), keys.begin(), keys.end());
            argv.insert(argv.end(), args.begin(), args.end());
            return command(lease.get(), argv);
        };
        Reply reply = call("EVALSHA", sha);
        // Redis restarted or its script cache was flushed: EVAL runs it and caches it again.
        if (reply->type == REDIS_REPLY_ERROR && error_text(*reply).rfind("NOSCRIPT", 0) == 0)
            reply = call("EVAL", kScript);
        if (reply->type == REDIS_REPLY_ERROR) throw BackendError("the rate limit script failed: " + error_text(*reply));
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != list.size() + 1)
            throw BackendError("the rate limit script answered in an unexpected shape");
        std::vector<std::int64_t> stored;
        for (std::size_t i = 1; i < reply->elements; ++i) stored.push_back(reply->element[i]->integer);
        return decide(reply->element[0]->integer, policies_of(list), stored);
    } catch (const BackendError&) {
        lease.broken();  // a timeout leaves a reply in flight on this connection: never reuse it
        throw;
    }
}

void RedisStore::ping() {
    Lease lease(*this);
    try {
        Reply reply = command(lease.get(), {"PING"});
        if (reply->type == REDIS_REPLY_ERROR) throw BackendError("PING failed: " + error_text(*reply));
    } catch (const BackendError&) {
        lease.broken();
        throw;
    }
}

}  // namespace rate_limit
