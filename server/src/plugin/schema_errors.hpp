// valijson's validation results as the innermost errors, each at a JSON pointer: shared by
// the check of plugin config sections and the host's request validation.
#pragma once

#include <string>
#include <vector>

namespace valijson {
class ValidationResults;
}

namespace trellis::plugin {

struct SchemaError {
    std::string pointer;  // "/tags/1"; "" for the value itself
    std::string message;  // valijson's description
};

// valijson also reports, for each failing element, every enclosing array and object ("Failed
// to validate item #1 in array."); those are left out, as are repeats. Other errors of an
// enclosing value (a missing required property, an unknown property) are kept.
std::vector<SchemaError> innermost_errors(const valijson::ValidationResults& results);

}  // namespace trellis::plugin
