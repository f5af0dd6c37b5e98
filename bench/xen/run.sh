#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/xen/run.sh: records/s and CPU per record of xen+shm:, xen+vcpu: and libxenvchan carrying
# the same records, in one boot of Xen 4.17 under QEMU TCG. Writes its own section of
# bench/results.md (between <!-- BEGIN xen --> and <!-- END xen -->) and nothing else. Not run
# by CI: it boots Xen (a few minutes) and its numbers depend on the machine.
#
#   bench/xen/run.sh [--size BYTES] [--shm N] [--vcpu N] [--vchan N]
#
# Options go to bench/xen/run.py (record size, and records per transport). Needs what the Xen
# test needs (root, qemu-system-x86, busybox-static, cpio, kmod, file, libxen-dev; see
# tests/xen/xen-image.sh). The build directory is $IVMON_BENCH_XEN_BUILD_DIR, by default outside
# the source tree: Release, -O2, the Xen backends on.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${IVMON_BENCH_XEN_BUILD_DIR:-${TMPDIR:-/tmp}/ivmon-bench-xen-build}
mkdir -p "$build"
log=$build/build.log
echo "run.sh: building in $build (log: $log)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DIVMON_BACKEND_XEN=ON -DIVMON_BUILD_TESTS=OFF >"$log" 2>&1 ||
    { tail -20 "$log" >&2; exit 1; }
cmake --build "$build" -j2 --target ivmon-agent ivmon-produce ivmon-step ivmon-watch \
    ivmon-bench-xen-read ivmon-vchan-produce >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }
exec python3 "$here/run.py" --build "$build" --command "bench/xen/run.sh${*:+ $*}" "$@"
