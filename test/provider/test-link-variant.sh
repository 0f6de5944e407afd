#!/usr/bin/env bash
# The provider's link variant is what CONSTELLATION_STATIC_PROVIDER says (cmake/StaticProvider.cmake):
#   ON:  the only shared libraries are glibc's libc and ld.so: gRPC, OpenSSL, libstdc++ etc. come
#        from archives, and libm is not loaded (provider/src/math-shim.c has the four functions it
#        was needed for);
#   OFF: gRPC and OpenSSL are shared libraries (the variant the ASan build runs every test with).
# Both: libcurl is not linked (dlopen on the first http(s) request). And where the archives are
# missing the option defaults to OFF, and forcing it ON stops the configuration with their names.
# Usage: test-link-variant.sh PROVIDER ON|OFF SOURCE_DIR
set -uo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
provider=${1:?provider binary} static=${2:?ON or OFF} src=${3:?source dir}
command -v readelf >/dev/null || fail "readelf not found (binutils)"
needed=$(readelf -dW "$provider" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
[ -n "$needed" ] || fail "no DT_NEEDED entries read from $provider"
echo "DT_NEEDED: $needed"
grep -q libcurl <<<"$needed" && fail "libcurl is linked; it must be loaded on first http(s) use only"
case $static in
ON)
        for lib in $needed; do
                case $lib in
                libc.so.6 | ld-linux-x86-64.so.2) ;;
                *) fail "static provider needs the shared library $lib" ;;
                esac
        done
        # gRPC's registry is the cut-down one (provider/src/grpc-core-config.c): the unused
        # load-balancing policies and the HTTP CONNECT handshaker are not linked at all.
        command -v nm >/dev/null || fail "nm not found (binutils)"
        syms=$(nm "$provider" 2>/dev/null) || fail "cannot read the symbols of $provider"
        grep -q "BuildCoreConfiguration" <<<"$syms" || fail "no gRPC core configuration in the static provider"
        # provider/hot-text.ld matched the archives: the code a plan runs sits in .text.hot (an
        # empty or tiny one means the list went stale: bench/provider/gen-hot-text.sh).
        hot=$(readelf -SW "$provider" | sed -n 's/.* \.text\.hot  *PROGBITS  *[0-9a-f]*  *[0-9a-f]*  *\([0-9a-f]*\) .*/\1/p')
        [ -n "$hot" ] || fail "the static provider has no .text.hot section (provider/hot-text.ld)"
        hot=$((16#$hot))
        [ "$hot" -ge 1048576 ] || fail "the static provider's .text.hot holds only $hot bytes: provider/hot-text.ld no longer matches the archives; regenerate it with bench/provider/gen-hot-text.sh"
        echo ".text.hot: $hot bytes"
        for unwanted in RegisterRlsLbPolicy RegisterGrpcLbPolicy RegisterRingHashLbPolicy RegisterOutlierDetectionLbPolicy \
                RegisterHttpConnectHandshaker; do
                grep -q "$unwanted" <<<"$syms" && fail "the static provider links gRPC's $unwanted"
        done ;;
OFF)
        grep -q "libgrpc.so" <<<"$needed" || fail "shared provider does not link libgrpc.so"
        grep -q "libcrypto.so" <<<"$needed" || fail "shared provider does not link libcrypto.so" ;;
*) fail "second argument must be ON or OFF" ;;
esac

# Without the archives: OFF by default, and forced ON a loud configuration error, not a shared
# fall-back. A stand-in project gives the module pkg-config answers naming archives that do not
# exist (static-option/CMakeLists.txt).
tmp=$(mktemp -d /tmp/ct-link-variant-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
here=$(cd "$(dirname "$0")" && pwd)
cmake -S "$here/static-option" -B "$tmp/default" -DCT_MODULE="$src/cmake/StaticProvider.cmake" >"$tmp/default.log" 2>&1 ||
        { cat "$tmp/default.log"; fail "configuration without archives failed although the option was not forced"; }
grep -q "CONSTELLATION_STATIC_PROVIDER: OFF (shared libraries)" "$tmp/default.log" ||
        { cat "$tmp/default.log"; fail "without archives the option did not default to OFF"; }
if cmake -S "$here/static-option" -B "$tmp/forced" -DCT_MODULE="$src/cmake/StaticProvider.cmake" \
        -DCONSTELLATION_STATIC_PROVIDER=ON >"$tmp/forced.log" 2>&1; then
        cat "$tmp/forced.log"
        fail "configuration with CONSTELLATION_STATIC_PROVIDER=ON and no archives succeeded"
fi
flat=$(tr -s ' \n' '  ' <"$tmp/forced.log")
grep -qF "CONSTELLATION_STATIC_PROVIDER=ON but these static archives are missing: libgrpc_ct_no_such_archive.a, libct_no_such_archive_OPENSSL.a" <<<"$flat" ||
        { cat "$tmp/forced.log"; fail "the configuration error does not name the missing archives"; }
echo "PASS: link variant $static"
