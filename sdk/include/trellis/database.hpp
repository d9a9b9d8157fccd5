// trellis/database.hpp - database access for plugins, header-only C++17 over abi.h (1.1).
//
// A plugin never links a driver: it leases a connection from the host's pool. SQL text
// and values always travel apart: values are bound as :name parameters, and nothing here
// formats a value into SQL text.
//
//   auto rows = db.query("SELECT id, title FROM notes WHERE owner = :owner", {{"owner", owner}});
//   for (const auto& row : rows) out.push_back({row.get<std::int64_t>("id"), row.get<std::string>("title")});
//
//   auto connection = db.connect();        // one lease, given back when it goes out of scope
//   auto tx = connection.transaction();    // rolled back unless commit() is reached
//   connection.execute("UPDATE ...", {{"id", id}});
//   tx.commit();
#ifndef TRELLIS_DATABASE_HPP
#define TRELLIS_DATABASE_HPP

#include <trellis/abi.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace trellis {

/// ABI 1.2: the message of a database call refused because it was made from an event-loop
/// thread, i.e. from a route or middleware registered with .non_blocking(). The host and
/// the SDK use this one text.
inline constexpr const char event_loop_database_message[] =
    "database call from an event-loop thread: the route and its middleware are declared "
    "non-blocking, so they run inline on the event loop, where waiting on the database would "
    "stall every connection of that loop; declare the route (and its middleware) blocking, "
    "i.e. without .non_blocking() / TRELLIS_ROUTE_NON_BLOCKING, to run it on the worker pool";

/// A database call failed. status() is the TRELLIS_ERROR_* code; what() the database's message
/// (for logs: never send it to clients).
class DbError : public std::runtime_error {
public:
    DbError(trellis_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    trellis_status status() const noexcept { return status_; }

private:
    trellis_status status_;
};

/// A constraint was violated (unique key, foreign key, check). Uncaught, the SDK answers 409.
class DbConflict : public DbError {
public:
    using DbError::DbError;
};

/// No connection within the pool's acquire timeout, or the database is unreachable.
/// Uncaught, the host answers 503 problem+json with Retry-After.
class DbUnavailable : public DbError {
public:
    using DbError::DbError;
};

/// A bound parameter value: NULL, an integer, a real or text. bool binds as 0 or 1.
class Value {
public:
    Value() = default;
    Value(std::nullptr_t) {}
    Value(std::nullopt_t) {}
    Value(bool v) : type_(TRELLIS_VALUE_INT), integer_(v ? 1 : 0) {}
    template <typename T, typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>>>
    Value(T v) : type_(TRELLIS_VALUE_INT), integer_(static_cast<std::int64_t>(v)) {}
    Value(double v) : type_(TRELLIS_VALUE_REAL), real_(v) {}
    Value(std::string v) : type_(TRELLIS_VALUE_TEXT), text_(std::move(v)) {}
    Value(std::string_view v) : type_(TRELLIS_VALUE_TEXT), text_(v) {}
    Value(const char* v) : type_(v ? TRELLIS_VALUE_TEXT : TRELLIS_VALUE_NULL), text_(v ? v : "") {}
    template <typename T>
    Value(const std::optional<T>& v) : Value(v ? Value(*v) : Value()) {}

    trellis_value raw() const {
        trellis_value out{};
        out.type = type_;
        out.int_value = integer_;
        out.real_value = real_;
        out.text = trellis_str{text_.data(), text_.size()};
        return out;
    }

private:
    trellis_value_type type_ = TRELLIS_VALUE_NULL;
    std::int64_t integer_ = 0;
    double real_ = 0;
    std::string text_;
};

/// Named parameters: {{"owner", owner}, {"limit", 20}}; the SQL refers to them as :owner, :limit.
using Params = std::vector<std::pair<std::string, Value>>;

/// One column of one row. Conversions: integers from INT (or REAL, or decimal TEXT), double
/// from REAL or INT, std::string from any non-NULL value, bool from INT or "t"/"true"/"f"/"false".
/// Reading NULL as a non-optional type throws DbError; use optional<T>() for nullable columns.
class Field {
public:
    Field(trellis_value value, std::string_view column) : value_(value), column_(column) {}

    bool is_null() const { return value_.type == TRELLIS_VALUE_NULL; }
    std::string_view column() const { return column_; }

