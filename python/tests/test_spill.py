"""overflow="spill", the journal, and the new queue and consumer options."""

import pytest

import shmq


def test_spill_takes_what_the_ring_cannot(qdir, tmp_path, name):
    spill = tmp_path / "spill"
    q = shmq.Queue.create(name, slots=8, slot_size=64, overflow="spill", spill_dir=spill, sync="every-16")
    assert q.overflow == "spill"
    q.create_group("g")
    p = q.producer()
    p.publish_many([b"m%d" % i for i in range(100)])  # no consumer yet: 92 go to disk
    for i in range(100, 150):
        p.publish(b"m%d" % i, timeout=0)  # never waits: spills
    st = q.stats()
    assert st["spilled"] >= 100 and st["spill_depth"] > 0 and st["spill_segments"] >= 1
    assert str(st["spill_dir"]).startswith(str(spill))
    assert q.spill_dir == st["spill_dir"]
    assert shmq.Queue.create(name + "-ring").spill_dir is None
    c = q.consumer("g")
    got = []
    while len(got) < 150:
        b = c.receive_many(32, timeout=5)
        assert len(b), "the spill did not come back"
        got.extend(b.payloads())
    assert got == [b"m%d" % i for i in range(150)]
    assert q.stats()["spill_depth"] == 0


def test_spill_full_with_reject_fallback(qdir, tmp_path, name):
    q = shmq.Queue.create(
        name,
        slots=4,
        slot_size=1024,
        overflow="spill",
        spill_dir=tmp_path / "s",
        spill_max_bytes=128 << 10,
        spill_segment_size=64 << 10,
        spill_fallback="reject",
    )
    q.create_group("g")
    p = q.producer()
    with pytest.raises(shmq.SpillFull, match="spill"):
        for _ in range(10_000):
            p.publish(b"x" * 1000)
    assert q.stats()["spill_full"] >= 1


def test_journal_replays_past_the_ring(qdir, tmp_path, name):
    q = shmq.Queue.create(
        name, slots=8, slot_size=64, spill_dir=tmp_path / "j", journal_max_age=3600.0, journal_max_bytes=1 << 20,
        spill_segment_size=64 << 10,
    )
    q.create_group("g")
    c = q.consumer("g")
    p = q.producer()
    for i in range(100):
        p.publish(b"e%d" % i)
        assert bytes(c.receive(timeout=1)) == b"e%d" % i
    j = q.stats()["journal"]
    assert j is not None and j["journaled"] == 100 and j["first_seq"] == 0
    assert c.seek(3) == 3  # far behind what the ring holds
    assert [bytes(c.receive(timeout=1)) for _ in range(3)] == [b"e3", b"e4", b"e5"]
    assert shmq.Queue.create(name + "-nj", slots=8).stats()["journal"] is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"overflow": "spill", "spill_fallback": "spill"},
        {"sync": "sometimes"},
        {"sync": "every-0"},
        {"journal_max_age": -1.0},
    ],
)
def test_invalid_spill_options(qdir, tmp_path, name, kwargs):
    with pytest.raises(shmq.InvalidOption):
        shmq.Queue.create(name, spill_dir=tmp_path / "s", **kwargs)


@pytest.mark.parametrize("wait", ["spin-futex", "spin-yield", "busy-spin"])
def test_wait_modes(qdir, name, wait):
    q = shmq.Queue.create(name, slots=8)
    q.producer().publish(b"w")
    c = q.consumer("g", wait=wait, create=True)
    assert bytes(c.receive(timeout=1)) == b"w"
    assert c.receive(timeout=0.05) is None


def test_invalid_wait(qdir, name):
    q = shmq.Queue.create(name, slots=8)
    with pytest.raises(shmq.InvalidOption, match="wait must be"):
        q.consumer("g", wait="nap")  # type: ignore[arg-type]


def test_a_publish_held_by_a_full_spill_names_its_budget(qdir, tmp_path, name):
    q = shmq.Queue.create(
        name,
        slots=4,
        slot_size=1024,
        overflow="spill",
        spill_dir=tmp_path / "s",
        spill_max_bytes=128 << 10,
        spill_segment_size=64 << 10,
    )
    q.create_group("g")
    p = q.producer()
    with pytest.raises(shmq.Timeout, match="spill_max_bytes = 131072"):
        for _ in range(10_000):
            p.publish(b"x" * 1000, timeout=0.1)
    assert "the spill is full" in q.stats()["why_full"]
