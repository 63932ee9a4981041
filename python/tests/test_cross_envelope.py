"""Ordering keys and headers across languages: Python, the Rust library
(tests/src/bin/shmq-worker.rs), C (tests/c/cross_envelope.c over
libshmq_ffi) and the shmq CLI each publish keyed messages with headers into
one queue whose 4-slot ring spills, and each reads back everything the
others published, concurrently (a group that lags holds the ring, so the
spill comes back only as all of them read); then each replays it all from
the journal, from seq 0.

Needs the CLI (SHMQ_CLI), the worker (SHMQ_WORKER, else
target/release/shmq-worker: cargo build --release -p shmq-tests),
libshmq_ffi (SHMQ_FFI_LIB, a directory, else target/release: cargo build
--release -p shmq-ffi) and a C compiler (CC, else cc). With
SHMQ_REQUIRE_CLI=1 (CI) a missing one fails the test instead of skipping
it."""

import json
import os
import shutil
import subprocess
import threading

import pytest

import shmq

from conftest import ROOT

N = 6  # messages per producer
LANGS = ["py", "cli", "c", "rust"]


def missing(what):
    if os.environ.get("SHMQ_REQUIRE_CLI") == "1":
        pytest.fail(what)
    pytest.skip(what)


@pytest.fixture
def worker():
    path = os.environ.get("SHMQ_WORKER") or str(ROOT / "target" / "release" / "shmq-worker")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        missing("shmq-worker is missing: cargo build --release -p shmq-tests")
    return path


@pytest.fixture
def cross_c(tmp_path):
    lib = os.environ.get("SHMQ_FFI_LIB") or str(ROOT / "target" / "release")
    if not os.path.isfile(os.path.join(lib, "libshmq_ffi.so")):
        missing(f"libshmq_ffi.so is missing in {lib}: cargo build --release -p shmq-ffi")
    cc = os.environ.get("CC") or shutil.which("cc")
    if not cc:
        missing("no C compiler (cc)")
    out = tmp_path / "cross_envelope"
    subprocess.run(
        [
            cc,
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-I",
            str(ROOT / "include"),
            str(ROOT / "tests" / "c" / "cross_envelope.c"),
            "-o",
            str(out),
            "-L",
            lib,
            "-lshmq_ffi",
            f"-Wl,-rpath,{lib}",
        ],
        check=True,
        timeout=120,
    )
    return str(out)


def expected():
    """Every message in publish order: (key, payload, headers) per seq."""
    return [
        (f"key-{lang}-{i}", f"{lang}-{i}", [("lang", lang), ("lang", "again"), ("trace", f"t-{lang}")])
        for lang in LANGS
        for i in range(N)
    ]


def parse_dump(text):
    """`SEQ\\tKEY\\tPAYLOAD\\tNAME=VALUE...` lines (Rust and C)."""
    rows = []
    for line in text.splitlines():
        seq, key, payload, *headers = line.split("\t")
        rows.append((int(seq), key, payload, [tuple(h.split("=", 1)) for h in headers]))
    return rows


def parse_json(text):
    """`shmq consume --json` lines."""
    rows = []
    for line in text.splitlines():
        v = json.loads(line)
        headers = [(h["name"], h["value"]) for h in v["headers"]]
        rows.append((v["seq"], v["ordering_key"], v["payload"], headers))
    return rows


def read_py(q, group, seek=None):
    c = q.consumer(group)
    if seek is not None:
        c.seek(seek)
    rows = []
    for _ in range(len(LANGS) * N):
        m = c.receive(timeout=20)
        assert m is not None, f"group {group}: only {len(rows)} messages"
        headers = [(n, v.decode()) for n, v in m.headers]
        rows.append((m.seq, m.ordering_key.decode(), bytes(m).decode(), headers))
        m.ack()
    c.close()
    return rows


def test_keys_and_headers_cross_rust_c_python_and_the_cli(qdir, tmp_path, name, cli, worker, cross_c):
    d = str(qdir)
    q = shmq.Queue.create(
        name,
        slots=4,
        slot_size=256,
        overflow="spill",
        spill_dir=tmp_path / "spill",
        spill_segment_size=64 << 10,
        journal_max_age=3600.0,
        journal_max_bytes=1 << 22,
    )
    total = len(LANGS) * N
    for lang in LANGS:
        q.create_group(lang)

    def run(args, stdin=None):
        return subprocess.run(args, input=stdin, capture_output=True, check=True, timeout=60).stdout.decode()

    # Each language publishes, in turn (so seqs follow LANGS): the ring
    # holds 4, the rest spills.
    p = q.producer()
    for i in range(N):
        p.publish(
            b"py-%d" % i,
            ordering_key=f"key-py-{i}",
            headers=[("lang", "py"), ("lang", b"again"), ("trace", "t-py")],
            timeout=0,
        )
    lines = "".join(f"key-cli-{i}::cli-{i}\n" for i in range(N)).encode()
    run(
        [cli, "--dir", d, "publish", name, "--key-separator", "::"]
        + ["--header", "lang=cli", "--header", "lang=again", "--header", "trace=t-cli"],
        stdin=lines,
    )
    run([cross_c, "produce", d, name, "c", str(N)])
    run([worker, "envelope-produce", d, name, "rust", str(N)])
    st = q.stats()
    assert st["published"] == total and st["spilled"] > 0, st

    # Each reads its group, all at once.
    def consumers(group_of, seek):
        cmds = {
            "cli": [cli, "--dir", d, "consume", name, "--group", group_of("cli"), "--json"]
            + ["--count", str(total), "--timeout", "20"],
            "c": [cross_c, "consume", d, name, group_of("c"), str(total), seek],
            "rust": [worker, "envelope-dump", d, name, group_of("rust"), str(total), seek],
        }
        procs = {k: subprocess.Popen(v, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k, v in cmds.items()}
        outs = {}

        def drain(k):
            outs[k] = procs[k].communicate(timeout=60)

        threads = [threading.Thread(target=drain, args=(k,)) for k in procs]
        for t in threads:
            t.start()
        got = {"py": read_py(q, group_of("py"), None if seek == "-" else int(seek))}
        for t in threads:
            t.join(70)
        for k, proc in procs.items():
            assert proc.returncode == 0, f"{k}: {outs.get(k)}"
        got["cli"] = parse_json(outs["cli"][0].decode())
        got["c"] = parse_dump(outs["c"][0].decode())
        got["rust"] = parse_dump(outs["rust"][0].decode())
        return got

    want = [(seq, *row) for seq, row in enumerate(expected())]
    got = consumers(lambda lang: lang, "-")
    for lang in LANGS:
        assert got[lang] == want, f"{lang} read back"
    assert q.stats()["spill_depth"] == 0

    # A replay from seq 0: below the ring, from the journal. The CLI seeks
    # its group with `shmq seek`.
    for lang in LANGS:
        q.create_group("replay-" + lang, start="latest")
    assert q.stats()["journal"]["first_seq"] == 0
    run([cli, "--dir", d, "seek", name, "--group", "replay-cli", "--seq", "0"])
    got = consumers(lambda lang: "replay-" + lang, "0")
    for lang in LANGS:
        assert got[lang] == want, f"{lang} replayed"
