"""The asyncio side of shmq's async API.

``Consumer.receive_async``, ``async for m in consumer`` and
``Producer.publish_async`` are this loop: try without waiting; arm the
handle's readiness fd (``fileno()``); if armed, wait until the fd is
readable (or ``recheck`` seconds, when the queue has something only time
changes); try again. The fd stays readable until drained, so any loop
works (asyncio's own, uvloop); no thread and no runtime of shmq's is
involved. Cancelled (``asyncio.wait_for``, a task's ``cancel()``), a wait
takes its arm back and loses nothing.

Several tasks may await one handle at once (two tasks in
``receive_async`` on one consumer, say). They share one reader on the
fd: when it turns readable the reader drains it and wakes every task
waiting on the handle; each tries again and the ones that find nothing
arm and wait again, so a wake-up is never spent on one task while the
others sleep through it. The handle stays armed until its last waiter
leaves. One handle is awaited from one event loop at a time: a second
loop gets ``Busy``.
"""

import asyncio
from typing import Any, Dict, Optional, Set, Union


class _Waiters:
    """The tasks waiting on one handle's fd, and the loop's reader on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handle: Any, fd: int) -> None:
        self.loop = loop
        self.handle = handle
        self.fd = fd
        self.futures: "Set[asyncio.Future[None]]" = set()
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        # Drained here, once, before anyone tries again: every waiter
        # then re-checks the queue and arms afresh, so no ring is lost.
        try:
            self.handle._drain()
        except BaseException as e:  # a handle closed meanwhile: every waiter hears it
            for fut in self.futures:
                if not fut.done():
                    fut.set_exception(e)
            return
        for fut in self.futures:
            if not fut.done():
                fut.set_result(None)


# Handles being waited on, by id(handle): an entry lives exactly as long
# as it has futures, and those keep the handle alive.
_WAITING: Dict[int, _Waiters] = {}


def _waiters(loop: asyncio.AbstractEventLoop, handle: Any, fd: int) -> _Waiters:
    from . import Busy

    w = _WAITING.get(id(handle))
    if w is None:
        w = _WAITING[id(handle)] = _Waiters(loop, handle, fd)
    elif w.loop is not loop:
        raise Busy(
            f"{type(handle).__name__} is already awaited in another event loop; "
            "await it from one loop (or give each loop its own handle)"
        )
    return w


async def _wait(handle: Any, fd: int, wait: Optional[float]) -> None:
    """Waits until ``fd`` is readable (at most ``wait`` seconds) beside
    the handle's other waiters; the last one to leave disarms it if it
    leaves without a wake-up (a timeout or a cancellation)."""
    loop = asyncio.get_running_loop()
    w = _waiters(loop, handle, fd)
    fut: "asyncio.Future[None]" = loop.create_future()
    w.futures.add(fut)
    woken = False
    try:
        if wait is None:
            await fut
        else:
            try:
                await asyncio.wait_for(asyncio.shield(fut), wait)
            except asyncio.TimeoutError:
                pass
        woken = fut.done() and not fut.cancelled()
    finally:
        w.futures.discard(fut)
        if not fut.done():
            fut.cancel()
        if not w.futures:
            del _WAITING[id(handle)]
            loop.remove_reader(fd)
            if not woken:
                # Nobody is left to wait for the arm.
                handle._disarm()


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
            await asyncio.sleep(0)  # as publish_async: never hold the loop
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
    ttl: Optional[float] = None,
    delay: Optional[float] = None,
    deliver_at: Any = None,
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
                ttl=ttl,
                delay=delay,
                deliver_at=deliver_at,
            )
        except Timeout:
            pass
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            raise Timeout(f"timed out: no room in the ring within the timeout: {producer.why_full()}")
        armed, recheck = producer._arm()
        if not armed:
            # Try again, but let the loop's other tasks run first: one
            # that would free the room may be waiting for this thread.
            await asyncio.sleep(0)
            continue
        wait = recheck if left is None else (left if recheck is None else min(recheck, left))
        await _wait(producer, fd, wait)
