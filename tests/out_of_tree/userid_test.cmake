# The case-sensitive key test, run by CTest as `cmake -P userid_test.cmake` with:
#   BUILD_DIR   the segpush build tree whose kit is installed
#   SEGPUSH     the segpush binary
#   SOURCE_DIR  tests/out_of_tree/userid
#   WORK_DIR    a scratch folder (emptied first)
#   GENERATOR   CMake generator for the plugin's own build
#   C_COMPILER  compiler for the plugin
# A plugin author's view: the kit installed alone (component plugin-api), a C plugin written
# from plugin.h and keyed by a case-sensitive user_id (STRING), which logs what it receives.
# The user ids ABC, abc and Abc are three members; "abc " is abc again (trimmed). A second run
# sends nothing; a user who leaves is removed, and only they; forget and the run report speak
# of the user_id.
cmake_minimum_required(VERSION 3.19)

foreach(var BUILD_DIR SEGPUSH SOURCE_DIR WORK_DIR C_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "userid_test.cmake needs -D${var}=...")
  endif()
endforeach()

# Runs a command; fails unless it exits with EXIT (default 0; 3: done, with rows refused).
function(run what)
  cmake_parse_arguments(ARG "" "" "COMMAND;EXIT" ${ARGN})
  if(NOT ARG_EXIT)
    set(ARG_EXIT 0)
  endif()
  execute_process(COMMAND ${ARG_COMMAND} WORKING_DIRECTORY "${WORK_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc IN_LIST ARG_EXIT)
    string(REPLACE ";" " " shown "${ARG_COMMAND}")
    message(FATAL_ERROR "${what} failed (exit ${rc}, expected ${ARG_EXIT}):\n  ${shown}\n${out}\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

function(expect what text)
  cmake_parse_arguments(ARG "" "" "CONTAINS;LACKS" ${ARGN})
  foreach(needle IN LISTS ARG_CONTAINS)
    string(FIND "${text}" "${needle}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${what}: expected '${needle}' in:\n${text}")
    endif()
  endforeach()
  foreach(needle IN LISTS ARG_LACKS)
    string(FIND "${text}" "${needle}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${what}: did not expect '${needle}' in:\n${text}")
    endif()
  endforeach()
endfunction()

# What the plugin received, each line once, in order.
function(expect_received what expected)
  file(READ "${WORK_DIR}/received.log" received)
  if(NOT received STREQUAL expected)
    message(FATAL_ERROR "${what}: the plugin received\n${received}\nexpected\n${expected}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

run("installing the plugin-api component"
    COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}" --component plugin-api)
set(generator_args)
if(GENERATOR)
  set(generator_args -G "${GENERATOR}")
endif()
run("configuring the user id plugin"
    COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/build" ${generator_args}
            "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_C_COMPILER=${C_COMPILER}"
            "-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${WORK_DIR}/plugins"
            -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
run("building the user id plugin" COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" -j2)

file(WRITE "${WORK_DIR}/segpush.yaml" "plugin_dir: ${WORK_DIR}/plugins
state: ${WORK_DIR}/state/state.db
segments:
  users: { path: users.csv }
connections:
  app:
    plugin: userid
    privacy_consent: true
    settings: { log: ${WORK_DIR}/received.log }
exports:
  users_export:
    connection: app
    segments: [users]
    mapping: { user_id: Id, name: Name }
    on_leave: unsubscribe
")
set(segpush "${SEGPUSH}" --config "${WORK_DIR}/segpush.yaml")

# 1. Three users who differ only by case, the second one again with a trailing space, and a
#    row without a user id (refused, so the run writes a report).
file(WRITE "${WORK_DIR}/users.csv" "Id,Name\nABC,Upper\nabc,Lower\nAbc,Mixed\nabc ,Lower again\n,Nobody\n")
run("a dry run" COMMAND ${segpush} export run users_export --dry-run --show 5 --json EXIT 3)
set(shown_keys)
foreach(i 0 1 2)
  string(JSON key GET "${run_output}" shown new ${i} key)
  list(APPEND shown_keys "${key}")
endforeach()
string(JSON n_shown LENGTH "${run_output}" shown new)
if(NOT shown_keys STREQUAL "ABC;abc;Abc" OR NOT n_shown EQUAL 3)
  message(FATAL_ERROR "the dry run should show ABC, abc and Abc as new, by key:\n${run_output}")
endif()
run("the first run" COMMAND ${segpush} export run users_export EXIT 3)
expect("the first run" "${run_output}"
       CONTAINS "rows read     5 (1 invalid" "1 duplicate collapsed, the first row of each user_id wins"
                "members       3: 3 new" "sent          3"
       LACKS "email")
expect_received("the first run" "upsert ABC|Upper\nupsert abc|Lower\nupsert Abc|Mixed\n")
file(GLOB reports "${WORK_DIR}/state/reports/users_export-run-1-report.csv")
if(NOT reports)
  message(FATAL_ERROR "the first run wrote no report:\n${run_output}")
endif()
file(READ "${reports}" report)
expect("the run report" "${report}" CONTAINS "source,line,user_id,outcome,reason\n" "users.csv,6,,invalid,User id"
       LACKS "email")
run("runs show" COMMAND ${segpush} runs show 1)
expect("runs show" "${run_output}" CONTAINS "the first row of each user_id wins" LACKS "email")

# 2. Nothing changed: nothing is sent (the delivered state holds the three exact ids).
run("the second run" COMMAND ${segpush} export run users_export EXIT 3)
expect("the second run" "${run_output}" CONTAINS "members       3: 0 new, 0 changed, 3 unchanged" "sent          0")
expect_received("the second run" "upsert ABC|Upper\nupsert abc|Lower\nupsert Abc|Mixed\n")

# 3. Abc leaves: exactly that one is removed; ABC and abc stay.
file(WRITE "${WORK_DIR}/users.csv" "Id,Name\nABC,Upper\nabc,Lower\n")
run("the run after Abc left" COMMAND ${segpush} export run users_export)
expect("the run after Abc left" "${run_output}" CONTAINS "leaving       1" "members       2: 0 new, 0 changed, 2 unchanged")
expect_received("the run after Abc left" "upsert ABC|Upper\nupsert abc|Lower\nupsert Abc|Mixed\nremove Abc\n")

# 4. Forgetting abc forgets that user only: the next run sends abc again as new, not ABC.
run("forget abc" COMMAND ${segpush} forget abc --json)
string(JSON forgotten GET "${run_output}" delivered)
string(JSON report_rows GET "${run_output}" report_rows)
if(NOT forgotten EQUAL 1 OR NOT report_rows EQUAL 0)
  message(FATAL_ERROR "forget abc: expected 1 delivered record and no report row:\n${run_output}")
endif()
run("the run after forgetting abc" COMMAND ${segpush} export run users_export)
expect("the run after forgetting abc" "${run_output}" CONTAINS "members       2: 1 new, 0 changed, 1 unchanged")
expect_received("the run after forgetting abc"
                "upsert ABC|Upper\nupsert abc|Lower\nupsert Abc|Mixed\nremove Abc\nupsert abc|Lower\n")
message(STATUS "ABC, abc and Abc stayed three members through four runs and a forget")
