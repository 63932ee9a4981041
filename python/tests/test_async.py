"""The async API on asyncio (and uvloop): receive_async, async for,
publish_async, fileno; a producer in another process; many tasks on many
queues in one loop; cancellation loses nothing and leaves nothing armed."""

import asyncio
import multiprocessing
import os
import select

import pytest

import shmq
from workers import produce

SPAWN = multiprocessing.get_context("spawn")

try:
    import uvloop
except ImportError:  # pragma: no cover - CI installs it (requirements-dev.txt)
    uvloop = None

LOOPS = ["asyncio", "uvloop"]


def run(kind, coro):
    """Runs `coro` on asyncio's default loop or on uvloop."""
    if kind == "uvloop":
        if uvloop is None:
            if os.environ.get("SHMQ_REQUIRE_CLI") == "1":
                pytest.fail("uvloop is missing: pip install -r python/requirements-dev.txt")
            pytest.skip("uvloop is not installed")
        return uvloop.run(coro)
    return asyncio.run(coro)


@pytest.mark.parametrize("kind", LOOPS)
def test_a_task_receives_100_000_messages_from_another_process_in_order(qdir, name, kind):
    q = shmq.Queue.create(name, slots=1024)
    q.create_group("g")
    n = 100_000
    proc = SPAWN.Process(target=produce, args=(name, str(qdir), n))

    async def main():
        c = q.consumer("g")
        proc.start()
        got = 0
        while got < n:
            m = await asyncio.wait_for(c.receive_async(), 60)
            assert bytes(m) == b"%d" % got, "in order, none lost"
            got += 1
        return got

    assert run(kind, main()) == n
    proc.join(30)
    assert proc.exitcode == 0


@pytest.mark.parametrize("kind", LOOPS)
def test_many_tasks_on_many_queues_in_one_loop(qdir, name, kind):
    queues = []
    for i in range(10):
        q = shmq.Queue.create(f"{name}-{i}", slots=64)
        for g in range(10):
            q.create_group(f"t{g}")
        queues.append(q)

    async def task(q, g):
        c = q.consumer(f"t{g}")
        return [bytes(await c.receive_async(timeout=30)) for _ in range(3)]

    async def main():
        tasks = [asyncio.ensure_future(task(q, g)) for q in queues for g in range(10)]
        await asyncio.sleep(0.1)  # every task is waiting on its fd
        for i, q in enumerate(queues):
            p = q.producer()
            for k in range(3):
                p.publish(b"%d-%d" % (i, k))
        return await asyncio.gather(*tasks)

    results = run(kind, main())
    assert len(results) == 100
    for i in range(10):
        for g in range(10):
            assert results[i * 10 + g] == [b"%d-%d" % (i, k) for k in range(3)]


@pytest.mark.parametrize("kind", LOOPS)
def test_cancelled_waits_lose_nothing(qdir, name, kind):
    q = shmq.Queue.create(name, slots=256)
    q.create_group("g")

    async def main():
        c = q.consumer("g")
        p = q.producer()
        for _ in range(500):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.receive_async(), 0.001)
        t = asyncio.ensure_future(c.receive_async())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert await c.receive_async(timeout=0.02) is None
        for i in range(50):
            p.publish(b"%d" % i)
        got = []
        async for m in c:
            got.append(bytes(m))
            if len(got) == 50:
                break
        return got

    assert run(kind, main()) == [b"%d" % i for i in range(50)]


