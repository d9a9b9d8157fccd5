# Tests of the in-process harness (libtrellis.so.1, trellis/embed.h, trellis/testing.hpp),
# linked as a plugin's own tests are: Trellis::testing and Catch2 only, no host internals.
function(trellis_harness_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE Trellis::testing trellis_catch_main trellis_warnings)
  target_compile_definitions(${name} PRIVATE
    TRELLIS_TEST_FIXTURE_DIR="${TRELLIS_FIXTURE_DIR}"
    TRELLIS_TEST_PLUGIN_DIR="${TRELLIS_PLUGIN_OUTPUT_DIR}"
    TRELLIS_EMBED_LIBRARY="$<TARGET_FILE:trellis_embed>")
  add_dependencies(${name} trellis_test_fixtures hello security notes)
  catch_discover_tests(${name} TEST_PREFIX "${name}: " EXTRA_ARGS -w NoTests
    PROPERTIES TIMEOUT 180 LABELS host)
endfunction()

trellis_harness_test(embed_tests embed/embed_test.cpp)
# The bundled plugins' own tests.
trellis_harness_test(plugin_tests plugins/hello_test.cpp plugins/notes_test.cpp plugins/security_test.cpp)

# embed.h from a C89 program.
add_executable(embed_c_test embed/embed_c_test.c)
target_link_libraries(embed_c_test PRIVATE trellis_embed trellis_warnings)
target_include_directories(embed_c_test PRIVATE ${PROJECT_SOURCE_DIR}/sdk/include)
set_target_properties(embed_c_test PROPERTIES C_STANDARD 90 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_definitions(embed_c_test PRIVATE TRELLIS_TEST_PLUGIN_DIR="${TRELLIS_PLUGIN_OUTPUT_DIR}")
add_dependencies(embed_c_test hello)
add_test(NAME "embed_c_test: embed.h from C89" COMMAND embed_c_test)
set_tests_properties("embed_c_test: embed.h from C89" PROPERTIES TIMEOUT 60 LABELS host)

# Another toolchain: hello's and notes' tests compiled by clang++ against libc++ drive
# libtrellis.so.1 (g++ and libstdc++) through the C API alone, linked as Trellis::testing
# links them (libgcc_s first: TRELLIS_UNWINDER_FIRST). notes uses the database and throws
# inside the plugin; both failed under libc++'s runtime before the host library and the
# plugins were loaded with RTLD_DEEPBIND. As the libc++ fixture in tests/fixtures.
# Not in the sanitizer build: libtrellis.so.1 then carries g++'s ASan runtime, which must
# come first in a program that clang++ links without it.
if(NOT TRELLIS_SANITIZE)
  find_package(nlohmann_json 3.10 REQUIRED)
  find_program(TRELLIS_CLANGXX NAMES clang++ clang++-14 REQUIRED)
  get_target_property(_nlohmann_include nlohmann_json::nlohmann_json INTERFACE_INCLUDE_DIRECTORIES)
  list(REMOVE_DUPLICATES _nlohmann_include)
  list(TRANSFORM _nlohmann_include PREPEND "-idirafter")
  set(_libcxx_test ${CMAKE_CURRENT_BINARY_DIR}/plugin_tests_libcxx)
  add_custom_command(
    OUTPUT ${_libcxx_test}
    COMMAND ${TRELLIS_CLANGXX} -std=c++17 -stdlib=libc++ -Wall -Wextra -Werror -O1
            -I${PROJECT_SOURCE_DIR}/sdk/include ${_nlohmann_include}
            "-DTRELLIS_TEST_PLUGIN_DIR=\"${TRELLIS_PLUGIN_OUTPUT_DIR}\""
            -o ${_libcxx_test} ${CMAKE_CURRENT_SOURCE_DIR}/support/catch_main.cpp
            ${CMAKE_CURRENT_SOURCE_DIR}/plugins/hello_test.cpp ${CMAKE_CURRENT_SOURCE_DIR}/plugins/notes_test.cpp
            ${TRELLIS_UNWINDER_FIRST} $<TARGET_FILE:trellis_embed> -Wl,-rpath,$<TARGET_FILE_DIR:trellis_embed>
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/plugins/hello_test.cpp ${CMAKE_CURRENT_SOURCE_DIR}/plugins/notes_test.cpp
            ${CMAKE_CURRENT_SOURCE_DIR}/support/catch_main.cpp
            ${PROJECT_SOURCE_DIR}/sdk/include/trellis/testing.hpp ${PROJECT_SOURCE_DIR}/sdk/include/trellis/embed.h
            trellis_embed
    COMMENT "Building hello's and notes' harness tests with clang++ and libc++"
    VERBATIM)
  add_custom_target(plugin_tests_libcxx ALL DEPENDS ${_libcxx_test})
  add_dependencies(plugin_tests_libcxx hello notes)
  add_test(NAME "plugin_tests_libcxx: hello's and notes' tests built with clang++ -stdlib=libc++" COMMAND ${_libcxx_test})
  set_tests_properties("plugin_tests_libcxx: hello's and notes' tests built with clang++ -stdlib=libc++"
    PROPERTIES TIMEOUT 120 LABELS host)
endif()

# The installed CMake package's Trellis::testing, used out of tree (needs the library built).
# packaging_tests is not in the sanitizer build (tests/CMakeLists.txt).
if(TARGET packaging_tests)
  target_sources(packaging_tests PRIVATE packaging/harness_package_test.cpp)
endif()
