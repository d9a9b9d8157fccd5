// Fresh databases for tests; see test_database.hpp.
#include "support/test_database.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include <unistd.h>

namespace trellis::test {
namespace {

config::DatabaseConfig parse(const std::string& url) {
    auto parsed = config::parse_database_url(url, "/");
    if (!parsed) throw std::runtime_error("bad test database url: " + parsed.error());
    parsed->pool_size = 2;
    return *parsed;
}

std::string text(const db::Value& v) {
    switch (v.type) {
        case TRELLIS_VALUE_NULL: return "NULL";
        case TRELLIS_VALUE_INT: return std::to_string(v.integer);
        case TRELLIS_VALUE_REAL: return std::to_string(v.real);
        default: return v.text;
    }
}

}  // namespace

std::string postgres_server() {
    const char* server = std::getenv("TRELLIS_TEST_POSTGRES");
    return server ? server : "";
}

void postgres_admin(const std::string& server, const std::string& sql) {
    auto pool = db::Pool::create(parse(server + "/postgres"));
    auto connection = pool->acquire();
    if (!connection) throw std::runtime_error("cannot reach the test PostgreSQL: " + connection.error().message);
    if (auto done = connection->execute_script(sql); !done)
        throw std::runtime_error(sql + ": " + done.error().message);
}

TestDatabase::TestDatabase() : server_(postgres_server()) {
    if (server_.empty()) {
        url_ = "sqlite://" + (dir_.path() / "trellis.db").string();
        return;
    }
    static std::atomic<int> counter{0};
    postgresql_ = true;
    name_ = "trellis_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    postgres_admin(server_, "CREATE DATABASE " + name_);
    url_ = server_ + "/" + name_;
}

TestDatabase::~TestDatabase() {
    pool_.reset();
    if (!postgresql_) return;
    try {
        postgres_admin(server_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (...) {
    }
}

std::string TestDatabase::yaml(const std::string& extra) const {
    return "database:\n  url: \"" + url_ + "\"\n" + extra;
}

db::Pool& TestDatabase::pool() {
    if (!pool_) pool_ = db::Pool::create(parse(url_));
    return *pool_;
}

std::vector<std::vector<std::string>> TestDatabase::rows(const std::string& sql) {
    auto connection = pool().acquire();
    if (!connection) throw std::runtime_error(connection.error().message);
    auto result = connection->execute(sql, {}, true);
    if (!result) throw std::runtime_error(sql + ": " + result.error().message);
    std::vector<std::vector<std::string>> out(result->rows());
    for (std::size_t r = 0; r < result->rows(); ++r)
        for (std::size_t c = 0; c < result->columns.size(); ++c)
            out[r].push_back(text(result->cells[r * result->columns.size() + c]));
    return out;
}

}  // namespace trellis::test
