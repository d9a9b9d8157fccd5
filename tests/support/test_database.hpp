// A fresh, empty database per test: a SQLite file in a temporary folder, or, when
// TRELLIS_TEST_POSTGRES names a server (postgresql://user@127.0.0.1:PORT, started by the test
// script), a new PostgreSQL database on it that is dropped afterwards.
#pragma once

#include <memory>
#include <string>

#include "config/config.hpp"
#include "db/pool.hpp"
#include "support/temp_dir.hpp"

namespace trellis::test {

class TestDatabase {
public:
    TestDatabase();
    ~TestDatabase();
    TestDatabase(const TestDatabase&) = delete;
    TestDatabase& operator=(const TestDatabase&) = delete;

    bool postgresql() const { return postgresql_; }
    const std::string& url() const { return url_; }
    // A `database:` section for config_yaml's `top`, with extra settings appended
    // (each "  key: value\n").
    std::string yaml(const std::string& extra = {}) const;
    // A small pool of the host's own, for a test to look at what plugins wrote.
    db::Pool& pool();
    // Rows of a query as text ("NULL" for NULL), for short assertions.
    std::vector<std::vector<std::string>> rows(const std::string& sql);

private:
    TempDir dir_;
    bool postgresql_ = false;
    std::string server_;  // postgresql://... without the database
    std::string name_;
    std::string url_;
    std::shared_ptr<db::Pool> pool_;
};

// The PostgreSQL server of TRELLIS_TEST_POSTGRES, or empty.
std::string postgres_server();

// Runs SQL on a server's maintenance database (CREATE/DROP DATABASE).
void postgres_admin(const std::string& server, const std::string& sql);

}  // namespace trellis::test
