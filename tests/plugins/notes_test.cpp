// The bundled notes plugin through the in-process harness: its migrations on the temporary
// SQLite database, create/read/update/delete, validation and conditional requests.
#include <catch2/catch.hpp>

#include <filesystem>

#include <trellis/testing.hpp>

using Catch::Matchers::Contains;

namespace {
const std::string config = "plugins:\n  search_paths: [\"" TRELLIS_TEST_PLUGIN_DIR "\"]\n  notes: {}\n";
const trellis::testing::Headers json_type{{"Content-Type", "application/json"}};
}  // namespace

TEST_CASE("notes migrates a fresh temporary database and stores notes in it", "[plugins][notes]") {
    trellis::testing::Host host(config);
    CHECK(std::filesystem::exists(std::filesystem::path(host.data_dir()) / "trellis.db"));
    CHECK(host.get("/notes").json()["items"].empty());

    auto created = host.post("/notes", R"({"title":"Groceries","body":"milk","pinned":true})", json_type);
    REQUIRE(created.status == 201);
    const auto note = created.json();
    CHECK(note["title"] == "Groceries");
    CHECK(note["pinned"] == true);
    CHECK(note["version"] == 1);
    const std::string path = "/notes/" + note["id"].dump();
    CHECK_THAT(created.header("Location"), Contains(path));

    auto fetched = host.get(path);
    CHECK(fetched.json()["body"] == "milk");
    CHECK(host.get(path, {{"If-None-Match", fetched.header("ETag")}}).status == 304);

    auto patched = host.patch(path, R"({"body":"oat milk"})", {{"Content-Type", "application/merge-patch+json"}});
    REQUIRE(patched.status == 200);
    CHECK(patched.json()["body"] == "oat milk");
    CHECK(patched.json()["version"] == 2);

    CHECK(host.del(path).status == 204);
    CHECK(host.get(path).status == 404);
}

TEST_CASE("notes answers invalid input with problem+json", "[plugins][notes]") {
    trellis::testing::Host host(config);
    auto untitled = host.post("/notes", R"({"body":"no title"})", json_type);
    CHECK(untitled.status == 422);
    CHECK(untitled.header("Content-Type") == "application/problem+json");
    CHECK(host.post("/notes", "title=x", {{"Content-Type", "application/x-www-form-urlencoded"}}).status == 415);
    CHECK(host.post("/notes", R"({"title":"twice"})", json_type).status == 201);
    CHECK(host.post("/notes", R"({"title":"twice"})", json_type).status == 409);
    CHECK(host.get("/notes/abc").status == 404);
}
