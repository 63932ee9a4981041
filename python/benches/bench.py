"""shmq next to the IPC a Python user can install, in one run, two processes
pinned to two cores.

    python python/benches/bench.py [--runs N] [--quick] [--json FILE] [--only shmq,cloudtoid]

Measures, for every peer that is installed:
- one-way latency (round trip / 2) of 64-byte messages, p50 and p99, with the
  receiver busy-polling (a non-blocking receive in a loop) and blocking;
- throughput of 64 B and 4 KiB messages, one call per message (the
  receiver calls the peer's blocking receive, or polls where there is none);
- throughput with the batching APIs where a peer has them (shmq
  publish_many/receive_many, cloudtoid try_send_batch).

Peers: shmq, multiprocessing.Queue, multiprocessing.Pipe, pyzmq (ipc://),
cloudtoid-interprocess, iceoryx2 (Python binding). A peer that cannot be
imported is reported with the import error and skipped.
"""

import argparse
import ctypes
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import uuid

PC = time.perf_counter_ns
CORES = sorted(os.sched_getaffinity(0))[:2]


def pin(role):
    if len(CORES) == 2:
        os.sched_setaffinity(0, {CORES[0] if role == "a" else CORES[1]})


# --------------------------------------------------------------------------
# Peers. Each makes an endpoint for role "a" (the client) or "b" (the echo /
# the receiver): send(bytes), poll() -> message or None (never waits),
# recv() -> message (blocks). For throughput: send_many(list), recv_many()
# -> count, where the peer has a batching API.


class Shmq:
    name = "shmq"
    batch = True

    def setup(self, size=64):
        import shmq

        self.dir = tempfile.mkdtemp(prefix="shmq-bench-")
        tag = uuid.uuid4().hex[:8]
        self.names = (f"ping-{tag}", f"pong-{tag}")
        for n in self.names:
            # Slots sized to the payload, as a user would: a 4 KiB slot per
            # 64 B message would make every message of the first lap a
            # page fault.
            q = shmq.Queue.create(n, dir=self.dir, slots=4096, slot_size=size)
            q.create_group("g")
            q.close()
        return (self.dir, self.names)

    @staticmethod
    def endpoint(args, role):
        import shmq

        d, (ping, pong) = args
        tx, rx = (ping, pong) if role == "a" else (pong, ping)
        return ShmqEnd(shmq.Queue.open(tx, dir=d).producer(), shmq.Queue.open(rx, dir=d).consumer("g"))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class ShmqEnd:
    def __init__(self, producer, consumer):
        self.send = producer.publish
        self.send_many = producer.publish_many
        receive = consumer.receive
        receive_many = consumer.receive_many
        # Busy polling is `receive(timeout=0)` in a loop, as the issue and
        # users write it; `try_receive()` is the same call without the
        # keyword (~25 ns less on CPython 3.11).
        self.poll = consumer.try_receive
        self.receive = receive
        self.recv = receive
        self.recv_many = lambda: len(receive_many(256, 1.0))
        self.keep = (producer, consumer)

    def close(self):
        for h in self.keep:
            h.close()


class MpQueue:
    name = "multiprocessing.Queue"
    batch = False

    def setup(self, size=64):
        ctx = mp.get_context("spawn")
        return (ctx.Queue(), ctx.Queue())

    @staticmethod
    def endpoint(args, role):
        import queue

        ping, pong = args
        tx, rx = (ping, pong) if role == "a" else (pong, ping)
        end = Bare()
        end.send = tx.put

        def poll():
            try:
                return rx.get_nowait()
            except queue.Empty:
                return None

        end.poll = poll
        end.recv = rx.get
        return end

    def cleanup(self):
        pass


class MpPipe:
    name = "multiprocessing.Pipe"
    batch = False

    def setup(self, size=64):
        ctx = mp.get_context("spawn")
        return ctx.Pipe()

    @staticmethod
    def endpoint(args, role):
        conn = args[0] if role == "a" else args[1]
        end = Bare()
        end.send = conn.send_bytes
        recv_bytes, poll = conn.recv_bytes, conn.poll
        end.poll = lambda: recv_bytes() if poll() else None
        end.recv = recv_bytes
        return end

    def cleanup(self):
        pass


