# VM tests through libvirt (tests/vm/test_libvirt.py): (c) a domain attached by name across a
# restart, open errors, and a doorbell device served for libvirt's QEMU. The test starts
# virtlogd and libvirtd itself when they do not run. Conventions: see plain.cmake.
if(NOT TARGET ivmon-agent OR IVMON_SANITIZE)
  return()
endif()
get_property(ivmon_vm_backends GLOBAL PROPERTY IVMON_BACKENDS_BUILT)
if(NOT "libvirt" IN_LIST ivmon_vm_backends)
  message(STATUS "VM tests through libvirt: not registered (IVMON_BACKEND_LIBVIRT is off)")
  return()
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)

foreach(case restart doorbell)
  add_test(NAME vm_libvirt_${case}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_libvirt.py --case ${case}
            --agent $<TARGET_FILE:ivmon-agent> --watch $<TARGET_FILE:ivmon-watch>
            --workdir ${CMAKE_CURRENT_BINARY_DIR}/work/libvirt-${case}
            --image-dir ${CMAKE_BINARY_DIR}/guest-image)
  # One libvirtd for the machine: the two must not run at the same time.
  set_tests_properties(vm_libvirt_${case} PROPERTIES LABELS vm TIMEOUT 300 RESOURCE_LOCK libvirtd)
endforeach()
