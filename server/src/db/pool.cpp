// SOCI sessions behind a fixed-size pool. Every failure becomes an Error with a status the
// ABI knows; no exception leaves this file.
#include "db/pool.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <regex>
#include <string_view>
#include <thread>
#include <vector>

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "runtime/logging.hpp"
#include "metrics/metrics.hpp"

namespace trellis::db {
namespace {

std::string iso_time(const std::tm& t) {
    char text[96];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                  t.tm_hour, t.tm_min, t.tm_sec);
    return text;
}

Value read_cell(const soci::row& row, std::size_t i) {
    Value value;
    if (row.get_indicator(i) == soci::i_null) return value;
    switch (row.get_properties(i).get_data_type()) {
        case soci::dt_integer:
            value.type = TRELLIS_VALUE_INT;
            value.integer = row.get<int>(i);
            break;
        case soci::dt_long_long:
            value.type = TRELLIS_VALUE_INT;
            value.integer = row.get<long long>(i);
            break;
        case soci::dt_unsigned_long_long:
            value.type = TRELLIS_VALUE_INT;
            value.integer = static_cast<std::int64_t>(row.get<unsigned long long>(i));
            break;
        case soci::dt_double:
            value.type = TRELLIS_VALUE_REAL;
            value.real = row.get<double>(i);
            break;
        case soci::dt_date:
            value.type = TRELLIS_VALUE_TEXT;
            value.text = iso_time(row.get<std::tm>(i));
            break;
        default:
            value.type = TRELLIS_VALUE_TEXT;
            value.text = row.get<std::string>(i);
            break;
    }
    return value;
}

// SOCI's postgresql backend reads the connect string as space-separated key=value pairs
// (to pick out options of its own), which breaks postgresql:// URIs: let libpq parse either
// form and hand SOCI the keyword form, every value quoted.
tl::expected<std::string, std::string> libpq_keywords(const std::string& connect) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(connect.c_str(), &error);
    if (!options) {
        std::string message = error ? error : "cannot parse the connection string";
        PQfreemem(error);
        while (!message.empty() && message.back() == '\n') message.pop_back();
        return tl::unexpected(message);
    }
    std::string out;
    for (const PQconninfoOption* o = options; o->keyword; ++o) {
        if (!o->val) continue;
        std::string value;
        for (const char* c = o->val; *c; ++c) {
            if (*c == '\'' || *c == '\\') value += '\\';
            value += *c;
        }
        // Appended piece by piece: `"..." + std::string(...)` here trips g++ 12's -Wrestrict
        // false positive (GCC bug 105329) in optimised builds.
        if (!out.empty()) out += ' ';
        out.append(o->keyword).append("='").append(value).append(1, '\'');
    }
    PQconninfoFree(options);
    return out;
}

