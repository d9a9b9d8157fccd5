// The notes examples in README.md: every curl command of the marked sh block runs, in order,
// against the real trellis binary on a fresh database and must answer the status written
// under it ("# -> NNN"). A missing, empty or malformed block fails.
#include <catch2/catch.hpp>

#include <csignal>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/temp_dir.hpp"
#include "support/test_database.hpp"

using namespace trellis::test;
using namespace std::chrono_literals;

namespace {

const std::string kMarker = "<!-- notes-examples: run by tests/database/readme_examples_test.cpp -->";
const std::string kBase = "http://127.0.0.1:8080";

struct Example {
    std::size_t line;  // in README.md, from 1
    std::string command;
    int status = 0;  // 0 until its "# -> NNN" line is read
};

std::string trim(const std::string& s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string::npos) return "";
    return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// The commands of the sh block right after the marker line, each with its expected status.
// Throws with the reason (and README line) when the block is missing, empty or malformed.
std::vector<Example> parse_examples(const std::string& readme) {
    std::vector<std::string> lines;
    std::istringstream in(readme);
    for (std::string line; std::getline(in, line);) lines.push_back(line);

    std::size_t marker = lines.size();
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (trim(lines[i]) != kMarker) continue;
        if (marker != lines.size()) throw std::runtime_error("the notes-examples marker appears twice");
        marker = i;
    }
    if (marker == lines.size()) throw std::runtime_error("no line '" + kMarker + "' in README.md");
    if (marker + 1 >= lines.size() || trim(lines[marker + 1]) != "```sh")
        throw std::runtime_error("the line after the notes-examples marker is not ```sh");

    std::vector<Example> out;
    auto where = [](std::size_t i) { return "README.md:" + std::to_string(i + 1) + ": "; };
    for (std::size_t i = marker + 2;; ++i) {
        if (i >= lines.size()) throw std::runtime_error("the notes examples block is not closed with ```");
        const std::string line = trim(lines[i]);
        if (line == "```") break;
        if (line.empty()) continue;
        if (line.rfind("# ->", 0) == 0) {
            const std::string code = trim(line.substr(4));
            if (out.empty() || out.back().status != 0)
                throw std::runtime_error(where(i) + "an expected status without a curl command before it");
            if (code.size() != 3 || code.find_first_not_of("0123456789") != std::string::npos || code[0] == '0')
                throw std::runtime_error(where(i) + "'" + line + "' is not '# -> NNN'");
            out.back().status = std::stoi(code);
        } else if (line.front() == '#') {
            continue;  // a comment for the reader
        } else if (line.rfind("curl ", 0) == 0) {
            if (!out.empty() && out.back().status == 0)
                throw std::runtime_error(where(out.back().line - 1) + "a command without '# -> NNN' after it");
            if (line.find(kBase) == std::string::npos)
                throw std::runtime_error(where(i) + "the command does not use " + kBase);
            if (line.back() == '\\') throw std::runtime_error(where(i) + "a command must fit on one line");
            out.push_back({i + 1, line, 0});
        } else {
            throw std::runtime_error(where(i) + "neither a curl command, a comment nor '# -> NNN': " + line);
        }
    }
    if (out.empty()) throw std::runtime_error("the notes examples block has no curl command");
    if (out.back().status == 0)
        throw std::runtime_error(where(out.back().line - 1) + "a command without '# -> NNN' after it");
    return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
        text.replace(at, from.size(), to);
    return text;
}

}  // namespace

TEST_CASE("the README notes examples block is found and checked strictly", "[notes][readme]") {
    const std::string good = "text\n" + kMarker + "\n```sh\n# create\ncurl -s " + kBase + "/notes\n# -> 200\n```\n";
    auto parsed = parse_examples(good);
    REQUIRE(parsed.size() == 1);
    CHECK(parsed[0].status == 200);
    CHECK(parsed[0].line == 5);

    const std::vector<std::string> bad{
        "no marker\n```sh\ncurl -s " + kBase + "\n# -> 200\n```\n",
        kMarker + "\n\n```sh\ncurl -s " + kBase + "\n# -> 200\n```\n",
        kMarker + "\n```sh\n```\n",
        kMarker + "\n```sh\n# only comments\n\n```\n",
        kMarker + "\n```sh\ncurl -s " + kBase + "\n```\n",
        kMarker + "\n```sh\ncurl -s " + kBase + "\ncurl -s " + kBase + "\n# -> 200\n```\n",
        kMarker + "\n```sh\ncurl -s " + kBase + "\n# -> 200\n",
        kMarker + "\n```sh\ncurl -s " + kBase + "\n# -> OK\n```\n",
        kMarker + "\n```sh\n# -> 200\n```\n",
        kMarker + "\n```sh\nwget " + kBase + "\n# -> 200\n```\n",
        kMarker + "\n```sh\ncurl -s http://localhost:9999/notes\n# -> 200\n```\n",
        kMarker + "\n```sh\ncurl -s " + kBase + " \\\n# -> 200\n```\n",
    };
    for (const auto& text : bad) {
        INFO(text);
        CHECK_THROWS_AS(parse_examples(text), std::runtime_error);
    }
}

TEST_CASE("every curl example of the notes API in README.md answers the status it promises", "[notes][readme]") {
    const std::string readme = read_file(TRELLIS_TEST_SOURCE_DIR "/README.md");
    REQUIRE_FALSE(readme.empty());
    std::vector<Example> examples;
    try {
        examples = parse_examples(readme);
    } catch (const std::exception& e) {
        FAIL(e.what());
    }
    REQUIRE_FALSE(examples.empty());

    TestDatabase db;
    TempDir dir;
    const std::uint16_t port = free_port();
    dir.write("trellis.yaml", "server:\n  listen: 127.0.0.1:" + std::to_string(port) +
                                  "\n  admin_enabled: false\n" + db.yaml() +
                                  "plugins:\n  search_paths: [\"" TRELLIS_TEST_PLUGIN_DIR "\"]\n  notes: {}\n");
    Process server({TRELLIS_TEST_BINARY, "serve", "-c", (dir.path() / "trellis.yaml").string()}, minimal_environment(),
                   dir.path() / "server.log");
    if (!wait_until_listening(port, 20s)) FAIL("trellis did not start:\n" << server.output());

    const std::string base = "http://127.0.0.1:" + std::to_string(port);
    for (const auto& example : examples) {
        const std::string command =
            replace_all(example.command, kBase, base) + " --max-time 10 -w '\\n%{http_code}'";
        Process curl({"/bin/sh", "-c", command}, minimal_environment(), dir.path() / "curl.out");
        const auto code = curl.wait(30s);
        const std::string output = curl.output();
        INFO("README.md:" << example.line << ": " << example.command << "\noutput:\n" << output);
        REQUIRE(code == 0);
        const auto last = output.find_last_of('\n');
        REQUIRE(last != std::string::npos);
        CHECK(output.substr(last + 1) == std::to_string(example.status));
    }

    server.signal(SIGTERM);
    const auto exit_code = server.wait(20s);
    INFO("server output:\n" << server.output());
    CHECK(exit_code == 0);
}
