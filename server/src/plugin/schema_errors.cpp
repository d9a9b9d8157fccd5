#include "plugin/schema_errors.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wrestrict"  // in valijson's headers (see schema.cpp)
#endif
#include <valijson/validation_results.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace trellis::plugin {
namespace {

// valijson's context {"<root>", "[tags]", "[1]"} as a JSON pointer.
std::string pointer_of(const std::vector<std::string>& context) {
    std::string out;
    for (const auto& part : context) {
        if (part == "<root>") continue;
        const std::string_view token = part.size() >= 2 && part.front() == '[' && part.back() == ']'
                                           ? std::string_view(part).substr(1, part.size() - 2)
                                           : std::string_view(part);
        out += '/';
        for (char c : token) {
            if (c == '~')
                out += "~0";
            else if (c == '/')
                out += "~1";
            else
                out += c;
        }
    }
    return out;
}

// The messages valijson adds on the way out of an element that failed inside.
bool is_summary(const std::string& message) {
    for (std::string_view prefix : {"Failed to validate item #", "Failed to validate against schema associated with",
                                    "Failed to validate against additional"})
        if (message.rfind(prefix, 0) == 0) return true;
    return false;
}

// valijson writes limits with std::to_string ("greater than or equal to 1.000000"): the
// decimals of a number in a message lose their trailing zeros ("1", "0.5").
std::string tidy_numbers(const std::string& message) {
    std::string out;
    for (std::size_t i = 0; i < message.size(); ++i) {
        out += message[i];
        const bool decimal_point = message[i] == '.' && i > 0 && std::isdigit(static_cast<unsigned char>(message[i - 1])) &&
                                   i + 1 < message.size() && std::isdigit(static_cast<unsigned char>(message[i + 1]));
        if (!decimal_point) continue;
        std::size_t end = i + 1;
        while (end < message.size() && std::isdigit(static_cast<unsigned char>(message[end]))) ++end;
        std::string digits = message.substr(i + 1, end - i - 1);
        while (!digits.empty() && digits.back() == '0') digits.pop_back();
        if (digits.empty())
            out.pop_back();  // the '.'
        else
            out += digits;
        i = end - 1;
    }
    return out;
}

}  // namespace

std::vector<SchemaError> innermost_errors(const valijson::ValidationResults& results) {
    std::vector<valijson::ValidationResults::Error> all(results.begin(), results.end());
    auto encloses_another = [&](const auto& error) {
        return std::any_of(all.begin(), all.end(), [&](const auto& other) {
            return other.context.size() > error.context.size() &&
                   std::equal(error.context.begin(), error.context.end(), other.context.begin());
        });
    };
    std::vector<SchemaError> out;
    for (const auto& error : all) {
        if (is_summary(error.description) && encloses_another(error)) continue;
        SchemaError entry{pointer_of(error.context), tidy_numbers(error.description)};
        // "Missing required property 'title'." is about /title.
        constexpr std::string_view required = "Missing required property '";
        if (entry.message.rfind(required, 0) == 0 && entry.message.size() > required.size() + 2) {
            std::vector<std::string> context = error.context;
            context.push_back(entry.message.substr(required.size(), entry.message.size() - required.size() - 2));
            entry = {pointer_of(context), "is required"};
        }
        if (std::none_of(out.begin(), out.end(), [&](const SchemaError& seen) {
                return seen.pointer == entry.pointer && seen.message == entry.message;
            }))
            out.push_back(std::move(entry));
    }
    return out;
}

}  // namespace trellis::plugin
