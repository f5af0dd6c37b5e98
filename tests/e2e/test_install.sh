#!/usr/bin/env bash
# Installs libivmon into a scratch prefix from a separate build, then builds examples/hello
# against that prefix as an outside project would, once with pkg-config (its Makefile) and once
# with CMake find_package, and runs both on a real ring fed by ivmon-produce.
#   test_install.sh SOURCE_DIR PATH_TO_IVMON_PRODUCE
set -euo pipefail
src=$1 produce=$2
tmp=$(mktemp -d /tmp/ivmon-install-XXXXXX)
ring=/dev/shm/ivmon-install-$$
trap 'rm -rf "$tmp" "$ring" "$ring.sock"' EXIT

cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DIVMON_BUILD_TESTS=OFF \
      -DIVMON_BUILD_BENCH=OFF -DIVMON_BUILD_AGENT=OFF -DCMAKE_INSTALL_PREFIX="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" -j2 >/dev/null
cmake --install "$tmp/build" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name libivmon.so.0 | head -n1)")
[ -f "$tmp/prefix/include/ivmon/ivmon.h" ] || { echo "FAIL: header not installed"; exit 1; }

cp -r "$src/examples/hello" "$tmp/hello-pc"
PKG_CONFIG_PATH="$libdir/pkgconfig" make -s -C "$tmp/hello-pc"
cmake -S "$src/examples/hello" -B "$tmp/hello-cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/hello-cmake" >/dev/null

for bin in "$tmp/hello-pc/hello" "$tmp/hello-cmake/hello"; do
    rm -f "$ring" "$ring.sock"
    # A lossless ring created by the consumer; the producer writes 5 records and exits; the
    # consumer must print exactly those 5 and exit by itself.
    LD_LIBRARY_PATH="$libdir" timeout 30 "$bin" "shm:$ring?lossless=1" 5 >"$tmp/out" &
    pid=$!
    for _ in $(seq 100); do [ -S "$ring.sock" ] && break; sleep 0.05; done
    "$produce" --count 5 --lossless "shm:$ring" >/dev/null
    wait "$pid" || { echo "FAIL: $bin exited with $?"; cat "$tmp/out"; exit 1; }
    n=$(grep -c "^shm:$ring?lossless=1 modify /ivmon-produce/" "$tmp/out" || true)
    [ "$n" = 5 ] || { echo "FAIL: $bin printed $n events, want 5:"; cat "$tmp/out"; exit 1; }
    echo "ok: $bin (linked against $(LD_LIBRARY_PATH="$libdir" ldd "$bin" | grep -o "$tmp[^ ]*libivmon.so.0" || echo '?'))"
    # Not `ldd | grep -q`: grep leaves at the first match, ldd may then die of SIGPIPE, and
    # pipefail turns that into a failure of a binary that is linked right.
    libs=$(LD_LIBRARY_PATH="$libdir" ldd "$bin")
    grep -q "$tmp/prefix" <<<"$libs" || { echo "FAIL: $bin does not use the installed library"; exit 1; }
done
