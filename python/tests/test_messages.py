"""Publishing and receiving in one process: payload types, zero-copy views
and their lifetime, metadata, batches, reservations, acks, the DLQ."""

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

import shmq


@pytest.fixture
def q(qdir, name):
    q = shmq.Queue.create(name, slots=16, slot_size=256, lease=30.0)
    q.create_group("g")
    yield q
    q.close()


def test_publish_takes_any_buffer(q):
    p = q.producer()
    arr = np.arange(8, dtype=np.float32)
    payloads = [b"bytes", bytearray(b"bytearray"), memoryview(b"memoryview"), arr, b""]
    seqs = [p.publish(x) for x in payloads]
    assert seqs == [0, 1, 2, 3, 4]
    c = q.consumer("g")
    got = [bytes(c.receive(timeout=1)) for _ in payloads]
    assert got == [b"bytes", b"bytearray", b"memoryview", arr.tobytes(), b""]


def test_publish_refuses_bad_input(q):
    p = q.producer()
    with pytest.raises(TypeError, match="buffer protocol"):
        p.publish("a str")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        p.publish(12)  # type: ignore[arg-type]
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        p.publish(np.arange(16, dtype=np.uint8)[::2])
    with pytest.raises(shmq.TooLarge, match="larger than the queue's max_message_size of 256"):
        p.publish(b"x" * 257)
    with pytest.raises(TypeError, match="key must be str or bytes"):
        p.publish(b"x", key=5)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        p.publish(b"x", type_id=-1)
    with pytest.raises(shmq.InvalidOption):
        p.publish(b"x", timeout=-1.0)
    assert q.stats()["published"] == 0


def test_metadata_round_trips(q):
    p = q.producer()
    before = time.time_ns()
    seq = p.publish(b"hi", type_id=7, correlation_id=2**63 + 5)
    c = q.consumer("g")
    m = c.receive(timeout=1)
    assert m is not None
    assert (m.seq, m.type_id, m.correlation_id, m.attempt, m.group) == (seq, 7, 2**63 + 5, 1, "g")
    assert before <= m.timestamp_ns <= time.time_ns()
    assert len(m) == 2 and "seq=0" in repr(m)


def test_data_is_a_read_only_view_valid_until_finished(q):
    p = q.producer()
    p.publish(b"hello world")
    p.publish(b"second")
    c = q.consumer("g")
    m = c.receive(timeout=1)
    view = m.data
    assert view.readonly and view.tobytes() == b"hello world"
    with pytest.raises(TypeError):
        view[0] = 1  # type: ignore[index]
    arr = np.frombuffer(m.data, dtype=np.uint8)
    assert arr[0] == ord("h")
    with pytest.raises(BufferError, match="still alive"):
        m.ack()
    assert not m.finished
    del arr
    # The failed ack released the memoryviews .data handed out; slices of a
    # new one still hold the message.
    with pytest.raises(ValueError):
        view.tobytes()
    view = m.data
    head = view[:5]
    with pytest.raises(BufferError):
        c.receive(timeout=0)  # ack=auto: the next receive finishes m, not while head lives
    del head
    m.ack()
    assert m.finished
    with pytest.raises(ValueError, match="released"):
        view[0]
    with pytest.raises(shmq.Closed, match="finished"):
        m.data
    with pytest.raises(shmq.Closed):
        bytes(m)
    m.ack()  # ack=auto: a no-op once released
    with pytest.raises(shmq.InvalidOption):
        m.nack()
    m2 = c.receive(timeout=1)
    assert bytes(m2) == b"second"


def test_try_receive_polls(q):
    c = q.consumer("g")
    assert c.try_receive() is None
    q.producer().publish(b"now")
    m = c.try_receive()
    assert m is not None and bytes(m) == b"now"
    assert c.try_receive() is None and m.finished
    c.close()
    with pytest.raises(shmq.Closed):
        c.try_receive()


