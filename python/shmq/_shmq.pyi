"""Typed stubs of the shmq extension (checked by ``mypy.stubtest``)."""

import datetime
import os
import pathlib
import types
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, Literal, Optional, Protocol, TypedDict, Union, final

from typing_extensions import Buffer, Self

__version__: str
SLICE_SECONDS: float
"""Longest wait without the GIL before signals are looked at (0.05 s)."""
MAX_GROUP_NAME: int
"""Longest group name, in bytes (UTF-8)."""
MAX_ORDERING_KEY: int
"""Longest ordering key, in bytes (1024)."""
MAX_HEADERS: int
"""Most headers on one message (16)."""
MAX_HEADER_NAME: int
"""Longest header name, in bytes of UTF-8 (255)."""

def default_dir() -> pathlib.Path:
    """The directory queues live in when no ``dir`` is given: ``$SHMQ_DIR``,
    else ``/dev/shm`` (read at each call)."""

class _ArrayInterface(Protocol):
    # numpy's stubs declare ``__buffer__`` (PEP 688) only for Python 3.12
    # and later; before that an ndarray is known by its array interface.
    @property
    def __array_interface__(self) -> dict[str, Any]: ...

_Payload = Union[Buffer, bytes, bytearray, memoryview, _ArrayInterface]
"""What a publish takes: any C-contiguous object with the buffer protocol
(bytes, bytearray, memoryview, array.array, mmap, numpy arrays)."""

_Overflow = Literal["block", "reject", "spill"]
_Fallback = Literal["block", "reject"]
_OnExpiry = Literal["dead-letter", "discard"]
_Sync = Union[Literal["never", "always"], str]
"""``"never"``, ``"always"`` or ``"every-N"`` (N records): the last cannot
be a Literal, so any str type-checks and the runtime checks the rest."""

class _GroupStats(TypedDict):
    name: str
    next: int
    committed: int
    lag: int
    delivered: int
    redelivered: int
    acked: int
    nacked: int
    expired: int
    dead_lettered: int
    messages_expired: int
    in_flight: int
    oldest_unacked_age_ns: int
    oldest_unacked_key: Optional[bytes]
    busy_lanes: int
    consumers: int
    consumer_attached: bool
    created_ns: int

class _JournalStats(TypedDict):
    first_seq: int
    first_ns: Optional[int]
    next_seq: int
    journaled: int
    journaled_bytes: int
    segments: int
    bytes_on_disk: int
    expired: int
    skipped: int

class _Stats(TypedDict):
    name: str
    path: pathlib.Path
    slots: int
    slot_size: int
    max_message_size: int
    capacity: int
    file_size: int
    overflow: _Overflow
    next_seq: int
    oldest_seq: int
    depth: int
    depth_bytes: int
    published: int
    rejected: int
    deduplicated: int
    aborted: int
    producers: int
    consumers: int
    dlq_depth: int
    spilled: int
    spilled_bytes: int
    spill_depth: int
    spill_segments: int
    spill_bytes_on_disk: int
    spill_full: int
    spill_lost: int
    dlq_lost: int
    scheduled: int
    next_due_ns: Optional[int]
    scheduled_cancelled: int
    scheduled_lost: int
    spill_dir: Optional[pathlib.Path]
    why_full: Optional[str]
    journal: Optional[_JournalStats]
    groups: list[_GroupStats]

class _DeadLetter(TypedDict):
    seq: int
    group: str
    attempts: int
    redrives: int
    reason: Literal["nacked", "max-deliveries", "expired"]
    first_delivery_ns: int
    last_delivery_ns: int
    dead_lettered_ns: int
    timestamp_ns: int
    type_id: int
    correlation_id: int
    redriven: bool
    payload: bytes
    ordering_key: Optional[bytes]
    headers: list[tuple[str, bytes]]

class _Scheduled(TypedDict):
    id: int
    due_ns: int
    published_ns: int
    type_id: int
    correlation_id: int
    keyed: bool
    payload: bytes
    ordering_key: Optional[bytes]
    headers: list[tuple[str, bytes]]

_When = Union[datetime.datetime, float]
"""A time: an aware ``datetime.datetime``, or Unix seconds (``time.time()``)."""

