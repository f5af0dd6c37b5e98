# VM tests through libvirt (tests/vm/test_libvirt.py): (c) a domain attached by name across a
# restart, open errors, and a doorbell device served for libvirt's QEMU. The test starts
# virtlogd and libvirtd itself when they do not run; there is one libvirtd per machine, so the
# two never run at the same time.
ivmon_vm_tests(SCRIPT test_libvirt.py PREFIX libvirt BACKEND libvirt TIMEOUT 300
               RESOURCE_LOCK libvirtd CASES restart doorbell)
