# VM tests over QEMU ivshmem-plain (tests/vm/test_plain.py): (a) scripted workload, (d) monitor
# restart, (e) agent restart. Each boots the real Debian kernel under QEMU (TCG here, ~3 s to
# /init) with the real agent; together they take about 30 s.
#
# Conventions for every VM test file here (doorbell.cmake, libvirt.cmake follow them):
#  - tests need root, qemu-system-x86, busybox-static, cpio, kmod, e2fsprogs (scripts/deps.sh);
#    a missing one fails the test with the apt-get command to run;
#  - the guest image is built (and cached) by the test itself through scripts/guest-image.sh into
#    ${IVMON_VM_IMAGE_DIR}, shared by all VM tests of the build; the kernel package is cached
#    per user (scripts/guest-image.sh --cache);
#  - each test has its own work directory ${IVMON_VM_WORK_DIR}/NAME with the serial logs and event
#    files, kept after the run;
#  - LABELS vm, a TIMEOUT, and the paths of ivmon-agent and ivmon-watch as generator expressions.
if(NOT TARGET ivmon-agent)
  message(STATUS "VM tests: not registered (IVMON_BUILD_AGENT=OFF: there is no agent for the guest)")
  return()
endif()
if(IVMON_SANITIZE)
  # The sanitizer runtimes cannot be linked statically, and the guest needs a static agent. The
  # normal build runs these tests.
  message(STATUS "VM tests: not registered in an IVMON_SANITIZE build (the guest needs the static agent)")
  return()
endif()
get_property(ivmon_vm_backends GLOBAL PROPERTY IVMON_BACKENDS_BUILT)
if(NOT "ivshmem" IN_LIST ivmon_vm_backends)
  message(STATUS "VM tests over ivshmem-plain: not registered (IVMON_BACKEND_IVSHMEM is off)")
  return()
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(IVMON_VM_IMAGE_DIR ${CMAKE_BINARY_DIR}/guest-image)
set(IVMON_VM_WORK_DIR ${CMAKE_CURRENT_BINARY_DIR}/work)

foreach(case scripted monitor-restart agent-restart)
  string(REPLACE "-" "_" test vm_plain_${case})
  add_test(NAME ${test}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_plain.py --case ${case}
            --agent $<TARGET_FILE:ivmon-agent> --watch $<TARGET_FILE:ivmon-watch>
            --workdir ${IVMON_VM_WORK_DIR}/plain-${case} --image-dir ${IVMON_VM_IMAGE_DIR})
  set_tests_properties(${test} PROPERTIES LABELS vm TIMEOUT 200)
endforeach()
