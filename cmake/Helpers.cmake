# ct_add_library(name SOURCES ... LIBS ...): one static library of the core (lib/<concern>).
function(ct_add_library name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/lib ${PROJECT_BINARY_DIR}/schemas)
  target_link_libraries(${name} PUBLIC ${A_LIBS})
endfunction()

# ct_add_test(name SOURCES ... LIBS ... [LABELS ...] [TIMEOUT s]): a cmocka (or any) test program
# registered with ctest. The program gets CT_SOURCE_DIR, CT_BINARY_DIR and CT_SHARED_DIR
# (../shared beside the checkout) in its environment.
function(ct_add_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name} ${A_ARGS})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${A_TIMEOUT} LABELS "${A_LABELS}"
    ENVIRONMENT "CT_SOURCE_DIR=${PROJECT_SOURCE_DIR};CT_BINARY_DIR=${PROJECT_BINARY_DIR};CT_SHARED_DIR=${PROJECT_SOURCE_DIR}/../shared")
endfunction()

# ct_add_script_test(name COMMAND ... [LABELS ...] [TIMEOUT s]): a shell test (terraform, QEMU).
function(ct_add_script_test name)
  cmake_parse_arguments(A "" "TIMEOUT" "COMMAND;LABELS" ${ARGN})
  add_test(NAME ${name} COMMAND ${A_COMMAND})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${A_TIMEOUT} LABELS "${A_LABELS}"
    ENVIRONMENT "CT_SOURCE_DIR=${PROJECT_SOURCE_DIR};CT_BINARY_DIR=${PROJECT_BINARY_DIR};CT_SHARED_DIR=${PROJECT_SOURCE_DIR}/../shared")
endfunction()

# ct_add_fuzzer(name SOURCE file LIBS ... CORPUS dir): a libFuzzer target. With CONSTELLATION_FUZZ
# it links -fsanitize=fuzzer; always it also builds <name>-replay (fuzz/fuzz-main.c) which ctest runs
# over every file of the corpus, so the corpus and every regression file are replayed in both
# normal and sanitizer builds.
function(ct_add_fuzzer name)
  cmake_parse_arguments(A "" "SOURCE;CORPUS" "LIBS" ${ARGN})
  add_executable(${name}-replay ${A_SOURCE} ${PROJECT_SOURCE_DIR}/fuzz/fuzz-main.c)
  target_link_libraries(${name}-replay PRIVATE ${A_LIBS})
  add_test(NAME fuzz-replay-${name} COMMAND ${name}-replay ${A_CORPUS})
  set_tests_properties(fuzz-replay-${name} PROPERTIES LABELS "fuzz" TIMEOUT 300)
  if(CONSTELLATION_FUZZ)
    add_executable(${name} ${A_SOURCE})
    target_link_libraries(${name} PRIVATE ${A_LIBS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  endif()
endfunction()

# ct_protoc_c(target PROTOS a.proto b.proto): generate .pb-c.c/.h at build time into
# ${PROJECT_BINARY_DIR}/schemas and build them into a static library `target`.
function(ct_protoc_c target)
  cmake_parse_arguments(A "" "" "PROTOS;DEPS" ${ARGN})
  set(srcs)
  foreach(p ${A_PROTOS})
    get_filename_component(base ${p} NAME_WE)
    set(out_c ${PROJECT_BINARY_DIR}/schemas/${base}.pb-c.c)
    set(out_h ${PROJECT_BINARY_DIR}/schemas/${base}.pb-c.h)
    add_custom_command(OUTPUT ${out_c} ${out_h}
      COMMAND ${PROTOC_C} -I${PROJECT_SOURCE_DIR}/schemas -I/usr/include
              --c_out=${PROJECT_BINARY_DIR}/schemas ${PROJECT_SOURCE_DIR}/schemas/${p}
      DEPENDS ${PROJECT_SOURCE_DIR}/schemas/${p}
      COMMENT "protoc-c ${p}")
    list(APPEND srcs ${out_c})
  endforeach()
  add_library(${target} STATIC ${srcs})
  # Generated *_INIT macros trip -Wmissing-braces; generated code lacks prototypes for statics.
  target_compile_options(${target} PRIVATE -Wno-missing-braces -Wno-error -w)
  target_include_directories(${target} PUBLIC ${PROJECT_BINARY_DIR}/schemas)
  target_link_libraries(${target} PUBLIC PkgConfig::PROTOBUFC ${A_DEPS})
endfunction()

# ct_add_subdirectories(): add every subdirectory of the current source directory. A subdirectory
# without a CMakeLists.txt is an error, not a silent omission: a feature must never drop out of the
# build because a file is missing.
function(ct_add_subdirectories)
  file(GLOB entries LIST_DIRECTORIES true ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT entries)
  foreach(d ${entries})
    if(IS_DIRECTORY ${d})
      if(NOT EXISTS ${d}/CMakeLists.txt)
        message(FATAL_ERROR "${d} has no CMakeLists.txt (every subdirectory here is part of the build)")
      endif()
      get_filename_component(n ${d} NAME)
      add_subdirectory(${n})
    endif()
  endforeach()
endfunction()
