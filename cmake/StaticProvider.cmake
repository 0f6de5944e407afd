# CONSTELLATION_STATIC_PROVIDER: link programs that ask for it (ct_link_static) against static
# archives of every library but glibc: gRPC C core with gpr, upb, re2, c-ares, address_sorting and
# 51 abseil archives; OpenSSL; protobuf-c, msgpack-c, jansson, zlib; libstdc++ and libgcc.
# Terraform starts the provider three times per plan: resolving and relocating ~60 shared
# libraries cost about 10 ms and several MB of mapped pages per start (README, Benchmarks).
# glibc (libc, libm, ld.so) stays shared so that libcurl, loaded with dlopen() for http(s), shares
# the one C library.
#
# Default: ON when every archive exists (Debian 12: libgrpc-dev, libabsl-dev, libre2-dev,
# libc-ares-dev, libssl-dev, libprotobuf-c-dev, libmsgpack-dev, libjansson-dev, zlib1g-dev,
# libstdc++-12-dev) and the build is neither a sanitizer nor a fuzz build: the ASan+UBSan build
# links the shared libraries, so `scripts/test.sh` runs every provider test against both link
# variants. Forcing it ON without the archives is an error, never a silent fall-back.
#
# How: the pkg-config targets' link interfaces become generator expressions on the *linking*
# target's CT_STATIC_LINK property, so libraries (ct-rpc, ct-cty, ...) keep depending on
# PkgConfig::GRPC etc. and only the final link of a program marked with ct_link_static() takes
# the archives.

set(_ct_static_missing)
set(_ct_static_glibc c m dl rt pthread atomic)

# _ct_archives(OUT prefix): the .a files for pkg-config's <prefix>_STATIC_LIBRARIES, in order and
# without repeats; glibc's own libraries are left to the shared link.
function(_ct_archives out prefix)
  set(files)
  set(seen)
  foreach(lib IN LISTS ${prefix}_STATIC_LIBRARIES)
    if(lib IN_LIST _ct_static_glibc OR lib IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${lib})
    find_library(_ct_a_${lib} NAMES lib${lib}.a HINTS ${${prefix}_STATIC_LIBRARY_DIRS} NO_CACHE)
    if(_ct_a_${lib})
      list(APPEND files ${_ct_a_${lib}})
    else()
      list(APPEND _ct_static_missing lib${lib}.a)
    endif()
  endforeach()
  if(NOT seen)
    list(APPEND _ct_static_missing "(pkg-config --static gave no libraries for ${prefix})")
  endif()
  set(${out} ${files} PARENT_SCOPE)
  set(_ct_static_missing ${_ct_static_missing} PARENT_SCOPE)
endfunction()

_ct_archives(_ct_grpc_a GRPC)
_ct_archives(_ct_openssl_a OPENSSL)
_ct_archives(_ct_msgpack_a MSGPACK)
_ct_archives(_ct_jansson_a JANSSON)
_ct_archives(_ct_protobufc_a PROTOBUFC)
find_library(_ct_z_a NAMES libz.a NO_CACHE)
if(NOT _ct_z_a)
  list(APPEND _ct_static_missing libz.a)
endif()
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libstdc++.a OUTPUT_VARIABLE _ct_stdcxx_a
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT IS_ABSOLUTE "${_ct_stdcxx_a}" OR NOT EXISTS "${_ct_stdcxx_a}")
  list(APPEND _ct_static_missing libstdc++.a)
endif()

if(_ct_static_missing OR CONSTELLATION_SANITIZE OR CONSTELLATION_FUZZ)
  set(_ct_static_default OFF)
else()
  set(_ct_static_default ON)
endif()
option(CONSTELLATION_STATIC_PROVIDER
  "Link the provider statically against everything but glibc (default: ON when the archives exist, OFF under sanitizers)"
  ${_ct_static_default})

# _ct_static_interface(target archives...): the target's link interface is the archives for
# programs marked CT_STATIC_LINK, and what pkg-config said for everything else.
function(_ct_static_interface target)
  get_target_property(shared ${target} INTERFACE_LINK_LIBRARIES)
  set(static ${ARGN})
  # Commas (in -Wl, flags) would split the $<IF:...>.
  string(REPLACE "," "$<COMMA>" static "${static}")
  string(REPLACE "," "$<COMMA>" shared "${shared}")
  set_target_properties(${target} PROPERTIES INTERFACE_LINK_LIBRARIES
    "$<IF:$<BOOL:$<TARGET_PROPERTY:CT_STATIC_LINK>>,${static},${shared}>")
endfunction()

if(CONSTELLATION_STATIC_PROVIDER)
  if(_ct_static_missing)
    list(REMOVE_DUPLICATES _ct_static_missing)
    string(REPLACE ";" ", " _m "${_ct_static_missing}")
    message(FATAL_ERROR "CONSTELLATION_STATIC_PROVIDER=ON but these static archives are missing: ${_m}. "
      "Install the -dev packages that ship them (scripts/setup.sh installs all), or configure with "
      "-DCONSTELLATION_STATIC_PROVIDER=OFF to link the shared libraries.")
  endif()
  list(LENGTH _ct_grpc_a _n)
  message(STATUS "CONSTELLATION_STATIC_PROVIDER: ON (gRPC from ${_n} archives; OpenSSL, protobuf-c, msgpack-c, jansson, zlib, libstdc++ static)")
  # gRPC's archives reference each other in cycles (abseil): one group resolves them in one pass.
  _ct_static_interface(PkgConfig::GRPC -Wl,--start-group ${_ct_grpc_a} -Wl,--end-group
    PkgConfig::OPENSSL ${_ct_z_a} ${_ct_stdcxx_a} m)
  _ct_static_interface(PkgConfig::OPENSSL ${_ct_openssl_a} ${CMAKE_DL_LIBS} -pthread)
  _ct_static_interface(PkgConfig::MSGPACK ${_ct_msgpack_a})
  _ct_static_interface(PkgConfig::JANSSON ${_ct_jansson_a})
  _ct_static_interface(PkgConfig::PROTOBUFC ${_ct_protobufc_a})
else()
  message(STATUS "CONSTELLATION_STATIC_PROVIDER: OFF (shared libraries)")
endif()

# Packed relative relocations (DT_RELR, glibc >= 2.36, binutils >= 2.38): the static provider's
# 800 KB of R_X86_64_RELATIVE entries become 9 KB, which the loader no longer has to read at every
# start (-0.7 MB RSS, and fewer page faults before main).
include(CheckLinkerFlag)
check_linker_flag(C "-Wl,-z,pack-relative-relocs" CT_HAVE_PACK_RELATIVE_RELOCS)

# ct_link_static(target): the program takes the archives above (when the option is ON), links
# libgcc statically, drops unused sections and packs its relocations; with the option OFF it
# links as every other program does.
function(ct_link_static target)
  if(CONSTELLATION_STATIC_PROVIDER)
    set_target_properties(${target} PROPERTIES CT_STATIC_LINK ON)
    target_link_options(${target} PRIVATE -Wl,--gc-sections -static-libgcc)
    if(CT_HAVE_PACK_RELATIVE_RELOCS)
      target_link_options(${target} PRIVATE -Wl,-z,pack-relative-relocs)
    endif()
  endif()
endfunction()