class Zmq:
    name = "pyzmq ipc://"
    batch = False

    def setup(self, size=64):
        import zmq  # noqa: F401  (fail early if missing)

        self.dir = tempfile.mkdtemp(prefix="zmq-bench-")
        return f"ipc://{self.dir}/sock"

    @staticmethod
    def endpoint(addr, role):
        import zmq

        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.PAIR)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.setsockopt(zmq.RCVHWM, 100_000)
        if role == "a":
            s.bind(addr)
        else:
            s.connect(addr)
        end = Bare()
        end.send = s.send
        again, noblock, recv = zmq.Again, zmq.NOBLOCK, s.recv

        def poll():
            try:
                return recv(noblock)
            except again:
                return None

        end.poll = poll
        end.recv = recv
        end.close = lambda: s.close(linger=0)
        return end

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Cloudtoid:
    name = "cloudtoid-interprocess"
    batch = True
    CAPACITY = 1 << 22

    def setup(self, size=64):
        import cloudtoid_interprocess  # noqa: F401

        self.dir = tempfile.mkdtemp(prefix="cloudtoid-bench-")
        tag = uuid.uuid4().hex[:8]
        return (self.dir, f"ping-{tag}", f"pong-{tag}")

    @staticmethod
    def endpoint(args, role):
        from cloudtoid_interprocess import Publisher, Subscriber

        d, ping, pong = args
        tx, rx = (ping, pong) if role == "a" else (pong, ping)
        # Subscribers first: a queue keeps messages only while one is attached.
        sub = Subscriber(rx, Cloudtoid.CAPACITY, d)
        pub = Publisher(tx, Cloudtoid.CAPACITY, d)
        end = Bare()
        try_send, try_send_batch = pub.try_send, pub.try_send_batch

        def send(data):
            while not try_send(data):
                pass

        def send_many(items):
            done = 0
            while done < len(items):
                done += try_send_batch(items[done:] if done else items)

        end.send, end.send_many = send, send_many
        end.poll = sub.try_receive
        receive = sub.receive

        def recv():
            while (m := receive(1.0)) is None:
                pass
            return m

        end.recv = recv
        end.recv_many = None  # no batch receive: one at a time
        end.close = lambda: (pub.close(), sub.close())
        return end

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Iceoryx2:
    name = "iceoryx2 (Python)"
    batch = False

    def setup(self, size=64):
        import iceoryx2  # noqa: F401

        tag = uuid.uuid4().hex[:8]
        return (f"shmq-bench/{tag}/ping", f"shmq-bench/{tag}/pong")

    @staticmethod
    def endpoint(args, role, size=64):
        import iceoryx2 as iox2

        iox2.set_log_level(iox2.LogLevel.Error)
        payload_type = ctypes.c_uint8 * size

        class Payload(ctypes.Structure):
            _fields_ = [("data", payload_type)]

        ping, pong = args
        tx, rx = (ping, pong) if role == "a" else (pong, ping)
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)

        def service(n):
            return (
                node.service_builder(iox2.ServiceName.new(f"{n}/{size}"))
                .publish_subscribe(Payload)
                .subscriber_max_buffer_size(1024)
                .enable_safe_overflow(False)
                .open_or_create()
            )

        stx, srx = service(tx), service(rx)
        pub = (
            stx.publisher_builder()
            .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
            .create()
        )
        sub = srx.subscriber_builder().buffer_size(1024).create()
        end = Bare()
        loan, value = pub.loan_uninit, Payload()

        def send(data):
            ctypes.memmove(value.data, data, len(data))
            loan().write_payload(value).send()

        end.send = send
        end.poll = sub.receive
        end.recv = None  # pub-sub has no blocking receive (an Event service would be needed)
        end.keep = (node, stx, srx, pub, sub)
        return end

    def cleanup(self):
        pass


class Bare:
    send_many = None
    recv_many = None
    receive = None  # a receive(timeout=...) whose timeout=0 is the busy poll

    def close(self):
        pass


PEERS = [Shmq, MpQueue, MpPipe, Zmq, Cloudtoid, Iceoryx2]


# --------------------------------------------------------------------------
# The two sides of each measurement.


def endpoint_for(peer_cls, args, role, size):
    if peer_cls is Iceoryx2:
        return Iceoryx2.endpoint(args, role, size)
    return peer_cls.endpoint(args, role)


