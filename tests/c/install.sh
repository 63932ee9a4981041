#!/usr/bin/env bash
# `make install` as a C and C++ user meets it: installs into a fresh
# temporary prefix, then builds examples/c's hello.c and hello.cpp from a
# directory outside the tree, through pkg-config and through CMake's
# find_package(shmq) (shared and static), runs them, and checks the
# SONAME, what the programs load, and that an incompatible version is
# refused. Nothing but the prefix is used: no path into the source tree.
#   tests/c/install.sh        (from the repository; needs cc, c++, make,
#                              pkg-config, cmake and cargo)
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in cc c++ make pkg-config cmake; do
    command -v "$tool" >/dev/null || { echo "install.sh needs $tool" >&2; exit 1; }
done
prefix="$(mktemp -d)"; work="$(mktemp -d)"; queues="$(mktemp -d)"
trap 'rm -rf "$prefix" "$work" "$queues"' EXIT
fail() { echo "install.sh: $*" >&2; exit 1; }

make install PREFIX="$prefix"
abi="$(sed -n 's/^#define SHMQ_ABI_VERSION \([0-9]*\)$/\1/p' include/shmq.h)"
version="$(sed -n 's/^#define SHMQ_VERSION_STRING "\(.*\)"$/\1/p' include/shmq.h)"
soname="$(readelf -d "$prefix/lib/libshmq_ffi.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
[ "$soname" = "libshmq_ffi.so.$abi" ] || fail "SONAME is '$soname', not libshmq_ffi.so.$abi"

cp examples/c/hello.c examples/c/hello.cpp examples/c/CMakeLists.txt "$work/"
cd "$work"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion shmq)" = "$version" ] || fail "pkg-config says $(pkg-config --modversion shmq)"

echo "--- pkg-config: C and C++"
# shellcheck disable=SC2046 # the flags are words
cc -std=c11 -O2 -Wall -Wextra -Wpedantic -Werror hello.c $(pkg-config --cflags --libs shmq) -o hello-pc
# shellcheck disable=SC2046
c++ -std=c++17 -O2 -Wall -Wextra -Wpedantic -Werror hello.cpp $(pkg-config --cflags --libs shmq) -o hello-cpp-pc
readelf -d hello-pc | grep -q "NEEDED.*\[libshmq_ffi.so.$abi\]" || fail "hello does not need libshmq_ffi.so.$abi"
SHMQ_DIR="$queues" LD_LIBRARY_PATH="$prefix/lib" ./hello-pc
SHMQ_DIR="$queues" LD_LIBRARY_PATH="$prefix/lib" ./hello-cpp-pc
# The README's lines for a prefix the system does not search: the rpath
# instead of LD_LIBRARY_PATH.
# shellcheck disable=SC2046
cc hello.c $(pkg-config --cflags --libs shmq) -Wl,-rpath,"$prefix/lib" -o hello && SHMQ_DIR="$queues" ./hello

echo "--- CMake: find_package(shmq), shmq::shmq and shmq::shmq_static"
cmake -S . -B build -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build build >/dev/null
# CMake puts the prefix's lib directory in the programs' RUNPATH.
SHMQ_DIR="$queues" build/hello
SHMQ_DIR="$queues" build/hello_cpp
SHMQ_DIR="$queues" build/hello_static
if readelf -d build/hello_static | grep -q 'NEEDED.*libshmq_ffi'; then
    fail "hello_static loads libshmq_ffi"
fi

echo "--- an incompatible version is refused"
sed -i 's/find_package(shmq 0.1 REQUIRED)/find_package(shmq 99.0 REQUIRED)/' CMakeLists.txt
if cmake -S . -B build-99 -DCMAKE_PREFIX_PATH="$prefix" >cmake-99.log 2>&1; then
    fail "find_package(shmq 99.0) took shmq $version"
fi
grep -q 'requested version "99.0"' cmake-99.log || { cat cmake-99.log; fail "CMake did not say why"; }
# The run-time check a program can make.
cat > other.c <<'C'
#include <shmq.h>
int main(void) { return shmq_abi_version() == SHMQ_ABI_VERSION ? 0 : 1; }
C
# shellcheck disable=SC2046
cc other.c $(pkg-config --cflags --libs shmq) -o other
LD_LIBRARY_PATH="$prefix/lib" ./other || fail "shmq_abi_version() differs from SHMQ_ABI_VERSION"
echo "install.sh: shmq $version (C ABI $abi) installs, and builds through pkg-config and CMake"
