#!/bin/sh
# info: prints what the guest sees of its ivshmem devices (address, BARs, IVPosition) and of its
# disks, for debugging a VM setup. Prints IVMON-INFO lines.
. /lib/ivmon/ivmon.sh
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x1af4 ] && [ "$(cat "$d/device")" = 0x1110 ] || continue
    bar0=$(head -1 "$d/resource" | cut -d' ' -f1)
    pos=none
    if [ "$bar0" != 0x0000000000000000 ] && command -v devmem >/dev/null; then
        echo 1 >"$d/enable"
        pos=$(devmem $((bar0 + 8)) 32)
    fi
    ivmon_mark INFO "ivshmem dev=${d##*/} bar0=$bar0 ivposition=$pos" \
        "bars=$(ls "$d" | grep '^resource[0-9]$' | tr '\n' ' ')"
done
for b in /sys/block/vd*; do
    [ -e "$b" ] && ivmon_mark INFO "disk ${b##*/} sectors=$(cat "$b/size")"
done
exit 0
