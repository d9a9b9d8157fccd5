// The migration runner; see migrations.hpp for the rules it keeps.
#include "db/migrations.hpp"

#include <algorithm>
#include <chrono>
#include <charconv>
#include <ctime>
#include <map>
#include <optional>

#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>

#include "metrics/metrics.hpp"

namespace trellis::db {
namespace {

// Any constant works as long as every Trellis uses the same one: "trellis" in ASCII.
constexpr const char* kLockKey = "32199698655257971";

constexpr const char* kCreateHistory =
    "CREATE TABLE IF NOT EXISTS trellis_schema_history ("
    " plugin VARCHAR(100) NOT NULL,"
    " version BIGINT NOT NULL,"
    " name VARCHAR(200) NOT NULL,"
    " checksum VARCHAR(64) NOT NULL,"
    " applied_at VARCHAR(40) NOT NULL,"
    " execution_ms BIGINT NOT NULL,"
    " success INTEGER NOT NULL,"
    " error TEXT,"
    " PRIMARY KEY (plugin, version))";

struct Record {
    std::int64_t version = 0;
    std::string name;
    std::string checksum;
    std::string applied_at;
    std::int64_t execution_ms = 0;
    bool success = false;
    std::string error;
};

std::int64_t as_int(const Value& v) {
    if (v.type == TRELLIS_VALUE_INT) return v.integer;
    if (v.type == TRELLIS_VALUE_REAL) return static_cast<std::int64_t>(v.real);
    std::int64_t out = 0;
    std::from_chars(v.text.data(), v.text.data() + v.text.size(), out);
    return out;
}

std::string now_iso() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&t, &utc);
    char text[40];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    char full[48];
    std::snprintf(full, sizeof full, "%s.%03dZ", text, static_cast<int>(ms));
    return full;
}

std::string label(const Migration& m) {
    return "migration " + std::to_string(m.version) + " (" + m.name + ")";
}

Param text_param(std::string name, std::string text) {
    return Param{std::move(name), Value{TRELLIS_VALUE_TEXT, 0, 0, std::move(text)}};
}
Param int_param(std::string name, std::int64_t value) {
    return Param{std::move(name), Value{TRELLIS_VALUE_INT, value, 0, {}}};
}

// One runner's connection: the history table exists, and on PostgreSQL the advisory lock
// is held until this object goes away.
class Session {
public:
    static tl::expected<Session, std::string> open(Pool& pool) {
        auto connection = pool.acquire();
        if (!connection) return tl::unexpected("cannot reach the database: " + connection.error().message);
        Session session(std::move(*connection));
        if (session.connection_.dialect() == config::Dialect::postgresql) {
            auto locked = session.connection_.execute_script(std::string("SELECT pg_advisory_lock(") + kLockKey + ")");
            if (!locked) return tl::unexpected("cannot take the migration lock: " + locked.error().message);
            session.locked_ = true;
        }
        if (auto created = session.connection_.execute(kCreateHistory, {}, false); !created)
            return tl::unexpected("cannot create trellis_schema_history: " + created.error().message);
        return session;
    }
    Session(Session&& other) noexcept : connection_(std::move(other.connection_)), locked_(other.locked_) {
        other.locked_ = false;
    }
    ~Session() {
        if (locked_) (void)connection_.execute_script(std::string("SELECT pg_advisory_unlock(") + kLockKey + ")");
    }

    Connection& connection() { return connection_; }

    tl::expected<std::map<std::int64_t, Record>, std::string> records(const std::string& plugin,
                                                                      std::optional<std::int64_t> only = {}) {
        std::string sql =
            "SELECT version, name, checksum, applied_at, execution_ms, success, error FROM trellis_schema_history "
            "WHERE plugin = :plugin";
        std::vector<Param> params{text_param("plugin", plugin)};
        if (only) {
            sql += " AND version = :version";
            params.push_back(int_param("version", *only));
        }
        auto result = connection_.execute(sql, params, true);
        if (!result) return tl::unexpected("cannot read trellis_schema_history: " + result.error().message);
        std::map<std::int64_t, Record> out;
        const std::size_t width = result->columns.size();
        for (std::size_t r = 0; r < result->rows(); ++r) {
            const Value* row = &result->cells[r * width];
            Record record{as_int(row[0]), row[1].text, row[2].text, row[3].text, as_int(row[4]), as_int(row[5]) != 0,
                          row[6].text};
            out.emplace(record.version, std::move(record));
        }
        return out;
    }

