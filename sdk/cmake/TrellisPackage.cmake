# trellis_package_plugin(NAME [VERSION v] [CONFIG_SNIPPET file] [DESCRIPTION text]
#                        [MAINTAINER "Name <email>"] [LICENSE_FILE file]):
# makes the deb and rpm `trellis-plugin-NAME` of a plugin target made by trellis_add_plugin
# (install component NAME), through a CPack config file of its own and the target
# `package-NAME` (plus `package-plugins` for all of a project's plugins). The package holds
#   /usr/lib/trellis/plugins/NAME.so          0644, stripped (deb: symbols in a -dbgsym .ddeb)
#   /etc/trellis/conf.d/50-NAME.yaml          CONFIG_SNIPPET, a conffile (%config(noreplace))
#   /usr/share/doc/trellis-plugin-NAME/       copyright (LICENSE_FILE) and changelog.gz
# and depends on the virtual package trellis-abi-MAJOR.MINOR of the abi.h it was built
# against. On purge (rpm: erase) it removes the admin's disable marker
# /etc/trellis/conf.d/90-disabled-NAME.yaml, which no package owns.
# A Debian package name cannot hold '_': plugin my_auth becomes trellis-plugin-my-auth.
include_guard(GLOBAL)

set_property(GLOBAL PROPERTY TRELLIS_PACKAGE_LIST_DIR "${CMAKE_CURRENT_LIST_DIR}")
set(TRELLIS_PLUGIN_CONF_DIR "/etc/trellis/conf.d" CACHE PATH "Where plugin packages put their config snippet")

