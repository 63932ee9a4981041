"""A work queue with manual acks: two worker processes compete for jobs; a
job whose handler raises is given back and retried, and one that keeps
failing ends in the dead-letter queue.

    python python/examples/work_queue.py
"""

import multiprocessing
import shutil
import tempfile

import shmq


def handle(job: bytes) -> str:
    if job == b"poison":
        raise ValueError("cannot handle this job")
    return job.decode().upper()


def worker(qdir, wid, results):
    q = shmq.Queue.open("jobs", dir=qdir)
    with q.consumer("workers", ack="manual") as jobs:
        while (m := jobs.receive(timeout=1.0)) is not None:  # idle for 1 s: done
            try:
                with m:  # acks on a clean exit, gives the job back on an exception
                    results.put((wid, handle(bytes(m.data)), m.attempt))
            except ValueError:
                pass  # redelivered until max_deliveries, then dead-lettered


def main():
    qdir = tempfile.mkdtemp(prefix="shmq-example-")
    q = shmq.Queue.create("jobs", dir=qdir, slots=64, max_deliveries=3)
    q.create_group("workers")  # keeps every job from now on, for this group
    with q.producer() as p:
        for i in range(10):
            p.publish(f"job {i}".encode())
        p.publish(b"poison")

    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(qdir, w, results)) for w in range(2)]
    for pr in procs:
        pr.start()
    done = sorted(results.get(timeout=30) for _ in range(10))
    for pr in procs:
        pr.join(30)
    for wid, job, attempt in done:
        print(f"worker {wid}: {job} (attempt {attempt})")
    dead = q.dlq.list()
    print("dead letters:", [(d["payload"], d["reason"], d["attempts"]) for d in dead])
    assert len(done) == 10 and [d["payload"] for d in dead] == [b"poison"]
    q.close()
    shutil.rmtree(qdir)


if __name__ == "__main__":
    main()
