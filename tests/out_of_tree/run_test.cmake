# The out-of-tree plugin test, run by CTest as `cmake -P run_test.cmake` with:
#   BUILD_DIR     the segpush build tree whose kit is installed
#   SEGPUSH       the segpush binary
#   SOURCE_DIR    tests/out_of_tree/myplugin
#   WORK_DIR      a scratch folder (emptied first)
#   GENERATOR     CMake generator for the plugin's own build
#   C_COMPILER    compiler for both builds
#   PKG_CONFIG    pkg-config executable, or empty to skip the pkg-config build
#   CXX_COMPILER  optional: compiler for the C++ plugin (CMake's default when not given)
# Steps: install the kit (component plugin-api) into WORK_DIR/prefix; configure and build the
# plugin with find_package against that prefix only; load it with `segpush plugins list --json`;
# build the same source with the flags pkg-config gives and load that too; build the C++ plugin
# in mycppplugin/ on the installed helper kit, load it, and run its kit_check; check that a
# request for another ABI major is refused by the package's version file.
cmake_minimum_required(VERSION 3.19)  # string(JSON)

foreach(var BUILD_DIR SEGPUSH SOURCE_DIR WORK_DIR C_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_test.cmake needs -D${var}=...")
  endif()
endforeach()

function(run what)
  cmake_parse_arguments(ARG "" "" "COMMAND" ${ARGN})
  execute_process(COMMAND ${ARG_COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " shown "${ARG_COMMAND}")
    message(FATAL_ERROR "${what} failed (exit ${rc}):\n  ${shown}\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# Loads every plugin in `dir` with the host and checks that exactly `id` loaded.
function(expect_loaded dir id)
  run("segpush plugins list (${dir})" COMMAND "${SEGPUSH}" --plugin-dir "${dir}" plugins list --json)
  string(JSON n_loaded LENGTH "${run_output}" loaded)
  string(JSON n_refused LENGTH "${run_output}" refused)
  if(NOT n_refused EQUAL 0 OR NOT n_loaded EQUAL 1)
    message(FATAL_ERROR "expected only '${id}' to load from ${dir}:\n${run_output}")
  endif()
  string(JSON loaded_id GET "${run_output}" loaded 0 id)
  string(JSON loaded_abi GET "${run_output}" loaded 0 abi)
  if(NOT loaded_id STREQUAL id)
    message(FATAL_ERROR "expected plugin '${id}', the host loaded '${loaded_id}':\n${run_output}")
  endif()
  message(STATUS "segpush loaded '${loaded_id}' (ABI ${loaded_abi}) from ${dir}")
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

# 1. The kit, and nothing else, into a fresh prefix.
run("installing the plugin-api component"
    COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --component plugin-api)
foreach(expected include/segpush/plugin.h include/segpush/plugin_kit.hpp lib/cmake/segpush-plugin-api/segpush-plugin-apiConfig.cmake
                 lib/cmake/segpush-plugin-api/segpush-plugin-apiConfigVersion.cmake lib/pkgconfig/segpush-plugin-api.pc)
  if(NOT EXISTS "${prefix}/${expected}")
    message(FATAL_ERROR "the kit install has no ${expected}")
  endif()
endforeach()

# 2. CMake: find_package(segpush-plugin-api 1) + segpush::plugin-api, from the prefix only.
set(generator_args)
if(GENERATOR)
  set(generator_args -G "${GENERATOR}")
endif()
run("configuring the out-of-tree plugin"
    COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" ${generator_args}
            "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${C_COMPILER}"
            "-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${WORK_DIR}/plugins-cmake"
            -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
run("building the out-of-tree plugin" COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" -j2)
expect_loaded("${WORK_DIR}/plugins-cmake" out-of-tree-example)

# 3. pkg-config: the same source with the flags the .pc file gives.
if(PKG_CONFIG)
  set(pc_env "${CMAKE_COMMAND}" -E env "PKG_CONFIG_PATH=${prefix}/lib/pkgconfig")
  run("pkg-config --cflags" COMMAND ${pc_env} "${PKG_CONFIG}" --cflags segpush-plugin-api)
  separate_arguments(cflags UNIX_COMMAND "${run_output}")
  if(NOT run_output MATCHES "${prefix}")
    message(FATAL_ERROR "pkg-config --cflags does not point into the install prefix ${prefix}: ${run_output}")
  endif()
  run("pkg-config plugin_cflags" COMMAND ${pc_env} "${PKG_CONFIG}" --variable=plugin_cflags segpush-plugin-api)
  separate_arguments(plugin_cflags UNIX_COMMAND "${run_output}")
  run("pkg-config plugin_ldflags" COMMAND ${pc_env} "${PKG_CONFIG}" --variable=plugin_ldflags segpush-plugin-api)
  separate_arguments(plugin_ldflags UNIX_COMMAND "${run_output}")
  run("pkg-config --modversion" COMMAND ${pc_env} "${PKG_CONFIG}" --modversion segpush-plugin-api)
  string(STRIP "${run_output}" pc_version)
  if(NOT pc_version MATCHES "^[0-9]+\\.[0-9]+$")
    message(FATAL_ERROR "pkg-config version '${pc_version}' is not an ABI version MAJOR.MINOR")
  endif()
  file(MAKE_DIRECTORY "${WORK_DIR}/plugins-pkgconfig")
  run("compiling with pkg-config flags"
      COMMAND "${C_COMPILER}" ${cflags} ${plugin_cflags} -std=c99 -Wall -Wextra -pedantic -Werror
              "-DPLUGIN_ID=\"out-of-tree-pkgconfig\"" -o "${WORK_DIR}/plugins-pkgconfig/myplugin.so"
              "${SOURCE_DIR}/myplugin.c" ${plugin_ldflags})
  expect_loaded("${WORK_DIR}/plugins-pkgconfig" out-of-tree-pkgconfig)
else()
  message(STATUS "pkg-config not found: skipped the pkg-config build")
endif()

# 4. C++: a plugin on the helper kit (segpush/plugin_kit.hpp), from the prefix only, and the
#    kit's own checks built the same way.
set(cxx_args)
if(CXX_COMPILER)
  set(cxx_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
get_filename_component(cpp_source "${SOURCE_DIR}/../mycppplugin" ABSOLUTE)
run("configuring the out-of-tree C++ plugin"
    COMMAND "${CMAKE_COMMAND}" -S "${cpp_source}" -B "${WORK_DIR}/build-cpp" ${generator_args}
            "-DCMAKE_PREFIX_PATH=${prefix}" ${cxx_args}
            "-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${WORK_DIR}/plugins-cpp"
            -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
run("building the out-of-tree C++ plugin" COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build-cpp" -j2)
expect_loaded("${WORK_DIR}/plugins-cpp" out-of-tree-cpp)
run("the helper kit's checks" COMMAND "${WORK_DIR}/build-cpp/kit_check")
message(STATUS "${run_output}")

# 5. The version file keeps a request for another ABI major from matching this kit.
file(WRITE "${WORK_DIR}/major2/CMakeLists.txt"
     "cmake_minimum_required(VERSION 3.16)\nproject(major2 LANGUAGES NONE)\nfind_package(segpush-plugin-api 2 REQUIRED)\n")
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${WORK_DIR}/major2" -B "${WORK_DIR}/major2/build" "-DCMAKE_PREFIX_PATH=${prefix}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "segpush-plugin-api")
  message(FATAL_ERROR "find_package(segpush-plugin-api 2) should fail against ABI 1.x:\n${out}\n${err}")
endif()
message(STATUS "find_package(segpush-plugin-api 2) is refused, as it should be")
