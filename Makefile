# The C and C++ library of shmq, installed as a C user expects one:
#
#   make install PREFIX=/usr/local      (DESTDIR= for staging, LIBDIR=,
#                                        INCLUDEDIR= to place them apart)
#   make uninstall PREFIX=/usr/local
#
# installs $(LIBDIR)/libshmq_ffi.so.$(VERSION) with the SONAME
# libshmq_ffi.so.$(ABI) (SHMQ_ABI_VERSION: a program built against another
# C ABI does not load it) and the links libshmq_ffi.so.$(ABI) and
# libshmq_ffi.so, the static libshmq_ffi.a, shmq.h and shmq.hpp,
# pkgconfig/shmq.pc (cc hello.c $(pkg-config --cflags --libs shmq)) and
# cmake/shmq/ (find_package(shmq) with the targets shmq::shmq and
# shmq::shmq_static). Needs cargo (the build, in target/c-install, without
# debug info); nothing installed points back into this tree.
PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR    ?=
CARGO      ?= cargo
BUILD      := target/c-install

VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
ABI     := $(shell sed -n 's/^\#define SHMQ_ABI_VERSION \([0-9][0-9]*\)$$/\1/p' include/shmq.h)
SONAME  := libshmq_ffi.so.$(ABI)
REAL    := libshmq_ffi.so.$(VERSION)
# What Rust's standard library needs beside a static libshmq_ffi.a
# (rustc --print native-static-libs).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@ABI@|$(ABI)|g' -e 's|@SONAME@|$(SONAME)|g' -e 's|@REAL@|$(REAL)|g' \
	-e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g'

all: build

build:
	@test -n "$(VERSION)" && test -n "$(ABI)" || { echo "no version in Cargo.toml or no SHMQ_ABI_VERSION in include/shmq.h" >&2; exit 1; }
	CARGO_PROFILE_RELEASE_DEBUG=0 $(CARGO) rustc --release --locked -p shmq-ffi --lib \
		--crate-type cdylib,staticlib --target-dir $(BUILD) -- -C link-arg=-Wl,-soname,$(SONAME)

install: build
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(LIBDIR)/cmake/shmq $(DESTDIR)$(INCLUDEDIR)
	install -m 755 $(BUILD)/release/libshmq_ffi.so $(DESTDIR)$(LIBDIR)/$(REAL)
	ln -sf $(REAL) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libshmq_ffi.so
	install -m 644 $(BUILD)/release/libshmq_ffi.a $(DESTDIR)$(LIBDIR)/libshmq_ffi.a
	install -m 644 include/shmq.h include/shmq.hpp $(DESTDIR)$(INCLUDEDIR)/
	$(SUBST) ffi/pkg/shmq.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/shmq.pc
	$(SUBST) ffi/pkg/shmqConfig.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/shmq/shmqConfig.cmake
	$(SUBST) ffi/pkg/shmqConfigVersion.cmake.in > $(DESTDIR)$(LIBDIR)/cmake/shmq/shmqConfigVersion.cmake
	@echo "installed shmq $(VERSION) (C ABI $(ABI)) into $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(REAL) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libshmq_ffi.so $(DESTDIR)$(LIBDIR)/libshmq_ffi.a \
		$(DESTDIR)$(INCLUDEDIR)/shmq.h $(DESTDIR)$(INCLUDEDIR)/shmq.hpp \
		$(DESTDIR)$(LIBDIR)/pkgconfig/shmq.pc \
		$(DESTDIR)$(LIBDIR)/cmake/shmq/shmqConfig.cmake \
		$(DESTDIR)$(LIBDIR)/cmake/shmq/shmqConfigVersion.cmake
	-rmdir $(DESTDIR)$(LIBDIR)/cmake/shmq

.PHONY: all build install uninstall
