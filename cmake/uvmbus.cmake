# Helpers shared by every layer's CMakeLists.txt.

set(UVMBUS_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual -Wimplicit-fallthrough)
if(UVMBUS_WERROR)
  list(APPEND UVMBUS_WARNINGS -Werror)
endif()

# uvmbus_add_library(<layer> SOURCES a.cc b.cc DEPS <lower layers and packages>)
# Creates target uvmbus_<layer> (alias uvmbus::<layer>). Headers are included as
# "<layer>/<file>.h" relative to src/.
function(uvmbus_add_library layer)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  set(target uvmbus_${layer})
  string(REPLACE "/" "_" target "${target}")
  if(ARG_SOURCES)
    add_library(${target} STATIC ${ARG_SOURCES})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC ${ARG_DEPS})
    target_compile_options(${target} PRIVATE ${UVMBUS_WARNINGS})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} INTERFACE ${ARG_DEPS})
  endif()
  add_library(uvmbus::${layer} ALIAS ${target})
endfunction()

# uvmbus_add_test(<name> SOURCES x_test.cc DEPS uvmbus::ring [LABELS unit] [TIMEOUT s] [SERIAL])
# One gtest binary; every TEST becomes a ctest entry.
function(uvmbus_add_test name)
  cmake_parse_arguments(ARG "SERIAL" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_SOURCES)
    return()  # a layer whose tests have not landed yet
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main Threads::Threads)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_options(${name} PRIVATE ${UVMBUS_WARNINGS} -Wno-old-style-cast)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  # SERIAL: the test saturates both cores (busy-polling peers such as dpdk-testpmd, or timed
  # throughput runs) and must not share the machine with other tests under `ctest -j`.
  set(serial FALSE)
  if(ARG_SERIAL)
    set(serial TRUE)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}" RUN_SERIAL ${serial})
endfunction()
