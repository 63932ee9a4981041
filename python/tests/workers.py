"""Process entry points for the cross-process tests (importable by spawn)."""

import shmq


def produce(name, qdir, n, tag=b""):
    q = shmq.Queue.open(name, dir=qdir)
    with q.producer() as p:
        for i in range(n):
            p.publish(tag + b"%d" % i, type_id=i % 7, timeout=30)


def consume(name, qdir, group, n, out):
    """Receives n messages of `group` and puts (seq, payload) pairs on `out`."""
    q = shmq.Queue.open(name, dir=qdir)
    got = []
    with q.consumer(group) as c:
        while len(got) < n:
            m = c.receive(timeout=30)
            if m is None:
                break
            got.append((m.seq, bytes(m)))
    out.put(got)


def open_missing(name, qdir):
    """Raises shmq.NotFound in the worker."""
    shmq.Queue.open(name, dir=qdir)


def overfill(name, qdir):
    """Raises a Full from publish_many with published/first_seq set."""
    q = shmq.Queue.open(name, dir=qdir)
    q.producer().publish_many([b"x"] * 10)
