// Per-plugin schema migrations: which are applied, pending, failed or changed, and the
// runner that applies, reverts and repairs them, recorded in trellis_schema_history.
//
// Safety: each migration runs in its own transaction together with its history row. Several
// runners against one database are serialised: on PostgreSQL by a session advisory lock held
// for the whole run, on SQLite by BEGIN IMMEDIATE per migration with the history re-read
// inside the transaction. A failure is rolled back, recorded (success = false, with the
// database's message) and stops that plugin's run; it is never retried without an admin.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "db/pool.hpp"

namespace trellis::db {

inline constexpr std::string_view history_table = "trellis_schema_history";

// A migration as a plugin registered it.
struct Migration {
    std::int64_t version = 0;
    std::string name;
    std::string up;
    std::string down;     // empty: cannot be reverted
    std::string dialect;  // empty: every database; "sqlite" or "postgresql": a variant
};

// The migrations that run on `dialect`, ascending by version: a variant for the dialect
// replaces the common migration of the same version.
std::vector<Migration> for_dialect(const std::vector<Migration>& registered, config::Dialect dialect);

// SHA-256 (hex) of the SQL with line endings unified and trailing white space removed from
// every line and from the end, so that re-saving a file in another editor changes nothing.
std::string checksum(std::string_view sql);

enum class State { applied, pending, failed, drift, missing };
std::string_view to_string(State state);

struct MigrationStatus {
    std::int64_t version = 0;
    std::string name;
    State state = State::pending;
    std::string checksum;           // of the registered SQL; empty for `missing`
    std::string recorded_checksum;  // from the history; empty for `pending`
    std::string applied_at;         // ISO 8601 UTC, from the history
    std::int64_t execution_ms = 0;
    std::string error;  // for `failed`: the database's message
};

// Messages name the migration, not the plugin: the caller says whose it is.
class Migrator {
public:
    explicit Migrator(Pool& pool) : pool_(pool) {}

    // Every migration of the plugin with its state, plus history rows no longer registered.
    tl::expected<std::vector<MigrationStatus>, std::string> status(const std::string& plugin,
                                                                   const std::vector<Migration>& migrations);

    // Applies what is pending, in order; returns how many ran. Refuses (before running
    // anything) a drifted checksum, a pending version below an applied one, and a failed
    // migration unless retry_failed (an admin's explicit `migrate up`). The error names
    // version, name and the database's message.
    tl::expected<int, std::string> up(const std::string& plugin, const std::vector<Migration>& migrations,
                                      bool retry_failed);

    // Reverts applied migrations above `to_version`, newest first; refuses when one of them
    // has no down SQL. Returns how many were reverted.
    tl::expected<int, std::string> down(const std::string& plugin, const std::vector<Migration>& migrations,
                                        std::int64_t to_version);

    // Removes failed rows (so the fixed migration runs again at the next `up`) and accepts
    // the current checksum of drifted ones. Returns one line per change.
    tl::expected<std::vector<std::string>, std::string> repair(const std::string& plugin,
                                                               const std::vector<Migration>& migrations);

private:
    Pool& pool_;
};

}  // namespace trellis::db
