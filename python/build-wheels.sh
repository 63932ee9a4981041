#!/usr/bin/env bash
# Builds shmq's Python distributions into python/dist and checks them:
#
#   python/build-wheels.sh [--no-aarch64 | --only-aarch64]
#
# - shmq-VERSION-cp311-abi3-manylinux_2_17_x86_64.whl: CPython 3.11 and
#   later (pyo3's fast-call protocol: about 20 ns less per call);
# - shmq-VERSION-cp39-abi3-manylinux_2_17_x86_64.whl: CPython 3.9 and 3.10
#   (pip takes the cp311 one where it can);
# - the same two for aarch64 (cross-compiled by zig; not run here);
# - shmq-VERSION.tar.gz, the sdist (a build from source: needs Rust).
#
# manylinux2014 (glibc 2.17) through zig as the linker, so the wheels
# install on every glibc Linux of the last decade. auditwheel checks each
# wheel's platform tag against what it links, twine its metadata. The
# tools come pinned from requirements-wheel.txt into a venv of their own
# (target/wheel-venv; SHMQ_WHEEL_DIR and SHMQ_WHEEL_VENV move the output
# and the venv). The Rust targets it builds for are added to your rustup
# toolchain if missing (it says so). Testing the wheels is
# python/test-wheels.sh.
set -euo pipefail
cd "$(dirname "$0")"
targets=(x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu)
case "${1:-}" in
    "") ;;
    --no-aarch64) targets=(x86_64-unknown-linux-gnu) ;;
    # Beside an x86-64 build already in dist (CI builds the two at once).
    --only-aarch64) targets=(aarch64-unknown-linux-gnu) ;;
    *) echo "usage: python/build-wheels.sh [--no-aarch64 | --only-aarch64]" >&2; exit 64 ;;
esac
# Where the distributions go (relative to python/) and the tools' venv:
# CI builds the aarch64 wheels beside the x86-64 ones, so each build has
# its own.
out="${SHMQ_WHEEL_DIR:-dist}"
venv="${SHMQ_WHEEL_VENV:-../target/wheel-venv}"
if [ ! -x "$venv/bin/maturin" ] || ! cmp -s requirements-wheel.txt "$venv/requirements-wheel.txt"; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r requirements-wheel.txt
    cp requirements-wheel.txt "$venv/requirements-wheel.txt"
fi
export PATH="$PWD/$venv/bin:$PATH"
if [ "${1:-}" = --only-aarch64 ]; then
    rm -f "$out"/*aarch64*.whl "$out"/*.tar.gz
else
    rm -rf "$out"
fi
for target in "${targets[@]}"; do
    if ! rustup target list --installed | grep -qx "$target"; then
        # The toolchain's own list of targets: say so before changing it.
        echo "build-wheels.sh: adding the Rust target $target to your toolchain (rustup target add $target; rustup target remove undoes it)" >&2
        rustup target add "$target"
    fi
done
# The building interpreter, by its versioned name (cross builds need it).
py="$(python3 -c 'import sys; print("python%d.%d" % sys.version_info[:2])')"
for target in "${targets[@]}"; do
    # The building interpreter (3.11 here) makes the cp311-abi3 wheel;
    # the abi3-py39 feature the cp39-abi3 one.
    maturin build --release --locked --zig --compatibility manylinux2014 --target "$target" \
        --interpreter "$py" --out "$out"
    maturin build --release --locked --zig --compatibility manylinux2014 --target "$target" \
        --interpreter "$py" --features pyo3/abi3-py39 --out "$out"
done
maturin sdist --out "$out"
for target in "${targets[@]}"; do
  for whl in "$out"/*_"${target%%-*}".whl; do
    shown="$(auditwheel show "$whl" | tr -s ' \n' '  ')"
    printf '%s\n' "$shown"
    # (For a cross-built wheel auditwheel names the host's architecture
    # in the tag; the glibc symbol versions are what it checks.)
    grep -q 'consistent with the following platform tag: "manylinux_2_17_' <<<"$shown" || {
        echo "build-wheels.sh: $whl is not manylinux_2_17" >&2; exit 1; }
    # The extension inside is built for the wheel's architecture.
    python3 - "$whl" "${target%%-*}" <<'PY'
import struct, sys, zipfile
whl, arch = sys.argv[1], sys.argv[2]
want = {"x86_64": 62, "aarch64": 183}[arch]
with zipfile.ZipFile(whl) as z:
    sos = [n for n in z.namelist() if n.endswith(".so")]
    assert sos, f"{whl}: no extension module"
    for n in sos:
        data = z.read(n)
        head = data[:20]
        machine = struct.unpack_from("<H", head, 18)[0]
        assert head[:4] == b"\x7fELF" and machine == want, f"{whl}: {n} is ELF machine {machine}, not {arch}"
        # Shipped stripped of debug info (no .debug_* section), a few MB.
        shoff, = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        def section(i):
            return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        names_at = section(shstrndx)[4]
        names = [data[names_at + section(i)[0]:].split(b"\0", 1)[0] for i in range(shnum)]
        debug = [s.decode() for s in names if s.startswith(b".debug")]
        assert not debug, f"{whl}: {n} carries debug info: {debug}"
        assert len(data) < 4 << 20, f"{whl}: {n} is {len(data)} bytes"
print(f"{whl}: {', '.join(sos)} built for {arch}, stripped, {len(data)} bytes")
PY
  done
done
twine check --strict "$out"/*.whl "$out"/*.tar.gz
ls -l "$out"
