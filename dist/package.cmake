# `cpack -G DEB` in a build folder configured with -DCMAKE_INSTALL_PREFIX=/usr
# makes sxfer_<version>_<arch>.deb (docs/OPERATIONS.md, "Package"): the
# install of dist/CMakeLists.txt, dependencies computed by dpkg-shlibdeps,
# and maintainer scripts that create the sxfer user and folders without
# enabling any unit.
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  message(STATUS "Debian package: configure with -DCMAKE_INSTALL_PREFIX=/usr before cpack -G DEB "
                 "(this build's prefix is ${CMAKE_INSTALL_PREFIX})")
endif()

set(CPACK_PACKAGE_NAME sxfer)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "sxfer")
set(CPACK_PACKAGE_CONTACT "sxfer developers <sxfer@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "secure high-throughput file transfer with a small CA")
set(CPACK_PACKAGE_DESCRIPTION
    "sxfer moves files between machines holding certificates of one authority. TLS 1.3
mutual authentication keys a record layer over io_uring, senders sign batches of
files and receivers answer with signed receipts. It includes a small certificate
authority with an enrollment service, systemd units and an upload agent.")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# The install has absolute destinations (/etc/sxfer): stage it under DESTDIR.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# libssl3, liburing2, libzstd1, libsqlite3-0, libc6 from the binary's links;
# adduser for the maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bash-completion, systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# The examples in /etc/sxfer are conffiles: kept on remove, gone on purge.
set(conffiles "")
foreach(f serve.conf.example agent.conf.example renew.env.example ca.env.example)
  string(APPEND conffiles "${CMAKE_INSTALL_FULL_SYSCONFDIR}/sxfer/${f}\n")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/deb/conffiles "${conffiles}")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/deb/conffiles ${CMAKE_SOURCE_DIR}/dist/deb/postinst
    ${CMAKE_SOURCE_DIR}/dist/deb/prerm ${CMAKE_SOURCE_DIR}/dist/deb/postrm)

include(CPack)