_Bytes = Union[str, bytes]
"""An ordering key or a header value: bytes, or str (stored as UTF-8)."""
_Headers = Union[dict[str, _Bytes], Iterable[tuple[str, _Bytes]]]
"""Headers to publish: a dict, or (name, value) pairs (to repeat a name or
choose the order; a dict keeps its insertion order)."""

_Start = Union[Literal["earliest", "latest"], int]
_Path = Union[str, "os.PathLike[str]"]

class Error(Exception):
    """Base class of every shmq error; the message is the core's.

    Every class is ``shmq.X`` (its ``__module__`` is ``"shmq"``), so an
    error pickles: one raised in a multiprocessing worker reaches the parent
    as itself."""

    published: Optional[int]
    """On the error of a ``publish_many`` that stopped: how many of its
    first messages went in (0 if none); None on every other error."""
    first_seq: Optional[int]
    """On the error of a ``publish_many`` that stopped part-way: the seq of
    the first message that went in; None if none did, or another error."""
    redriven: Optional[int]
    """On the error of a ``dlq.redrive`` that left keyed dead letters behind
    (a ``Timeout``, ``Full`` or ``SpillFull``): how many went back to their
    groups; None on every other error."""
    left: Optional[int]
    """On that error: how many keyed dead letters stayed in the DLQ for want
    of ring room (the message says which group holds the ring)."""

class Full(Error):
    """The ring is full and the queue's overflow policy is reject: nothing
    was published, unless ``published`` (``publish_many``) says otherwise."""

class Timeout(Error):
    """A blocking call waited as long as it was allowed to."""

class TooLarge(Error):
    """The payload does not fit in a slot (larger than slot_size)."""

class Corrupt(Error):
    """A file is not a usable shmq file; nothing in it was trusted."""

class Incompatible(Error):
    """A queue file written by a different layout version of shmq."""

class NotFound(Error):
    """No such queue or group."""

class Exists(Error):
    """The queue or group already exists."""

class InvalidName(Error):
    """A queue or group name that is not allowed."""

class InvalidOption(Error):
    """An option or argument value that is not allowed."""

class LeaseExpired(Error):
    """The lease on a delivery was taken away before it was acknowledged."""

class Aborted(Error):
    """This producer's claim was aborted: the message was not published."""

class DlqFull(Error):
    """The dead-letter queue is full: the message was not dead-lettered."""

class SpillFull(Error):
    """The spill is full (its budget or its disk) and spill_fallback is reject: nothing was published."""

class Busy(Error):
    """A resource is held by someone else (a group's consumer, a table, an open delivery)."""

class Io(Error):
    """An operating-system call failed."""

class Closed(Error):
    """A closed handle, a finished message, or a handle made before fork() used in the child."""

