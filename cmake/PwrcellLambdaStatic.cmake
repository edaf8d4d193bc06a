# PWRCELL_LAMBDA_STATIC: link for the Lambda package (scripts/package-lambda.sh, docs/PACKAGING.md).
# A function runs on Amazon Linux 2023 (provided.al2023: glibc 2.34), not on the Debian that builds
# it, so as little as possible is left to the target's shared libraries:
# - libstdc++ and libgcc linked statically (-static-libstdc++ -static-libgcc);
# - protobuf, SQLite and zlib from their static archives;
# - fmt, spdlog and toml++ header-only (Debian ships them as shared libraries only);
# - libcurl from its static archive with OpenSSL, libidn2, Brotli and zlib static; Debian has no
#   static archive of its other dependencies (nghttp2, rtmp, ssh2, psl, gssapi_krb5, ldap, lber,
#   zstd, unistring): they stay shared, and the package carries them in lib/, found through the
#   executable's DT_RPATH $ORIGIN/lib (searched before LD_LIBRARY_PATH, so a same-named library of
#   the image cannot come first).
# glibc stays shared (a static glibc cannot resolve names through NSS); the package script checks
# that no symbol needs a glibc newer than Amazon Linux 2023's.
#
# Included by the top-level CMakeLists.txt before its find_package calls: the targets defined
# here take the place of those the packages' own config files would define (each of those
# files leaves existing targets alone). pwrcell_lambda_static_after_packages() then makes the
# SQLite target static (pkg_check_modules would overwrite it if set before).

if(PWRCELL_SANITIZE OR PWRCELL_TSAN)
  message(FATAL_ERROR "PWRCELL_LAMBDA_STATIC is a release packaging build: configure it without PWRCELL_SANITIZE "
                      "and PWRCELL_TSAN")
endif()

set(PWRCELL_STATIC_LIBDIR "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}")

# A static archive that must exist: its full path in `out`, or a configuration error naming it.
function(pwrcell_require_archive out name)
  find_library(_pwrcell_archive_${name} NAMES lib${name}.a NO_CACHE)
  if(NOT _pwrcell_archive_${name})
    message(FATAL_ERROR "PWRCELL_LAMBDA_STATIC: no static archive lib${name}.a (install the Debian -dev package "
                        "that ships it, or configure without PWRCELL_LAMBDA_STATIC)")
  endif()
  set(${out} "${_pwrcell_archive_${name}}" PARENT_SCOPE)
endfunction()

# A shared library by its soname (Debian installs no lib*.so development link for most of them).
function(pwrcell_require_soname out soname)
  find_library(_pwrcell_so_${soname} NAMES ${soname} NO_CACHE)
  if(NOT _pwrcell_so_${soname})
    message(FATAL_ERROR "PWRCELL_LAMBDA_STATIC: libcurl.a needs ${soname}, which is not installed")
  endif()
  set(${out} "${_pwrcell_so_${soname}}" PARENT_SCOPE)
endfunction()

add_link_options(-static-libstdc++ -static-libgcc LINKER:--disable-new-dtags)
# CMake escapes $ORIGIN in RPATH properties for every generator (in a link option Make would
# expand $O). --disable-new-dtags writes it as DT_RPATH rather than DT_RUNPATH.
set(CMAKE_BUILD_RPATH "\$ORIGIN/lib")

set(Protobuf_USE_STATIC_LIBS ON)
set(ZLIB_USE_STATIC_LIBS ON)

find_package(Threads REQUIRED)

# fmt and spdlog header-only (spdlog on the external fmt, as Debian's spdlog is built).
add_library(fmt::fmt INTERFACE IMPORTED)
set_target_properties(fmt::fmt PROPERTIES INTERFACE_COMPILE_DEFINITIONS "FMT_HEADER_ONLY=1")
add_library(fmt::fmt-header-only INTERFACE IMPORTED)
set_target_properties(fmt::fmt-header-only PROPERTIES INTERFACE_COMPILE_DEFINITIONS "FMT_HEADER_ONLY=1")
add_library(spdlog::spdlog INTERFACE IMPORTED)
set_target_properties(spdlog::spdlog PROPERTIES INTERFACE_COMPILE_DEFINITIONS "SPDLOG_FMT_EXTERNAL"
                                                INTERFACE_LINK_LIBRARIES "Threads::Threads;fmt::fmt")
add_library(spdlog::spdlog_header_only INTERFACE IMPORTED)
set_target_properties(spdlog::spdlog_header_only PROPERTIES INTERFACE_COMPILE_DEFINITIONS "SPDLOG_FMT_EXTERNAL"
                                                            INTERFACE_LINK_LIBRARIES "Threads::Threads;fmt::fmt")
# toml++ header-only (its default; Debian's config file would select the shared library).
add_library(tomlplusplus::tomlplusplus INTERFACE IMPORTED)
target_compile_features(tomlplusplus::tomlplusplus INTERFACE cxx_std_17)

# libcurl: static where Debian has the archives, the rest shared (see above). FindCURL leaves an
# existing CURL::libcurl alone.
pwrcell_require_archive(_curl curl)
set(_curl_libs "${_curl}")
foreach(archive ssl crypto idn2 brotlidec brotlicommon z)
  pwrcell_require_archive(_archive ${archive})
  list(APPEND _curl_libs "${_archive}")
endforeach()
foreach(soname libnghttp2.so.14 librtmp.so.1 libssh2.so.1 libpsl.so.5 libgssapi_krb5.so.2 libldap-2.5.so.0
               liblber-2.5.so.0 libzstd.so.1 libunistring.so.2)
  pwrcell_require_soname(_shared ${soname})
  list(APPEND _curl_libs "${_shared}")
endforeach()
list(APPEND _curl_libs Threads::Threads ${CMAKE_DL_LIBS})
add_library(CURL::libcurl INTERFACE IMPORTED)
set_target_properties(CURL::libcurl PROPERTIES INTERFACE_LINK_LIBRARIES "${_curl_libs}")

function(pwrcell_lambda_static_after_packages)
  pwrcell_require_archive(sqlite_archive sqlite3)
  set_target_properties(PkgConfig::SQLITE3 PROPERTIES INTERFACE_LINK_LIBRARIES
                                                      "${sqlite_archive};m;Threads::Threads;${CMAKE_DL_LIBS}")
endfunction()

# GCC 12's static libstdc++ (std::random_device: arc4random, glibc 2.36) and libgcc (the unwinder:
# _dl_find_object, glibc 2.35) call glibc functions Amazon Linux 2023 does not have: `targets`
# get deploy/lambda/glibc_compat.cc, which defines both on older interfaces. Called at the end of
# the top-level CMakeLists.txt, once the targets exist.
function(pwrcell_lambda_static_executables)
  foreach(target ${ARGN})
    if(TARGET ${target})
      target_sources(${target} PRIVATE ${PROJECT_SOURCE_DIR}/deploy/lambda/glibc_compat.cc)
      target_link_libraries(${target} PRIVATE ${CMAKE_DL_LIBS})
    endif()
  endforeach()
endfunction()
