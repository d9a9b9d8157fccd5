# The templates of `trellis new-plugin`, embedded into the trellis binary: included from
# server/CMakeLists.txt, it generates scaffold_templates.hpp; run with -P it writes that header.
# Each entry is TEMPLATE=PATH, PATH being where the file goes in the new project (@NAME@ is
# replaced, as in the texts).
set(_scaffold_templates
  CMakeLists.txt.in=CMakeLists.txt
  plugin.cpp.in=src/@NAME@.cpp
  plugin_test.cpp.in=tests/@NAME@_test.cpp
  config.yaml.in=config/50-@NAME@.yaml
  README.md.in=README.md
  gitignore.in=.gitignore)

if(CMAKE_SCRIPT_MODE_FILE)
  # cmake -DTEMPLATE_DIR=... -DOUTPUT=... -P templates.cmake
  set(text "// Generated from server/src/cli/scaffold/*.in by templates.cmake: do not edit.\n#pragma once\n\n")
  string(APPEND text "#include <string_view>\n\nnamespace trellis::cli::scaffold {\n\n")
  string(APPEND text "struct Template {\n    std::string_view path;  // in the new project\n    std::string_view text;\n};\n\n")
  string(APPEND text "inline constexpr Template templates[] = {\n")
  foreach(entry IN LISTS _scaffold_templates)
    string(REPLACE "=" ";" pair "${entry}")
    list(GET pair 0 source)
    list(GET pair 1 path)
    file(READ "${TEMPLATE_DIR}/${source}" content)
    if(content MATCHES "\\)scaffold\"")
      message(FATAL_ERROR "${TEMPLATE_DIR}/${source} contains the raw string delimiter )scaffold\"")
    endif()
    string(APPEND text "    {\"${path}\", R\"scaffold(${content})scaffold\"},\n")
  endforeach()
  string(APPEND text "};\n\n}  // namespace trellis::cli::scaffold\n")
  file(WRITE "${OUTPUT}.tmp" "${text}")
  file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
  file(REMOVE "${OUTPUT}.tmp")
  return()
endif()

set(_scaffold_dir "${CMAKE_CURRENT_LIST_DIR}")
set(_scaffold_sources)
foreach(entry IN LISTS _scaffold_templates)
  string(REGEX REPLACE "=.*" "" source "${entry}")
  list(APPEND _scaffold_sources "${_scaffold_dir}/${source}")
endforeach()
set(_scaffold_header "${CMAKE_CURRENT_BINARY_DIR}/generated/cli/scaffold_templates.hpp")
add_custom_command(OUTPUT "${_scaffold_header}"
  COMMAND "${CMAKE_COMMAND}" "-DTEMPLATE_DIR=${_scaffold_dir}" "-DOUTPUT=${_scaffold_header}"
          -P "${_scaffold_dir}/templates.cmake"
  DEPENDS ${_scaffold_sources} "${_scaffold_dir}/templates.cmake"
  COMMENT "Embedding the new-plugin templates"
  VERBATIM)
target_sources(trellis PRIVATE "${_scaffold_header}")
target_include_directories(trellis PRIVATE "${CMAKE_CURRENT_BINARY_DIR}/generated")
