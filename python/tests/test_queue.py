"""Queues: create, open, remove, options, groups, seek, stats and their errors."""

import os
import struct

import pytest

import shmq


def test_create_defaults_match_the_core(qdir, name):
    with shmq.Queue.create(name) as q:
        assert q.name == name
        assert str(q.path) == str(qdir / f"{name}.shmq")
        assert (q.slots, q.slot_size, q.overflow) == (4096, 1024, "block")
        st = q.stats()
        assert st["slots"] == 4096 and st["slot_size"] == 1024
        assert st["next_seq"] == 0 and st["depth"] == 0 and st["groups"] == []
    assert q.closed
    assert oct(os.stat(qdir / f"{name}.shmq").st_mode & 0o777) == "0o600"


def test_options_are_applied(tmp_path, name):
    q = shmq.Queue.create(
        name,
        dir=tmp_path,
        slots=64,
        slot_size=128,
        max_groups=2,
        overflow="reject",
        lease=1.5,
        max_deliveries=2,
        dlq_slots=4,
        dedup_window=8,
        dedup_ttl=1.0,
        unblock_timeout=0.5,
        mode=0o640,
    )
    assert (q.slots, q.slot_size, q.overflow) == (64, 128, "reject")
    assert oct(os.stat(tmp_path / f"{name}.shmq").st_mode & 0o777) == "0o640"
    q.create_group("a")
    q.create_group("b")
    with pytest.raises(shmq.Busy):
        q.create_group("c")
    q.close()


def test_open_remove_and_open_or_create(qdir, name):
    with pytest.raises(shmq.NotFound):
        shmq.Queue.open(name)
    q = shmq.Queue.open_or_create(name, slots=16)
    assert q.slots == 16
    again = shmq.Queue.open_or_create(name, slots=32)  # exists: its options win
    assert again.slots == 16
    with pytest.raises(shmq.Exists):
        shmq.Queue.create(name)
    assert shmq.Queue.open(name, dir=qdir).slots == 16
    shmq.Queue.remove(name)
    with pytest.raises(shmq.NotFound):
        shmq.Queue.remove(name)
    with pytest.raises(shmq.NotFound):
        shmq.Queue.open(name)


def test_dir_overrides_shmq_dir(qdir, tmp_path, name):
    other = tmp_path / "other"
    other.mkdir()
    shmq.Queue.create(name, dir=other).close()
    assert (other / f"{name}.shmq").exists()
    assert not (qdir / f"{name}.shmq").exists()
    shmq.Queue.remove(name, dir=str(other))


def test_default_dir_follows_shmq_dir(qdir, monkeypatch, name):
    assert shmq.default_dir() == qdir
    q = shmq.Queue.create(name)
    assert q.path.parent == shmq.default_dir()
    q.close()
    monkeypatch.delenv("SHMQ_DIR")
    assert str(shmq.default_dir()) == "/dev/shm"
    monkeypatch.setenv("SHMQ_DIR", "")
    assert str(shmq.default_dir()) == "/dev/shm"


def test_group_names_up_to_max_group_name(qdir, name):
    q = shmq.Queue.create(name)
    assert shmq.MAX_GROUP_NAME == 48
    q.create_group("g" * shmq.MAX_GROUP_NAME)
    with pytest.raises(shmq.InvalidName):
        q.create_group("g" * (shmq.MAX_GROUP_NAME + 1))
    q.close()


@pytest.mark.parametrize("bad", ["", "a/b", "..", "a b", "x" * 201])
def test_invalid_names(qdir, bad):
    with pytest.raises(shmq.InvalidName):
        shmq.Queue.create(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"slots": 100},
        {"slots": 0},
        {"slot_size": 0},
        {"overflow": "drop"},
        {"lease": -1.0},
        {"lease": float("nan")},
        {"dedup_ttl": float("inf")},
        {"unblock_timeout": -0.1},
        {"max_groups": 0},
    ],
)
def test_invalid_options(qdir, name, kwargs):
    with pytest.raises(shmq.InvalidOption):
        shmq.Queue.create(name, **kwargs)


