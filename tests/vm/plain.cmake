# VM tests over QEMU ivshmem-plain (tests/vm/test_plain.py): (a) scripted workload, (d) monitor
# restart, (e) agent restart. Each boots the real Debian kernel under QEMU (TCG here, ~3 s to
# /init) with the real agent; together they take about 30 s.
ivmon_vm_tests(SCRIPT test_plain.py PREFIX plain BACKEND ivshmem TIMEOUT 200
               CASES scripted monitor-restart agent-restart)
