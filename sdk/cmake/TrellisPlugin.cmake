# trellis_add_plugin(NAME SOURCES... [OUTPUT_DIRECTORY DIR] [NO_INSTALL]): builds the
# Trellis plugin module NAME.so, exporting only its entry symbol, and installs it into
# lib/trellis/plugins (component NAME). The one CMake call a plugin author needs.
include_guard(GLOBAL)

function(trellis_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  set(sources ${ARG_SOURCES} ${ARG_UNPARSED_ARGUMENTS})
  add_library(${name} MODULE ${sources})
  target_link_libraries(${name} PRIVATE Trellis::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${name}
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  elseif(DEFINED TRELLIS_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${TRELLIS_PLUGIN_OUTPUT_DIR})
  endif()
  # A plugin must resolve every symbol at link time: the host exports nothing to it.
  target_link_options(${name} PRIVATE -Wl,--no-undefined -Wl,-z,relro,-z,now)
  if(NOT ARG_NO_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION lib/trellis/plugins COMPONENT ${name})
  endif()
endfunction()
