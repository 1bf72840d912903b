# cmake -DREADELF=readelf -DBINARY=FILE -P needs_only_glibc.cmake: fails unless
# every shared library FILE's ELF names in DT_NEEDED is a part of glibc, so a
# static CLI (MUSAFARM_STATIC_CLI, cli/CMakeLists.txt) cannot quietly go back to
# loading gRPC, protobuf or Abseil shared (issue 19); and, with -DNOT_PIE=ON, that
# FILE is linked at a fixed address (ELF type EXEC, not a PIE whose relocations
# the loader applies at every start: cmake/static_link.cmake). With -DFULLY_STATIC=ON
# (glibc linked in too), FILE must name no shared library and no program interpreter,
# and have the .eh_frame_hdr segment that its unwinder finds FDEs by (else every
# exception, CLI11's --help among them, would end the program).
cmake_minimum_required(VERSION 3.25)
execute_process(COMMAND ${READELF} --dynamic ${BINARY} OUTPUT_VARIABLE dynamic
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${READELF} --dynamic ${BINARY} failed (${rc})")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^\n]*\\[[^]\n]*\\]" entries "${dynamic}")
set(glibc libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libutil.so.1
          ld-linux-x86-64.so.2)
set(needed "")
set(others "")
foreach(e IN LISTS entries)
  string(REGEX REPLACE ".*\\[([^]]*)\\]" "\\1" lib "${e}")
  list(APPEND needed ${lib})
  if(NOT lib IN_LIST glibc)
    list(APPEND others ${lib})
  endif()
endforeach()
if(FULLY_STATIC)
  if(needed)
    string(REPLACE ";" ", " needed "${needed}")
    message(FATAL_ERROR "${BINARY} should be fully static but needs shared libraries: ${needed}")
  endif()
  execute_process(COMMAND ${READELF} --program-headers ${BINARY} OUTPUT_VARIABLE segments
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${READELF} --program-headers ${BINARY} failed (${rc})")
  endif()
  if(segments MATCHES "\n[ ]*INTERP ")
    message(FATAL_ERROR "${BINARY} should be fully static but names a program interpreter")
  endif()
  if(NOT segments MATCHES "\n[ ]*GNU_EH_FRAME ")
    message(FATAL_ERROR "${BINARY} has no GNU_EH_FRAME segment (link it with --eh-frame-hdr)")
  endif()
  message(STATUS "${BINARY} is fully static, glibc included")
else()
  if(NOT needed)
    message(FATAL_ERROR "${BINARY}: no DT_NEEDED entries read (is it dynamically linked to glibc?)")
  endif()
  if(others)
    string(REPLACE ";" ", " others "${others}")
    message(FATAL_ERROR "${BINARY} needs shared libraries other than glibc's: ${others}")
  endif()
  string(REPLACE ";" ", " needed "${needed}")
  message(STATUS "${BINARY} needs only glibc: ${needed}")
endif()
if(NOT_PIE)
  execute_process(COMMAND ${READELF} --file-header ${BINARY} OUTPUT_VARIABLE header
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${READELF} --file-header ${BINARY} failed (${rc})")
  endif()
  string(REGEX MATCH "Type:[ ]*([A-Z]+)" type_line "${header}")
  if(NOT CMAKE_MATCH_1 STREQUAL "EXEC")
    message(FATAL_ERROR "${BINARY}: ELF type ${CMAKE_MATCH_1}, expected EXEC (linked -no-pie)")
  endif()
  message(STATUS "${BINARY} is not a PIE")
endif()
