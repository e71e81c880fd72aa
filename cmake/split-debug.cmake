# Install-time step (cmake -P): strips an installed shared library and keeps
# its debug information beside it the way Debian and Fedora do, under
# <libdir>/debug/.build-id/<first two hex digits>/<rest>.debug, linked back
# with a .gnu_debuglink section. gdb finds it with
#   set debug-file-directory <prefix>/lib/debug
# (or at once when the prefix is /usr). Without objcopy/strip the library is
# left as it is, with a warning.
#
# Variables: LIB (the installed library), DEBUG_ROOT (<libdir>/debug),
# OBJCOPY, STRIP, READELF; MODE=static strips only the debug sections of a static
# library (no debug file).
if(MODE STREQUAL "static")
    # A static library loses only its debug sections, as Debian's -dev
    # packages ship them: the objects still link, with smaller images.
    if(STRIP AND EXISTS "${STRIP}")
        execute_process(COMMAND "${STRIP}" --strip-debug "${LIB}" RESULT_VARIABLE rc)
        if(NOT rc EQUAL 0)
            message(FATAL_ERROR "split-debug.cmake: strip --strip-debug ${LIB} failed")
        endif()
    endif()
    return()
endif()
foreach(var LIB DEBUG_ROOT)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "split-debug.cmake: ${var} is not set")
    endif()
endforeach()
if(NOT OBJCOPY OR NOT STRIP OR NOT EXISTS "${OBJCOPY}" OR NOT EXISTS "${STRIP}")
    message(WARNING "objcopy or strip not found: ${LIB} is installed with its debug information")
    return()
endif()

if(NOT READELF)
    set(READELF readelf)
endif()
execute_process(COMMAND "${READELF}" -n "${LIB}" OUTPUT_VARIABLE notes RESULT_VARIABLE rc)
string(REGEX MATCH "Build ID: ([0-9a-f]+)" _ "${notes}")
set(build_id "${CMAKE_MATCH_1}")
if(NOT rc EQUAL 0 OR build_id STREQUAL "")
    # No build id: keep the debug file next to the library instead.
    get_filename_component(name "${LIB}" NAME)
    set(debug_file "${DEBUG_ROOT}/${name}.debug")
else()
    string(SUBSTRING "${build_id}" 0 2 head)
    string(SUBSTRING "${build_id}" 2 -1 rest)
    set(debug_file "${DEBUG_ROOT}/.build-id/${head}/${rest}.debug")
endif()
get_filename_component(debug_dir "${debug_file}" DIRECTORY)
file(MAKE_DIRECTORY "${debug_dir}")

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "split-debug.cmake: '${ARGN}' failed (${rc})")
    endif()
endfunction()
run("${OBJCOPY}" --only-keep-debug --compress-debug-sections "${LIB}" "${debug_file}")
run("${STRIP}" --strip-unneeded "${LIB}")
run("${OBJCOPY}" "--add-gnu-debuglink=${debug_file}" "${LIB}")
file(SIZE "${LIB}" lib_size)
message(STATUS "Stripped ${LIB} (${lib_size} bytes); debug information: ${debug_file}")
