# VM tests over QEMU ivshmem-doorbell served by the library (tests/vm/test_doorbell.py):
# (b) scripted workload with the doorbell really rung, and a hostile guest scribbling over its
# region beside a well-behaved one in the same monitor. Conventions: see plain.cmake.
if(NOT TARGET ivmon-agent OR IVMON_SANITIZE)
  return()
endif()
get_property(ivmon_vm_backends GLOBAL PROPERTY IVMON_BACKENDS_BUILT)
if(NOT "ivshmem" IN_LIST ivmon_vm_backends)
  return()
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)

foreach(case scripted hostile-guest)
  string(REPLACE "-" "_" test vm_doorbell_${case})
  add_test(NAME ${test}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_doorbell.py --case ${case}
            --agent $<TARGET_FILE:ivmon-agent> --watch $<TARGET_FILE:ivmon-watch>
            --workdir ${CMAKE_CURRENT_BINARY_DIR}/work/doorbell-${case}
            --image-dir ${CMAKE_BINARY_DIR}/guest-image)
  set_tests_properties(${test} PROPERTIES LABELS vm TIMEOUT 240)
endforeach()