    // Forgets a history row (a failed one before a retry, or one that was reverted).
    tl::expected<void, std::string> remove(const std::string& plugin, std::int64_t version) {
        auto removed = connection_.execute("DELETE FROM trellis_schema_history WHERE plugin = :plugin AND version = :version",
                                           {text_param("plugin", plugin), int_param("version", version)}, false);
        if (!removed) return tl::unexpected(removed.error().message);
        return {};
    }

    tl::expected<void, std::string> write(const std::string& plugin, const Migration& m, const Record& record) {
        if (auto removed = remove(plugin, m.version); !removed) return removed;
        std::vector<Param> params{text_param("plugin", plugin),
                                  int_param("version", m.version),
                                  text_param("name", m.name),
                                  text_param("checksum", record.checksum),
                                  text_param("applied_at", record.applied_at),
                                  int_param("execution_ms", record.execution_ms),
                                  int_param("success", record.success ? 1 : 0),
                                  record.error.empty() ? Param{"error", Value{}} : text_param("error", record.error)};
        auto inserted = connection_.execute(
            "INSERT INTO trellis_schema_history (plugin, version, name, checksum, applied_at, execution_ms, success, "
            "error) VALUES (:plugin, :version, :name, :checksum, :applied_at, :execution_ms, :success, :error)",
            params, false);
        if (!inserted) return tl::unexpected(inserted.error().message);
        return {};
    }

private:
    explicit Session(Connection connection) : connection_(std::move(connection)) {}
    Connection connection_;
    bool locked_ = false;
};

// Runs `body` in a transaction; commits when it succeeds, rolls back otherwise.
template <typename Body>
tl::expected<void, std::string> in_transaction(Connection& connection, Body&& body) {
    if (auto begun = connection.begin(); !begun) return tl::unexpected(begun.error().message);
    tl::expected<void, std::string> outcome = body();
    if (!outcome) {
        if (connection.in_transaction()) (void)connection.rollback();
        return outcome;
    }
    if (auto committed = connection.commit(); !committed) return tl::unexpected(committed.error().message);
    return {};
}

}  // namespace

std::vector<Migration> for_dialect(const std::vector<Migration>& registered, config::Dialect dialect) {
    const std::string_view name = config::to_string(dialect);
    std::map<std::int64_t, Migration> chosen;
    for (const Migration& m : registered)
        if (m.dialect.empty()) chosen.emplace(m.version, m);
    for (const Migration& m : registered)
        if (m.dialect == name) chosen.insert_or_assign(m.version, m);
    std::vector<Migration> out;
    for (auto& [version, m] : chosen) out.push_back(std::move(m));
    return out;
}

std::string checksum(std::string_view sql) {
    std::string normal;
    normal.reserve(sql.size());
    std::string line;
    auto flush = [&] {
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\f' || line.back() == '\v'))
            line.pop_back();
        normal += line;
        normal += '\n';
        line.clear();
    };
    for (std::size_t i = 0; i < sql.size(); ++i) {
        const char c = sql[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < sql.size() && sql[i + 1] == '\n') ++i;
            flush();
        } else {
            line += c;
        }
    }
    flush();
    while (!normal.empty() && (normal.back() == '\n')) normal.pop_back();
    Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
    engine.update(normal);
    return Poco::DigestEngine::digestToHex(engine.digest());
}

std::string_view to_string(State state) {
    switch (state) {
        case State::applied: return "applied";
        case State::pending: return "pending";
        case State::failed: return "failed";
        case State::drift: return "drift";
        case State::missing: return "missing";
    }
    return "unknown";
}