def test_receive_timeout_forms(q):
    """timeout=0 (int or float) polls; other numbers wait; anything else is refused."""
    c = q.consumer("g")
    p = q.producer()
    for zero in (0, 0.0):
        assert c.receive(timeout=zero) is None
        p.publish(b"z")
        m = c.receive(timeout=zero)
        assert m is not None and bytes(m) == b"z"
    assert c.receive(0) is None  # positional
    p.publish(b"w")
    assert bytes(c.receive(timeout=1)) == b"w"
    assert c.receive(timeout=Fraction(1, 20)) is None  # any real number
    for bad in ("1", b"1", [1], True, False):
        with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
            c.receive(timeout=bad)
    for bad in (-1, -0.5, float("nan"), float("inf"), 1 << 80):
        with pytest.raises(shmq.InvalidOption):
            c.receive(timeout=bad)
    with pytest.raises(OverflowError):
        c.receive(timeout=10**400)  # not a float at all: Python's own error

    class Odd:
        def __float__(self):
            raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        c.receive(timeout=Odd())


def test_consumer_position(q):
    p = q.producer()
    c = q.consumer("g")
    assert c.position == 0
    for i in range(6):
        p.publish(b"%d" % i)
    m = c.receive(timeout=1)
    assert (m.seq, c.position) == (0, 1)  # beside the open message
    b = c.receive_many(3, timeout=1)
    assert (len(b), c.position) == (3, 4)  # beside the open batch
    b.release()
    assert c.position == 4
    c.seek("earliest")
    assert c.position == 0
    c.close()
    with pytest.raises(shmq.Closed):
        c.position


def test_next_receive_finishes_the_previous_auto_message(q):
    p = q.producer()
    p.publish(b"one")
    p.publish(b"two")
    c = q.consumer("g")
    m1 = c.receive(timeout=1)
    v1 = m1.data
    m2 = c.receive(timeout=1)
    assert m1.finished and not m2.finished
    with pytest.raises(ValueError):
        v1.tobytes()
    assert bytes(m2) == b"two"


def test_the_next_receive_frees_a_dropped_messages_slot(qdir, name):
    q = shmq.Queue.create(name, slots=4, overflow="reject")
    q.create_group("g")
    p = q.producer()
    c = q.consumer("g")
    for i in range(50):  # 12 laps of the ring: each receive frees the previous slot
        p.publish(b"%d" % i)
        assert bytes(c.receive(timeout=1)) == b"%d" % i