// libpq's parse errors quote pieces of the connection string ("missing "=" after "..." in
// connection info string"), which may be the password: those pieces and the password
// itself never reach a message.
std::string scrub_connection_message(std::string message, const std::string& connect, bool parse_error) {
    static const std::regex quoted(R"re("[^"]*")re");
    if (parse_error || message.find("connection info string") != std::string::npos ||
        message.find("URI") != std::string::npos || message.find("connection option") != std::string::npos)
        message = std::regex_replace(message, quoted, "\"***\"");
    std::vector<std::string> secrets;
    char* error = nullptr;
    if (PQconninfoOption* options = PQconninfoParse(connect.c_str(), &error)) {
        for (const PQconninfoOption* o = options; o->keyword; ++o)
            if (o->val && *o->val && std::string_view(o->keyword) == "password") secrets.emplace_back(o->val);
        PQconninfoFree(options);
    }
    PQfreemem(error);
    // Also what a malformed string would have given as password.
    static const std::regex keyword(R"re(password\s*=\s*('([^']*)'?|(\S+)))re", std::regex::icase);
    for (std::sregex_iterator it(connect.begin(), connect.end(), keyword), end; it != end; ++it)
        secrets.push_back((*it)[2].matched ? (*it)[2].str() : (*it)[3].str());
    if (const auto scheme = connect.find("://"); scheme != std::string::npos) {
        const auto at = connect.find('@', scheme + 3), colon = connect.find(':', scheme + 3);
        if (at != std::string::npos && colon != std::string::npos && colon < at)
            secrets.push_back(connect.substr(colon + 1, at - colon - 1));
    }
    for (const std::string& secret : secrets) {
        if (secret.empty()) continue;
        for (auto at = message.find(secret); at != std::string::npos; at = message.find(secret, at + 3))
            message.replace(at, secret.size(), "***");
    }
    return message;
}

// A statement's error without what SOCI 4.0.3 appends to what(): "while executing "..."
// with :1=value", the bound values, which may be anything a client sent.
std::string statement_message(const std::exception& e) {
    std::string message = e.what();
    if (const auto* soci_error = dynamic_cast<const soci::soci_error*>(&e)) message = soci_error->get_error_message();
    if (const auto context = message.find(" while executing "); context != std::string::npos) message.resize(context);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    return message;
}

// The driver handles behind a SOCI session, for what SOCI does not offer (multi-statement
// scripts). Debian's SOCI libraries do not export the backend classes' type info, so
// UBSan's vptr check cannot be applied here; the backend is known from the dialect.
__attribute__((no_sanitize("vptr"))) sqlite_api::sqlite3* sqlite_handle(soci::session& session) {
    return static_cast<soci::sqlite3_session_backend*>(session.get_backend())->conn_;
}
__attribute__((no_sanitize("vptr"))) PGconn* postgresql_handle(soci::session& session) {
    auto* backend = static_cast<soci::postgresql_session_backend*>(session.get_backend());
    return backend ? backend->conn_ : nullptr;
}

// What connect() sets on a new PostgreSQL connection, applied again after each reset.
constexpr const char* kPostgresqlSessionSetup = "SET client_min_messages TO WARNING";

// PQstatus only: SOCI's is_connected() may send a query to find out, a round trip on
// every lease given back. A failed read or write on a lost connection sets the status.
bool connection_ok(soci::session& session) {
    PGconn* connection = postgresql_handle(session);
    return connection && PQstatus(connection) == CONNECTION_OK;
}

// Ends a transaction left open (savepoints included): SQLite is in autocommit mode
// exactly when none is. PRAGMAs a plugin changed are not undone.
bool reset_sqlite(soci::session& session) {
    sqlite_api::sqlite3* handle = sqlite_handle(session);
    if (!handle) return false;
    if (sqlite_api::sqlite3_get_autocommit(handle)) return true;
    return sqlite_api::sqlite3_exec(handle, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK &&
           sqlite_api::sqlite3_get_autocommit(handle);
}

// Ends a transaction left open (or failed), then DISCARD ALL: session settings (SET,
// set_config), temporary tables, prepared statements, advisory locks, LISTEN. Every
// statement a plugin runs may change the session (a function can call set_config), so the
// reset runs on every return; the connection's own setting is applied again afterwards.
bool reset_postgresql(soci::session& session) {
    PGconn* connection = postgresql_handle(session);
    if (!connection || PQstatus(connection) != CONNECTION_OK) return false;
    const auto run = [connection](const char* sql) {
        PGresult* result = PQexec(connection, sql);
        const bool ok = result && PQresultStatus(result) == PGRES_COMMAND_OK;
        PQclear(result);
        return ok;
    };
    switch (PQtransactionStatus(connection)) {
        case PQTRANS_IDLE: break;
        case PQTRANS_INTRANS:
        case PQTRANS_INERROR:
            if (!run("ROLLBACK")) return false;
            break;
        default: return false;  // a command still running, or the connection is bad
    }
    return run("DISCARD ALL") && run(kPostgresqlSessionSetup) && PQtransactionStatus(connection) == PQTRANS_IDLE;
}

}  // namespace

// ---- Pool -----------------------------------------------------------------------------

Pool::Pool(const config::DatabaseConfig& config)
    : config_(config),
      pool_(std::make_unique<soci::connection_pool>(static_cast<std::size_t>(config.pool_size))),
      broken_(static_cast<std::size_t>(config.pool_size), true) {}

Pool::~Pool() = default;

tl::expected<void, std::string> Pool::connect(soci::session& session) const {
    try {
        if (config_.dialect == config::Dialect::sqlite) {
            std::error_code ec;
            std::filesystem::create_directories(config_.sqlite_file.parent_path(), ec);
            if (ec) return tl::unexpected("cannot create the folder " + config_.sqlite_file.parent_path().string() + ": " + ec.message());
            session.open(soci::sqlite3, config_.connect);
            session << "PRAGMA busy_timeout = " + std::to_string(config_.busy_timeout.count());
            // Turning a new file to WAL takes a moment of exclusive access, and SQLite answers
            // "database is locked" at once, without its busy handler, while another connection
            // (another process starting, the readiness probe) opens the same new file: retry
            // within busy_timeout. Once the file is in WAL mode this succeeds first time.
            const auto deadline = std::chrono::steady_clock::now() + config_.busy_timeout;
            for (auto pause = std::chrono::milliseconds(2);; pause = std::min(pause * 2, std::chrono::milliseconds(50))) {
                try {
                    session << "PRAGMA journal_mode = WAL";
                    break;
                } catch (const soci::soci_error& e) {
                    if (std::string_view(e.what()).find("database is locked") == std::string_view::npos ||
                        std::chrono::steady_clock::now() + pause > deadline)
                        throw;
                    std::this_thread::sleep_for(pause);
                }
            }
            session << "PRAGMA synchronous = NORMAL";
            session << "PRAGMA foreign_keys = ON";
        } else {
            auto keywords = libpq_keywords(config_.connect);
            if (!keywords) return tl::unexpected(config_.display + ": " + scrub_connection_message(keywords.error(), config_.connect, true));
            session.open(soci::postgresql, *keywords);
            // NOTICEs ("relation ... already exists, skipping") would go to stderr through
            // libpq's default notice processor; warnings and errors still arrive.
            session << "SET client_min_messages TO WARNING";
        }
        return {};
    } catch (const std::exception& e) {
        // libpq's messages name host and port, never the password.
        return tl::unexpected(config_.display + ": " + scrub_connection_message(statement_message(e), config_.connect, false));
    }
}

std::shared_ptr<Pool> Pool::create(const config::DatabaseConfig& config) {
    return std::shared_ptr<Pool>(new Pool(config));
}

soci::session& Pool::session(std::size_t slot) { return pool_->at(slot); }

tl::expected<Connection, Error> Pool::acquire() { return acquire(config_.acquire_timeout); }

tl::expected<Connection, Error> Pool::acquire(std::chrono::milliseconds timeout) {
    std::size_t slot = 0;
    auto& counted = metrics::database();
    counted.acquire_waiting.fetch_add(1, std::memory_order_relaxed);
    const bool leased = pool_->try_lease(slot, static_cast<int>(timeout.count()));
    counted.acquire_waiting.fetch_sub(1, std::memory_order_relaxed);
    if (!leased) counted.acquire_timeouts.fetch_add(1, std::memory_order_relaxed);
    if (!leased)
        return tl::unexpected(Error{TRELLIS_ERROR_UNAVAILABLE, "no database connection became free within " +
                                                                   std::to_string(timeout.count()) + " ms (pool of " +
                                                                   std::to_string(size()) + ")"});
    bool broken = false;
    {
        std::lock_guard lock(broken_mutex_);
        broken = broken_[slot];
    }
    if (broken) {
        soci::session& s = session(slot);
        try {
            s.close();
        } catch (...) {
        }
        if (auto connected = connect(s); !connected) {
            pool_->give_back(slot);
            return tl::unexpected(Error{TRELLIS_ERROR_UNAVAILABLE, "cannot connect to the database " + connected.error()});
        }
        std::lock_guard lock(broken_mutex_);
        broken_[slot] = false;
    }
    return Connection(this, slot);
}

void Pool::give_back(std::size_t slot, bool /*in_transaction*/) {
    soci::session& s = session(slot);
    // Whatever the lease left behind (a transaction or savepoint the SDK knows of or one a
    // plugin opened with raw SQL, session settings on PostgreSQL) must not reach the next
    // lease. A connection that cannot be reset is closed and opened again on its next lease.
    const bool lost = config_.dialect == config::Dialect::sqlite ? !reset_sqlite(s) : !reset_postgresql(s);
    if (lost) {
        std::lock_guard lock(broken_mutex_);
        broken_[slot] = true;
    }
    pool_->give_back(slot);
}

// ---- Connection -------------------------------------------------------------------------

Connection::Connection(Pool* pool, std::size_t slot) : pool_(pool), slot_(slot) {
    metrics::database().connections_in_use.fetch_add(1, std::memory_order_relaxed);
}

Connection::Connection(Connection&& other) noexcept
    : pool_(other.pool_), slot_(other.slot_), in_transaction_(other.in_transaction_) {
    other.pool_ = nullptr;
}

Connection::~Connection() {
    if (!pool_) return;
    metrics::database().connections_in_use.fetch_sub(1, std::memory_order_relaxed);
    try {
        pool_->give_back(slot_, in_transaction_);
    } catch (...) {
    }
}

config::Dialect Connection::dialect() const { return pool_->dialect(); }

Error Connection::fail(const std::exception& e) {
    metrics::database().query_errors.fetch_add(1, std::memory_order_relaxed);
    Error error{TRELLIS_ERROR, statement_message(e)};
    if (const auto* pg = dynamic_cast<const soci::postgresql_soci_error*>(&e)) {
        const std::string state = pg->sqlstate();
        if (state.starts_with("23"))
            error.status = TRELLIS_ERROR_CONFLICT;  // integrity constraint violation
        else if (state.starts_with("08") || state.starts_with("57P"))
            error.status = TRELLIS_ERROR_UNAVAILABLE;  // connection exception, server shutting down
        else if (state.starts_with("22") || state.starts_with("42"))
            error.status = TRELLIS_ERROR_INVALID_ARGUMENT;  // data exception, syntax or access rule
    } else if (const auto* lite = dynamic_cast<const soci::sqlite3_soci_error*>(&e)) {
        const int primary = lite->result() & 0xff;
        if (primary == SQLITE_CONSTRAINT)
            error.status = TRELLIS_ERROR_CONFLICT;
        else if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
            error.status = TRELLIS_ERROR_UNAVAILABLE;
        else if (primary == SQLITE_MISMATCH || primary == SQLITE_RANGE)
            error.status = TRELLIS_ERROR_INVALID_ARGUMENT;
    }
    if (pool_->dialect() == config::Dialect::postgresql && !connection_ok(pool_->session(slot_))) {
        error.status = TRELLIS_ERROR_UNAVAILABLE;
        in_transaction_ = false;  // gone with the connection
        std::lock_guard lock(pool_->broken_mutex_);
        pool_->broken_[slot_] = true;
    }
    // Written while the request that ran the statement is served, so the line carries its
    // id; a constraint violation is often expected by the plugin, and logged at debug only.
    static const auto log = logging::get("database");
    log->log(error.status == TRELLIS_ERROR_CONFLICT ? spdlog::level::debug : spdlog::level::warn,
             "statement failed: {}", error.message);
    return error;
}

tl::expected<Result, Error> Connection::execute(std::string_view sql, const std::vector<Param>& params,
                                                bool want_rows) {
    soci::session& session = pool_->session(slot_);
    try {
        // Bound values must stay where they are until the statement ran: reserve, never grow.
        std::vector<long long> integers;
        std::vector<double> reals;
        std::vector<std::string> texts;
        std::vector<soci::indicator> indicators;
        integers.reserve(params.size());
        reals.reserve(params.size());
        texts.reserve(params.size());
        indicators.reserve(params.size());

        soci::statement statement(session);
        for (const Param& param : params) {
            indicators.push_back(param.value.type == TRELLIS_VALUE_NULL ? soci::i_null : soci::i_ok);
            switch (param.value.type) {
                case TRELLIS_VALUE_INT:
                    integers.push_back(param.value.integer);
                    statement.exchange(soci::use(integers.back(), indicators.back(), param.name));
                    break;
                case TRELLIS_VALUE_REAL:
                    reals.push_back(param.value.real);
                    statement.exchange(soci::use(reals.back(), indicators.back(), param.name));
                    break;
                default:
                    texts.push_back(param.value.text);
                    statement.exchange(soci::use(texts.back(), indicators.back(), param.name));
                    break;
            }
        }
        soci::row row;
        if (want_rows) statement.exchange(soci::into(row));
        statement.alloc();
        statement.prepare(std::string(sql));
        statement.define_and_bind();
        bool got = statement.execute(true);

        Result result;
        result.affected = statement.get_affected_rows();
        if (want_rows) {
            for (std::size_t i = 0; got && i < row.size(); ++i) result.columns.push_back(row.get_properties(i).get_name());
            while (got) {
                for (std::size_t i = 0; i < row.size(); ++i) result.cells.push_back(read_cell(row, i));
                got = statement.fetch();
            }
        }
        return result;
    } catch (const std::exception& e) {
        return tl::unexpected(fail(e));
    }
}

tl::expected<void, Error> Connection::execute_script(std::string_view sql) {
    soci::session& session = pool_->session(slot_);
    const std::string text(sql);
    if (pool_->dialect() == config::Dialect::sqlite) {
        char* message = nullptr;
        const int rc = sqlite_api::sqlite3_exec(sqlite_handle(session), text.c_str(), nullptr, nullptr, &message);
        if (rc == SQLITE_OK) return {};
        Error error{TRELLIS_ERROR, message ? message : sqlite_api::sqlite3_errstr(rc)};
        sqlite_api::sqlite3_free(message);
        if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) error.status = TRELLIS_ERROR_UNAVAILABLE;
        return tl::unexpected(std::move(error));
    }
    PGconn* connection = postgresql_handle(session);
    PGresult* result = PQexec(connection, text.c_str());
    const ExecStatusType status = result ? PQresultStatus(result) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
        PQclear(result);
        return {};
    }
    std::string message = result ? PQresultErrorMessage(result) : PQerrorMessage(connection);
    PQclear(result);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    Error error{TRELLIS_ERROR, message};
    if (PQstatus(connection) != CONNECTION_OK) {
        error.status = TRELLIS_ERROR_UNAVAILABLE;
        in_transaction_ = false;
        std::lock_guard lock(pool_->broken_mutex_);
        pool_->broken_[slot_] = true;
    }
    return tl::unexpected(std::move(error));
}

