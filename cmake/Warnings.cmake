# Warnings as errors for our own code only (third-party headers are included as system headers).
add_library(vnp_warnings INTERFACE)
target_compile_options(vnp_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor
  -Wno-error=deprecated-declarations
  # GCC 12 false positive on std::string concatenation at -O2+ (GCC bug 105329).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>>)

# vnp_add_library(NAME SOURCES... [DEPS ...]): one module library with our warnings.
function(vnp_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE vnp_warnings)
endfunction()
