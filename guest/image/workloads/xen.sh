#!/bin/sh
# xen: the guest half of the Xen integration test (tests/xen/test_xen.py), one guest for every
# step so that the whole label boots Xen once: the scripted workload (every event checked), an
# agent restart (SIGKILL, new grant pages), then a steady writer during which dom0 kills its
# monitor and starts another one. Arguments: STEADY_SECONDS (default 10), RATE (default 50).
/workloads/scripted.sh || exit 1
/workloads/agent-restart.sh KILL || exit 1
exec /workloads/steady.sh "${1:-10}" "${2:-50}"