def test_wrong_types_are_type_errors(qdir, name):
    with pytest.raises(TypeError):
        shmq.Queue.create(name, slots="many")  # type: ignore[arg-type]
    # A negative count is an option out of range, not a conversion error.
    with pytest.raises(shmq.InvalidOption):
        shmq.Queue.create(name, slots=-1)


def test_exception_hierarchy_and_messages(qdir, name):
    for cls in (
        shmq.Full, shmq.Timeout, shmq.TooLarge, shmq.Corrupt, shmq.Incompatible,
        shmq.NotFound, shmq.Exists, shmq.InvalidName, shmq.InvalidOption,
        shmq.LeaseExpired, shmq.Aborted, shmq.DlqFull, shmq.Busy, shmq.Io, shmq.Closed,
    ):
        assert issubclass(cls, shmq.Error)
    with pytest.raises(shmq.NotFound, match="not found"):
        shmq.Queue.open(name)


def test_corrupt_and_incompatible_files(qdir, name):
    (qdir / f"{name}.shmq").write_bytes(b"not a queue" * 100)
    with pytest.raises(shmq.Corrupt, match="corrupt queue file"):
        shmq.Queue.open(name)
    (qdir / f"{name}.shmq").unlink()
    shmq.Queue.create(name, slots=8).close()
    with open(qdir / f"{name}.shmq", "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 999))
    with pytest.raises(shmq.Incompatible, match="layout version 999"):
        shmq.Queue.open(name)


def test_io_error_for_a_missing_directory(tmp_path, name):
    with pytest.raises((shmq.Io, shmq.NotFound)):
        shmq.Queue.create(name, dir=tmp_path / "does-not-exist")


def test_closed_queue_raises(qdir, name):
    q = shmq.Queue.create(name, slots=8)
    q.close()
    q.close()  # idempotent
    for call in (q.producer, q.stats, q.groups, lambda: q.consumer("g"), lambda: q.name, q.dlq.list):
        with pytest.raises(shmq.Closed):
            call()


def test_groups_seek_and_stats(qdir, name):
    q = shmq.Queue.create(name, slots=16)
    q.create_group("early")
    with pytest.raises(shmq.Exists):
        q.create_group("early")
    p = q.producer()
    for i in range(5):
        p.publish(b"m%d" % i)
    q.create_group("late", "latest")
    q.create_group("from3", 3)
    with pytest.raises(shmq.InvalidOption):
        q.create_group("bad", "middle")  # type: ignore[arg-type]
    with pytest.raises(shmq.InvalidName):
        q.create_group("g" * 49)
    groups = {g["name"]: g for g in q.groups()}
    assert groups["early"]["next"] == 0 and groups["early"]["lag"] == 5
    assert groups["late"]["next"] == 5 and groups["from3"]["next"] == 3
    st = q.stats()
    assert st["published"] == 5 and st["next_seq"] == 5 and st["producers"] == 1
    assert {g["name"] for g in st["groups"]} == {"early", "late", "from3"}

    assert q.seek("late", "earliest") == 0
    assert q.seek("early", 4) == 4
    assert q.seek("early", "latest") == 5
    ts = 0
    assert q.seek("early", time_ns=ts) == 0
    with pytest.raises(shmq.InvalidOption):
        q.seek("early")
    with pytest.raises(shmq.InvalidOption):
        q.seek("early", 1, time_ns=1)
    with pytest.raises(shmq.NotFound):
        q.seek("nobody", 0)
    c = q.consumer("late")
    assert bytes(c.receive(timeout=1)) == b"m0"
    assert c.seek(3) == 3
    assert bytes(c.receive(timeout=1)) == b"m3"
    assert c.seek("latest") == 5
    assert c.receive(timeout=0) is None
    c.close()
    q.delete_group("late")
    with pytest.raises(shmq.NotFound):
        q.delete_group("late")
    assert {g["name"] for g in q.groups()} == {"early", "from3"}


def test_group_busy_rules(qdir, name):
    q = shmq.Queue.create(name, slots=8)
    a = q.consumer("g", create=True)
    with pytest.raises(shmq.Busy):
        q.consumer("g")
    with pytest.raises(shmq.Busy):
        q.consumer("g", ack="manual")
    a.close()
    m1 = q.consumer("g", ack="manual")
    m2 = q.consumer("g", ack="manual")  # competing consumers
    with pytest.raises(shmq.Busy):
        q.consumer("g")
    assert (m1.ack, m2.ack, m1.group) == ("manual", "manual", "g")
    with pytest.raises(shmq.InvalidOption):
        q.consumer("h", ack="sometimes")  # type: ignore[arg-type]
    with pytest.raises(shmq.InvalidOption):
        q.consumer("h", start=-1)  # type: ignore[arg-type]


def test_argument_checks_speak_the_python_api(qdir, name):
    # A negative count or size is an InvalidOption naming it (the plain
    # conversion raised OverflowError).
    for kw in ("slots", "slot_size", "max_groups", "dlq_slots", "dedup_window", "spill_max_bytes"):
        with pytest.raises(shmq.InvalidOption, match=f"{kw} must be a whole number >= 0, got -1"):
            shmq.Queue.create(name, **{kw: -1})
    q = shmq.Queue.create(name, slots=16)
    c = q.consumer("g", create=True)
    p = q.producer()
    with pytest.raises(shmq.InvalidOption, match="max must be"):
        c.receive_many(-1)
    # The Python name, not the Rust one.
    with pytest.raises(shmq.InvalidOption, match="receive_many of 0") as info:
        c.receive_many(0)
    assert "receive_batch" not in str(info.value)
    with pytest.raises(shmq.InvalidOption, match="size must be"):
        p.reserve(-5)
    # timeout=True is a mistake, not one second.
    for call in (
        lambda: c.receive(timeout=True),
        lambda: c.receive_many(4, timeout=True),
        lambda: p.publish(b"x", timeout=True),
        lambda: p.publish_many([b"x"], timeout=False),
        lambda: p.reserve(1, timeout=True),
    ):
        with pytest.raises(TypeError, match="not a bool"):
            call()
    assert q.stats()["published"] == 0
    q.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_queue_of_another_user_is_refused_unless_trusted(qdir, name):
    shmq.Queue.create(name, slots=16, mode=0o660).close()
    path = os.path.join(str(qdir), name + ".shmq")
    os.chown(path, 4242, 4343)
    with pytest.raises(shmq.Io, match="owned by user 4242"):
        shmq.Queue.open(name)
    shmq.Queue.open(name, trust_owner=4242).close()
    shmq.Queue.open(name, trust_group=4343).close()
    with pytest.raises(shmq.Io, match="owned by user 4242"):
        shmq.Queue.open_or_create(name)
    shmq.Queue.open_or_create(name, trust_owner=4242).close()


def test_a_missing_group_is_created_only_when_asked(qdir, name):
    q = shmq.Queue.create(name, slots=8)
    with pytest.raises(shmq.NotFound, match='group "audti"'):
        q.consumer("audti", create=False)
    assert q.groups() == []
    q.consumer("audit", create=True).close()
    assert [g["name"] for g in q.groups()] == ["audit"]
    # Unsaid: still created (deprecated), and the warning names it.
    with pytest.warns(FutureWarning, match=r'consumer\("other"\) created group "other"'):
        q.consumer("other").close()
    assert [g["name"] for g in q.groups()] == ["audit", "other"]
    # An existing group needs no flag and gets no warning.
    q.consumer("audit").close()


def test_ordering_lanes_are_an_option(qdir, name):
    # One lane: every key waits for the key before it.
    q = shmq.Queue.create(name, slots=16, ordering_lanes=1)
    a = q.consumer("g", ack="manual", create=True)
    b = q.consumer("g", ack="manual")
    p = q.producer()
    p.publish(b"1", ordering_key="k1")
    p.publish(b"2", ordering_key="k2")
    m = a.receive(timeout=1)
    assert bytes(m) == b"1"
    assert b.try_receive() is None, "k2 shares k1's only lane: it waits"
    m.ack()
    assert bytes(b.receive(timeout=1)) == b"2"
    with pytest.raises(shmq.InvalidOption, match="ordering_lanes must be a power of two"):
        shmq.Queue.create(name + "-x", ordering_lanes=3)
