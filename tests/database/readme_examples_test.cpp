// readme_examples tests: being written.
#include <catch2/catch.hpp>
