# VM tests over QEMU ivshmem-doorbell served by the library (tests/vm/test_doorbell.py):
# (b) scripted workload with the doorbell really rung, and a hostile guest scribbling over its
# region beside a well-behaved one in the same monitor.
ivmon_vm_tests(SCRIPT test_doorbell.py PREFIX doorbell BACKEND ivshmem TIMEOUT 240
               CASES scripted hostile-guest)
