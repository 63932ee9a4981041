"""Ordering keys and headers: publish(ordering_key=, headers=), Message's
ordering_key, headers and header(); through the spill, a journal replay,
the DLQ and publish_async; limits and bad types are refused."""

import asyncio

import pytest

import shmq


def publish(p, i, **kw):
    return p.publish(
        b"payload %d" % i,
        type_id=7,
        ordering_key="customer-%d" % (i % 3),
        headers=[("traceparent", "00-trace-%d" % i), ("content-type", b"text/plain"), ("traceparent", b"second")],
        **kw,
    )


def check(m, i):
    assert bytes(m) == b"payload %d" % i
    assert m.type_id == 7
    assert m.ordering_key == b"customer-%d" % (i % 3)
    assert m.headers == [
        ("traceparent", b"00-trace-%d" % i),
        ("content-type", b"text/plain"),
        ("traceparent", b"second"),
    ]
    assert m.header("traceparent") == b"00-trace-%d" % i  # the first
    assert m.header("missing") is None


def test_keys_and_headers_round_trip(qdir, name):
    q = shmq.Queue.create(name, slots=8, slot_size=256)
    c = q.consumer("g", create=True)
    p = q.producer()
    for i in range(20):
        assert publish(p, i) == i
        m = c.receive(timeout=5)
        check(m, i)
    # None, a key alone, headers alone (a dict keeps its order), bytes key.
    p.publish(b"plain")
    p.publish(b"k", ordering_key=b"\x00\xffkey")
    p.publish(b"h", headers={"b": "2", "a": b"1"})
    m = c.receive(timeout=5)
    assert (m.ordering_key, m.headers, m.header("a")) == (None, [], None)
    m = c.receive(timeout=5)
    assert (m.ordering_key, m.headers) == (b"\x00\xffkey", [])
    m = c.receive(timeout=5)
    assert (m.ordering_key, m.headers) == (None, [("b", b"2"), ("a", b"1")])
    # They stay readable once the message is finished, as its metadata does.
    m.ack()
    assert m.finished and m.header("b") == b"2"
    # A batch's messages have them too.
    publish(p, 4)
    p.publish(b"plain")
    with c.receive_many(8, timeout=5) as b:
        assert len(b) == 2
        check(b[0], 4)
        assert b[1].ordering_key is None and b[1].headers == []


def test_limits_and_bad_types_are_refused(qdir, name):
    q = shmq.Queue.create(name, slots=8, slot_size=64)
    c = q.consumer("g", create=True)
    p = q.producer()
    assert (shmq.MAX_ORDERING_KEY, shmq.MAX_HEADERS, shmq.MAX_HEADER_NAME) == (1024, 16, 255)
    # The envelope counts against slot_size: 16 bytes + the key, to 8.
    p.publish(b"x" * 64)
    with pytest.raises(shmq.TooLarge, match="a payload of 64 bytes, an ordering key of 1 bytes, headers of 0"):
        p.publish(b"x" * 64, ordering_key="k")
    with pytest.raises(shmq.TooLarge):
        p.publish(b"x" * 41, ordering_key="k")
    p.publish(b"y" * 40, ordering_key="k")
    with pytest.raises(shmq.InvalidOption, match="1024"):
        p.publish(b"x", ordering_key=b"k" * (shmq.MAX_ORDERING_KEY + 1))
    with pytest.raises(shmq.InvalidOption, match="1024"):
        p.publish(b"x", ordering_key="")
    with pytest.raises(shmq.InvalidOption, match="16"):
        p.publish(b"x", headers=[("h", b"")] * (shmq.MAX_HEADERS + 1))
    with pytest.raises(shmq.InvalidOption, match="255"):
        p.publish(b"x", headers={"n" * 256: b""})
    with pytest.raises(shmq.InvalidOption, match="header name"):
        p.publish(b"x", headers={"": b"v"})
    with pytest.raises(TypeError, match="ordering_key must be str or bytes"):
        p.publish(b"x", ordering_key=12)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="header name must be str"):
        p.publish(b"x", headers={b"name": b"v"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="value must be str or bytes"):
        p.publish(b"x", headers={"n": 3})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="dict or a list"):
        p.publish(b"x", headers="n=v")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dict or a list"):
        p.publish(b"x", headers=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pair"):
        p.publish(b"x", headers=[("a", b"1", "extra")])  # type: ignore[list-item]
    # Only what was accepted went in.
    assert len(c.receive(timeout=5)) == 64
    m = c.receive(timeout=5)
    assert bytes(m) == b"y" * 40 and m.ordering_key == b"k"
    assert c.try_receive() is None


def test_keys_and_headers_survive_the_spill_and_a_journal_replay(qdir, tmp_path, name):
    q = shmq.Queue.create(
        name,
        slots=4,
        slot_size=256,
        overflow="spill",
        spill_dir=tmp_path / "spill",
        spill_segment_size=64 << 10,
        journal_max_age=3600.0,
        journal_max_bytes=1 << 22,
    )
    q.create_group("late")
    p = q.producer()
    for i in range(60):
        publish(p, i, timeout=0)  # never waits: spills
    assert q.stats()["spilled"] > 0
    c = q.consumer("late")
    for i in range(60):
        m = c.receive(timeout=5)
        assert m.seq == i
        check(m, i)
    c.close()
    q.create_group("replay")
    r = q.consumer("replay")
    r.seek(0)
    for i in range(60):
        m = r.receive(timeout=5)
        assert m.seq == i
        check(m, i)


def test_dead_letters_keep_keys_and_headers(qdir, name):
    q = shmq.Queue.create(name, slots=8, slot_size=256, max_deliveries=2)
    q.create_group("g")
    p = q.producer()
    publish(p, 4)
    p.publish(b"plain")
    c = q.consumer("g", ack="manual")
    c.receive(timeout=5).nack(dead_letter=True)
    c.receive(timeout=5).nack(dead_letter=True)
    letters = q.dlq.list()
    assert letters[0]["ordering_key"] == b"customer-1"
    assert letters[0]["headers"][0] == ("traceparent", b"00-trace-4")
    assert len(letters[0]["headers"]) == 3
    assert (letters[1]["ordering_key"], letters[1]["headers"]) == (None, [])
    assert q.dlq.redrive(seq=0) == 1
    m = c.receive(timeout=5)
    check(m, 4)
    m.ack()


def test_publish_async_takes_them(qdir, name):
    q = shmq.Queue.create(name, slots=2, slot_size=256)
    q.create_group("g")

    async def main():
        p = q.producer()
        c = q.consumer("g")
        await p.publish_async(b"0")
        await p.publish_async(b"1")
        # The ring is full: the publish waits, then goes in with them (a
        # generator of headers is tried again after the wait).
        pairs = (h for h in [("a", "1"), ("a", "2")])
        waiting = asyncio.ensure_future(p.publish_async(b"2", ordering_key="k", headers=pairs))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        assert bytes(c.try_receive()) == b"0"
        assert c.try_receive() is not None
        assert await asyncio.wait_for(waiting, 10) == 2
        m = c.try_receive()
        assert m is not None and bytes(m) == b"2"
        assert (m.ordering_key, m.headers) == (b"k", [("a", b"1"), ("a", b"2")])

    asyncio.run(main())