tl::expected<void, Error> Connection::simple(const char* sql) {
    try {
        pool_->session(slot_) << sql;
        return {};
    } catch (const std::exception& e) {
        return tl::unexpected(fail(e));
    }
}

tl::expected<void, Error> Connection::begin() {
    if (in_transaction_) return tl::unexpected(Error{TRELLIS_ERROR_STATE, "a transaction is already open"});
    auto started = simple(pool_->dialect() == config::Dialect::sqlite ? "BEGIN IMMEDIATE" : "BEGIN");
    if (started) in_transaction_ = true;
    return started;
}

tl::expected<void, Error> Connection::commit() {
    if (!in_transaction_) return tl::unexpected(Error{TRELLIS_ERROR_STATE, "no transaction is open"});
    auto done = simple("COMMIT");
    if (!done && pool_->dialect() == config::Dialect::sqlite) {
        // A failed COMMIT in SQLite (busy) leaves the transaction open: end it here.
        (void)simple("ROLLBACK");
    }
    in_transaction_ = false;
    return done;
}

tl::expected<void, Error> Connection::rollback() {
    if (!in_transaction_) return tl::unexpected(Error{TRELLIS_ERROR_STATE, "no transaction is open"});
    in_transaction_ = false;
    return simple("ROLLBACK");
}

}  // namespace trellis::db