def side_b(peer_cls, args, kind, n, size, ctl):
    """The echo (latency) or the receiver (throughput)."""
    pin("b")
    try:
        end = endpoint_for(peer_cls, args, "b", size)
        payload = b"b" * size
        ctl.send("ready")
        if kind in ("busy", "block"):
            poll, recv, send, timed = end.poll, end.recv, end.send, end.receive
            # The wait is written out here and in side_a, not shared: a
            # helper's call would sit on the measured path of every peer.
            for _ in range(n):
                if kind == "busy":
                    if timed is not None:
                        while timed(timeout=0) is None:
                            pass
                    else:
                        while poll() is None:
                            pass
                else:
                    recv()
                send(payload)
            ctl.send("done")
        else:
            recv_many = end.recv_many if kind == "batch" else None
            got = 0
            if recv_many is not None:
                got = recv_many()
                while got == 0:
                    got = recv_many()
                t0 = PC()
                while got < n:
                    got += recv_many()
                dt = PC() - t0
            elif end.recv is not None:  # the peer's own receive (shmq's tries first, then waits)
                recv = end.recv
                recv()
                t0 = PC()
                for _ in range(n - 1):
                    recv()
                dt = PC() - t0
                got = n
            else:
                poll = end.poll
                while poll() is None:
                    pass
                t0 = PC()
                for _ in range(n - 1):
                    while poll() is None:
                        pass
                dt = PC() - t0
                got = n
            ctl.send(("done", got, dt))
        ctl.recv()  # keep the endpoint until the other side is done
        end.close()
    except BaseException as e:  # noqa: BLE001 — reported to the parent
        ctl.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))


def side_a(peer_cls, args, kind, n, size, ctl):
    """The client (latency) or the sender (throughput)."""
    pin("a")
    try:
        end = endpoint_for(peer_cls, args, "a", size)
        payload = b"a" * size
        ctl.send("ready")
        assert ctl.recv() == "go"
        if kind in ("busy", "block"):
            poll, recv, send, timed = end.poll, end.recv, end.send, end.receive
            samples = []
            add = samples.append
            for _ in range(n):
                t0 = PC()
                send(payload)
                if kind == "busy":
                    if timed is not None:
                        while timed(timeout=0) is None:
                            pass
                    else:
                        while poll() is None:
                            pass
                else:
                    recv()
                add(PC() - t0)
            ctl.send(("done", samples))
        elif kind == "batch" and end.send_many is not None:
            batch = [payload] * 256
            send_many = end.send_many
            for _ in range(n // 256):
                send_many(batch)
            ctl.send(("done",))
        else:
            send = end.send
            for _ in range(n):
                send(payload)
            ctl.send(("done",))
        ctl.recv()
        end.close()
    except BaseException as e:  # noqa: BLE001
        ctl.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))


