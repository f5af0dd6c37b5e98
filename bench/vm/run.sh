#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Builds what the VM bench needs (Release, -O2), the guest image, boots the guest once under QEMU
# and measures guest-to-host records/s, CPU per record and latency through ivshmem with doorbell
# against virtio-serial, the same producer on both; writes its section of bench/results.md
# (vm-ivshmem-virtio-serial; bench/results_section.py keeps the other sections as they are).
#
#   bench/vm/run.sh [--reps N] [--count N] [--lat-count N] [--rate N] [--batch N] [--sizes A,B]
#
# Defaults: 3 runs per case, 200000 records per throughput run, 10000 per latency run paced at
# 5000 records/s, batches of 32, records of 128 and 256 bytes. Needs root, QEMU and what
# scripts/guest-image.sh needs (the VM tests' packages: scripts/deps.sh). Builds in
# $IVMON_BENCH_BUILD_DIR (default ${TMPDIR:-/tmp}/ivmon-bench-vm-build), with at most
# $IVMON_BENCH_JOBS (default 2) jobs. The section is replaced only when every run delivered every
# record with exact accounting; otherwise results.md is left alone and the exit status is 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${IVMON_BENCH_BUILD_DIR:-${TMPDIR:-/tmp}/ivmon-bench-vm-build}
jobs=${IVMON_BENCH_JOBS:-2}
log="$build/build.log"
mkdir -p "$build"

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: run as root (QEMU's shared memory in /dev/shm, the guest image)" >&2
    exit 1
fi
# As bench/run.sh: -O2, as a distribution builds, not CMake's Release -O3.
echo "run.sh: building in $build (log: $log)" >&2
cmake -S "$root" -B "$build/project" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DIVMON_BUILD_TESTS=OFF >"$log" 2>&1
cmake --build "$build/project" -j"$jobs" --target ivmon-agent ivmon-produce ivmon-bench-vm-host \
    ivmon-clocksync >>"$log" 2>&1 || { tail -20 "$log" >&2; exit 1; }

p=$build/project
python3 "$here/bench_vm.py" --host-bin "$p/bench/vm/ivmon-bench-vm-host" \
    --agent "$p/guest/ivmon-agent" --clocksync "$p/bench/vm/ivmon-clocksync" \
    --image-dir "$build/guest-image" --workdir "$build/work" \
    --command "bench/vm/run.sh${*:+ $*}" "$@"