    template <typename T>
    T as() const {
        if (is_null()) throw DbError(TRELLIS_ERROR, "column '" + std::string(column_) + "' is NULL");
        if constexpr (std::is_same_v<T, std::string>) {
            if (value_.type == TRELLIS_VALUE_TEXT) return std::string(value_.text.data ? value_.text.data : "", value_.text.size);
            if (value_.type == TRELLIS_VALUE_INT) return std::to_string(value_.int_value);
            return std::to_string(value_.real_value);
        } else if constexpr (std::is_same_v<T, bool>) {
            if (value_.type == TRELLIS_VALUE_INT) return value_.int_value != 0;
            const std::string_view t = text();
            if (t == "t" || t == "true" || t == "1") return true;
            if (t == "f" || t == "false" || t == "0") return false;
            throw mismatch("a boolean");
        } else if constexpr (std::is_integral_v<T>) {
            if (value_.type == TRELLIS_VALUE_INT) return static_cast<T>(value_.int_value);
            if (value_.type == TRELLIS_VALUE_REAL) return static_cast<T>(value_.real_value);
            const std::string_view t = text();
            std::int64_t parsed = 0;
            const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), parsed);
            if (ec != std::errc() || end != t.data() + t.size() || t.empty()) throw mismatch("an integer");
            return static_cast<T>(parsed);
        } else if constexpr (std::is_floating_point_v<T>) {
            if (value_.type == TRELLIS_VALUE_REAL) return static_cast<T>(value_.real_value);
            if (value_.type == TRELLIS_VALUE_INT) return static_cast<T>(value_.int_value);
            try {
                return static_cast<T>(std::stod(std::string(text())));
            } catch (const std::exception&) {
                throw mismatch("a number");
            }
        } else {
            static_assert(sizeof(T) == 0, "read columns as std::string, bool, an integer type or a floating type");
        }
    }

    template <typename T>
    std::optional<T> optional() const {
        if (is_null()) return std::nullopt;
        return as<T>();
    }

private:
    std::string_view text() const {
        return value_.text.data ? std::string_view(value_.text.data, value_.text.size) : std::string_view();
    }
    DbError mismatch(const char* what) const {
        return DbError(TRELLIS_ERROR_INVALID_ARGUMENT, "column '" + std::string(column_) + "' is not " + what);
    }

    trellis_value value_;
    std::string_view column_;
};

class Rows;

/// A row of a result; valid while its Rows lives.
class Row {
public:
    Row(const Rows& rows, std::size_t index) : rows_(&rows), index_(index) {}
    Field operator[](std::size_t column) const;
    Field operator[](std::string_view column) const;
    template <typename T>
    T get(std::string_view column) const {
        return (*this)[column].template as<T>();
    }
    template <typename T>
    std::optional<T> get_optional(std::string_view column) const {
        return (*this)[column].template optional<T>();
    }

private:
    const Rows* rows_;
    std::size_t index_;
};

/// A complete query result, owned; frees the host's copy when destroyed.
class Rows {
public:
    Rows(const trellis_host_api* api, trellis_rows* raw) : api_(api), raw_(raw) {
        const std::size_t count = api_->rows_column_count(raw_);
        for (std::size_t i = 0; i < count; ++i) {
            trellis_str name = api_->rows_column_name(raw_, i);
            columns_.emplace_back(name.data ? name.data : "", name.size);
        }
    }
    Rows(Rows&& other) noexcept : api_(other.api_), raw_(other.raw_), columns_(std::move(other.columns_)) {
        other.raw_ = nullptr;
    }
    Rows& operator=(Rows&&) = delete;
    Rows(const Rows&) = delete;
    ~Rows() {
        if (raw_) api_->rows_free(raw_);
    }

    std::size_t size() const { return api_->rows_count(raw_); }
    bool empty() const { return size() == 0; }
    const std::vector<std::string>& columns() const { return columns_; }
    Row operator[](std::size_t index) const { return Row(*this, index); }

    class iterator {
    public:
        iterator(const Rows* rows, std::size_t index) : rows_(rows), index_(index) {}
        Row operator*() const { return Row(*rows_, index_); }
        iterator& operator++() {
            ++index_;
            return *this;
        }
        bool operator!=(const iterator& other) const { return index_ != other.index_; }

    private:
        const Rows* rows_;
        std::size_t index_;
    };
    iterator begin() const { return iterator(this, 0); }
    iterator end() const { return iterator(this, size()); }

    /// The value at row, column; throws std::out_of_range past the end.
    Field field(std::size_t row, std::size_t column) const {
        trellis_value value{};
        if (api_->rows_value(raw_, row, column, &value) != TRELLIS_OK)
            throw std::out_of_range("row " + std::to_string(row) + ", column " + std::to_string(column) +
                                    " is outside the result");
        return Field(value, columns_[column]);
    }
    std::size_t column_index(std::string_view name) const {
        for (std::size_t i = 0; i < columns_.size(); ++i)
            if (columns_[i] == name) return i;
        throw std::out_of_range("the result has no column '" + std::string(name) + "'");
    }

private:
    const trellis_host_api* api_;
    trellis_rows* raw_;
    std::vector<std::string> columns_;
};

inline Field Row::operator[](std::size_t column) const { return rows_->field(index_, column); }
inline Field Row::operator[](std::string_view column) const {
    return rows_->field(index_, rows_->column_index(column));
}

class Transaction;

/// One connection leased from the host's pool; given back (rolling back an open
/// transaction) when destroyed. Use it from one thread at a time.
class Connection {
public:
    Connection(const trellis_host_api* api, trellis_db* raw) : api_(api), raw_(raw) {}
    Connection(Connection&& other) noexcept : api_(other.api_), raw_(other.raw_) { other.raw_ = nullptr; }
    Connection& operator=(Connection&&) = delete;
    Connection(const Connection&) = delete;
    ~Connection() {
        if (raw_) api_->db_release(raw_);
    }