tl::expected<std::vector<MigrationStatus>, std::string> Migrator::status(const std::string& plugin,
                                                                         const std::vector<Migration>& migrations) {
    auto session = Session::open(pool_);
    if (!session) return tl::unexpected(session.error());
    auto records = session->records(plugin);
    if (!records) return tl::unexpected(records.error());
    std::vector<MigrationStatus> out;
    for (const Migration& m : migrations) {
        MigrationStatus s{m.version, m.name, State::pending, checksum(m.up), {}, {}, 0, {}};
        if (auto it = records->find(m.version); it != records->end()) {
            const Record& r = it->second;
            s.recorded_checksum = r.checksum;
            s.applied_at = r.applied_at;
            s.execution_ms = r.execution_ms;
            s.error = r.error;
            s.state = !r.success ? State::failed : r.checksum != s.checksum ? State::drift : State::applied;
            records->erase(it);
        }
        out.push_back(std::move(s));
    }
    for (const auto& [version, r] : *records)
        out.push_back(MigrationStatus{version, r.name, r.success ? State::missing : State::failed, {}, r.checksum,
                                      r.applied_at, r.execution_ms, r.error});
    std::ranges::sort(out, {}, &MigrationStatus::version);
    return out;
}

tl::expected<int, std::string> Migrator::up(const std::string& plugin, const std::vector<Migration>& migrations,
                                            bool retry_failed) {
    auto session = Session::open(pool_);
    if (!session) return tl::unexpected(session.error());
    auto records = session->records(plugin);
    if (!records) return tl::unexpected(records.error());

    // Refuse before running anything.
    std::int64_t highest_applied = 0;
    for (const auto& [version, r] : *records)
        if (r.success) highest_applied = std::max(highest_applied, version);
    for (const Migration& m : migrations) {
        const auto it = records->find(m.version);
        if (it == records->end()) {
            if (m.version < highest_applied)
                return tl::unexpected(label(m) + " is pending but migration " +
                                      std::to_string(highest_applied) +
                                      " is already applied; give it a version above the applied ones");
            continue;
        }
        const Record& r = it->second;
        if (r.success && r.checksum != checksum(m.up))
            return tl::unexpected(label(m) + " was changed after it was applied: recorded checksum " +
                                  r.checksum + ", registered now " + checksum(m.up) +
                                  "; restore the applied SQL, or accept the change with `trellis migrate repair "
                                  "--plugin " +
                                  plugin + "`");
        if (!r.success && !retry_failed)
            return tl::unexpected(label(m) + " failed at " + r.applied_at + ": " + r.error +
                                  "; fix it, then run `trellis migrate up --plugin " + plugin +
                                  "` (or `trellis migrate repair --plugin " + plugin + "`)");
    }

    int applied = 0;
    for (const Migration& m : migrations) {
        if (auto it = records->find(m.version); it != records->end() && it->second.success) continue;
        Connection& connection = session->connection();
        const auto started = std::chrono::steady_clock::now();
        bool skipped = false;
        bool reached_sql = false;  // only a failure of the migration itself is recorded
        auto ran = in_transaction(connection, [&]() -> tl::expected<void, std::string> {
            // Another runner may have applied it since the history was read (SQLite has no
            // session lock: BEGIN IMMEDIATE serialises us, so look again inside).
            auto now = session->records(plugin, m.version);
            if (!now) return tl::unexpected(now.error());
            if (auto it = now->find(m.version); it != now->end() && it->second.success) {
                skipped = true;
                return {};
            }
            reached_sql = true;
            if (auto done = connection.execute_script(m.up); !done) return tl::unexpected(done.error().message);
            const auto ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
            return session->write(plugin, m, Record{m.version, m.name, checksum(m.up), now_iso(), ms.count(), true, {}});
        });
        if (ran) {
            if (!skipped) {
                ++applied;
                metrics::database().migrations_applied.fetch_add(1);
            }
            continue;
        }
        if (!reached_sql)  // no lock, no history: the migration never ran, so nothing to record
            return tl::unexpected(label(m) + " could not start, nothing was changed: " + ran.error());
        // Rolled back: record the failure in a transaction of its own.
        metrics::database().migrations_failed.fetch_add(1);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        std::string message = label(m) + " failed and was rolled back: " + ran.error();
        auto recorded = in_transaction(connection, [&] {
            return session->write(plugin, m,
                                  Record{m.version, m.name, checksum(m.up), now_iso(), ms.count(), false, ran.error()});
        });
        if (!recorded) message += " (the failure could not be recorded: " + recorded.error() + ")";
        return tl::unexpected(std::move(message));
    }
    return applied;
}

