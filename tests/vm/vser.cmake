# VM test over virtio-serial (tests/vm/test_vser.py): the agent's scripted workload written to a
# virtio-serial port (guest URI virtio-serial:NAME), read on the host by ivmon-vser-watch
# (bench/vm/, built with IVMON_BUILD_BENCH: the library has no backend for the stream, so the
# reader hands each record to the core's decoder and accounting itself).
ivmon_vm_tests(SCRIPT test_vser.py PREFIX vser WATCH ivmon-vser-watch TIMEOUT 200 CASES scripted)