@final
class Queue:
    """A queue: a ring file ``<dir>/<name>.shmq`` in shared memory.

    ``dir`` defaults to ``$SHMQ_DIR``, else ``/dev/shm``. Durations are in
    seconds. A Queue, like every handle, is a context manager that closes
    it, and may be used from several threads.
    """

    @staticmethod
    def create(
        name: str,
        *,
        slots: Optional[int] = None,
        slot_size: int = 1024,
        max_groups: int = 16,
        overflow: _Overflow = "block",
        lease: float = 30.0,
        max_deliveries: int = 5,
        dlq_slots: Optional[int] = None,
        dedup_window: int = 1024,
        dedup_ttl: float = 300.0,
        unblock_timeout: float = 5.0,
        mode: int = 0o600,
        dir: Optional[_Path] = None,
        spill_dir: Optional[_Path] = None,
        spill_max_bytes: int = 1 << 30,
        spill_segment_size: int = 64 << 20,
        spill_fallback: _Fallback = "block",
        sync: _Sync = "never",
        journal_max_age: Optional[float] = None,
        journal_max_bytes: int = 1 << 30,
        trust_owner: Optional[int] = None,
        trust_group: Optional[int] = None,
        ordering_lanes: int = 1024,
        max_message_size: Optional[int] = None,
        capacity: Optional[int] = None,
        max_in_flight: Optional[int] = None,
        message_ttl: Optional[float] = None,
        on_expiry: _OnExpiry = "dead-letter",
        delivery_delay: Optional[float] = None,
    ) -> "Queue":
        """Creates a queue (``Exists`` if it is there already).

        ``slots`` is a power of two; ``overflow`` is "block" (a publish waits
        for room), "reject" (it raises ``Full``) or "spill" (below); ``lease`` is the
        visibility timeout of an ack="manual" delivery; after
        ``max_deliveries`` a message goes to the dead-letter queue of
        ``dlq_slots`` entries of ``slot_size`` bytes (None: 1024, or enough
        for two messages of ``max_message_size``; a dead letter takes as
        many entries as it needs, and they take memory only once used);
        ``dedup_window`` keys are remembered for ``dedup_ttl`` seconds; a
        claim left uncommitted for ``unblock_timeout`` is aborted; ``mode`` is the file's mode.

        overflow="spill" sends what does not fit in the ring to segment files
        in ``spill_dir`` (default ``/var/tmp/shmq-<uid>/<name>``, or
        ``<name>-<hash>`` for a queue outside ``/dev/shm``), at most
        ``spill_max_bytes`` of them in segments of ``spill_segment_size``;
        past that ``spill_fallback`` ("block" or "reject": ``SpillFull``)
        applies. ``sync`` ("never", "always" or "every-N") says when spilled
        and journaled records are flushed to disk. ``journal_max_age``
        (seconds; None: no journal) keeps every message in a journal of at
        most ``journal_max_bytes``, so groups can seek far behind the ring.
        ``ordering_lanes`` (a power of two) is how many lanes an ack="manual"
        group's ordering keys hash into: keys sharing a lane wait for each
        other. ``max_message_size`` (bytes; None: as much as half the ring
        holds) is the largest message: one longer than ``slot_size`` takes
        consecutive slots (its seq is its first slot's, so seqs skip the
        others) and is still one buffer for its reader.

        ``slots`` (None: 4096) sizes the ring in messages of up to
        ``slot_size``; ``capacity`` sizes it in bytes instead (give one of
        the two): the most slots of ``slot_size`` that fit, a power of two,
        shared by messages of any length (with ``slot_size=32``, 64 MiB hold
        a million 16-byte events, or one frame of up to 32 MiB).

        ``max_in_flight`` (slots; None: 65536, or the ring's slots if
        fewer) is how far an ack="manual" group's dispatch may run ahead of
        its oldest unfinished message: when that many are out, receives
        wait for the oldest to be acked, nacked or dead-lettered. A leasing
        group's table takes 48 bytes per slot of it.

        ``message_ttl`` (seconds; None: none; at most 2^32 - 1 ms) is every
        message's time to live, from its timestamp (``publish(ttl=)`` may set
        a shorter one): a group that has not finished a message by then is
        not given it. ``on_expiry`` says what becomes of it: "dead-letter"
        (to the group's dead-letter queue with reason "expired"; delivered
        late instead if the DLQ is full) or "discard" (dropped); either way
        the group's ``messages_expired`` counts it.

        ``delivery_delay`` (seconds; None: none; at most 10 years) is the
        delay every message is published with (``publish(delay=,
        deliver_at=)`` may say otherwise): a message reaches no group before
        it has passed. Scheduled messages wait in the queue's store
        directory, ``spill_dir`` (``<spill_dir>/schedule``); a publish
        returns a schedule id, not a seq; ``publish_many`` schedules each
        message; ``reserve`` raises ``InvalidOption``.
        """

    @staticmethod
    def open(
        name: str,
        *,
        dir: Optional[_Path] = None,
        trust_owner: Optional[int] = None,
        trust_group: Optional[int] = None,
    ) -> "Queue":
        """Opens an existing queue (``NotFound`` if there is none).

        A queue file, or a spill, journal or DLQ directory, that another
        user owns or that others may write is refused (``Io``) unless
        ``trust_owner`` (a uid) or ``trust_group`` (a gid) trusts it: a
        queue shared between users on purpose names its owner or group
        here. This user and root are always trusted; the default spill
        directory is this user's own, ``/var/tmp/shmq-<uid>/<name>``."""

    @staticmethod
    def open_or_create(
        name: str,
        *,
        slots: Optional[int] = None,
        slot_size: int = 1024,
        max_groups: int = 16,
        overflow: _Overflow = "block",
        lease: float = 30.0,
        max_deliveries: int = 5,
        dlq_slots: Optional[int] = None,
        dedup_window: int = 1024,
        dedup_ttl: float = 300.0,
        unblock_timeout: float = 5.0,
        mode: int = 0o600,
        dir: Optional[_Path] = None,
        spill_dir: Optional[_Path] = None,
        spill_max_bytes: int = 1 << 30,
        spill_segment_size: int = 64 << 20,
        spill_fallback: _Fallback = "block",
        sync: _Sync = "never",
        journal_max_age: Optional[float] = None,
        journal_max_bytes: int = 1 << 30,
        trust_owner: Optional[int] = None,
        trust_group: Optional[int] = None,
        ordering_lanes: int = 1024,
        max_message_size: Optional[int] = None,
        capacity: Optional[int] = None,
        max_in_flight: Optional[int] = None,
        message_ttl: Optional[float] = None,
        on_expiry: _OnExpiry = "dead-letter",
        delivery_delay: Optional[float] = None,
    ) -> "Queue":
        """Opens the queue, creating it with these options if it is not there."""

    @staticmethod
    def remove(name: str, *, dir: Optional[_Path] = None, force: bool = False) -> None:
        """Deletes the queue file (``NotFound`` if there is none). ``Busy``,
        naming their pids, while consumers are attached (they would go on
        reading the removed file and never see a queue made again under its
        name), unless ``force``."""

    @property
    def name(self) -> str:
        """The queue's name."""

    @property
    def path(self) -> pathlib.Path:
        """Path of the queue file."""

    @property
    def spill_dir(self) -> Optional[pathlib.Path]:
        """The spill directory (overflow="spill"), else None."""

    @property
    def slots(self) -> int:
        """Ring capacity in messages."""

    @property
    def slot_size(self) -> int:
        """Largest payload in bytes."""

    @property
    def overflow(self) -> str:
        """The overflow policy ("block", "reject" or "spill")."""

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (always True in a child after fork)."""

    @property
    def dlq(self) -> "DeadLetters":
        """The dead-letter queue."""

    def producer(self) -> "Producer":
        """A new producer (use one per thread; ``Busy`` when every producer record is taken)."""

    def consumer(
        self,
        group: str,
        *,
        ack: Literal["auto", "manual"] = "auto",
        start: Optional[_Start] = None,
        wait: Literal["spin-futex", "spin-yield", "busy-spin"] = "spin-futex",
        create: Optional[bool] = None,
    ) -> "Consumer":
        """The consumer of ``group``. ``create=True`` creates the group from
        ``start`` ("earliest" (default), "latest" or a seq) if it does not
        exist; ``create=False`` raises ``NotFound`` for a missing group (a
        typo makes no group to hold the ring full). Unsaid, a missing group
        is created with a ``FutureWarning`` naming it: deprecated, a later
        version will refuse it.

        ack="auto" is at-most-once and allows one live consumer per group;
        ack="manual" is at-least-once with any number of competing
        consumers, each holding one delivery at a time. ``wait`` is how a
        blocking receive waits: spin, then sleep on a futex (default); spin
        and yield the core; or busy-spin.
        """

    def create_group(self, group: str, start: Optional[_Start] = None) -> None:
        """Creates a group (``Exists`` if it is there); from now on the queue
        keeps every message for it until it has consumed it."""

    def delete_group(self, group: str) -> None:
        """Deletes a group and its cursor (``NotFound`` if there is none)."""

    def groups(self) -> list[_GroupStats]:
        """Every group, as dicts (name, next, committed, lag, delivered,
        redelivered, acked, nacked, expired, dead_lettered, messages_expired, in_flight,
        oldest_unacked_age_ns, oldest_unacked_key, busy_lanes, consumers,
        consumer_attached, created_ns)."""

    def seek(self, group: str, to: Optional[_Start] = None, *, time_ns: Optional[int] = None) -> int:
        """Moves a group with no live consumer to "earliest", "latest", a seq,
        or the first message published at or after ``time_ns``; returns the
        seq it will receive next. Without a journal only the messages from
        ``stats()["oldest_seq"]`` on are retained (the slowest group's
        cursor when a producer last needed room: after a busy stretch, as
        few as an eighth of the ring); a seek before that is clamped, and
        the seq returned says where it landed."""

    def stats(self) -> _Stats:
        """A snapshot of counters and cursors: name, path, slots, slot_size, file_size (bytes of the queue file, all taken at create),
        overflow, next_seq, oldest_seq, depth, published, rejected,
        deduplicated, aborted, producers, consumers, dlq_depth, the spill's
        spilled, spilled_bytes, spill_depth, spill_segments,
        spill_bytes_on_disk, spill_full, spill_lost and spill_dir, why_full
        (while the ring is full or the queue spills: what holds it, as
        ``why_full()`` says; else None), journal
        (None, or a dict: first_seq, first_ns, next_seq, journaled,
        journaled_bytes, segments, bytes_on_disk, expired), the schedule's
        scheduled (messages waiting for their time), next_due_ns (when the
        earliest is due, CLOCK_REALTIME ns; None if none is) and
        scheduled_cancelled, scheduled_lost, and groups (a list of dicts as ``groups()``)."""

    def scheduled(self, limit: int = 100) -> list[_Scheduled]:
        """The first ``limit`` messages scheduled for later (``publish(delay=,
        deliver_at=)``, ``delivery_delay``), earliest due first, as dicts:
        id (the schedule id its publish returned), due_ns and published_ns
        (CLOCK_REALTIME ns), type_id, correlation_id, keyed (published with
        an idempotency ``key``), payload (bytes), ordering_key (bytes or
        None) and headers (a list of (str, bytes)). The schedule is read
        whole up to them, payloads included: ask for what you need
        (``stats()["scheduled"]`` says how many there are)."""

    def cancel_scheduled(self, id: int) -> bool:
        """Cancels scheduled message ``id`` (its publish's return): it will
        not be delivered. False if no message of that id is scheduled (it
        came due and went into the ring, or was cancelled before)."""

    def cancel_scheduled_key(self, key: Union[str, bytes]) -> bool:
        """Cancels the scheduled message published with idempotency key
        ``key`` (the earliest due if several are); False if there is none.
        The key stays remembered: a publish with it again is still a
        duplicate while the queue remembers it."""

    def why_full(self) -> str:
        """Why a publish finds (or would find) no room: the group that holds
        the ring (or that there is none), or for a spilling queue its full
        ``spill_max_bytes`` budget or disk, with the option that helps."""

    def flush(self) -> None:
        """Flushes the mapping to its file (for a queue on a disk path)."""

    def close(self) -> None:
        """Drops this handle's mapping; producers and consumers made from it
        keep working. Idempotent."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...

@final
class DeadLetters:
    """The dead-letter queue of a queue (``Queue.dlq``)."""

    def list(self) -> list[_DeadLetter]:
        """Copies of every dead letter, oldest first: seq, group, attempts,
        reason ("nacked" or "max-deliveries"), first_delivery_ns,
        last_delivery_ns, dead_lettered_ns, timestamp_ns, type_id,
        correlation_id, redriven, redrives, payload (bytes), ordering_key
        (bytes or None) and headers (a list of (str, bytes)).

        ``attempts`` and ``reason`` are those of its dead-lettering and stay
        through a redrive; ``redrives`` counts the redrives. A redriven
        message starts a fresh delivery budget: its ``attempt`` is 1 again."""

    def redrive(self, seq: Optional[int] = None, timeout: float = 0.0) -> int:
        """Delivers dead letters (all, or the one with this seq) again to the
        group that dead-lettered them, and only to it; returns how many.

        A keyed dead letter goes back through the ring, to the end of its
        key, and needs room there: it waits up to ``timeout`` seconds for
        it. Those still without room stay in the DLQ, and the call raises
        ``Timeout`` (or ``Full``/``SpillFull``, the queue's overflow policy)
        with ``redriven`` and ``left`` set and a message naming the group
        that holds the ring."""

    def purge(self) -> int:
        """Deletes every dead letter; returns how many."""

    def __len__(self) -> int: ...

@final
class Producer:
    """Publishes messages. Cheap; use one per thread (a shared one is safe,
    its calls are serialised)."""

    def publish(
        self,
        data: _Payload,
        type_id: int = 0,
        correlation_id: int = 0,
        key: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
        ordering_key: Optional[_Bytes] = None,
        headers: Optional[_Headers] = None,
        ttl: Optional[float] = None,
        delay: Optional[float] = None,
        deliver_at: Optional[_When] = None,
    ) -> int:
        """Publishes ``data`` (bytes or anything with the buffer protocol, one
        C-contiguous run, copied once into the slot); returns its seq.

        A full ring waits (overflow="block", at most ``timeout`` seconds,
        then ``Timeout``; the GIL is released and Ctrl-C works) or raises
        ``Full`` (overflow="reject"). With ``key``, a publish that repeats a
        key the queue remembers enqueues nothing and returns the first
        message's seq. ``TooLarge`` past slot_size.

        ``ordering_key`` (1 to ``MAX_ORDERING_KEY`` bytes) and ``headers``
        (at most ``MAX_HEADERS``; names of 1 to ``MAX_HEADER_NAME`` bytes;
        a dict, or (name, value) pairs to repeat a name) travel with the
        message (``Message.ordering_key``, ``Message.headers``) through the
        spill, the journal and the dead-letter queue, and count against
        slot_size (``TooLarge``). In an ack="manual" group a key's messages
        are leased in order. Past a limit: ``InvalidOption``; a value that
        is not str or bytes: ``TypeError``. Not the idempotency ``key``.

        ``ttl`` (seconds) is the message's time to live: a group that has not
        finished it by then is not given it (see ``Queue.create``'s
        ``on_expiry``); a message already received is not taken back.

        ``delay`` (seconds) or ``deliver_at`` (an aware ``datetime``, or
        Unix seconds as ``time.time()`` gives them; a naive ``datetime`` is
        refused with ``InvalidOption``, its zone being unknown) schedules
        the message for later: it reaches no group before then, waiting in
        the queue's store directory (``spill_dir``), and the publish returns
        its *schedule id* (``Queue.scheduled``, ``Queue.cancel_scheduled``)
        instead of a seq. It gets its seq when it is due and enters the
        ring, and its ``ttl`` counts from then. A delay of 0 or a time
        already past publishes at once (``delay=0`` also overrides the
        queue's ``delivery_delay``). Not both (``InvalidOption``).
        """

    def publish_many(self, items: Iterable[_Payload], timeout: Optional[float] = None) -> int:
        """Publishes every message of ``items`` with as few claims as possible
        and one wake-up; returns the seq of the first (the others follow in
        order). ``timeout`` bounds each wait for room.

        If it stops part-way (``Full`` with overflow="reject" and a batch
        larger than the ring, ``Timeout``, ``SpillFull``, ``Aborted``), the
        exception's ``published`` says how many of the first messages went
        in and ``first_seq`` the seq of the first of them (None if none
        did), and its message says so: publish ``items[e.published:]``
        again, never the whole batch."""

    def reserve(
        self,
        size: int,
        type_id: int = 0,
        correlation_id: int = 0,
        timeout: Optional[float] = None,
    ) -> "Reservation":
        """Claims room for ``size`` bytes (any size up to ``max_payload``:
        one buffer, however many slots it takes) to write in place::

            with producer.reserve(len(frame)) as buf:   # a writable memoryview
                buf[:] = frame                         # committed on exit
        """

    def publish_async(
        self,
        data: _Payload,
        type_id: int = 0,
        correlation_id: int = 0,
        key: Union[str, bytes, None] = None,
        timeout: Optional[float] = None,
        ordering_key: Optional[_Bytes] = None,
        headers: Optional[_Headers] = None,
        ttl: Optional[float] = None,
        delay: Optional[float] = None,
        deliver_at: Optional[_When] = None,
    ) -> Coroutine[Any, Any, int]:
        """``await producer.publish_async(data, ...)``: ``publish`` that waits
        for room without blocking the event loop (asyncio, uvloop): the same
        keywords and errors; ``timeout`` bounds the wait (then ``Timeout``).
        Cancelled while waiting, nothing was published. Several tasks may
        await one producer at once (each woken to try again)."""

    def fileno(self) -> int:
        """The producer's readiness fd, readable once armed and consumers may
        have freed room (what ``publish_async`` waits on). It belongs to the
        producer and closes with it; at most 64 per queue (``Busy``)."""

    def _arm(self) -> tuple[bool, Optional[float]]: ...
    def _drain(self) -> None: ...
    def _disarm(self) -> None: ...
    def why_full(self) -> str:
        """Why a publish finds (or would find) no room (``Queue.why_full``);
        a publish that waited and timed out says it too."""

    @property
    def deduplicated(self) -> int:
        """How many of this producer's keyed publishes (``key=``) found their
        key already published: each returned the earlier seq, and nothing
        went in."""

    @property
    def max_payload(self) -> int:
        """Largest payload this queue takes (its max_message_size; an
        ordering key and headers count against it too)."""

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (always True in a child after fork)."""

    def close(self) -> None:
        """Aborts an open reservation and gives the producer's record back. Idempotent."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...

@final
class Reservation:
    """A claimed slot being written in place: commit publishes it, abort (or
    dropping it) gives the position up. As a context manager it yields a
    writable memoryview and commits on a clean exit, aborts on an exception."""

    @property
    def data(self) -> memoryview:
        """A writable memoryview over the slot, valid until commit or abort."""

    @property
    def seq(self) -> int:
        """The seq the message will have."""

    def __len__(self) -> int: ...
    def commit(self, size: Optional[int] = None) -> int:
        """Publishes the message (its first ``size`` bytes, default all);
        returns its seq. ``BufferError`` while buffers over the slot other
        than the memoryviews handed out are alive; ``Aborted`` if it was held
        longer than unblock_timeout."""

    def abort(self) -> None:
        """Gives the slot up: consumers skip its position."""

    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        _exc: Optional[BaseException] = None,
        _tb: Optional[types.TracebackType] = None,
    ) -> bool: ...

