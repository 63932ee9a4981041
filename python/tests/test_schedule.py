"""Messages for later: publish(delay=, deliver_at=), publish_async with
them, Queue.create(delivery_delay=), Queue.scheduled(), cancel_scheduled(),
cancel_scheduled_key() and the stats. Every queue keeps its schedule in the
test's directory (spill_dir), not in /var/tmp. Near times are a few hundred
milliseconds; far ones an hour or a year."""

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

import shmq


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def test_a_delayed_message_arrives_after_its_delay_not_before(qdir, name, store):
    q = shmq.Queue.create(name, slots=64, slot_size=64, spill_dir=store)
    q.create_group("g", start="earliest")
    p = q.producer()
    t0 = time.monotonic()
    sid = p.publish(b"later", delay=0.5, type_id=3)
    seq = p.publish(b"now")
    assert q.stats()["scheduled"] == 1
    c = q.consumer("g")
    m = c.receive(timeout=1)
    assert (bytes(m), m.seq) == (b"now", seq)
    if time.monotonic() - t0 < 0.4:
        assert c.receive(timeout=0.02) is None
    m = c.receive(timeout=5)
    assert bytes(m) == b"later" and m.type_id == 3
    assert time.monotonic() - t0 >= 0.5
    assert sid >= 1
    st = q.stats()
    assert (st["scheduled"], st["next_due_ns"], st["scheduled_cancelled"]) == (0, None, 0)
    # A delay of zero, or a time already past, publishes at once: a seq.
    seq = p.publish(b"zero", delay=0)
    assert bytes(c.receive(timeout=1)) == b"zero"
    past = p.publish(b"past", deliver_at=time.time() - 10)
    m = c.receive(timeout=1)
    assert (bytes(m), m.seq) == (b"past", past)
    q.close()


def test_deliver_at_takes_aware_datetimes_and_unix_seconds(qdir, name, store):
    q = shmq.Queue.create(name, slots=64, slot_size=64, spill_dir=store)
    p = q.producer()
    # New Year's Day two years on, an hour east of UTC (within MAX_DELAY).
    year = datetime.now(timezone.utc).year + 2
    at = datetime(year, 1, 1, 1, 0, 0, 250000, tzinfo=timezone(timedelta(hours=1)))
    a = p.publish(b"a", deliver_at=at)
    b = p.publish(b"b", deliver_at=time.time() + 3600)
    c = p.publish(b"c", deliver_at=datetime.now(timezone.utc) + timedelta(seconds=0.3))
    listed = q.scheduled()
    assert [s["id"] for s in listed] == [c, b, a]
    midnight_utc = datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()
    assert listed[2]["due_ns"] == int(midnight_utc) * 1_000_000_000 + 250_000_000
    with pytest.raises(shmq.InvalidOption, match="naive datetime"):
        p.publish(b"x", deliver_at=datetime(year, 1, 1))
    with pytest.raises(shmq.InvalidOption, match="not both"):
        p.publish(b"x", delay=1, deliver_at=time.time() + 1)
    with pytest.raises(shmq.InvalidOption, match="delay must be a finite number"):
        p.publish(b"x", delay=-1)
    with pytest.raises(shmq.InvalidOption, match="deliver_at must be a finite number"):
        p.publish(b"x", deliver_at=float("nan"))
    with pytest.raises(TypeError, match="deliver_at must be"):
        p.publish(b"x", deliver_at="tomorrow")
    with pytest.raises(TypeError, match="deliver_at must be"):
        p.publish(b"x", deliver_at=True)
    assert q.stats()["scheduled"] == 3
    # Due in 0.3 s: the first to arrive.
    g = q.consumer("g", create=True)
    assert bytes(g.receive(timeout=5)) == b"c"
    q.close()


