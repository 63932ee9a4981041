"""Across processes: multiprocessing (spawn) and subprocess, the Rust CLI on
the other side, fan-out, a SIGKILLed manual consumer, Ctrl-C, fork."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import shmq
from workers import consume, open_missing, overfill, produce

SPAWN = multiprocessing.get_context("spawn")


def python(code, env=None, **kw):
    """A Python subprocess running `code`, stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        **kw,
    )


def test_producer_process_to_consumer_in_order(qdir, name):
    q = shmq.Queue.create(name, slots=256)
    q.create_group("g")
    n = 20_000
    proc = SPAWN.Process(target=produce, args=(name, str(qdir), n))
    proc.start()
    c = q.consumer("g")
    got = []
    while len(got) < n:
        b = c.receive_many(512, timeout=30)
        assert len(b), "no message for 30 s"
        got.extend(b.payloads())
    proc.join(30)
    assert proc.exitcode == 0
    assert got == [b"%d" % i for i in range(n)]


def test_fan_out_to_consumer_processes(qdir, name):
    q = shmq.Queue.create(name, slots=128)
    groups = ["billing", "email", "audit"]
    for g in groups:
        q.create_group(g)
    n = 3000
    out = SPAWN.Queue()
    consumers = [SPAWN.Process(target=consume, args=(name, str(qdir), g, n, out)) for g in groups]
    for p in consumers:
        p.start()
    producers = [SPAWN.Process(target=produce, args=(name, str(qdir), n // 2, t)) for t in (b"a", b"b")]
    for p in producers:
        p.start()
    results = [out.get(timeout=60) for _ in groups]
    for p in consumers + producers:
        p.join(30)
        assert p.exitcode == 0
    expected = sorted([b"a%d" % i for i in range(n // 2)] + [b"b%d" % i for i in range(n // 2)])
    for got in results:
        seqs = [s for s, _ in got]
        assert seqs == sorted(seqs) and len(seqs) == n  # every group sees everything, in seq order
        assert sorted(p for _, p in got) == expected
        for tag in (b"a", b"b"):  # each producer's order holds
            mine = [int(p[1:]) for _, p in got if p[:1] == tag]
            assert mine == list(range(n // 2))


def test_killed_manual_consumer_is_redelivered(qdir, name):
    q = shmq.Queue.create(name, slots=64, lease=30.0)
    q.create_group("jobs")
    p = q.producer()
    for i in range(10):
        p.publish(b"job%d" % i)
    worker = python(
        f"""
        import shmq, sys, time
        q = shmq.Queue.open({name!r}, dir={str(qdir)!r})
        c = q.consumer("jobs", ack="manual")
        for i in range(3):
            m = c.receive(timeout=10)
            m.ack()
        m = c.receive(timeout=10)          # job3: taken, never acked
        print(m.seq, flush=True)
        time.sleep(60)
        """
    )
    line = worker.stdout.readline()
    assert line.strip() == b"3", worker.stderr.read()
    t0 = time.monotonic()
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=10)
    c = q.consumer("jobs", ack="manual")
    got = {}
    while len(got) < 7:
        m = c.receive(timeout=10)
        assert m is not None
        got[bytes(m)] = m.attempt
        m.ack()
    assert time.monotonic() - t0 < 10  # long before the 30 s lease runs out
    assert got == {b"job3": 2, **{b"job%d" % i: 1 for i in range(4, 10)}}
    assert c.receive(timeout=0.1) is None
    g = q.groups()[0]
    assert g["acked"] == 10 and g["in_flight"] == 0


def test_python_producer_to_rust_cli_consumer(qdir, name, cli):
    q = shmq.Queue.create(name, slots=64)
    q.create_group("cli")
    n = 500
    consumer = subprocess.Popen(
        [cli, "consume", name, "--dir", str(qdir), "--group", "cli", "--count", str(n), "--timeout", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    p = q.producer()
    for i in range(n):
        p.publish(b"py-%d" % i, timeout=20)
    out, err = consumer.communicate(timeout=60)
    assert consumer.returncode == 0, err
    assert out.splitlines() == [b"py-%d" % i for i in range(n)]


def test_remove_refuses_a_queue_another_process_consumes_unless_forced(qdir, name, cli):
    q = shmq.Queue.create(name, slots=16)
    q.create_group("g")
    consumer = subprocess.Popen(
        [cli, "consume", name, "--dir", str(qdir), "--group", "g", "--timeout", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not q.groups()[0]["consumer_attached"]:
            assert time.monotonic() < deadline, "the consumer never attached"
            time.sleep(0.02)
        with pytest.raises(shmq.Busy, match=r'pid %d \(group "g"\)' % consumer.pid):
            shmq.Queue.remove(name)
        shmq.Queue.remove(name, force=True)
        with pytest.raises(shmq.NotFound):
            shmq.Queue.open(name)
    finally:
        consumer.kill()
        consumer.communicate(timeout=10)


def test_rust_cli_producer_to_python_consumer(qdir, name, cli):
    q = shmq.Queue.create(name, slots=64)
    q.create_group("py")
    n = 500
    lines = b"".join(b"cli-%d\n" % i for i in range(n))
    pub = subprocess.Popen(
        [cli, "publish", name, "--dir", str(qdir), "--timeout", "20"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pub.stdin.write(lines)
    pub.stdin.close()
    c = q.consumer("py", ack="manual")
    got = []
    while len(got) < n:
        m = c.receive(timeout=20)
        assert m is not None, "no message for 20 s"
        got.append(bytes(m.data))
        m.ack()
    assert pub.wait(timeout=30) == 0
    pub.stderr.close()
    assert got == [b"cli-%d" % i for i in range(n)]


BLOCKERS = {
    "receive": "c.receive()",
    "receive_timeout": "c.receive(timeout=3600)",
    "receive_many": "c.receive_many(16)",
    "iterate": "next(iter(c))",
    "publish": "p.publish(b'x')",
    "publish_many": "p.publish_many([b'x', b'y'])",
    # Drained, then this producer saw room for two and took one; another
    # producer took the other: the room it counts is stale.
    "publish_many_stale_room": "[c.receive(timeout=0) for _ in range(3)]; "
    "p.publish_many([b'3']); q.producer().publish(b'4'); p.publish_many([b'x'])",
    "reserve": "p.reserve(1)",
}


@pytest.mark.parametrize("call", sorted(BLOCKERS))
def test_ctrl_c_interrupts_blocking_calls(qdir, name, call):
    q = shmq.Queue.create(name, slots=2)
    q.create_group("g")
    # The child restores Python's SIGINT handler itself: a test run started
    # in the background of a shell without job control inherits SIGINT
    # ignored, and Python then installs no handler (no KeyboardInterrupt).
    code = f"""
        import shmq, signal, sys, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        q = shmq.Queue.open({name!r}, dir={str(qdir)!r})
        c = q.consumer("g")
        p = q.producer()
        if {call!r}.startswith(("publish", "reserve")):
            p.publish(b"1"); p.publish(b"2")      # the ring is full
        else:
            c.receive(timeout=0)
        print("ready", flush=True)
        try:
            {BLOCKERS[call]}
        except KeyboardInterrupt:
            print(time.monotonic(), flush=True)
            sys.exit(3)
        """
    latencies = []
    for _ in range(3):
        child = python(code)
        try:
            assert child.stdout.readline() == b"ready\n", child.stderr.read()
            time.sleep(0.2)  # well into the wait
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=10)
        finally:
            if child.poll() is None:  # it did not stop: a failure, not a leftover
                child.kill()
                child.communicate()
        assert child.returncode == 3, err
        latencies.append(float(out) - sent)
        if latencies[-1] < 0.1:
            break
    assert min(latencies) < 0.1, latencies


def test_handles_made_before_fork_are_the_parents(qdir, name):
    q = shmq.Queue.create(name, slots=16)
    q.create_group("g")
    p = q.producer()
    c = q.consumer("g")
    p.publish(b"before")
    m = c.receive(timeout=1)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            for call in (lambda: p.publish(b"x"), lambda: c.receive(timeout=0), q.stats, m.ack):
                try:
                    call()
                    code |= 1
                except shmq.Closed:
                    pass
            if not (p.closed and c.closed and q.closed):
                code |= 4
            del p, c, m, q  # dropped in the child: must not release the parent's records
            fresh = shmq.Queue.open(name, dir=str(qdir))
            fresh.producer().publish(b"from the child")
        except BaseException:
            code |= 2
        os.write(w, bytes([code]))
        os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.read(r, 1) == b"\x00" and status == 0
    os.close(r)
    assert bytes(m) == b"before"  # the parent's delivery is intact
    m.ack()
    assert bytes(c.receive(timeout=1)) == b"from the child"
    with pytest.raises(shmq.Busy):
        q.consumer("g")  # still attached to the parent's consumer
    assert q.stats()["producers"] == 1  # the child's is gone, the parent's remains
    p.publish(b"after")
    assert bytes(c.receive(timeout=1)) == b"after"


def test_stubs_match_the_extension(tmp_path):
    r = subprocess.run(  # from elsewhere: the installed package, not the source tree
        [sys.executable, "-m", "mypy.stubtest", "shmq._shmq"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_fails_where_the_gil_is_off():
    """On a free-threaded Python run without the GIL (PYTHON_GIL=0) the
    handles' locks would be unsound: the import refuses (emulated here by
    the flag that such a Python reports)."""
    child = python(
        """
        import sys
        sys._is_gil_enabled = lambda: False
        try:
            import shmq
        except ImportError as e:
            print(e, flush=True)
            sys.exit(3)
        """
    )
    out, err = child.communicate(timeout=30)
    assert child.returncode == 3, err
    assert b"shmq needs the GIL" in out


def test_errors_pickle_and_cross_a_spawn_pool(qdir, name):
    import pickle

    for cls in (shmq.Error, shmq.NotFound, shmq.Full, shmq.Timeout, shmq.SpillFull, shmq.Closed):
        assert cls.__module__ == "shmq" and getattr(shmq, cls.__name__) is cls
        e = pickle.loads(pickle.dumps(cls("why")))
        assert type(e) is cls and str(e) == "why"
    q = shmq.Queue.create(name, slots=8, overflow="reject")
    q.create_group("g")
    with SPAWN.Pool(1) as pool:
        # Raised in the worker, re-raised here as itself (it used to arrive
        # as multiprocessing's MaybeEncodingError).
        with pytest.raises(shmq.NotFound, match="not found"):
            pool.apply(open_missing, (name + "-missing", str(qdir)))
        with pytest.raises(shmq.Full) as info:
            pool.apply(overfill, (name, str(qdir)))
    assert (info.value.published, info.value.first_seq) == (8, 0)
    q.close()


NUMPY_EXAMPLE = '''
import numpy as np
import shmq

def send(p: shmq.Producer) -> int:
    p.publish(np.arange(10.0))
    p.publish(b"bytes")
    p.publish(bytearray(b"x"))
    p.publish(memoryview(b"y"))
    return p.publish_many([np.zeros(3), b"z"])
'''


def mypy(tmp_path, version, source):
    """mypy, as Python `version`, on `source`: (exit code, output)."""
    (tmp_path / "example.py").write_text(source)
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", version, "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), "example.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("version", ["3.9", "3.11", "3.12"])
def test_the_stubs_take_numpy_arrays_on_every_python(tmp_path, version):
    # mypy used to say 'expected "Buffer"' for an ndarray below 3.12, where
    # numpy's stubs have no __buffer__.
    code, out = mypy(tmp_path, version, NUMPY_EXAMPLE)
    assert code == 0, out
    # And a str is still refused.
    code, out = mypy(tmp_path, version, "import shmq\ndef f(p: shmq.Producer) -> None:\n    p.publish('str')\n")
    assert code == 1 and "publish" in out, out
