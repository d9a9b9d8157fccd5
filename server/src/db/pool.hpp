// The database connection pool, over SOCI (sqlite3 and postgresql backends), and the one
// way the host runs SQL: text plus bound parameters, never values spliced into the text.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>
#include <trellis/abi.h>

#include "config/config.hpp"

namespace soci {
class session;
class connection_pool;
}  // namespace soci

namespace trellis::db {

// A value as it crosses the ABI: TRELLIS_VALUE_* type plus the matching member.
struct Value {
    trellis_value_type type = TRELLIS_VALUE_NULL;
    std::int64_t integer = 0;
    double real = 0;
    std::string text;
};

struct Param {
    std::string name;  // without the colon
    Value value;
};

struct Result {
    std::vector<std::string> columns;
    std::vector<Value> cells;  // row-major: rows() x columns.size()
    std::int64_t affected = 0;
    std::size_t rows() const { return columns.empty() ? 0 : cells.size() / columns.size(); }
};

// status is a TRELLIS_ERROR_* code: UNAVAILABLE, CONFLICT, INVALID_ARGUMENT or ERROR.
struct Error {
    trellis_status status = TRELLIS_ERROR;
    std::string message;
};

class Pool;

// One leased connection; gives it back when destroyed, rolling back an open transaction.
class Connection {
public:
    Connection(Connection&& other) noexcept;
    Connection& operator=(Connection&&) = delete;
    Connection(const Connection&) = delete;
    ~Connection();

    config::Dialect dialect() const;

    // One statement. Rows are read when want_rows; affected counts changed rows.
    tl::expected<Result, Error> execute(std::string_view sql, const std::vector<Param>& params, bool want_rows);
    // Several statements without parameters (migrations): the driver's multi-statement call.
    tl::expected<void, Error> execute_script(std::string_view sql);

    // BEGIN (BEGIN IMMEDIATE on SQLite, so writers queue for the lock instead of failing).
    tl::expected<void, Error> begin();
    tl::expected<void, Error> commit();
    tl::expected<void, Error> rollback();
    bool in_transaction() const { return in_transaction_; }

private:
    friend class Pool;
    Connection(Pool* pool, std::size_t slot);
    Error fail(const std::exception& e);
    tl::expected<void, Error> simple(const char* sql);

    Pool* pool_;
    std::size_t slot_;
    bool in_transaction_ = false;
};

class Pool {
public:
    // Connections are opened when first leased, and opened again after one was lost, so
    // a database that is down at start-up only fails the requests that need it.
    static std::shared_ptr<Pool> create(const config::DatabaseConfig& config);
    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // Waits up to the acquire timeout. UNAVAILABLE when none is free or when the
    // connection was lost and cannot be re-established now.
    tl::expected<Connection, Error> acquire();
    tl::expected<Connection, Error> acquire(std::chrono::milliseconds timeout);

    config::Dialect dialect() const { return config_.dialect; }
    const config::DatabaseConfig& config() const { return config_; }
    std::size_t size() const { return static_cast<std::size_t>(config_.pool_size); }

private:
    friend class Connection;
    explicit Pool(const config::DatabaseConfig& config);
    soci::session& session(std::size_t slot);
    void give_back(std::size_t slot, bool in_transaction);
    tl::expected<void, std::string> connect(soci::session& session) const;

    config::DatabaseConfig config_;
    std::unique_ptr<soci::connection_pool> pool_;
    std::mutex broken_mutex_;
    std::vector<bool> broken_;  // not connected yet, or lost: connect on the next lease
};

}  // namespace trellis::db
