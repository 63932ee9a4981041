"""Messages of any size: a message longer than a slot takes consecutive
slots, is one buffer for its reader, and can be reserved and written in
place whole (issue #36)."""

import numpy as np
import pytest

import shmq


def test_a_frame_longer_than_a_slot_arrives_whole(qdir, name):
    # 128 slots of 256 bytes (strides of 288): half the ring, less a
    # 32-byte header, is the default largest message.
    q = shmq.Queue.create(name, slots=128, slot_size=256)
    q.create_group("g")
    p = q.producer()
    assert p.max_payload == 64 * 288 - 32
    frame = np.arange(2250, dtype=np.float64)  # 18000 bytes
    seq = p.publish(frame)
    assert p.publish(b"next") == seq + 63  # 32 + 18000 bytes in slots of 288
    c = q.consumer("g")
    m = c.receive(timeout=1)
    got = np.frombuffer(m.data, dtype=np.float64)
    assert np.array_equal(got, frame)
    del got
    m.ack()
    assert bytes(c.receive(timeout=1)) == b"next"
    with pytest.raises(shmq.TooLarge, match="max_message_size"):
        p.publish(bytes(p.max_payload + 1))
    q.close()


def test_a_reservation_of_any_size_is_one_buffer(qdir, name):
    q = shmq.Queue.create(name, slots=128, slot_size=256)
    q.create_group("g")
    p = q.producer()
    image = np.random.default_rng(7).integers(0, 255, (60, 80), dtype=np.uint8)
    with p.reserve(image.nbytes) as buf:
        assert len(buf) == 4800
        np.copyto(np.frombuffer(buf, dtype=np.uint8).reshape(60, 80), image)
    m = q.consumer("g").receive(timeout=1)
    assert np.array_equal(np.frombuffer(m.data, dtype=np.uint8).reshape(60, 80), image)
    q.close()


def test_max_message_size_is_asked_and_checked(qdir, name):
    q = shmq.Queue.create(name, slots=128, slot_size=256, max_message_size=1000)
    assert q.producer().max_payload == 1000
    with pytest.raises(shmq.TooLarge):
        q.producer().publish(bytes(1001))
    q.close()
    with pytest.raises(shmq.InvalidOption, match="more than this ring holds"):
        shmq.Queue.create(name + "-x", slots=128, slot_size=256, max_message_size=1 << 20)


def test_capacity_sizes_the_ring_in_bytes(qdir, name):
    # 1 MiB of 64-byte slots: 16384 small events, or one long frame.
    q = shmq.Queue.create(name, capacity=1 << 20, slot_size=32, overflow="reject")
    st = q.stats()
    assert (st["slots"], st["capacity"]) == (16384, 1 << 20)
    c = q.consumer("g", create=True)
    p = q.producer()
    for i in range(16384):
        p.publish(i.to_bytes(4, "little"))
    with pytest.raises(shmq.Full):
        p.publish(b"one more")
    assert q.stats()["depth_bytes"] == 1 << 20
    for i in range(16384):
        assert bytes(c.receive(timeout=1)) == i.to_bytes(4, "little")
    frame = np.arange(50_000, dtype=np.float64)  # 400,000 bytes
    p.publish(frame)
    assert np.array_equal(np.frombuffer(c.receive(timeout=1).data, dtype=np.float64), frame)
    q.close()
    with pytest.raises(shmq.InvalidOption, match="give one of them"):
        shmq.Queue.create(name + "-x", capacity=1 << 20, slots=64)
    with pytest.raises(shmq.InvalidOption, match="fewer than two slots"):
        shmq.Queue.create(name + "-y", capacity=100)


def test_a_long_dead_letter_is_kept_whole_and_redriven(qdir, name):
    # Dead-letter entries of 256 bytes (strides of 384): a 5124-byte
    # message and its 96-byte header take a run of 14 of the 16.
    q = shmq.Queue.create(name, slots=128, slot_size=256, dlq_slots=16)
    c = q.consumer("w", ack="manual", create=True)
    p = q.producer()
    body = bytes(range(256)) * 20 + b"tail"
    p.publish(body)
    c.receive(timeout=1).nack(dead_letter=True)
    [dead] = q.dlq.list()
    assert dead["payload"] == body
    # The region has two entries left: a dead letter of 1000 bytes finds
    # no run long enough.
    p.publish(bytes(1000))
    m = c.receive(timeout=1)
    with pytest.raises(shmq.DlqFull):
        m.nack(dead_letter=True)
    assert q.dlq.redrive() == 1
    got = c.receive(timeout=1)
    assert bytes(got) == body
    got.ack()
    # Acked, its run is given back: now a dead letter of 1000 bytes fits
    # (the first one stays leased meanwhile).
    p.publish(b"x" * 1000)
    m = c.receive(timeout=1)
    assert bytes(m) == b"x" * 1000
    m.nack(dead_letter=True)
    assert [len(d["payload"]) for d in q.dlq.list()] == [1000]
    q.close()


def test_max_in_flight_bounds_what_an_ack_manual_group_has_out(qdir, name):
    # A window of two: a third receive waits until the oldest is acked.
    # (A consumer holds one delivery at a time: three consumers.)
    q = shmq.Queue.create(name, slots=64, slot_size=64, max_in_flight=2)
    a, b, c = (q.consumer("w", ack="manual", create=True) for _ in range(3))
    p = q.producer()
    for i in range(3):
        p.publish(b"m%d" % i)
    first, second = a.receive(timeout=1), b.receive(timeout=1)
    assert (bytes(first), bytes(second)) == (b"m0", b"m1")
    assert c.receive(timeout=0.05) is None
    second.ack()
    assert c.receive(timeout=0.05) is None
    first.ack()
    assert bytes(c.receive(timeout=1)) == b"m2"
    q.close()
    with pytest.raises(shmq.InvalidOption, match="max_in_flight must be from 1 to the ring's 64 slots"):
        shmq.Queue.create(name + "-x", slots=64, max_in_flight=65)