def test_full_and_timeout(qdir, name):
    q = shmq.Queue.create(name, slots=2, overflow="reject")
    q.create_group("g")
    p = q.producer()
    p.publish(b"a")
    p.publish(b"b")
    with pytest.raises(shmq.Full, match="queue is full"):
        p.publish(b"c")
    assert q.stats()["rejected"] == 1
    b = shmq.Queue.create(name + "b", slots=2)
    b.create_group("g")
    pb = b.producer()
    pb.publish(b"a")
    pb.publish(b"b")
    t0 = time.monotonic()
    with pytest.raises(shmq.Timeout, match='group "g" holds the ring: it is 2 messages behind'):
        pb.publish(b"c", timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 2.0
    assert b.why_full().startswith('group "g" holds the ring')
    assert b.stats()["why_full"] == b.why_full() == pb.why_full()
    with pytest.raises(shmq.Timeout):
        pb.publish(b"c", timeout=0)
    with pytest.raises(shmq.Timeout):
        pb.publish_many([b"c", b"d"], timeout=0.1)
    with pytest.raises(shmq.Timeout):
        pb.reserve(1, timeout=0.1)


def test_a_publish_that_may_not_wait_takes_the_room_there_is(qdir, name):
    # A blocked publish waits for an eighth of the ring (8 slots here) to
    # free up; one with no time to wait takes the single slot there is.
    q = shmq.Queue.create(name, slots=64)
    c = q.consumer("g", create=True)
    p = q.producer()
    p.publish_many([b"x"] * 64)
    c.receive(timeout=0)
    c.receive(timeout=0)  # releases the first: one slot free
    assert p.publish(b"a", timeout=0) == 64
    c.receive(timeout=0)
    assert p.publish_many([b"b"], timeout=0) == 65
    c.receive(timeout=0)
    r = p.reserve(1, timeout=0)
    assert r.seq == 66
    with r as view:
        view[0] = ord("c")


def test_blocked_publish_resumes_when_a_consumer_frees_room(qdir, name):
    q = shmq.Queue.create(name, slots=2)
    q.create_group("g")
    p = q.producer()
    p.publish(b"a")
    p.publish(b"b")

    def drain():
        time.sleep(0.2)
        c = q.consumer("g")
        for _ in range(3):
            c.receive(timeout=5)

    t = threading.Thread(target=drain)
    t.start()
    assert p.publish(b"c", timeout=5) == 2
    t.join(10)


def test_idempotency_keys(qdir, name):
    q = shmq.Queue.create(name, slots=16, dedup_window=8)
    p = q.producer()
    first = p.publish(b"charge", key="order-42")
    assert p.publish(b"charge", key="order-42") == first
    assert p.publish(b"charge", key=b"order-42") == first  # str keys are their UTF-8 bytes
    assert p.publish(b"other", key="order-43") == first + 1
    st = q.stats()
    assert (st["published"], st["deduplicated"]) == (2, 2)
    assert p.deduplicated == 2 and q.producer().deduplicated == 0


def test_publish_many_and_receive_many(q):
    p = q.producer()
    first = p.publish_many([b"m%d" % i for i in range(10)])
    assert first == 0
    assert p.publish_many(iter([bytearray(b"x"), memoryview(b"y")])) == 10
    assert p.publish_many((b"t",)) == 12
    with pytest.raises(shmq.InvalidOption):
        p.publish_many([])
    with pytest.raises(shmq.TooLarge):
        p.publish_many([b"ok", b"x" * 300])
    with pytest.raises(TypeError):
        p.publish_many([b"ok", "str"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        p.publish_many(5)  # type: ignore[arg-type]
    c = q.consumer("g")
    b = c.receive_many(4, timeout=1)
    assert (len(b), b.first_seq, b.last_seq, b.nbytes) == (4, 0, 3, 8)
    assert [bytes(m) for m in b] == [b"m0", b"m1", b"m2", b"m3"]
    assert bytes(b[-1]) == b"m3" and b[0].seq == 0
    with pytest.raises(IndexError):
        b[4]
    view = b[1].data
    rest = c.receive_many(100, timeout=1)  # releases b
    assert b.released and not rest.released
    with pytest.raises(ValueError):
        view.tobytes()
    assert rest.payloads() == [b"m%d" % i for i in range(4, 10)] + [b"x", b"y", b"t"]
    with rest:
        pass
    assert rest.released
    with pytest.raises(shmq.Closed):
        rest.payloads()
    empty = c.receive_many(8, timeout=0.05)
    assert len(empty) == 0 and not empty and empty.first_seq is None
    with pytest.raises(shmq.InvalidOption):
        c.receive_many(0, timeout=0)


def test_publish_many_larger_than_the_ring(qdir, name):
    q = shmq.Queue.create(name, slots=8)
    q.create_group("g")
    got = []

    def consume():
        c = q.consumer("g")
        while len(got) < 100:
            b = c.receive_many(16, timeout=5)
            got.extend(b.payloads())

    t = threading.Thread(target=consume)
    t.start()
    q.producer().publish_many([b"%d" % i for i in range(100)], timeout=10)
    t.join(20)
    assert got == [b"%d" % i for i in range(100)]


def test_reserve_writes_in_place(q):
    p = q.producer()
    r = p.reserve(5, type_id=3, correlation_id=4)
    with r as buf:
        assert not buf.readonly and len(buf) == 5
        buf[:] = b"hello"
    assert r.seq == 0
    with pytest.raises(shmq.Closed):
        r.data
    frame = np.arange(12, dtype=np.uint16).reshape(3, 4)
    with p.reserve(frame.nbytes) as buf:
        np.copyto(np.frombuffer(buf, dtype=np.uint16).reshape(3, 4), frame)
    r3 = p.reserve(10)
    with pytest.raises(shmq.Busy, match="reservation"):
        p.publish(b"no")
    r3.data[:3] = b"abc"
    assert r3.commit(3) == 2
    with pytest.raises(shmq.Closed):
        r3.commit()
    with pytest.raises(RuntimeError):
        with p.reserve(4) as buf:
            buf[:] = b"lost"
            raise RuntimeError("boom")
    r5 = p.reserve(4)
    r5.abort()
    r5.abort()
    r6 = p.reserve(4)
    with pytest.raises(shmq.InvalidOption):
        r6.commit(5)
    held = np.frombuffer(r6.data, dtype=np.uint8)
    with pytest.raises(BufferError):
        r6.commit()
    del held
    r6.data[:] = b"last"
    r6.commit()
    with pytest.raises(shmq.TooLarge):
        p.reserve(257)
    c = q.consumer("g")
    m = c.receive(timeout=1)
    assert (bytes(m), m.type_id, m.correlation_id) == (b"hello", 3, 4)
    m = c.receive(timeout=1)
    assert (np.frombuffer(m.data, dtype=np.uint16).reshape(3, 4) == frame).all()
    m = c.receive(timeout=1)
    assert bytes(m) == b"abc"
    m = c.receive(timeout=1)  # the aborted ones are skipped
    assert bytes(m) == b"last"
    assert c.receive(timeout=0.05) is None


def test_dropped_reservation_aborts(q):
    p = q.producer()
    p.reserve(3)  # dropped at once
    p.publish(b"after")
    c = q.consumer("g")
    assert bytes(c.receive(timeout=1)) == b"after"
    assert q.stats()["aborted"] == 1


def test_iteration_and_context_managers(q):
    with q.producer() as p:
        for i in range(3):
            p.publish(b"%d" % i)
    assert p.closed
    with pytest.raises(shmq.Closed):
        p.publish(b"x")
    with q.consumer("g") as c:
        got = []
        for m in c:
            got.append(bytes(m))
            if len(got) == 3:
                break
    assert got == [b"0", b"1", b"2"] and c.closed
    with pytest.raises(shmq.Closed):
        c.receive(timeout=0)
    with pytest.raises(shmq.Closed):
        next(c)
    c2 = q.consumer("g")  # the group is free again
    c2.close()


def test_closing_a_consumer_finishes_its_message(q):
    q.producer().publish(b"x")
    c = q.consumer("g")
    m = c.receive(timeout=1)
    v = m.data
    c.close()
    assert m.finished
    with pytest.raises(ValueError):
        v.tobytes()
    held = q.consumer("g")
    q.producer().publish(b"y")
    m = held.receive(timeout=1)
    arr = np.frombuffer(m.data, dtype=np.uint8)
    with pytest.raises(BufferError):
        held.close()
    del arr
    held.close()


def test_manual_ack_nack_and_redelivery(qdir, name):
    q = shmq.Queue.create(name, slots=16, max_deliveries=3, dlq_slots=4)
    q.create_group("g")
    p = q.producer()
    p.publish(b"job", type_id=1)
    c = q.consumer("g", ack="manual")
    m = c.receive(timeout=1)
    assert m.attempt == 1
    with pytest.raises(shmq.Busy, match="not acked or nacked"):
        c.receive(timeout=0)
    m.nack()
    with pytest.raises(shmq.Closed):
        m.ack()
    m = c.receive(timeout=1)
    assert (bytes(m), m.attempt) == (b"job", 2)
    t0 = time.monotonic()
    m.nack(delay=0.2)
    assert c.receive(timeout=0.05) is None
    m = c.receive(timeout=2)
    assert m.attempt == 3 and time.monotonic() - t0 >= 0.2
    m.extend_lease(60)
    m.ack()
    with pytest.raises(shmq.Closed):
        m.extend_lease(1)
    assert c.receive(timeout=0.05) is None
    g = q.groups()[0]
    assert (g["acked"], g["nacked"], g["redelivered"]) == (1, 2, 2)
    with pytest.raises(shmq.InvalidOption):
        c.receive_many(4, timeout=0)
    p.publish(b"x")
    m = c.receive(timeout=1)
    with pytest.raises(shmq.InvalidOption):
        m.nack(delay=1, dead_letter=True)
    with pytest.raises(shmq.InvalidOption):
        m.nack(delay=-1)
    m.ack()


def test_dropping_an_unacked_manual_message_gives_it_back_at_once(qdir, name):
    q = shmq.Queue.create(name, slots=8)
    q.create_group("g")
    q.producer().publish(b"job")
    c = q.consumer("g", ack="manual")
    other = q.consumer("g", ack="manual")
    c.receive(timeout=1)  # dropped at once
    m = other.receive(timeout=1)  # another consumer has it without c receiving again
    assert (bytes(m), m.attempt) == (b"job", 2)
    m.ack()


def test_message_context_manager(qdir, name):
    q = shmq.Queue.create(name, slots=8)
    q.create_group("g")
    p = q.producer()
    p.publish(b"ok")
    p.publish(b"fails")
    c = q.consumer("g", ack="manual")
    with c.receive(timeout=1) as m:
        assert bytes(m) == b"ok"
    assert m.finished
    with pytest.raises(KeyError):
        with c.receive(timeout=1) as m:
            raise KeyError("handler failed")
    m = c.receive(timeout=1)
    assert (bytes(m), m.attempt) == (b"fails", 2)
    m.ack()
    assert q.groups()[0]["acked"] == 2


def test_lease_expiry(qdir, name):
    q = shmq.Queue.create(name, slots=8, lease=0.1)
    q.create_group("g")
    q.producer().publish(b"slow")
    a = q.consumer("g", ack="manual")
    b = q.consumer("g", ack="manual")
    m = a.receive(timeout=1)
    time.sleep(0.3)
    again = b.receive(timeout=2)
    assert again is not None and again.attempt == 2
    with pytest.raises(shmq.LeaseExpired, match="lease expired"):
        m.ack()
    again.ack()


def test_dead_letters(qdir, name):
    q = shmq.Queue.create(name, slots=16, max_deliveries=2, dlq_slots=2, lease=0.5)
    q.create_group("g")
    q.create_group("other")
    p = q.producer()
    p.publish(b"poison", type_id=9, correlation_id=77)
    p.publish(b"bad")
    p.publish(b"worse")
    c = q.consumer("g", ack="manual")
    m = c.receive(timeout=1)
    m.nack()
    m = c.receive(timeout=1)
    m.nack()  # second delivery failed: max_deliveries reached
    m = c.receive(timeout=1)
    assert bytes(m) == b"bad"
    m.nack(dead_letter=True)
    m = c.receive(timeout=1)
    assert bytes(m) == b"worse"
    with pytest.raises(shmq.DlqFull, match="dead-letter queue is full"):
        m.nack(dead_letter=True)
    assert len(q.dlq) == 2 and q.stats()["dlq_depth"] == 2
    letters = q.dlq.list()
    assert [(d["seq"], d["reason"], d["group"]) for d in letters] == [
        (0, "max-deliveries", "g"),
        (1, "nacked", "g"),
    ]
    assert letters[0]["payload"] == b"poison" and letters[0]["type_id"] == 9
    assert letters[0]["correlation_id"] == 77 and letters[0]["attempts"] == 2
    c.close()
    assert q.dlq.redrive(seq=1) == 1
    c = q.consumer("g", ack="manual")
    got = []
    for _ in range(2):  # the redriven one, and the one whose lease ran out
        m = c.receive(timeout=5)
        got.append(bytes(m))
        m.ack()
    assert sorted(got) == [b"bad", b"worse"]
    assert q.dlq.purge() == 1
    assert len(q.dlq) == 0 and q.dlq.list() == []
    other = q.consumer("other")
    assert [bytes(other.receive(timeout=1)) for _ in range(3)] == [b"poison", b"bad", b"worse"]


def test_aborted_claim(qdir, name):
    q = shmq.Queue.create(name, slots=8, unblock_timeout=0.1)
    q.create_group("g")
    p = q.producer()
    r = p.reserve(4)
    p2 = q.producer()
    p2.publish(b"later")
    c = q.consumer("g")
    m = c.receive(timeout=3)  # waits past unblock_timeout, aborts the stuck claim
    assert bytes(m) == b"later"
    r.data[:] = b"late"
    with pytest.raises(shmq.Aborted, match="claim aborted"):
        r.commit()


def test_threads_share_handles(qdir, name):
    q = shmq.Queue.create(name, slots=64)
    q.create_group("g")
    p = q.producer()
    n, writers = 2000, 4
    got = []

    def write(w):
        for i in range(n):
            p.publish(b"%d:%d" % (w, i), timeout=10)

    def read():
        c = q.consumer("g")
        while len(got) < n * writers:
            b = c.receive_many(64, timeout=5)
            if not b:
                break
            got.extend(b.payloads())

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    reader.join(30)
    assert len(got) == n * writers
    for w in range(writers):
        mine = [int(x.split(b":")[1]) for x in got if x.startswith(b"%d:" % w)]
        assert mine == list(range(n))  # per-thread order holds


def test_a_consumer_shared_by_threads(qdir, name):
    q = shmq.Queue.create(name, slots=64)
    q.create_group("g")
    c = q.consumer("g")
    seen = []
    lock = threading.Lock()

    def read():
        while True:
            m = c.receive(timeout=0.5)
            if m is None:
                return
            try:
                data = bytes(m)
            except shmq.Closed:
                continue  # another thread's receive finished it first
            with lock:
                seen.append(data)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for t in threads:
        t.start()
    p = q.producer()
    for i in range(500):
        p.publish(b"%d" % i, timeout=10)
    for t in threads:
        t.join(30)
    assert len(set(seen)) == len(seen)


def test_another_thread_gets_a_handle_a_blocked_call_waits_on(qdir, name):
    """A receive (or publish) blocked for as long as it takes does not keep
    the handle from other threads: they get in between its wait slices."""
    q = shmq.Queue.create(name, slots=2)
    q.create_group("g")
    c = q.consumer("g")
    p = q.producer()
    p.publish(b"1")
    p.publish(b"2")  # full: a third publish waits
    ended = {}

    def blocked(what, call):
        try:
            call()
            ended[what] = "returned"
        except shmq.Closed:
            ended[what] = "closed"

    c2 = q.consumer("h", start="latest", create=True)  # nothing for it: its receive waits
    threads = [
        threading.Thread(target=blocked, args=("receive", lambda: next(iter(c2))), daemon=True),
        threading.Thread(target=blocked, args=("publish", lambda: p.publish(b"3")), daemon=True),
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)  # both are well into their waits
    answers = []

    def other_thread():
        t0 = time.monotonic()
        answers.append((c2.position, p.max_payload, c2.closed))
        c2.close()
        p.close()
        answers.append(time.monotonic() - t0)

    helper = threading.Thread(target=other_thread, daemon=True)
    helper.start()
    helper.join(5)
    assert not helper.is_alive(), "the blocked calls kept the handles"
    assert answers[0] == (2, 1024, False) and answers[1] < 1.0
    for t in threads:
        t.join(5)
        assert not t.is_alive()
    assert ended == {"receive": "closed", "publish": "closed"}


@pytest.mark.parametrize("overflow, exc", [("reject", shmq.Full), ("block", shmq.Timeout)])
def test_publish_many_that_goes_in_part_way_says_how_many(qdir, name, overflow, exc):
    # 8 slots, one group, 10 messages: 8 go in. Retrying all 10 as an
    # error that said "nothing was published" invited would duplicate them.
    q = shmq.Queue.create(name, slots=8, overflow=overflow)
    q.create_group("g")
    p = q.producer()
    msgs = [b"m%d" % i for i in range(10)]
    with pytest.raises(exc) as info:
        p.publish_many(msgs, timeout=0.2)
    e = info.value
    assert (e.published, e.first_seq) == (8, 0)
    assert "only 8 of the 10 messages were published (from seq 0)" in str(e)
    assert "nothing was published" not in str(e)
    assert q.stats()["published"] == 8
    c = q.consumer("g")
    assert [bytes(c.receive(timeout=0)) for _ in range(8)] == msgs[:8]
    # The rest, and only the rest.
    assert p.publish_many(msgs[e.published :], timeout=0.2) == 8
    assert [bytes(m) for m in c.receive_many(10, timeout=0.1)] == msgs[8:]
    assert c.receive(timeout=0) is None  # finishes the batch: the ring is free
    # None in: published 0, first_seq None, the plain message.
    p.publish_many([b"x"] * 8)
    with pytest.raises(exc) as info:
        p.publish_many([b"y"] * 2, timeout=0.05)
    assert (info.value.published, info.value.first_seq) == (0, None)
    q.close()


def test_publish_many_into_a_full_spill_part_way_says_how_many(qdir, name, tmp_path):
    q = shmq.Queue.create(
        name,
        slots=8,
        overflow="spill",
        spill_dir=tmp_path / "spill",
        spill_segment_size=64 << 10,
        spill_max_bytes=64 << 10,
        spill_fallback="reject",
    )
    q.create_group("g")
    msgs = [b"%0100d" % i for i in range(2000)]
    with pytest.raises(shmq.SpillFull) as info:
        q.producer().publish_many(msgs)
    e = info.value
    assert e.first_seq == 0 and 8 <= e.published < 2000
    assert q.stats()["published"] == e.published
    q.close()


def test_a_numpy_array_that_outlives_its_message_is_named_as_what_holds_it(qdir, name):
    q = shmq.Queue.create(name, slots=16)
    c = q.consumer("g", ack="manual", create=True)
    q.producer().publish(np.arange(4, dtype=np.int64))
    m = c.receive(timeout=1)
    arr = np.frombuffer(m.data, dtype=np.int64)
    del m  # the array still holds the message's memory, and so the message
    with pytest.raises(shmq.Busy) as info:
        c.receive(timeout=0)
    text = str(info.value)
    assert "1 buffer(s) made from its data" in text and "delete those buffers" in text
    assert list(arr) == [0, 1, 2, 3]
    del arr  # now the message is dropped: it goes back to the group
    again = c.receive(timeout=1)
    assert again is not None and again.seq == 0 and again.attempt == 2
    again.ack()
    q.close()


def test_a_redrive_without_ring_room_says_what_stayed_and_why(qdir, name):
    q = shmq.Queue.create(name, slots=8, max_deliveries=5)
    c = q.consumer("work", ack="manual", create=True)
    p = q.producer()
    p.publish(b"keyed", ordering_key="k")
    p.publish(b"plain")
    for _ in range(2):
        c.receive(timeout=1).nack(dead_letter=True)
    q.create_group("slow", start="latest")
    for _ in range(8):
        p.publish(b"x")
    for _ in range(8):
        c.receive(timeout=1).ack()
    with pytest.raises(shmq.Timeout) as e:
        q.dlq.redrive(timeout=0.05)
    assert (e.value.redriven, e.value.left) == (1, 1)
    assert "1 keyed one(s) stayed in the dead-letter queue" in str(e.value)
    assert 'group "slow" holds the ring' in str(e.value)
    assert len(q.dlq) == 1
    q.delete_group("slow")
    assert q.dlq.redrive(timeout=5) == 1
    assert len(q.dlq) == 0