# "MAJOR;MINOR" of the trellis/abi.h this build compiles plugins against.
function(_trellis_package_abi out)
  get_property(list_dir GLOBAL PROPERTY TRELLIS_PACKAGE_LIST_DIR)
  set(candidates "${list_dir}/../include")  # in the source tree
  if(TARGET Trellis::sdk)
    get_target_property(includes Trellis::sdk INTERFACE_INCLUDE_DIRECTORIES)  # installed SDK
    if(includes)
      list(APPEND candidates ${includes})
    endif()
  endif()
  foreach(dir IN LISTS candidates)
    if(NOT dir MATCHES "\\$<" AND EXISTS "${dir}/trellis/abi.h")
      file(STRINGS "${dir}/trellis/abi.h" lines REGEX "^#define TRELLIS_ABI_(MAJOR|MINOR) +[0-9]+")
      string(REGEX MATCH "MAJOR +([0-9]+)" _ "${lines}")
      set(major "${CMAKE_MATCH_1}")
      string(REGEX MATCH "MINOR +([0-9]+)" _ "${lines}")
      set(minor "${CMAKE_MATCH_1}")
      if(major STREQUAL "" OR minor STREQUAL "")
        message(FATAL_ERROR "trellis_package_plugin: ${dir}/trellis/abi.h defines no TRELLIS_ABI_MAJOR/MINOR")
      endif()
      set(${out} "${major};${minor}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "trellis_package_plugin: cannot find trellis/abi.h (looked in ${candidates})")
endfunction()

function(trellis_package_plugin name)
  cmake_parse_arguments(ARG "" "VERSION;CONFIG_SNIPPET;DESCRIPTION;MAINTAINER;LICENSE_FILE" "" ${ARGN})
  set(where "trellis_package_plugin(${name})")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${where}: unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${name})
    message(FATAL_ERROR "${where}: no target ${name}; call trellis_add_plugin(${name} ...) first")
  endif()
  if(NOT name MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "${where}: a plugin name is lower case letters, digits and '_', starting with a letter")
  endif()
  if(name STREQUAL "plugins")
    message(FATAL_ERROR "${where}: 'plugins' would clash with the target package-plugins")
  endif()

  set(version "${ARG_VERSION}")
  if(version STREQUAL "")
    set(version "${PROJECT_VERSION}")
  endif()
  if(NOT version MATCHES "^[0-9][0-9A-Za-z.+~]*$")
    message(FATAL_ERROR "${where}: VERSION '${version}' is not a package version (give VERSION or project(... VERSION))")
  endif()
  set(maintainer "${ARG_MAINTAINER}")
  if(maintainer STREQUAL "" AND DEFINED ENV{DEBEMAIL})
    set(maintainer "$ENV{DEBFULLNAME} <$ENV{DEBEMAIL}>")
  endif()
  if(NOT maintainer MATCHES "^[^<>]+ <[^<>@ ]+@[^<>@ ]+>$")
    message(FATAL_ERROR "${where}: MAINTAINER must read \"Full Name <address>\" (or set DEBFULLNAME and DEBEMAIL), "
                        "got '${maintainer}'")
  endif()
  string(REGEX REPLACE " <.*" "" maintainer_name "${maintainer}")
  set(description "${ARG_DESCRIPTION}")
  if(description STREQUAL "")
    set(description "plugin ${name} for the Trellis application server")
  endif()
  if(description MATCHES "\n")
    message(FATAL_ERROR "${where}: DESCRIPTION is one line")
  endif()
  foreach(file_arg CONFIG_SNIPPET LICENSE_FILE)
    if(ARG_${file_arg})
      get_filename_component(ARG_${file_arg} "${ARG_${file_arg}}" ABSOLUTE)
      if(NOT EXISTS "${ARG_${file_arg}}")
        message(FATAL_ERROR "${where}: ${file_arg} ${ARG_${file_arg}} does not exist")
      endif()
    endif()
  endforeach()
  if(NOT ARG_CONFIG_SNIPPET)
    message(FATAL_ERROR "${where}: CONFIG_SNIPPET is required: the conf.d file that enables the plugin")
  endif()
  _trellis_package_abi(abi)
  list(GET abi 0 abi_major)
  list(GET abi 1 abi_minor)

  string(REPLACE "_" "-" package "trellis-plugin-${name}")
  set(work "${CMAKE_CURRENT_BINARY_DIR}/trellis-package-${name}")
  set(doc_dir "share/doc/${package}")
  set(conffile "${TRELLIS_PLUGIN_CONF_DIR}/50-${name}.yaml")
  set(marker "${TRELLIS_PLUGIN_CONF_DIR}/90-disabled-${name}.yaml")

  # Files of the package besides the .so (installed by trellis_add_plugin), all in component NAME.
  string(TIMESTAMP year "%Y" UTC)
  string(TIMESTAMP date "%a, %d %b %Y %H:%M:%S +0000" UTC)  # honours SOURCE_DATE_EPOCH
  if(ARG_LICENSE_FILE)
    configure_file("${ARG_LICENSE_FILE}" "${work}/copyright" COPYONLY)
  else()
    file(WRITE "${work}/copyright"
         "${package}: ${description}\n\nCopyright ${year} ${maintainer_name}\n\n"
         "The author has stated no license for this plugin: all rights are reserved.\n")
  endif()
  file(WRITE "${work}/changelog"
       "${package} (${version}) unstable; urgency=medium\n\n  * Release ${version}.\n\n -- ${maintainer}  ${date}\n")
  execute_process(COMMAND gzip -9nf "${work}/changelog" RESULT_VARIABLE gzip_status)
  if(NOT gzip_status EQUAL 0)
    message(FATAL_ERROR "${where}: gzip failed on ${work}/changelog")
  endif()
  install(FILES "${work}/copyright" "${work}/changelog.gz" DESTINATION "${doc_dir}" COMPONENT ${name})
  install(FILES "${ARG_CONFIG_SNIPPET}" DESTINATION "${TRELLIS_PLUGIN_CONF_DIR}" RENAME "50-${name}.yaml"
          COMPONENT ${name})

  # Maintainer scripts and the conffiles list.
  file(WRITE "${work}/deb/conffiles" "${conffile}\n")
  file(WRITE "${work}/deb/postrm"
       "#!/bin/sh\n# ${package}: on purge, forget the admin's disable marker (owned by no package).\nset -e\n"
       "if [ \"$1\" = purge ]; then\n    rm -f ${marker}\nfi\n")
  file(WRITE "${work}/rpm-postun"
       "# ${package}: on erase (not upgrade), forget the admin's disable marker (owned by no package).\n"
       "if [ \"$1\" -eq 0 ]; then\n    rm -f ${marker}\nfi\n")
  file(CHMOD "${work}/deb/postrm" FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                                   WORLD_READ WORLD_EXECUTE)

  # One CPack config file per plugin: a project can include(CPack) only once, and the Trellis
  # tree packages several plugins besides the product. CPack's own install step would build
  # the whole project first (its preinstall target), so package-NAME installs component NAME
  # into a staging folder itself (stripped for the rpm; the deb strips and keeps the symbols
  # apart in a -dbgsym .ddeb) and CPack packs that folder.
  set(generators "DEB")
  find_program(TRELLIS_RPMBUILD rpmbuild)
  if(TRELLIS_RPMBUILD)
    list(APPEND generators RPM)
  endif()
  set(output_dir "${CMAKE_BINARY_DIR}/packages")
  set(config "${CMAKE_BINARY_DIR}/CPackConfig-${name}.cmake")
  set(long "This package installs the Trellis plugin ${name} (${name}.so, built\nagainst the Trellis plugin ABI ${abi_major}.${abi_minor}) and the configuration snippet\n${conffile} that enables it. To turn the plugin off,\nrun `trellis plugins disable ${name}`.")
  file(WRITE "${work}/per-generator.cmake" "# Which staging folder each generator packs.
if(CPACK_GENERATOR STREQUAL \"RPM\")
  set(CPACK_INSTALLED_DIRECTORIES \"${work}/stage/stripped;/\")
else()
  set(CPACK_INSTALLED_DIRECTORIES \"${work}/stage/unstripped;/\")
endif()
")
  file(WRITE "${config}" "# CPack configuration of ${package}, written by trellis_package_plugin();
# the target package-${name} stages component ${name} and runs `cpack --config` on it.
set(CPACK_GENERATOR \"${generators}\")
set(CPACK_PROJECT_CONFIG_FILE \"${work}/per-generator.cmake\")
set(CPACK_PACKAGE_NAME \"${package}\")
set(CPACK_PACKAGE_VERSION \"${version}\")
set(CPACK_PACKAGE_VENDOR \"${maintainer_name}\")
set(CPACK_PACKAGE_DESCRIPTION \"${long}\")
set(CPACK_PACKAGE_CONTACT \"${maintainer}\")
set(CPACK_PACKAGE_DIRECTORY \"${work}/cpack\")
set(CPACK_OUTPUT_FILE_PREFIX \"${output_dir}\")
set(CPACK_PACKAGING_INSTALL_PREFIX \"/\")
set(CPACK_STRIP_FILES FALSE)
set(CPACK_THREADS 1)
set(CPACK_SYSTEM_NAME \"${CMAKE_SYSTEM_NAME}\")
set(CPACK_PACKAGE_FILE_NAME \"${package}-${version}-${CMAKE_SYSTEM_NAME}\")

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION \"${description}\n${long}\")
set(CPACK_DEBIAN_PACKAGE_SECTION httpd)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DEPENDS \"trellis-abi-${abi_major}.${abi_minor}\")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA \"${work}/deb/conffiles;${work}/deb/postrm\")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_SUMMARY \"${description}\")
set(CPACK_RPM_PACKAGE_DESCRIPTION \"${long}\")
set(CPACK_RPM_PACKAGE_GROUP \"System Environment/Daemons\")
set(CPACK_RPM_PACKAGE_REQUIRES \"trellis-abi-${abi_major}.${abi_minor}\")
set(CPACK_RPM_USER_FILELIST \"%config(noreplace) ${conffile}\")
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION /etc/trellis /usr/lib/trellis)
set(CPACK_RPM_POST_UNINSTALL_SCRIPT_FILE \"${work}/rpm-postun\")
set(CPACK_RPM_SPEC_MORE_DEFINE \"%define _build_id_links none\")
")
  set(objcopy "${CMAKE_OBJCOPY}")
  if(objcopy STREQUAL "")
    set(objcopy objcopy)
  endif()
  file(WRITE "${work}/package.cmake" "# package-${name}: stage component ${name}, then pack it (cmake -P).
file(REMOVE_RECURSE \"${work}/stage\")
foreach(kind unstripped stripped)
  set(strip)
  if(kind STREQUAL stripped)
    set(strip --strip)
  endif()
  execute_process(COMMAND \"${CMAKE_COMMAND}\" -E env \"DESTDIR=${work}/stage/\${kind}\"
                          \"${CMAKE_COMMAND}\" --install \"${CMAKE_BINARY_DIR}\" --component ${name} --prefix /usr \${strip}
                  OUTPUT_QUIET RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR \"${package}: installing component ${name} into ${work}/stage failed\")
  endif()
endforeach()
# The compiler's .comment section is of no use in a package (lintian: binary-has-unneeded-section).
file(GLOB_RECURSE objects \"${work}/stage/*.so\")
foreach(object IN LISTS objects)
  execute_process(COMMAND \"${objcopy}\" --remove-section=.comment \"\${object}\")
endforeach()
execute_process(COMMAND \"${CMAKE_CPACK_COMMAND}\" --config \"${config}\" RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR \"${package}: cpack --config ${config} failed\")
endif()
")

  add_custom_target(package-${name}
    COMMAND sh -c "umask 022 && exec \"$0\" -P \"$1\"" "${CMAKE_COMMAND}" "${work}/package.cmake"
    WORKING_DIRECTORY "${CMAKE_BINARY_DIR}"
    COMMENT "Packaging ${package} ${version} (${generators}) into ${output_dir}"
    VERBATIM)
  add_dependencies(package-${name} ${name})
  if(NOT TARGET package-plugins)
    add_custom_target(package-plugins)
  endif()
  add_dependencies(package-plugins package-${name})
endfunction()
