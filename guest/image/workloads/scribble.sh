#!/bin/sh
# scribble: a hostile guest. Boot it with ivmon.agent=0: instead of producing records, it
# overwrites its first ivshmem device's BAR2 with garbage for SECONDS (argument, default 3)
# through /bin/ivmon-scribble (guest/tools/ivmon-scribble.c), once the host formatted the ring.
# Prints IVMON-SCRIBBLE-START dev=D and IVMON-SCRIBBLE-DONE rc=N.
. /lib/ivmon/ivmon.sh
seconds=${1:-3}
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] || continue
    echo 1 >"$d/enable"
    ivmon_mark SCRIBBLE-START "dev=${d##*/}"
    /bin/ivmon-scribble --seconds "$seconds" "$d/resource2"
    rc=$?
    ivmon_mark SCRIBBLE-DONE "rc=$rc"
    exit $rc
done
ivmon_mark ERROR "scribble: no ivshmem device"
exit 1
