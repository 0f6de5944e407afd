# Warnings that catch bugs are errors (systemd's -Werror= list, curl's PickyWarnings); hardening on
# by default (tpm2-tools configure.ac).
add_compile_options(
  -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
  -Werror=implicit-function-declaration -Werror=incompatible-pointer-types
  -Werror=int-conversion -Werror=missing-prototypes -Werror=return-type
  -Werror=format=2 -Werror=shadow -Werror=strict-prototypes -Werror=vla
  -Werror=pointer-arith -Werror=undef -Werror=implicit-fallthrough
  -fno-strict-aliasing -fstack-protector-strong -fPIE)
if(NOT CONSTELLATION_SANITIZE AND NOT CONSTELLATION_FUZZ AND NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
  add_compile_definitions(_FORTIFY_SOURCE=2)
endif()
add_compile_definitions(_GNU_SOURCE)
add_link_options(-pie -Wl,-z,relro,-z,now -Wl,--as-needed)

if(CONSTELLATION_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(CONSTELLATION_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CONSTELLATION_FUZZ needs clang: cmake -DCMAKE_C_COMPILER=clang -DCONSTELLATION_FUZZ=ON")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
