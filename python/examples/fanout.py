"""Fan-out: every consumer group sees every message, at its own pace, and
can replay.

    python python/examples/fanout.py
"""

import multiprocessing
import shutil
import tempfile

import shmq


def reader(qdir, group, n, out):
    q = shmq.Queue.open("events", dir=qdir)
    with q.consumer(group) as c:
        total = 0
        while total < n:
            batch = c.receive_many(64, timeout=10)  # no object per message
            total += len(batch)
        out.put((group, total))


def main():
    qdir = tempfile.mkdtemp(prefix="shmq-example-")
    q = shmq.Queue.create("events", dir=qdir, slots=1024, slot_size=64)
    groups = ["billing", "email", "audit"]
    for g in groups:
        q.create_group(g)  # each sees everything published from now on
    n = 100_000
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    readers = [ctx.Process(target=reader, args=(qdir, g, n, out)) for g in groups]
    for r in readers:
        r.start()
    with q.producer() as p:
        for start in range(0, n, 100):
            p.publish_many([b"event %d" % i for i in range(start, start + 100)])
    for _ in groups:
        group, total = out.get(timeout=60)
        print(f"{group}: {total} events")
    for r in readers:
        r.join(30)
    # Replay within what the ring retains: move a group back three events.
    q.seek("audit", q.stats()["next_seq"] - 3)
    with q.consumer("audit") as c:
        again = [bytes(c.receive(timeout=1)) for _ in range(3)]
    print("audit replayed:", again)
    assert again == [b"event %d" % i for i in range(n - 3, n)]
    q.close()
    shutil.rmtree(qdir)


if __name__ == "__main__":
    main()