@pytest.mark.parametrize("kind", LOOPS)
def test_two_tasks_awaiting_one_consumer_are_each_woken(qdir, name, kind):
    """Two tasks in receive_async on one consumer share its fd: one
    cancelled leaves the other woken for everything published after."""
    q = shmq.Queue.create(name, slots=64)
    q.create_group("g")

    async def main():
        c = q.consumer("g")
        p = q.producer()
        got = []

        async def reader():
            while True:
                got.append(bytes(await c.receive_async()))

        async def until(n):
            while len(got) < n:
                await asyncio.sleep(0.001)

        tasks = [asyncio.ensure_future(reader()) for _ in range(2)]
        await asyncio.sleep(0.01)  # both wait
        for i in range(5):
            p.publish(b"m%d" % i)
        await asyncio.wait_for(until(5), 10)
        tasks[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[0]
        await asyncio.sleep(0.01)
        for i in range(5, 10):
            p.publish(b"m%d" % i)
        await asyncio.wait_for(until(10), 10)
        tasks[1].cancel()
        return sorted(got)

    assert run(kind, main()) == sorted(b"m%d" % i for i in range(10))


@pytest.mark.parametrize("kind", LOOPS)
def test_tasks_awaiting_room_on_one_producer_all_get_it(qdir, name, kind):
    q = shmq.Queue.create(name, slots=8)
    q.create_group("g")

    async def main():
        p = q.producer()
        c = q.consumer("g")
        for i in range(8):
            p.publish(b"%d" % i)
        waiting = [asyncio.ensure_future(p.publish_async(b"w%d" % i)) for i in range(3)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in waiting), "the ring is full: all wait"
        waiting[0].cancel()
        got = []
        while len(got) < 10:
            m = await asyncio.wait_for(c.receive_async(), 10)
            got.append(bytes(m))
        await asyncio.wait_for(asyncio.gather(*waiting[1:]), 10)
        return sorted(got)

    assert run(kind, main()) == sorted([b"%d" % i for i in range(8)] + [b"w1", b"w2"])


def test_one_handle_is_awaited_from_one_loop_at_a_time(qdir, name):
    import threading

    q = shmq.Queue.create(name, slots=8)
    q.create_group("g")
    c = q.consumer("g")
    first_waits = threading.Event()
    done = threading.Event()

    async def first():
        t = asyncio.ensure_future(c.receive_async())
        await asyncio.sleep(0.01)
        first_waits.set()
        while not done.is_set():
            await asyncio.sleep(0.005)
        t.cancel()

    th = threading.Thread(target=asyncio.run, args=(first(),))
    th.start()
    try:
        assert first_waits.wait(10)
        with pytest.raises(shmq.Busy, match="another event loop"):
            asyncio.run(c.receive_async(timeout=1))
    finally:
        done.set()
        th.join(10)


def test_fileno_is_the_readiness_fd(qdir, name):
    q = shmq.Queue.create(name, slots=64)
    q.create_group("g")
    c = q.consumer("g")
    fd = c.fileno()
    assert isinstance(fd, int) and fd == c.fileno()
    assert c.try_receive() is None
    armed, recheck = c._arm()
    assert armed and recheck is None  # idle: no timer
    assert select.select([c], [], [], 0)[0] == []
    q.producer().publish(b"x")
    assert select.select([c], [], [], 5)[0] == [c]  # select() takes it too
    c._drain()
    assert select.select([fd], [], [], 0)[0] == []
    assert bytes(c.try_receive()) == b"x"


@pytest.mark.parametrize("kind", LOOPS)
def test_publish_async_waits_for_room_and_keeps_its_keywords(qdir, name, kind):
    q = shmq.Queue.create(name, slots=8)
    q.create_group("g")

    async def main():
        p = q.producer()
        c = q.consumer("g")
        for i in range(8):
            await p.publish_async(b"%d" % i)
        waiting = asyncio.ensure_future(p.publish_async(b"8", type_id=5, correlation_id=9))
        await asyncio.sleep(0.05)
        assert not waiting.done(), "the ring is full: it waits"
        assert bytes(c.try_receive()) == b"0"
        assert c.try_receive() is not None  # the first is finished: room
        seq = await asyncio.wait_for(waiting, 10)
        assert seq == 8
        metas = {}
        while (m := c.try_receive()) is not None:
            metas[bytes(m)] = (m.type_id, m.correlation_id)
        assert metas[b"8"] == (5, 9), "publish's keywords"
        # Full again (8 more, none read): cancelled while waiting, nothing
        # is published.
        for i in range(9, 17):
            await p.publish_async(b"%d" % i)
        before = q.stats()["published"]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.publish_async(b"never"), 0.05)
        with pytest.raises(shmq.Timeout):
            await p.publish_async(b"never", timeout=0.02)
        assert q.stats()["published"] == before

    run(kind, main())


@pytest.mark.parametrize("kind", LOOPS)
def test_publish_async_of_a_long_message_lets_a_consumer_task_make_room(qdir, name, kind):
    """A message longer than the room left (it takes four slots, two are
    free) waits without holding the loop: a consumer task on the same
    loop frees the room. It used to arm for one slot, find it, try again
    and fail, for ever: neither the consumer nor `wait_for` ever ran."""
    import threading

    q = shmq.Queue.create(name, slots=64, slot_size=64, max_message_size=400)
    q.create_group("g")
    long = b"\x09" * 400
    got = []
    out = {}

    async def main():
        p = q.producer()
        c = q.consumer("g")
        for i in range(62):
            p.publish(bytes([i]) * 16)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.publish_async(long), 0.2)

        async def read():
            while len(got) < 63:
                got.append(len(await c.receive_async()))

        reader = asyncio.ensure_future(read())
        out["seq"] = await p.publish_async(long, timeout=10)
        await asyncio.wait_for(reader, 10)

    def thread():
        try:
            run(kind, main())
        except BaseException as e:  # reported by the test's thread
            out["error"] = e

    t = threading.Thread(target=thread, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "the loop's thread never came back: publish_async spun"
    if "error" in out:
        raise out["error"]
    assert out["seq"] == 62
    assert got == [16] * 62 + [400]


def test_an_async_waiter_in_another_network_namespace_is_woken(qdir, name):
    """A task awaiting receive_async in another network namespace (a
    container without a shared network) is woken by a publish here: the
    doorbells used to be abstract sockets, which live in a network
    namespace, and it waited out its timeout. Needs root for `unshare
    --net` (CI runs as root); skipped otherwise unless SHMQ_REQUIRE_CLI=1."""
    import shutil
    import subprocess
    import sys
    import time

    if shutil.which("unshare") is None or subprocess.run(
        ["unshare", "--net", "true"], capture_output=True
    ).returncode != 0:
        if os.environ.get("SHMQ_REQUIRE_CLI") == "1":
            pytest.fail("unshare --net failed: this test needs root and util-linux")
        pytest.skip("unshare --net needs root")
    q = shmq.Queue.create(name, slots=64, slot_size=64)
    q.create_group("g")
    waiter = (
        "import asyncio, shmq, sys\n"
        "c = shmq.Queue.open(sys.argv[1]).consumer('g')\n"
        "async def main():\n"
        "    print('waiting', flush=True)\n"
        "    m = await c.receive_async(timeout=10)\n"
        "    print('nothing' if m is None else bytes(m).decode(), flush=True)\n"
        "asyncio.run(main())\n"
    )
    child = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-c", waiter, name],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(0.5)
        t = time.monotonic()
        q.producer().publish(b"wake")
        out, _ = child.communicate(timeout=30)
        took = time.monotonic() - t
    finally:
        child.kill()
        child.wait()
    assert out.strip() == "wake"
    assert took < 3, f"woken after {took:.1f} s"