    /// Runs a statement that returns rows (SELECT, or INSERT ... RETURNING).
    Rows query(std::string_view sql, const Params& params = {}) {
        trellis_rows* rows = nullptr;
        run(sql, params, &rows, nullptr);
        return Rows(api_, rows);
    }
    /// Runs a statement; returns the number of rows it changed.
    std::int64_t execute(std::string_view sql, const Params& params = {}) {
        std::int64_t affected = 0;
        run(sql, params, nullptr, &affected);
        return affected;
    }
    /// Starts a transaction: BEGIN (BEGIN IMMEDIATE on SQLite).
    Transaction transaction();

    void begin() { check(api_->db_begin(raw_)); }
    void commit() { check(api_->db_commit(raw_)); }
    void rollback() { check(api_->db_rollback(raw_)); }

private:
    void run(std::string_view sql, const Params& params, trellis_rows** rows, std::int64_t* affected) {
        std::vector<trellis_param> raw;
        raw.reserve(params.size());
        for (const auto& [name, value] : params)
            raw.push_back(trellis_param{trellis_str{name.data(), name.size()}, value.raw()});
        check(api_->db_execute(raw_, trellis_str{sql.data(), sql.size()}, raw.empty() ? nullptr : raw.data(),
                               raw.size(), rows, affected));
    }
    void check(trellis_status status) const {
        if (status == TRELLIS_OK) return;
        trellis_str text = api_->db_error(raw_);
        std::string message(text.data ? text.data : "", text.size);
        if (status == TRELLIS_ERROR_UNAVAILABLE) throw DbUnavailable(status, message);
        if (status == TRELLIS_ERROR_CONFLICT) throw DbConflict(status, message);
        throw DbError(status, message);
    }

    const trellis_host_api* api_;
    trellis_db* raw_;
};

/// RAII transaction: rolled back when destroyed without commit().
class Transaction {
public:
    explicit Transaction(Connection& connection) : connection_(&connection) { connection.begin(); }
    Transaction(Transaction&& other) noexcept : connection_(other.connection_), open_(other.open_) { other.open_ = false; }
    Transaction& operator=(Transaction&&) = delete;
    Transaction(const Transaction&) = delete;
    ~Transaction() {
        if (!open_) return;
        try {
            connection_->rollback();
        } catch (...) {
        }
    }
    void commit() {
        open_ = false;
        connection_->commit();
    }
    void rollback() {
        open_ = false;
        connection_->rollback();
    }

private:
    Connection* connection_;
    bool open_ = true;
};

inline Transaction Connection::transaction() { return Transaction(*this); }

/// The host's database as a plugin sees it. Cheap to copy; valid until the instance is destroyed.
class Database {
public:
    Database(const trellis_host_api* api, trellis_host* host) : api_(api), host_(host) {}

    /// "sqlite" or "postgresql", for the rare statement that must differ.
    std::string_view dialect() const {
        trellis_str d = api_->db_dialect(host_);
        return d.data ? std::string_view(d.data, d.size) : std::string_view();
    }
    /// Leases a connection; throws DbUnavailable when none is free in time, and DbError
    /// from a non-blocking route or middleware (they must not use the database).
    Connection connect() const {
        trellis_db* raw = nullptr;
        const trellis_status status = api_->db_acquire(host_, &raw);
        if (status == TRELLIS_ERROR_UNAVAILABLE) throw DbUnavailable(status, "no database connection is available now");
        // STATE: no database configured (empty dialect) or, since 1.2, an event-loop thread.
        if (status == TRELLIS_ERROR_STATE)
            throw DbError(status, dialect().empty()
                                      ? "cannot lease a database connection: the host has no database configured"
                                      : event_loop_database_message);
        if (status != TRELLIS_OK)
            throw DbError(status, "cannot lease a database connection (status " + std::to_string(status) + ")");
        return Connection(api_, raw);
    }
    /// One statement on a connection leased for this call only.
    Rows query(std::string_view sql, const Params& params = {}) const { return connect().query(sql, params); }
    std::int64_t execute(std::string_view sql, const Params& params = {}) const {
        return connect().execute(sql, params);
    }

private:
    const trellis_host_api* api_;
    trellis_host* host_;
};

/// A schema migration: register them in init() with Context::migration. Never edit one that
/// was released; add a new version instead (the host refuses changed applied migrations).
struct Migration {
    std::int64_t version = 0;  ///< > 0, unique per plugin
    std::string name;          ///< short description, recorded in the history
    std::string up;            ///< SQL, may hold several statements
    std::string down;          ///< SQL that reverts it, or empty
    std::string dialect;       ///< empty for every database, or "sqlite" / "postgresql" for a variant
};

}  // namespace trellis

#endif  // TRELLIS_DATABASE_HPP