def measure(peer_cls, kind, n, size, timeout=120):
    """One measurement in two fresh processes. Returns a dict of figures."""
    peer = peer_cls()
    args = peer.setup(size)
    ctx = mp.get_context("spawn")
    a_ctl, a_child = ctx.Pipe()
    b_ctl, b_child = ctx.Pipe()
    if kind == "batch":
        n -= n % 256  # the sender publishes whole batches of 256
    warm = min(1000, n // 10) if kind in ("busy", "block") else 0
    procs = [
        ctx.Process(target=side_b, args=(peer_cls, args, kind, n + warm, size, b_child)),
        ctx.Process(target=side_a, args=(peer_cls, args, kind, n + warm, size, a_child)),
    ]
    try:
        procs[0].start()
        expect(b_ctl, "ready", timeout)
        procs[1].start()
        expect(a_ctl, "ready", timeout)
        a_ctl.send("go")
        a_res = expect(a_ctl, None, timeout)
        b_res = expect(b_ctl, None, timeout)
        a_ctl.send("bye")
        b_ctl.send("bye")
        for p in procs:
            p.join(10)
        if kind in ("busy", "block"):
            s = sorted(a_res[1][warm:])
            return {
                "p50_ns": s[len(s) // 2] / 2,
                "p99_ns": s[int(len(s) * 0.99)] / 2,
                "n": len(s),
            }
        _, got, dt = b_res
        return {"msgs_per_s": (got - 1) / (dt / 1e9), "mb_per_s": (got - 1) * size / (dt / 1e9) / 1e6, "n": got}
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
        peer.cleanup()


def expect(conn, what, timeout):
    if not conn.poll(timeout):
        raise TimeoutError(f"no answer in {timeout} s")
    msg = conn.recv()
    if isinstance(msg, tuple) and msg and msg[0] == "error":
        raise RuntimeError(msg[1] + "\n" + msg[2])
    if what is not None and msg != what:
        raise RuntimeError(f"expected {what!r}, got {msg!r}")
    return msg


# Message counts per measurement: the slow peers need fewer to be measured.
COUNTS = {
    "shmq": (50_000, 20_000, 2_000_000, 1_000_000, 20_000_000),
    "cloudtoid-interprocess": (50_000, 20_000, 2_000_000, 1_000_000, 10_000_000),
    "iceoryx2 (Python)": (20_000, 0, 200_000, 100_000, 0),
    "pyzmq ipc://": (10_000, 10_000, 500_000, 200_000, 0),
    "multiprocessing.Pipe": (10_000, 10_000, 300_000, 200_000, 0),
    "multiprocessing.Queue": (5_000, 5_000, 200_000, 100_000, 0),
}

MEASUREMENTS = [  # (key, kind, payload size, index in COUNTS)
    ("busy_64", "busy", 64, 0),
    ("block_64", "block", 64, 1),
    ("tput_64", "tput", 64, 2),
    ("tput_4k", "tput", 4096, 3),
    ("batch_64", "batch", 64, 4),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the messages")
    ap.add_argument("--runs", type=int, default=1, help="repeat every measurement; the table shows median [min-max]")
    ap.add_argument("--only", help="comma-separated peer names (prefixes)")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--kinds", help="comma-separated measurements (busy_64,block_64,tput_64,tput_4k,batch_64)")
    opts = ap.parse_args()
    runs, skipped = [], {}
    for run in range(opts.runs):
        results = {}
        for peer_cls in PEERS:
            if opts.only and not any(peer_cls.name.startswith(o) for o in opts.only.split(",")):
                continue
            if peer_cls.name in skipped:
                continue
            try:
                peer_cls().setup()
            except Exception as e:  # noqa: BLE001 — a missing peer is reported, not fatal
                skipped[peer_cls.name] = f"{type(e).__name__}: {e}"
                continue
            results[peer_cls.name] = {}
            for key, kind, size, idx in MEASUREMENTS:
                n = COUNTS[peer_cls.name][idx]
                if opts.quick:
                    n //= 10
                if opts.kinds and key not in opts.kinds.split(","):
                    continue
                if n == 0 or (kind == "batch" and not peer_cls.batch):
                    continue
                try:
                    r = measure(peer_cls, kind, n, size)
                except Exception as e:  # noqa: BLE001
                    r = {"error": str(e).splitlines()[0]}
                results[peer_cls.name][key] = r
                print(f"run {run + 1}  {peer_cls.name:24} {key:9} {fmt(r)}", flush=True)
        runs.append(results)
    print()
    print(table(runs))
    for name, why in skipped.items():
        print(f"not measured: {name}: {why}")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump({"runs": runs, "skipped": skipped, "python": sys.version}, f, indent=1)


def fmt(r):
    if "error" in r:
        return "error: " + r["error"]
    if "p50_ns" in r:
        return f"p50 {r['p50_ns'] / 1000:.2f} us  p99 {r['p99_ns'] / 1000:.2f} us"
    return f"{r['msgs_per_s'] / 1e6:.2f} M msgs/s  {r['mb_per_s']:.0f} MB/s"


def table(runs):
    """Markdown: each cell the median of the runs, with [min-max] when there are several."""
    head = (
        "| peer | busy p50 | busy p99 | blocking p50 | blocking p99 | 64 B msgs/s | 4 KiB msgs/s | batched 64 B msgs/s |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    names = list(dict.fromkeys(n for r in runs for n in r))

    def cell(name, key, field, scale, unit):
        xs = [r[name][key][field] / scale for r in runs if "error" not in r.get(name, {}).get(key, {"error": 1})]
        if not xs:
            return "–"
        med = statistics.median(xs)
        if len(xs) == 1:
            return f"{med:.2f} {unit}"
        return f"{med:.2f} [{min(xs):.2f}–{max(xs):.2f}] {unit}"

    for name in names:
        rows.append(
            f"| {name} | {cell(name, 'busy_64', 'p50_ns', 1000, 'µs')} | {cell(name, 'busy_64', 'p99_ns', 1000, 'µs')} "
            f"| {cell(name, 'block_64', 'p50_ns', 1000, 'µs')} | {cell(name, 'block_64', 'p99_ns', 1000, 'µs')} "
            f"| {cell(name, 'tput_64', 'msgs_per_s', 1e6, 'M')} | {cell(name, 'tput_4k', 'msgs_per_s', 1e6, 'M')} "
            f"| {cell(name, 'batch_64', 'msgs_per_s', 1e6, 'M')} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
