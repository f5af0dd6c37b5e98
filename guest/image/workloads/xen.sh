#!/bin/sh
# xen: the guest half of the Xen integration test (tests/xen/test_xen.py), one guest for every
# step so that the whole label boots Xen once. In a PV guest first: the agent on xen+vcpu: must
# refuse ("needs PVH or HVM"; IVMON-XEN-VCPU-ON-PV rc=N, the agent's message on the console).
# Then the scripted workload (every event checked), an agent restart (SIGKILL, a new producer
# instance), then a steady writer during which dom0 kills its monitor and starts another one.
# Arguments: STEADY_SECONDS (default 10), RATE (default 50), LINGER_MS of the scripted steps
# (default 300). The agent reads a process's /proc entries when it handles its event, and
# xen+vcpu makes it wait whenever dom0 falls behind (Xen pauses the vCPU while the 8-slot
# vm_event ring is full: most of a second on a busy TCG host), so its steps linger longer.
. /lib/ivmon/ivmon.sh
if [ "$(cat /sys/hypervisor/guest_type 2>/dev/null)" = PV ]; then
    /bin/ivmon-agent --uri xen+vcpu: --watch /mnt/tmpfs 2>&1
    ivmon_mark XEN-VCPU-ON-PV "rc=$?"
fi
/workloads/scripted.sh "${3:-300}" || exit 1
/workloads/agent-restart.sh KILL "${3:-300}" || exit 1
exec /workloads/steady.sh "${1:-10}" "${2:-50}"
