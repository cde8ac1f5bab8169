# Helpers for building a segpush plugin; installed with the plugin-api kit and included by
# segpush-plugin-apiConfig.cmake, which sets SEGPUSH_PLUGIN_API_VERSION_SCRIPT first.

# segpush_plugin_api_configure(<target>)
# Makes an existing MODULE library a well-behaved plugin: links the header, names the file
# <target>.so (no "lib" prefix), hides every symbol but segpush_plugin_entry (compiler
# visibility + linker version script) and refuses unresolved symbols at link time instead of
# at load time.
function(segpush_plugin_api_configure target)
  target_link_libraries(${target} PRIVATE segpush::plugin-api)
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(NOT APPLE AND NOT WIN32)
    target_link_options(${target} PRIVATE
      "-Wl,--version-script=${SEGPUSH_PLUGIN_API_VERSION_SCRIPT}" "-Wl,--no-undefined")
    set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${SEGPUSH_PLUGIN_API_VERSION_SCRIPT}")
  endif()
endfunction()

# segpush_plugin_api_add_plugin(<target> SOURCES <src>... [OUTPUT_DIR <dir>])
# add_library(<target> MODULE ...) + segpush_plugin_api_configure(<target>). OUTPUT_DIR, when
# given, is where <target>.so lands (point segpush --plugin-dir or plugin_dir there).
function(segpush_plugin_api_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "segpush_plugin_api_add_plugin(${target}): give SOURCES")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  segpush_plugin_api_configure(${target})
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIR}")
  endif()
endfunction()
