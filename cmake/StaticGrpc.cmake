# CONSTELLATION_STATIC_GRPC: link programs that ask for it (ct_link_grpc_static) against gRPC C
# core's static archives instead of Debian's ~60 shared libraries (gRPC, gpr, upb, re2, c-ares,
# address_sorting, 64 abseil). Terraform starts the provider three times per plan; resolving and
# relocating those libraries cost about 10 ms and 9 MB per start (README, Benchmarks).
#
# Default: ON when every archive exists (Debian 12: libgrpc-dev, libabsl-dev, libre2-dev,
# libc-ares-dev) and the build is not a sanitizer or fuzz build; the ASan+UBSan build links the
# shared libraries, so `scripts/test.sh` runs every provider test against both link variants.
# Forcing it ON without the archives is an error, never a silent fall-back to shared libraries.
#
# How: PkgConfig::GRPC's link interface becomes a generator expression on the *linking* target's
# CT_STATIC_GRPC property, so a library (ct-rpc) keeps depending on PkgConfig::GRPC and only the
# final link of a program marked with ct_link_grpc_static() takes the archives. OpenSSL, zlib and
# libstdc++ stay shared: the rest of the program (and libcurl, loaded on demand) uses the same
# OpenSSL, and a second static copy would only add to the size.

set(_ct_grpc_archives)
set(_ct_grpc_missing)
set(_ct_grpc_keep_shared ssl crypto z dl rt atomic)
set(_ct_grpc_seen)
foreach(lib IN LISTS GRPC_STATIC_LIBRARIES)
  if(lib IN_LIST _ct_grpc_keep_shared OR lib IN_LIST _ct_grpc_seen)
    continue()
  endif()
  list(APPEND _ct_grpc_seen ${lib})
  find_library(CT_STATIC_${lib} NAMES lib${lib}.a HINTS ${GRPC_STATIC_LIBRARY_DIRS} NO_CACHE)
  if(CT_STATIC_${lib})
    list(APPEND _ct_grpc_archives ${CT_STATIC_${lib}})
  else()
    list(APPEND _ct_grpc_missing lib${lib}.a)
  endif()
endforeach()
if(NOT _ct_grpc_seen)
  list(APPEND _ct_grpc_missing "(pkg-config --static --libs grpc gave no libraries)")
endif()

if(_ct_grpc_missing OR CONSTELLATION_SANITIZE OR CONSTELLATION_FUZZ)
  set(_ct_grpc_default OFF)
else()
  set(_ct_grpc_default ON)
endif()
option(CONSTELLATION_STATIC_GRPC
  "Link the provider against static gRPC/abseil/re2/c-ares archives (default: ON when they exist, OFF under sanitizers)"
  ${_ct_grpc_default})

if(CONSTELLATION_STATIC_GRPC)
  if(_ct_grpc_missing)
    string(REPLACE ";" ", " _m "${_ct_grpc_missing}")
    message(FATAL_ERROR "CONSTELLATION_STATIC_GRPC=ON but these static archives are missing: ${_m}. "
      "Install libgrpc-dev, libabsl-dev, libre2-dev and libc-ares-dev (Debian 12 ships the .a files), "
      "or configure with -DCONSTELLATION_STATIC_GRPC=OFF to link the shared libraries.")
  endif()
  list(LENGTH _ct_grpc_archives _n)
  message(STATUS "CONSTELLATION_STATIC_GRPC: ON (${_n} archives)")
  # The archives reference each other in cycles (abseil); a group resolves them in one pass.
  # Shared leftovers: libstdc++ for gRPC's C++ and the libraries kept shared above.
  set(_ct_static_link -Wl,--start-group ${_ct_grpc_archives} -Wl,--end-group
    PkgConfig::OPENSSL z stdc++ m)
  get_target_property(_ct_grpc_shared PkgConfig::GRPC INTERFACE_LINK_LIBRARIES)
  # Commas (in -Wl, flags) would split the $<IF:...> below.
  string(REPLACE "," "$<COMMA>" _ct_static_link "${_ct_static_link}")
  string(REPLACE "," "$<COMMA>" _ct_grpc_shared "${_ct_grpc_shared}")
  set_target_properties(PkgConfig::GRPC PROPERTIES INTERFACE_LINK_LIBRARIES
    "$<IF:$<BOOL:$<TARGET_PROPERTY:CT_STATIC_GRPC>>,${_ct_static_link},${_ct_grpc_shared}>")
else()
  message(STATUS "CONSTELLATION_STATIC_GRPC: OFF (shared gRPC)")
endif()

# ct_link_grpc_static(target): the program takes gRPC from the archives (when the option is ON)
# and drops unused sections; with the option OFF it links as every other program does.
function(ct_link_grpc_static target)
  if(CONSTELLATION_STATIC_GRPC)
    set_target_properties(${target} PROPERTIES CT_STATIC_GRPC ON)
    target_link_options(${target} PRIVATE -Wl,--gc-sections)
  endif()
endfunction()
