// The event-loop thread mark (ABI 1.2): scopes nest and stay on their thread, and every
// database entry of the host API refuses an event-loop thread with TRELLIS_ERROR_STATE and a
// message that says why and what to do, on a real SQLite database.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include <trellis/database.hpp>

#include "config/config.hpp"
#include "db/pool.hpp"
#include "plugin/host_api.hpp"
#include "plugin/instance.hpp"
#include "plugin/loader.hpp"
#include "plugin/thread_role.hpp"
#include "support/test_database.hpp"

using namespace trellis;
using Catch::Matchers::Contains;
using plugin::EventLoopThreadScope;
using plugin::on_event_loop_thread;

namespace {

const trellis_host_api& api = plugin::host_api();

trellis_str lit(const char* text) { return trellis_str{text, std::char_traits<char>::length(text)}; }

std::string text(trellis_str s) { return s.data ? std::string(s.data, s.size) : std::string(); }

std::shared_ptr<db::Pool> pool_for(const test::TestDatabase& db) {
    auto parsed = config::parse_database_url(db.url(), "/");
    REQUIRE(parsed);
    return db::Pool::create(*parsed);
}

}  // namespace

TEST_CASE("an EventLoopThreadScope marks its own thread only, nests and restores", "[plugin]") {
    CHECK_FALSE(on_event_loop_thread());
    {
        EventLoopThreadScope loop;
        CHECK(on_event_loop_thread());
        bool other_thread_marked = true;
        std::thread([&] { other_thread_marked = on_event_loop_thread(); }).join();
        CHECK_FALSE(other_thread_marked);
        {
            EventLoopThreadScope inline_call;  // e.g. around one inline handler on a loop thread
            CHECK(on_event_loop_thread());
        }
        CHECK(on_event_loop_thread());  // still the loop's own scope
    }
    CHECK_FALSE(on_event_loop_thread());
}

TEST_CASE("the refusal message says why and what to do", "[plugin]") {
    const std::string message(plugin::event_loop_database_error());
    CHECK(message == event_loop_database_message);
    CHECK_THAT(message, Contains("database call from an event-loop thread") && Contains("non-blocking") &&
                            Contains("TRELLIS_ROUTE_NON_BLOCKING") && Contains("worker pool"));
}

TEST_CASE("database calls of the host API are refused on an event-loop thread and work elsewhere", "[plugin]") {
    test::TestDatabase database;
    trellis_host host;
    host.plugin_name = "probe";
    host.database = pool_for(database);

    SECTION("db_acquire") {
        trellis_db* db = nullptr;
        {
            EventLoopThreadScope loop;
            CHECK(api.db_acquire(&host, &db) == TRELLIS_ERROR_STATE);
            CHECK(db == nullptr);
            CHECK_FALSE(text(api.db_dialect(&host)).empty());  // how the SDK tells this STATE apart
        }
        REQUIRE(api.db_acquire(&host, &db) == TRELLIS_OK);
        api.db_release(db);
    }

    SECTION("calls on a connection leased on a worker") {
        trellis_db* db = nullptr;
        REQUIRE(api.db_acquire(&host, &db) == TRELLIS_OK);
        {
            EventLoopThreadScope loop;
            trellis_rows* rows = nullptr;
            CHECK(api.db_execute(db, lit("SELECT 1 AS one"), nullptr, 0, &rows, nullptr) == TRELLIS_ERROR_STATE);
            CHECK(rows == nullptr);
            CHECK(text(api.db_error(db)) == event_loop_database_message);
            CHECK(api.db_begin(db) == TRELLIS_ERROR_STATE);
            CHECK(api.db_commit(db) == TRELLIS_ERROR_STATE);
            CHECK(api.db_rollback(db) == TRELLIS_ERROR_STATE);
            CHECK(text(api.db_error(db)) == event_loop_database_message);
        }
        // The same calls off the loop: the refused ones left no state behind.
        REQUIRE(api.db_begin(db) == TRELLIS_OK);
        trellis_rows* rows = nullptr;
        REQUIRE(api.db_execute(db, lit("SELECT 1 AS one"), nullptr, 0, &rows, nullptr) == TRELLIS_OK);
        REQUIRE(api.rows_count(rows) == 1);
        trellis_value value{};
        REQUIRE(api.rows_value(rows, 0, 0, &value) == TRELLIS_OK);
        CHECK((value.type == TRELLIS_VALUE_INT ? std::to_string(value.int_value) : text(value.text)) == "1");
        api.rows_free(rows);
        CHECK(api.db_commit(db) == TRELLIS_OK);
        api.db_release(db);
    }
}

TEST_CASE("an SDK handler that uses the database fails under an EventLoopThreadScope with the message", "[plugin]") {
    test::TestDatabase database;
    plugin::LibraryCache cache;
    auto library = cache.load(TRELLIS_TEST_FIXTURE_DIR "/alpha.so");
    REQUIRE(library);
    auto instance = plugin::Instance::create(*library, "{}", nullptr, pool_for(database));
    REQUIRE(instance);
    REQUIRE((*instance)->init());

    const plugin::RouteRegistration* inline_db = nullptr;
    for (const auto& r : (*instance)->routes())
        if (r.path == "/inline/db") inline_db = &r;
    REQUIRE(inline_db);
    CHECK(inline_db->non_blocking);

    auto call = [&] {
        http::Request http_request;
        http_request.method = "GET";
        http_request.path = "/alpha/inline/db";
        http::Response http_response;
        trellis_request request{&http_request, {}};
        trellis_response response{&http_response};
        const trellis_status status = inline_db->on_request(inline_db->user_data, &request, &response);
        return std::make_tuple(status, request.error, http_response.body);
    };

    {
        EventLoopThreadScope loop;
        auto [status, error, body] = call();
        CHECK(status == TRELLIS_ERROR);  // the pipeline answers 500 and logs the error
        CHECK(error == event_loop_database_message);
        CHECK(body.empty());
    }
    // On a worker thread the very same handler works.
    auto [status, error, body] = call();
    CHECK(status == TRELLIS_OK);
    CHECK(error.empty());
    CHECK(body == R"({"one":1})");
}
