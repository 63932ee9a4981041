#!/usr/bin/env bash
# Installs the wheels python/build-wheels.sh made (python/dist) as a user
# without Rust would, and runs the pytest suite against each:
#
#   python/test-wheels.sh
#
# - every CPython 3.9+ the machine has (python3.9 ... python3.14 on PATH,
#   else pyenv's) gets a fresh venv and the wheel pip picks for it: 3.9
#   and 3.10 the cp39-abi3 one, 3.11 and later the cp311-abi3 one (without
#   a 3.9 or 3.10, the cp39-abi3 wheel runs on the building interpreter);
# - nothing is built: pip may take shmq only as a wheel from python/dist
#   (--only-binary, --no-index), and cargo and rustc are off PATH.
#
# Leaves target/py-venv: the building interpreter's venv with its wheel
# installed, for the steps after (stubtest, examples). The suite's
# cross-language tests use the CLI, shmq-worker and libshmq_ffi named by
# SHMQ_CLI, SHMQ_WORKER, SHMQ_FFI_LIB (binaries, not a toolchain).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
shopt -s nullglob
wheels=(python/dist/*-"$(uname -m)".*.whl python/dist/*_"$(uname -m)".whl)
[ "${#wheels[@]}" -gt 0 ] || { echo "test-wheels.sh: no $(uname -m) wheel in python/dist (run python/build-wheels.sh)" >&2; exit 1; }
# The system's directories, without ~/.cargo/bin.
bare=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
for tool in cargo rustc; do
    if PATH="$bare" command -v "$tool" >/dev/null; then
        echo "test-wheels.sh: $tool is on the system PATH; the wheels must be tested without it" >&2
        exit 1
    fi
done

# suite NAME PYTHON [WHEEL]: a venv target/wheel-test/NAME (target/py-venv
# for NAME=main), shmq from python/dist (WHEEL if given), pytest.
suite() {
    local name="$1" python="$2" wheel="${3:-}" venv
    venv="$root/target/wheel-test/$name"
    [ "$name" = main ] && venv="$root/target/py-venv"
    echo "--- $name: $("$python" --version) in $venv, ${wheel:-the wheel pip picks}"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    local py="$venv/bin/python"
    PATH="$venv/bin:$bare" "$py" -m pip install --quiet --upgrade pip
    if [ -n "$wheel" ]; then
        PATH="$venv/bin:$bare" "$py" -m pip install --quiet --no-index "$wheel"
    else
        PATH="$venv/bin:$bare" "$py" -m pip install --quiet --only-binary :all: --no-index \
            --find-links python/dist shmq
    fi
    PATH="$venv/bin:$bare" "$py" -m pip install --quiet -r python/requirements-dev.txt
    local where
    where="$(cd /tmp && PATH="$venv/bin:$bare" "$py" -c 'import shmq._shmq as m; print(m.__file__)')"
    case "$where" in
        "$venv"/*) ;;
        *) echo "test-wheels.sh: shmq came from $where, not the venv" >&2; exit 1 ;;
    esac
    local tag
    tag="$(cd /tmp && "$py" -c 'from importlib.metadata import distribution as d
print(*[l.split(": ", 1)[1] for l in d("shmq").read_text("WHEEL").splitlines() if l.startswith("Tag: ")])')"
    echo "installed the wheel $tag"
    if [ -z "$wheel" ]; then
        # pip must pick the fastest wheel the interpreter can run.
        local want=cp311-abi3
        "$py" -c 'import sys; sys.exit(sys.version_info >= (3, 11))' && want=cp39-abi3
        case "$tag" in
            "$want"-*) ;;
            *) echo "test-wheels.sh: pip picked $tag, not the $want wheel" >&2; exit 1 ;;
        esac
    fi
    # The pytest script from the venv, in target/ (the source tree's
    # python/shmq must not shadow the installed package). Exit 5 (no test
    # ran) fails too.
    local rc=0
    (cd target && PATH="$venv/bin:$bare" "$venv/bin/pytest" -p no:cacheprovider -q ../python/tests) || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "test-wheels.sh: pytest failed on $name (exit $rc; 5 means no test ran)" >&2
        exit "$rc"
    fi
}

building="$(python3 -c 'import sys; print("python%d.%d" % sys.version_info[:2])')"
suite main "$(command -v python3)"
ran=("$building")
# An interpreter of 3.MINOR: on PATH (and working: a pyenv shim of a
# version not selected is not), else pyenv's.
interpreter() {
    local minor="$1" py
    py="$(command -v "python3.$minor" || true)"
    if [ -n "$py" ] && "$py" -c '' 2>/dev/null; then
        echo "$py"
        return
    fi
    if command -v pyenv >/dev/null; then
        for py in "$(pyenv root)"/versions/3."$minor".*/bin/python3."$minor"; do
            [ -x "$py" ] && { echo "$py"; return; }
        done
    fi
}
# SHMQ_WHEEL_PYTHONS="3.9 3.13" limits the others to those (CI: the floor
# and the newest).
wanted="${SHMQ_WHEEL_PYTHONS:-3.9 3.10 3.11 3.12 3.13 3.14}"
for minor in 9 10 11 12 13 14; do
    [ "python3.$minor" = "$building" ] && continue
    case " $wanted " in *" 3.$minor "*) ;; *) continue ;; esac
    py="$(interpreter "$minor")"
    [ -n "$py" ] || continue
    suite "python3.$minor" "$py"
    ran+=("python3.$minor")
done
case " ${ran[*]} " in
    *" python3.9 "* | *" python3.10 "*) ;;
    *)  # Nothing here takes the cp39-abi3 wheel by itself: run it on ours.
        cp39=(python/dist/*-cp39-abi3-*"$(uname -m)".whl)
        [ "${#cp39[@]}" -eq 1 ] || { echo "test-wheels.sh: expected one cp39-abi3 wheel" >&2; exit 1; }
        suite cp39-abi3 "$(command -v python3)" "${cp39[0]}"
        ran+=("cp39-abi3 on $building") ;;
esac
echo "test-wheels.sh: the wheels pass the suite on ${ran[*]}"
