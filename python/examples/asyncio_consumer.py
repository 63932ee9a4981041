"""asyncio: a consumer task awaits messages while a producer task publishes
them, in one event loop, without a thread. `receive_async` waits on the
consumer's readiness fd (`loop.add_reader`), so it works on asyncio's own
loop and on uvloop; the producer could be any other process.

    python python/examples/asyncio_consumer.py
"""

import asyncio
import tempfile

import shmq


async def main(tmp: str) -> None:
    q = shmq.Queue.create("events", dir=tmp, slots=1024)
    q.create_group("audit")
    consumer = q.consumer("audit")

    async def produce() -> None:
        p = q.producer()
        for i in range(1, 6):
            await asyncio.sleep(0.02)
            await p.publish_async(b"event %d" % i)  # waits for room if the ring is full

    task = asyncio.ensure_future(produce())
    for _ in range(5):
        m = await asyncio.wait_for(consumer.receive_async(), 10)  # cancel-safe
        print(m.seq, bytes(m))
    await task
    consumer.close()
    shmq.Queue.remove("events", dir=tmp)


with tempfile.TemporaryDirectory() as tmp:
    asyncio.run(main(tmp))
