# mf_link_static(TARGET exe DEPS lib... [SHARED_OUT var]): links `exe` against the
# static archives of everything `lib...` needs, ours and third-party, instead of the
# shared libraries that the imported targets name (issue 19: the CLI spent half of
# its start-up in the dynamic loader, resolving symbols of ~58 shared libraries).
#
# CMake's imported targets of gRPC, protobuf, Abseil, OpenSSL, ... name the .so
# files, and linking `exe` to `lib` would pull them in transitively. So the
# dependency graph below `lib...` is walked here at configure time instead:
#   - our static libraries: linked as files ($<TARGET_FILE>), private deps included;
#   - an imported or plain third-party library: its archive beside the .so
#     (libX.so.N -> libX.a), or, for a plain name, libX.a on the linker's path;
#   - glibc's parts (c, m, dl, rt, pthread) and flags (-pthread, -L...): kept.
# Every archive goes into one --start-group/--end-group, so their order does not
# matter, and libstdc++/libgcc are linked statically too; glibc as well where its
# archives are installed (MF_HAVE_STATIC_GLIBC: a fully static program), else the
# program needs only glibc. A library that has no archive is left out of a fully
# static link (a use of it fails the link), else it stays shared, linked
# --as-needed: it costs nothing unless the program uses it, and the caller's
# DT_NEEDED check (cli/CMakeLists.txt) fails if it does. Their names go to
# SHARED_OUT, for the configure message.

include(CheckLinkerFlag)

set(MF_GLIBC_LIBS c m dl rt pthread util)

# The static archive of a shared library file, or "" when there is none.
function(_mf_archive_of path out)
  set(archive "")
  if(path MATCHES "^(.*/lib[^/]+)\\.so(\\.[0-9.]+)?$")
    if(EXISTS "${CMAKE_MATCH_1}.a")
      set(archive "${CMAKE_MATCH_1}.a")
    endif()
  elseif(path MATCHES "\\.a$" AND EXISTS "${path}")
    set(archive "${path}")
  endif()
  set(${out} "${archive}" PARENT_SCOPE)
endfunction()

# The file an imported library target names, for whichever configuration it has.
function(_mf_imported_location tgt out)
  set(loc "")
  get_target_property(configs ${tgt} IMPORTED_CONFIGURATIONS)
  if(NOT configs)
    set(configs "")
  endif()
  set(props IMPORTED_LOCATION)
  foreach(c IN LISTS configs)
    list(APPEND props IMPORTED_LOCATION_${c})
  endforeach()
  foreach(prop IN LISTS props)
    get_target_property(l ${tgt} ${prop})
    if(l)
      set(loc "${l}")
      break()
    endif()
  endforeach()
  set(${out} "${loc}" PARENT_SCOPE)
endfunction()

