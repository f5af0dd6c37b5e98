# VM test over virtio-serial (tests/vm/test_vser.py): the agent's scripted workload written to a
# virtio-serial port (guest URI virtio-serial:NAME), read on the host by ivmon-vser-watch
# (bench/vm/: the library has no backend for the stream, so the reader hands each record to the
# core's decoder and accounting itself). Conventions: see plain.cmake.
if(NOT TARGET ivmon-agent OR IVMON_SANITIZE)
  return()
endif()
if(NOT TARGET ivmon-vser-watch)
  message(STATUS "VM test over virtio-serial: not registered (IVMON_BUILD_BENCH=OFF: no ivmon-vser-watch)")
  return()
endif()
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME vm_vser_scripted
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/test_vser.py
          --agent $<TARGET_FILE:ivmon-agent> --watch $<TARGET_FILE:ivmon-vser-watch>
          --workdir ${CMAKE_CURRENT_BINARY_DIR}/work/vser-scripted
          --image-dir ${CMAKE_BINARY_DIR}/guest-image)
set_tests_properties(vm_vser_scripted PROPERTIES LABELS vm TIMEOUT 200)
