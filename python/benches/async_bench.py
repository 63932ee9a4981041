"""Waking an asyncio program: the echo side of a ping-pong sleeps between
pings (a gap), so each round trip measures one wake-up of an event loop.

    python python/benches/async_bench.py [--count N] [--gap-us G]

Variants (the echo side; the ping side always busy-polls the reply):
- shmq receive_async: `await consumer.receive_async()` on asyncio's loop
  (the readiness fd, loop.add_reader);
- shmq receive(timeout): the blocking call in a plain loop (futex sleep);
- multiprocessing.Pipe + run_in_executor: `await loop.run_in_executor(None,
  conn.recv)`, the usual way to wait for another process from asyncio;
- a real broker on loopback: redis-server (Debian's) with redis.asyncio's
  `await r.blpop(...)`, where both are installed (else said and skipped).
Figures: round-trip p50 and p99 in microseconds (BENCHMARKS.md).
"""

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
import uuid

CORES = sorted(os.sched_getaffinity(0))[:2]


def pin(i):
    if len(CORES) == 2:
        os.sched_setaffinity(0, {CORES[i]})


def shmq_echo(d, ping, pong, n, mode):
    import shmq

    pin(1)
    c = shmq.Queue.open(ping, dir=d).consumer("g")
    p = shmq.Queue.open(pong, dir=d).producer()
    if mode == "async":

        async def main():
            for _ in range(n):
                m = await c.receive_async()
                p.publish(bytes(m))

        asyncio.run(main())
    else:
        for _ in range(n):
            m = c.receive(timeout=60)
            p.publish(bytes(m))


def pipe_echo(conn, n):
    pin(1)

    async def main():
        loop = asyncio.get_running_loop()
        for _ in range(n):
            msg = await loop.run_in_executor(None, conn.recv)
            conn.send(msg)

    asyncio.run(main())


def redis_echo(port, n):
    import redis.asyncio

    pin(1)

    async def main():
        r = redis.asyncio.Redis(port=port)
        for _ in range(n):
            _, msg = await r.blpop(["ping"])
            await r.rpush("pong", msg)
        await r.aclose()

    asyncio.run(main())


def run_redis(n, gap):
    """redis-server on a free loopback port, for this run only."""
    import socket
    import subprocess

    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=redis_echo, args=(port, n))
        proc.start()
        pin(0)
        rtts = []
        payload = b"x" * 64
        for _ in range(n):
            time.sleep(gap)
            t0 = time.perf_counter_ns()
            r.rpush("ping", payload)
            while r.lpop("pong") is None:
                pass
            rtts.append(time.perf_counter_ns() - t0)
        proc.join(60)
        return rtts
    finally:
        server.terminate()
        server.wait(10)


def have_redis():
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        return False
    return shutil.which("redis-server") is not None


def run_shmq(mode, n, gap):
    import shmq

    d = tempfile.mkdtemp(prefix="shmq-abench-")
    tag = uuid.uuid4().hex[:8]
    ping, pong = f"ping-{tag}", f"pong-{tag}"
    for q in (ping, pong):
        shmq.Queue.create(q, dir=d, slots=64, slot_size=64).create_group("g")
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=shmq_echo, args=(d, ping, pong, n, mode))
    proc.start()
    pin(0)
    p = shmq.Queue.open(ping, dir=d).producer()
    c = shmq.Queue.open(pong, dir=d).consumer("g")
    rtts = []
    payload = b"x" * 64
    for _ in range(n):
        time.sleep(gap)
        t0 = time.perf_counter_ns()
        p.publish(payload)
        while c.try_receive() is None:
            pass
        rtts.append(time.perf_counter_ns() - t0)
    proc.join(60)
    shutil.rmtree(d, ignore_errors=True)
    return rtts


def run_pipe(n, gap):
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    proc = ctx.Process(target=pipe_echo, args=(b, n))
    proc.start()
    pin(0)
    rtts = []
    payload = b"x" * 64
    for _ in range(n):
        time.sleep(gap)
        t0 = time.perf_counter_ns()
        a.send(payload)
        while not a.poll(0):
            pass
        a.recv()
        rtts.append(time.perf_counter_ns() - t0)
    proc.join(60)
    return rtts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--gap-us", type=int, default=200)
    opts = ap.parse_args()
    gap = opts.gap_us / 1e6
    rows = [
        ("shmq receive_async (asyncio)", run_shmq("async", opts.count, gap)),
        ("shmq receive(timeout) (futex)", run_shmq("blocking", opts.count, gap)),
        ("Pipe + run_in_executor", run_pipe(opts.count, gap)),
    ]
    if have_redis():
        rows.append(("redis-server + redis.asyncio blpop", run_redis(opts.count, gap)))
    else:
        print("redis: skipped (needs redis-server and the redis package)")
    print(f"echo side woken from asleep: {opts.count} round trips, {opts.gap_us} us gap, 64 B, cores {CORES}")
    print(f"{'':<34} {'p50 rtt':>10} {'p99 rtt':>10}")
    for name, r in rows:
        r = sorted(r[len(r) // 10 :])
        p50 = statistics.median(r) / 1e3
        p99 = r[int(len(r) * 0.99) - 1] / 1e3
        print(f"{name:<34} {p50:>8.1f} us {p99:>8.1f} us")


if __name__ == "__main__":
    main()