tl::expected<int, std::string> Migrator::down(const std::string& plugin, const std::vector<Migration>& migrations,
                                              std::int64_t to_version) {
    auto session = Session::open(pool_);
    if (!session) return tl::unexpected(session.error());
    auto records = session->records(plugin);
    if (!records) return tl::unexpected(records.error());
    std::vector<const Migration*> revert;
    for (auto it = migrations.rbegin(); it != migrations.rend(); ++it) {
        const auto record = records->find(it->version);
        if (it->version <= to_version || record == records->end() || !record->second.success) continue;
        if (it->down.empty())
            return tl::unexpected(label(*it) + " has no down SQL; nothing was reverted");
        revert.push_back(&*it);
    }
    for (const auto& [version, r] : *records) {
        const auto applied = version;  // clang 14 cannot capture a structured binding
        const bool known = std::ranges::any_of(migrations, [&](const Migration& m) { return m.version == applied; });
        if (version > to_version && r.success && !known)
            return tl::unexpected("migration " + std::to_string(version) + " (" + r.name +
                                  ") is applied but no longer registered by the plugin; nothing was reverted");
    }
    int reverted = 0;
    for (const Migration* m : revert) {
        Connection& connection = session->connection();
        auto ran = in_transaction(connection, [&]() -> tl::expected<void, std::string> {
            if (auto done = connection.execute_script(m->down); !done) return tl::unexpected(done.error().message);
            return session->remove(plugin, m->version);
        });
        if (!ran)
            return tl::unexpected(label(*m) + ": down failed and was rolled back: " + ran.error() + " (" +
                                  std::to_string(reverted) + " reverted before it)");
        ++reverted;
    }
    return reverted;
}

tl::expected<std::vector<std::string>, std::string> Migrator::repair(const std::string& plugin,
                                                                     const std::vector<Migration>& migrations) {
    auto session = Session::open(pool_);
    if (!session) return tl::unexpected(session.error());
    auto records = session->records(plugin);
    if (!records) return tl::unexpected(records.error());
    std::vector<std::string> changes;
    Connection& connection = session->connection();
    auto done = in_transaction(connection, [&]() -> tl::expected<void, std::string> {
        for (const auto& [version, r] : *records) {
            if (!r.success) {
                if (auto removed = session->remove(plugin, version); !removed) return removed;
                changes.push_back("removed the failed record of migration " + std::to_string(version) + " (" + r.name +
                                  "); it runs again at the next `trellis migrate up`");
                continue;
            }
            const auto m = std::ranges::find(migrations, version, &Migration::version);
            if (m == migrations.end() || checksum(m->up) == r.checksum) continue;
            const std::vector<Param> params{text_param("plugin", plugin), int_param("version", version),
                                            text_param("checksum", checksum(m->up))};
            auto updated = connection.execute(
                "UPDATE trellis_schema_history SET checksum = :checksum WHERE plugin = :plugin AND version = :version",
                params, false);
            if (!updated) return tl::unexpected(updated.error().message);
            changes.push_back("accepted the changed SQL of migration " + std::to_string(version) + " (" + r.name +
                              "): checksum " + r.checksum + " -> " + checksum(m->up));
        }
        return {};
    });
    if (!done) return tl::unexpected("repair failed and was rolled back: " + done.error());
    return changes;
}

}  // namespace trellis::db
