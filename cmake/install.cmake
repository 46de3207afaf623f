# Packaging of the client library: `cmake --install` puts libtern-client.so (with a soname), its
# headers, a CMake package (find_package(Tern) -> Tern::client) and a pkg-config file
# (tern-client.pc) under the prefix, and the tern executable in bin/.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The shared library contains the layers it needs, so they are built position-independent.
set_target_properties(tern_core tern_codec tern_protocol PROPERTIES POSITION_INDEPENDENT_CODE ON)

add_library(tern_client_shared SHARED ${TERN_CLIENT_SOURCES})
set_target_properties(tern_client_shared PROPERTIES
  OUTPUT_NAME tern-client
  EXPORT_NAME client
  VERSION ${PROJECT_VERSION}
  SOVERSION ${PROJECT_VERSION_MAJOR}
  # Only the public API (TERN_API in include/tern/client.hpp) is exported; the codec, the protocol
  # core and the static libraries linked in stay private.
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_link_libraries(tern_client_shared PRIVATE tern_protocol Boost::boost OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
target_link_options(tern_client_shared PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)
target_include_directories(tern_client_shared INTERFACE
  $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
target_compile_features(tern_client_shared INTERFACE cxx_std_20)

install(TARGETS tern_client_shared EXPORT TernTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/tern/client.hpp include/tern/mqtt.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tern)
install(EXPORT TernTargets NAMESPACE Tern:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Tern)
configure_package_config_file(cmake/TernConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/TernConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Tern)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/TernConfigVersion.cmake COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/TernConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/TernConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Tern)
# The .pc file finds its prefix from its own location, so an install moved with --prefix works.
file(RELATIVE_PATH TERN_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(cmake/tern-client.pc.in ${CMAKE_CURRENT_BINARY_DIR}/tern-client.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tern-client.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
