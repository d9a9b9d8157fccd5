// The trellis command line: dispatch to the subcommands.
#include <iostream>

#include "cli/args.hpp"
#include "cli/commands.hpp"

int main(int argc, char** argv) {
    using namespace trellis::cli;
    auto args = parse(argc, argv);
    if (!args) return 2;
    const auto& command = args->command;
    auto is = [&](std::initializer_list<const char*> words) {
        return command.size() == words.size() && std::equal(words.begin(), words.end(), command.begin());
    };
    if (is({"help"})) {
        std::cout << usage;
        return 0;
    }
    if (is({"serve"})) return serve(*args);
    if (is({"check"})) return check(*args);
    if (is({"plugins", "list"}) || is({"plugins"})) return plugins_list(*args);
    if (command.size() >= 2 && command[0] == "plugins" && (command[1] == "enable" || command[1] == "disable"))
        return plugins_edit(*args);
    if (is({"routes"})) return routes(*args);
    if (is({"openapi"})) return openapi(*args);
    if (is({"version"})) return version(*args);
    if (!command.empty() && command[0] == "migrate") return migrate(*args);
    if (!command.empty() && command[0] == "new-plugin") return new_plugin(*args);
    std::string text;
    for (const auto& word : command) text += (text.empty() ? "" : " ") + word;
    std::cerr << "trellis: unknown command '" << text << "'\n" << usage;
    return 2;
}