# Walks one link item; collects into the global properties _MF_* that mf_link_static reads.
function(_mf_walk item)
  if(item MATCHES "^::@")   # directory markers CMake puts around items from other directories
    return()
  endif()
  if(item MATCHES "^\\$<LINK_ONLY:(.*)>$")
    set(item "${CMAKE_MATCH_1}")
  endif()
  if(item MATCHES "^\\$<\\$<PLATFORM_ID:([^>]*)>:(.*)>$")   # Abseil's macOS frameworks
    if(CMAKE_MATCH_1 STREQUAL CMAKE_SYSTEM_NAME AND NOT CMAKE_MATCH_2 STREQUAL "")
      _mf_walk("${CMAKE_MATCH_2}")
    endif()
    return()
  endif()
  if(item MATCHES "^\\$<")
    message(FATAL_ERROR "mf_link_static: cannot map the generator expression ${item}")
  endif()
  get_property(seen GLOBAL PROPERTY _MF_SEEN)
  if(item IN_LIST seen)
    return()
  endif()
  set_property(GLOBAL APPEND PROPERTY _MF_SEEN "${item}")
  set(deps "")
  if(TARGET ${item})
    get_target_property(aliased ${item} ALIASED_TARGET)
    if(aliased)
      _mf_walk(${aliased})
      return()
    endif()
    get_target_property(type ${item} TYPE)
    get_target_property(imported ${item} IMPORTED)
    if(NOT imported)
      if(type STREQUAL "STATIC_LIBRARY")
        set_property(GLOBAL APPEND PROPERTY _MF_ARCHIVES "$<TARGET_FILE:${item}>")
        set_property(GLOBAL APPEND PROPERTY _MF_TARGETS ${item})
        get_target_property(deps ${item} LINK_LIBRARIES)
      elseif(type STREQUAL "INTERFACE_LIBRARY")
        get_target_property(deps ${item} INTERFACE_LINK_LIBRARIES)
      else()
        message(FATAL_ERROR "mf_link_static: ${item} is a ${type}; only static libraries link in")
      endif()
    else()
      if(NOT type STREQUAL "INTERFACE_LIBRARY")
        _mf_imported_location(${item} loc)
        _mf_archive_of("${loc}" archive)
        if(archive)
          set_property(GLOBAL APPEND PROPERTY _MF_ARCHIVES "${archive}")
        elseif(loc)
          set_property(GLOBAL APPEND PROPERTY _MF_SHARED "${loc}")
        endif()
      endif()
      get_target_property(deps ${item} INTERFACE_LINK_LIBRARIES)
    endif()
    if(NOT deps)
      set(deps "")
    endif()
    foreach(d IN LISTS deps)
      _mf_walk("${d}")
    endforeach()
  elseif(item MATCHES "^-l(.+)$|^([A-Za-z0-9_+.][A-Za-z0-9_+.-]*)$")
    # A plain library name: glibc's stay dynamic, others by their archive.
    set(name "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
    if(name IN_LIST MF_GLIBC_LIBS)
      set_property(GLOBAL APPEND PROPERTY _MF_SYSTEM "-l${name}")
    else()
      find_library(_mf_lib_${name} NAMES lib${name}.a)
      if(_mf_lib_${name})
        set_property(GLOBAL APPEND PROPERTY _MF_ARCHIVES "${_mf_lib_${name}}")
      else()
        set_property(GLOBAL APPEND PROPERTY _MF_SHARED "-l${name}")
      endif()
    endif()
  elseif(item MATCHES "^-")
    set_property(GLOBAL APPEND PROPERTY _MF_SYSTEM "${item}")   # -pthread, -L...
  elseif(IS_ABSOLUTE "${item}")
    _mf_archive_of("${item}" archive)
    if(archive)
      set_property(GLOBAL APPEND PROPERTY _MF_ARCHIVES "${archive}")
    else()
      set_property(GLOBAL APPEND PROPERTY _MF_SHARED "${item}")
    endif()
  else()
    message(FATAL_ERROR "mf_link_static: cannot map the link item ${item}")
  endif()
endfunction()

function(mf_link_static)
  cmake_parse_arguments(A "" "TARGET;SHARED_OUT" "DEPS" ${ARGN})
  foreach(p SEEN ARCHIVES TARGETS SHARED SYSTEM)
    set_property(GLOBAL PROPERTY _MF_${p} "")
  endforeach()
  foreach(d IN LISTS A_DEPS)
    _mf_walk("${d}")
  endforeach()
  foreach(p ARCHIVES TARGETS SHARED SYSTEM)
    string(TOLOWER ${p} v)
    get_property(_mf_${v} GLOBAL PROPERTY _MF_${p})
  endforeach()
  list(REMOVE_DUPLICATES _mf_archives)
  list(REMOVE_DUPLICATES _mf_system)
  list(REMOVE_DUPLICATES _mf_shared)
  # glibc too, where its archives are installed (libc6-dev): the loader then has nothing
  # to do (mapping libc and libm, their relocations and symbol lookups: ~0.5 ms and ~40 of
  # ~330 page faults of `musafarm jobs`; issue 19). What needs glibc's shared parts at run
  # time is NSS beyond its built-in `files` and `dns` modules (an LDAP user database, a
  # hosts lookup through systemd-resolved): the CLI resolves coordinator names with gRPC's
  # c-ares resolver, which reads /etc/hosts and resolv.conf itself, in either link, and
  # looks up a user name only where $USER is unset (getlogin). The libraries without an
  # archive cannot be linked then: a use of one fails the link (an undefined symbol).
  check_linker_flag(CXX "-static" MF_HAVE_STATIC_GLIBC)
  if(MF_HAVE_STATIC_GLIBC)
    set(_mf_shared_link "")
    # A static link starts with crtbeginT.o, which registers the whole .eh_frame with
    # libgcc's unwinder; the first exception thrown (CLI11's --help, --version and usage
    # errors) then sorts every FDE of the binary, ~20 ms. Unregistered, the unwinder finds
    # FDEs as in a dynamic program: dl_iterate_phdr and the binary search table of
    # .eh_frame_hdr, which gcc does not ask for in a static link.
    target_sources(${A_TARGET} PRIVATE ${PROJECT_SOURCE_DIR}/cmake/no_frame_registry.cc)
    target_link_options(${A_TARGET} PRIVATE -static LINKER:--eh-frame-hdr
                        LINKER:--wrap=__register_frame_info LINKER:--wrap=__deregister_frame_info)
  else()
    set(_mf_shared_link -Wl,--push-state,--as-needed ${_mf_shared} -Wl,--pop-state)
  endif()
  target_link_libraries(${A_TARGET} PRIVATE
    -static-libstdc++ -static-libgcc
    -Wl,--start-group ${_mf_archives} -Wl,--end-group
    ${_mf_shared_link}
    ${_mf_system})
  # Not a PIE: a PIE's loader applies ~40,000 relative relocations at every start, and
  # writing them makes a private copy of every page that holds a pointer (.data.rel.ro,
  # .got, .init_array: ~150 page faults of ~450 for `musafarm jobs`; issue 19). Linked at
  # a fixed address, those pages stay the file's, mapped on first touch. What is lost is
  # the randomized address of the CLI's own code (and of libc's, linked in above), a
  # short-lived client's; its stack, heap and mappings stay randomized. Where -no-pie is refused, the relocations are at least
  # packed (DT_RELR: binutils 2.38, glibc 2.36), a tenth of the loader's work.
  check_linker_flag(CXX "-no-pie" MF_HAVE_NO_PIE)
  check_linker_flag(CXX "LINKER:-z,pack-relative-relocs" MF_HAVE_PACK_RELATIVE_RELOCS)
  if(MF_HAVE_NO_PIE)
    target_link_options(${A_TARGET} PRIVATE "-no-pie")
  elseif(MF_HAVE_PACK_RELATIVE_RELOCS)
    target_link_options(${A_TARGET} PRIVATE "LINKER:-z,pack-relative-relocs")
  endif()
  # Our archives are files here, not targets: build them first, relink when they change.
  add_dependencies(${A_TARGET} ${_mf_targets})
  foreach(t IN LISTS _mf_targets)
    set_property(TARGET ${A_TARGET} APPEND PROPERTY LINK_DEPENDS "$<TARGET_FILE:${t}>")
  endforeach()
  if(A_SHARED_OUT)
    set(${A_SHARED_OUT} "${_mf_shared}" PARENT_SCOPE)
  endif()
endfunction()
