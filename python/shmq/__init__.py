"""shmq — a broker-less, zero-copy message queue for processes on one host.

A queue is a file in shared memory (``/dev/shm`` by default, or
``$SHMQ_DIR``, or ``dir=``). Producers publish into a lock-free ring;
every consumer group sees every message, in seq order; consumers in one
group compete with ``ack="manual"``. See ``shmq._shmq`` (and its stubs) for
every class.

Zero-copy: ``Message.data`` is a read-only memoryview over the slot in
shared memory, valid until the message is finished (acked, nacked, released
by the next ``receive`` with ack="auto", or its consumer closed). Finishing
it releases the memoryviews ``.data`` handed out; touching one afterwards
raises ``ValueError``. If buffers derived from it (slices, numpy arrays)
are still alive, finishing raises ``BufferError`` instead — as
``mmap.close()`` does — so nothing ever reads a reused slot. Copy with
``bytes(message)`` to keep data.

Fork: handles (Queue, Producer, Consumer, Message) made before ``fork()``
belong to the parent: in the child they raise ``shmq.Closed`` and are
never closed or given back (that would end the parent's), so open the
queue again in the child. ``multiprocessing`` with the "spawn" or
"forkserver" start method never inherits them.
"""

import os as _os

from ._shmq import (
    Aborted,
    Batch,
    Busy,
    Closed,
    Consumer,
    Corrupt,
    DeadLetters,
    DlqFull,
    Error,
    Exists,
    Full,
    Incompatible,
    InvalidName,
    InvalidOption,
    Io,
    LeaseExpired,
    MAX_GROUP_NAME,
    MAX_HEADER_NAME,
    MAX_HEADERS,
    MAX_ORDERING_KEY,
    Message,
    NotFound,
    Producer,
    Queue,
    Reservation,
    SpillFull,
    Timeout,
    TooLarge,
    __version__,
    _after_fork_in_child,
    default_dir,
)

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "Aborted",
    "Batch",
    "Busy",
    "Closed",
    "Consumer",
    "Corrupt",
    "DeadLetters",
    "DlqFull",
    "Error",
    "Exists",
    "Full",
    "Incompatible",
    "InvalidName",
    "InvalidOption",
    "Io",
    "LeaseExpired",
    "MAX_GROUP_NAME",
    "MAX_HEADER_NAME",
    "MAX_HEADERS",
    "MAX_ORDERING_KEY",
    "Message",
    "NotFound",
    "Producer",
    "Queue",
    "Reservation",
    "SpillFull",
    "Timeout",
    "TooLarge",
    "__version__",
    "default_dir",
]