def test_scheduled_lists_and_cancel_by_id_and_key(qdir, name, store):
    q = shmq.Queue.create(name, slots=64, slot_size=128, spill_dir=store)
    p = q.producer()
    hour = 3600
    late = p.publish(b"in two hours", delay=2 * hour, correlation_id=9)
    soon = p.publish(b"in an hour", delay=hour, key="reminder-7", ordering_key="k", headers={"h": "v"})
    listed = q.scheduled(limit=10)
    assert [s["id"] for s in listed] == [soon, late]
    first = listed[0]
    assert first["payload"] == b"in an hour"
    assert (first["keyed"], first["ordering_key"], first["headers"]) == (True, b"k", [("h", b"v")])
    assert listed[1]["correlation_id"] == 9 and not listed[1]["keyed"]
    assert abs(listed[1]["due_ns"] - listed[1]["published_ns"] - 2 * hour * 10**9) < 10**9
    assert [s["id"] for s in q.scheduled(limit=1)] == [soon]
    assert q.stats()["next_due_ns"] == first["due_ns"]
    # The key is remembered: publishing it again is a duplicate, the same id.
    assert p.publish(b"again", delay=hour, key="reminder-7") == soon
    assert q.cancel_scheduled(late) is True
    assert q.cancel_scheduled(late) is False
    assert q.cancel_scheduled_key(b"reminder-7") is True
    assert q.cancel_scheduled_key("reminder-7") is False
    st = q.stats()
    assert (st["scheduled"], st["scheduled_cancelled"], st["next_due_ns"]) == (0, 2, None)
    assert q.scheduled() == []
    with pytest.raises(shmq.InvalidOption, match="limit must be a whole number"):
        q.scheduled(limit=-1)
    with pytest.raises(TypeError, match="key must be str or bytes"):
        q.cancel_scheduled_key(7)
    q.close()


def test_the_queue_delivery_delay_schedules_every_publish(qdir, name, store):
    q = shmq.Queue.create(name, slots=64, slot_size=64, spill_dir=store, delivery_delay=0.2)
    q.create_group("g", start="earliest")
    p = q.producer()
    t0 = time.monotonic()
    p.publish(b"a")
    p.publish_many([b"b", b"c"])
    asyncio.run(p.publish_async(b"d"))
    p.publish(b"now", delay=0)  # its own delay of zero: at once
    assert q.stats()["scheduled"] == 4
    with pytest.raises(shmq.InvalidOption, match="delivery_delay"):
        p.reserve(8)
    c = q.consumer("g")
    assert bytes(c.receive(timeout=1)) == b"now"
    got = [bytes(c.receive(timeout=5)) for _ in range(4)]
    assert got == [b"a", b"b", b"c", b"d"]
    assert time.monotonic() - t0 >= 0.2
    q.close()
    with pytest.raises(shmq.InvalidOption, match="delivery_delay must be more than 0"):
        shmq.Queue.create(name + "-x", delivery_delay=0, spill_dir=store)


def test_publish_async_schedules_too(qdir, name, store):
    q = shmq.Queue.create(name, slots=64, slot_size=64, spill_dir=store)
    p = q.producer()

    async def main():
        a = await p.publish_async(b"a", delay=3600)
        b = await p.publish_async(b"b", deliver_at=datetime.now(timezone.utc) + timedelta(hours=2))
        return a, b

    a, b = asyncio.run(main())
    assert [s["id"] for s in q.scheduled()] == [a, b]
    with pytest.raises(shmq.InvalidOption, match="not both"):
        asyncio.run(p.publish_async(b"x", delay=1, deliver_at=1.0))
    q.close()


def test_a_ttl_counts_from_when_the_message_is_due(qdir, name, store):
    q = shmq.Queue.create(name, slots=64, slot_size=64, spill_dir=store)
    q.create_group("g", start="earliest")
    p = q.producer()
    # Delayed longer than its ttl: counted from its publish it would be
    # dead on arrival; it lives 0.3 s once due.
    p.publish(b"lives", delay=0.5, ttl=0.3)
    c = q.consumer("g")
    assert bytes(c.receive(timeout=5)) == b"lives"
    assert q.dlq.list() == []
    q.close()
