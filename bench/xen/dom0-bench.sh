#!/bin/sh
# SPDX-License-Identifier: MIT
#
# dom0-bench.sh: dom0's half of the Xen bench (bench/xen/run.sh, through tests/xen/xenlib.py).
# One PVH guest runs guest/image/workloads/bench-xen.sh: the same records over xen+shm:,
# xen+vcpu: and libxenvchan in turn. The three readers (ivmon-bench-xen-read) start once the
# guest's kernel is up (enabling the vm_event monitor during its early boot has triple-faulted
# it under TCG: tests/xen/dom0-run.sh) and wait for their producer; each samples the guest's
# vCPU time over its span.
# Results (the readers' JSON, the guest console, the machine's state) go to /results, written as
# a tar archive onto /dev/vda at the end. Kernel command line: xb.args=SIZE,SHM,VCPU,VCHAN.
export PATH=/usr/lib/xen-4.17/bin:/bin:/sbin:/usr/bin:/usr/sbin
R=/results
args=128,150000,600,150000
for w in $(cat /proc/cmdline); do
    case $w in
    xb.args=*) args=${w#*=} ;;
    esac
done
# T, console, console_crashed, kernel_hung (tests/xen/dom0-lib.sh)
. /lib/ivmon-dom0.sh

cat >/etc/xen/gb.cfg <<EOC
name = "gb"
type = "pvh"
kernel = "/guest/vmlinux"
ramdisk = "/guest/initrd.gz"
extra = "console=hvc0 quiet panic=-1 ivmon.agent=0 ivmon.workload=bench-xen ivmon.args=$args xen_privcmd.unrestricted=1"
memory = 256
vcpus = 1
cpus = "1"
tsc_mode = "native"
on_crash = "preserve"
on_reboot = "destroy"
EOC
cat /proc/loadavg >$R/loadavg-start
if xl create /etc/xen/gb.cfg >$R/xl-create.log 2>&1; then
    d=$(xl domid gb)
    T CREATED "domid=$d"
    n=0
    while ! grep -q IVMON-BOOTED /var/log/xen/console/guest-gb.log 2>/dev/null && [ $n -lt 600 ]; do
        n=$((n + 1))
        sleep 0.2
    done
    ivmon-bench-xen-read --domid "$d" xen+shm:gb >$R/read-shm.json 2>$R/read-shm.err &
    p1=$!
    ivmon-bench-xen-read --domid "$d" xen+vcpu:gb >$R/read-vcpu.json 2>$R/read-vcpu.err &
    p2=$!
    ivmon-bench-xen-read --domid "$d" "vchan:$d:/local/domain/$d/data/ivmon-bench-vchan" \
        >$R/read-vchan.json 2>$R/read-vchan.err &
    p3=$!
    # Under QEMU's nested SVM the guest's kernel now and then panics or hangs (docs/XEN.md,
    # "Under QEMU"), and its readers would wait for good: look for that while they run, and
    # end the boot so run.py can boot again.
    any_alive() { for _p; do kill -0 "$_p" 2>/dev/null && return 0; done; return 1; }
    n=0
    while any_alive $p1 $p2 $p3; do
        n=$((n + 1))
        if console_crashed "$(console gb)" ||
            { [ $((n % 100)) = 0 ] && kernel_hung gb; }; then
            T ERROR "the guest's kernel crashed or hung (its console: $(console gb))"
            kill $p1 $p2 $p3 2>/dev/null
            cp "$(console gb)" $R/console-gb.log
            xl destroy gb
            break
        fi
        sleep 0.2
    done
    for c in shm:$p1 vcpu:$p2 vchan:$p3; do
        wait "${c#*:}"
        echo $? >"$R/read-${c%%:*}.rc"
        T READ "case=${c%%:*} rc=$(cat "$R/read-${c%%:*}.rc")"
    done
    n=0
    while xl list gb >/dev/null 2>&1 && [ $n -lt 300 ]; do
        n=$((n + 1))
        sleep 0.2
    done
else
    T ERROR "xl create gb failed: $(tail -3 $R/xl-create.log)"
fi
cat /proc/loadavg >$R/loadavg-end
cp /var/log/xen/console/guest-gb.log $R/console-gb.log 2>/dev/null
xl info >$R/xl-info.log 2>&1
xl dmesg >$R/xl-dmesg.log 2>&1
tar cf /dev/vda -C $R . && T RESULTS "bytes=$(du -sk $R | cut -f1)K"
T DONE
