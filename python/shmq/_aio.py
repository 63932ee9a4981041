"""The asyncio side of shmq's async API.

``Consumer.receive_async``, ``async for m in consumer`` and
``Producer.publish_async`` are this loop: try without waiting; arm the
handle's readiness fd (``fileno()``); if armed, wait for it with
``loop.add_reader`` (or ``recheck`` seconds, when the queue has something
only time changes); drain it; try again. The fd stays readable until
drained, so any loop works (asyncio's own, uvloop); no thread and no
runtime of shmq's is involved. Cancelled (``asyncio.wait_for``, a task's
``cancel()``), a wait takes its arm back and loses nothing.
"""

import asyncio
from typing import Any, Optional, Union


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


async def _wait(handle: Any, fd: int, wait: Optional[float]) -> None:
    """Waits until ``fd`` is readable (at most ``wait`` seconds), then
    drains it; disarms if cancelled."""
    loop = asyncio.get_running_loop()
    fut: "asyncio.Future[None]" = loop.create_future()
    loop.add_reader(fd, _wake, fut)
    try:
        if wait is None:
            await fut
        else:
            try:
                await asyncio.wait_for(fut, wait)
            except asyncio.TimeoutError:
                pass
    except BaseException:
        handle._disarm()
        raise
    finally:
        loop.remove_reader(fd)
    handle._drain()


async def receive_async(consumer: Any, timeout: Optional[float] = None) -> Any:
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    fd = consumer.fileno()
    while True:
        m = consumer.try_receive()
        if m is not None:
            return m
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            return None
        armed, recheck = consumer._arm()
        if not armed:
            continue
        wait = recheck if left is None else (left if recheck is None else min(recheck, left))
        await _wait(consumer, fd, wait)


async def publish_async(
    producer: Any,
    data: Any,
    type_id: int,
    correlation_id: int,
    key: Union[str, bytes, None],
    timeout: Optional[float],
    ordering_key: Union[str, bytes, None] = None,
    headers: Any = None,
) -> int:
    from . import Timeout

    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    if headers is not None and not isinstance(headers, dict):
        headers = list(headers)  # tried again after each wait: not a one-shot iterator
    fd = producer.fileno()
    while True:
        try:
            return producer.publish(
                data,
                type_id=type_id,
                correlation_id=correlation_id,
                key=key,
                timeout=0,
                ordering_key=ordering_key,
                headers=headers,
            )
        except Timeout:
            pass
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            raise Timeout("timed out: no room in the ring within the timeout")
        armed, recheck = producer._arm()
        if not armed:
            continue
        wait = recheck if left is None else (left if recheck is None else min(recheck, left))
        await _wait(producer, fd, wait)
