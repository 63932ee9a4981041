"""Messages that expire: publish(ttl=), Queue.create(message_ttl=,
on_expiry=), the reason "expired" and the group's messages_expired. The
times are long past (1 ms, then a sleep) or far off (an hour)."""

import asyncio
import time

import pytest

import shmq


def group(q, name):
    return next(g for g in q.groups() if g["name"] == name)


def test_an_expired_message_is_dead_lettered_with_the_reason(qdir, name):
    q = shmq.Queue.create(name, slots=64, slot_size=64)
    q.create_group("g", start="earliest")
    p = q.producer()
    p.publish(b"stale", ttl=0.001, type_id=3)
    p.publish(b"lasting", ttl=3600)
    asyncio.run(p.publish_async(b"async-stale", ttl=0.001))
    time.sleep(0.02)
    c = q.consumer("g")
    assert bytes(c.receive(timeout=1)) == b"lasting"
    assert c.receive(timeout=0.02) is None
    dead = sorted(q.dlq.list(), key=lambda d: d["seq"])
    assert [(d["payload"], d["reason"]) for d in dead] == [
        (b"stale", "expired"),
        (b"async-stale", "expired"),
    ]
    assert dead[0]["type_id"] == 3
    g = group(q, "g")
    assert (g["messages_expired"], g["dead_lettered"]) == (2, 2)
    with pytest.raises(shmq.InvalidOption, match="ttl must be a finite number"):
        p.publish(b"x", ttl=-1)
    q.close()


def test_the_queue_ttl_discards_and_counts(qdir, name):
    q = shmq.Queue.create(name, slots=64, slot_size=64, message_ttl=0.001, on_expiry="discard")
    q.create_group("g", start="earliest")
    p = q.producer()
    p.publish_many([b"a", b"b"])
    time.sleep(0.02)
    c = q.consumer("g", ack="manual")
    assert c.receive(timeout=0.02) is None
    assert q.dlq.list() == []
    assert group(q, "g")["messages_expired"] == 2
    q.close()
    with pytest.raises(shmq.InvalidOption, match="on_expiry must be dead-letter or discard"):
        shmq.Queue.create(name + "-x", on_expiry="drop")
    with pytest.raises(shmq.InvalidOption, match="message_ttl must be from 1 ms"):
        shmq.Queue.create(name + "-y", message_ttl=0)