@final
class Consumer:
    """The consumer of one group: messages in seq order.

    Holds one delivery (or batch) at a time: with ack="auto" the next
    receive finishes the previous message; with ack="manual" the previous
    one must be acked or nacked first (``Busy``); dropping it unacked gives
    it back at once. An ack="auto" message's slot is released by ``ack()``,
    the next receive or ``close()``. Iterating blocks for the
    next message. Safe to share between threads (calls are serialised),
    but one consumer per thread is the way to go fast.
    """

    @property
    def group(self) -> str:
        """The group's name."""

    @property
    def position(self) -> int:
        """The seq this consumer will look at next: its cursor (also with a
        message or batch open; a redelivery of an older one does not move
        it)."""

    @property
    def ack(self) -> str:
        """"auto" or "manual"."""

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called (always True in a child after fork)."""

    def receive(self, timeout: Optional[float] = None) -> Optional["Message"]:
        """The next message, or None if ``timeout`` seconds pass first
        (None: wait for ever; 0: only look). Waits without the GIL, and
        Ctrl-C raises KeyboardInterrupt within 0.1 s."""

    def try_receive(self) -> Optional["Message"]:
        """The next message if one is ready, else None, without waiting (the
        busy-polling call: ``receive(timeout=0)`` without a timeout to parse)."""

    def receive_many(self, max: int, timeout: Optional[float] = None) -> "Batch":
        """Up to ``max`` ready messages (ack="auto" only), waiting at most
        ``timeout`` seconds for the first; an empty batch if none came.
        No Python object is made per message until one is looked at."""

    def seek(self, to: Optional[_Start] = None, *, time_ns: Optional[int] = None) -> int:
        """Moves the group (replay or skip); returns the seq it will receive
        next, later than asked if that one is no longer retained (see
        ``Queue.seek``)."""

    def close(self) -> None:
        """Ends the open message (ack="manual": gives it back) and detaches
        from the group. Idempotent."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> "Message": ...
    def receive_async(self, timeout: Optional[float] = None) -> Coroutine[Any, Any, Optional["Message"]]:
        """``await consumer.receive_async(timeout=None)``: the next message, or
        None after ``timeout`` seconds, without blocking the event loop
        (asyncio's own or uvloop: the wait is ``loop.add_reader`` on
        ``fileno()``). Cancelled (``asyncio.wait_for``, ``task.cancel()``), it
        loses no message. ``async for m in consumer`` receives for ever.
        Several tasks may await one consumer at once: each wake-up wakes all
        of them to try again; from a second event loop it raises ``Busy``."""

    def fileno(self) -> int:
        """The consumer's readiness fd (what ``receive_async`` waits on), for
        any event loop: ``try_receive`` until None, then wait for it to be
        readable. It belongs to the consumer and closes with it; at most 64
        per queue (``Busy``)."""

    def _arm(self) -> tuple[bool, Optional[float]]: ...
    def _drain(self) -> None: ...
    def _disarm(self) -> None: ...
    def __aiter__(self) -> Self: ...
    def __anext__(self) -> Coroutine[Any, Any, "Message"]: ...

