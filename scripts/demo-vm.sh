#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The VM demo: boots a real Linux guest under QEMU with ivmon-agent inside, and shows the guest's
# file events live as ivmon-watch prints them on the host. Debian 12, as root:
#
#   ./scripts/demo-vm.sh              build, boot, run the demo workload in the guest, power off
#   ./scripts/demo-vm.sh --rounds 3   the workload three times, 2 s apart
#   ./scripts/demo-vm.sh --shell      afterwards, a shell inside the guest on this terminal: files
#                                     you touch under /mnt/tmpfs show up as events; `exit` (or
#                                     Ctrl-A X) powers the guest off
#
# What happens: scripts/deps.sh installs the packages; the library, ivmon-watch and the static
# agent are built into build/demo; scripts/guest-image.sh builds the guest into build/guest (the
# first time it downloads Debian's kernel package, ~70 MB; later runs reuse everything); a 4 MiB
# file /dev/shm/ivmon-demo-vm becomes the guest's ivshmem device; ivmon-watch attaches to it and
# formats the ring; QEMU boots the guest (TCG where KVM cannot run a stock kernel, see
# labs/README.md: ~3 s to the agent), whose /init starts the agent on /mnt/tmpfs and runs
# guest/image/workloads/demo.sh.
#
# Transport: ivshmem-plain (host URI ivshmem:FILE, polled every 10 ms).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=1
shell=0
while (($#)); do
    case $1 in
        --rounds) rounds=${2:?--rounds needs a number}; shift 2 ;;
        --shell) shell=1; shift ;;
        -h|--help) sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "demo-vm.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" -ne 0 ]; then
    echo "demo-vm.sh: run as root (QEMU, /dev/shm and the monitor run here as root)" >&2
    exit 1
fi
"$root/scripts/deps.sh"
build=$root/build/demo
echo "== building libivmon, ivmon-watch and the static agent into $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIVMON_BUILD_TESTS=OFF \
      -DIVMON_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
watch=$build/examples/ivmon-watch/ivmon-watch
echo "== building the guest image into $root/build/guest (cached)"
"$root/scripts/guest-image.sh" --quiet --agent "$build/guest/ivmon-agent" "$root/build/guest" >/dev/null
img=$root/build/guest
serial=$img/demo-vm.serial

# The transport: QEMU device arguments and the monitor's URI.
ring=/dev/shm/ivmon-demo-vm
rm -f "$ring"
truncate -s 4M "$ring"
devices=(-object "memory-backend-file,id=ivmem,share=on,mem-path=$ring,size=4M"
         -device ivshmem-plain,memdev=ivmem)
uri=ivshmem:$ring

accel=(-accel tcg)
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then accel=(-accel kvm -cpu host); fi
params="ivmon.workload=demo ivmon.args=$rounds"
[ "$shell" = 1 ] && params="$params ivmon.shell=1"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -f "$ring"
}
trap cleanup EXIT

echo "== ivmon-watch $uri   (the guest's file events, live)"
"$watch" --stats "$uri" &
pids+=($!)
sleep 0.2
qemu=(qemu-system-x86_64 "${accel[@]}" -m 512 -nographic -no-reboot -nic none
      -kernel "$img/vmlinux" -initrd "$img/initrd.gz"
      -append "console=ttyS0 quiet panic=-1 $params" "${devices[@]}")
if [ "$shell" = 1 ]; then
    echo "== booting the guest; after the workload you get its shell here (exit to power off)"
    "${qemu[@]}"
else
    echo "== booting the guest (${accel[1]}); console log: $serial"
    : >"$serial"
    "${qemu[@]}" -serial "file:$serial" -monitor none </dev/null >/dev/null &
    qpid=$!
    pids+=($qpid)
    # Relay the guest's progress markers while the events stream in.
    shown=0
    while kill -0 "$qpid" 2>/dev/null; do
        n=$(grep -ac 'IVMON-' "$serial" || true)
        if [ "$n" -gt "$shown" ]; then
            grep -a 'IVMON-' "$serial" | tr -d '\r' | sed -n "$((shown + 1)),${n}p" |
                grep -E 'READY|WORKLOAD|ERROR|POWEROFF' | sed 's/^/== guest: /' || true
            shown=$n
        fi
        sleep 0.2
    done
    wait "$qpid" || true
fi
sleep 0.5 # the last records: the monitor polls every 10 ms
kill "${pids[0]}" 2>/dev/null || true
wait "${pids[0]}" 2>/dev/null || true
echo "== done: the guest powered off (run with --shell to try it yourself)"