@final
class Message:
    """One received message.

    ``data`` is a read-only memoryview over the slot in shared memory,
    valid until the message is finished: acked, nacked, released by the
    next receive (ack="auto"), or its consumer closed. Finishing releases
    the memoryviews ``data`` handed out (touching one then raises
    ValueError) and raises ``BufferError`` while derived buffers (slices,
    numpy arrays) are alive. ``bytes(message)`` copies. As a context manager
    it acks on a clean exit and gives the message back (ack="manual") on an
    exception.
    """

    @property
    def data(self) -> memoryview:
        """The payload, in place in shared memory (read-only)."""

    def __bytes__(self) -> bytes: ...
    def __len__(self) -> int: ...
    @property
    def seq(self) -> int:
        """Position in the queue."""

    @property
    def timestamp_ns(self) -> int:
        """Publish time, CLOCK_REALTIME nanoseconds."""

    @property
    def type_id(self) -> int:
        """The producer's type tag."""

    @property
    def correlation_id(self) -> int:
        """The producer's correlation id."""

    @property
    def attempt(self) -> int:
        """Delivery attempt: 1 for the first delivery."""

    @property
    def ordering_key(self) -> Optional[bytes]:
        """The ordering key it was published with, or None (a copy, readable
        after it is finished)."""

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """Its headers, in the order they were published (names may repeat):
        copies, readable after it is finished."""

    def header(self, name: str) -> Optional[bytes]:
        """The value of its first header called ``name``, or None."""

    @property
    def group(self) -> str:
        """The group it was delivered to."""

    @property
    def finished(self) -> bool:
        """Whether it is finished (its data can no longer be read)."""

    def ack(self) -> None:
        """Finishes the message for the group (ack="manual"; ``LeaseExpired``
        if its lease was taken away), or releases its slot at once
        (ack="auto", where it is a no-op once released)."""

    def nack(self, delay: Optional[float] = None, dead_letter: bool = False) -> None:
        """Gives the message back (ack="manual"): deliver it again now, after
        ``delay`` seconds, or move it to the dead-letter queue
        (``DlqFull`` if that is full)."""

    def extend_lease(self, seconds: float) -> None:
        """Extends the lease (ack="manual") to ``seconds`` from now."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        _exc: Optional[BaseException] = None,
        _tb: Optional[types.TracebackType] = None,
    ) -> bool: ...

@final
class Batch:
    """Messages received together by ``receive_many`` (ack="auto"): a
    sequence of ``Message``, released together by ``release()``, the next
    receive or ``close()``."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Message: ...
    def __iter__(self) -> Iterator[Message]: ...
    @property
    def first_seq(self) -> Optional[int]:
        """Seq of the first message (None if empty)."""

    @property
    def last_seq(self) -> Optional[int]:
        """Seq of the last message (None if empty)."""

    @property
    def nbytes(self) -> int:
        """Total payload bytes."""

    @property
    def released(self) -> bool:
        """Whether it is released."""

    def payloads(self) -> list[bytes]:
        """Copies of the payloads."""

    def release(self) -> None:
        """Releases the batch's slots."""

    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...

@final
class BatchIter:
    """Iterator over a batch's messages."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> Message: ...

def _after_fork_in_child() -> None:
    """Marks handles made before fork() as the parent's (os.register_at_fork)."""
