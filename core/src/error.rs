//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong, with what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ring is full and the queue's overflow policy is `reject`: nothing
    /// was published. Retry later, or consume faster.
    #[error("queue is full (overflow=reject): nothing was published; retry or consume faster")]
    Full,
    /// A blocking call waited as long as it was allowed to.
    #[error("timed out")]
    Timeout,
    /// The message is larger than the queue's `max_message_size`: its
    /// payload, and its ordering key and headers (which are stored in
    /// front of the payload, with a few bytes of framing) count together.
    #[error("{}", too_large(*len, *max, *payload, *ordering_key, *headers))]
    TooLarge {
        /// Bytes the message needs.
        len: usize,
        /// The queue's `max_message_size`.
        max: usize,
        /// Of `len`, the payload's bytes.
        payload: usize,
        /// Of `len`, the ordering key's bytes.
        ordering_key: usize,
        /// Of `len`, the headers' names and values; the rest of `len` is
        /// the envelope's framing.
        headers: usize,
    },
    /// A file is not a usable shmq file: foreign, truncated, garbled or
    /// half-initialized. Nothing in it was trusted.
    #[error("{}: corrupt queue file: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A file written by a different layout version of shmq.
    #[error(
        "{}: queue file has layout version {found}, this shmq reads version {expected}{}",
        path.display(),
        if found < expected {
            " (it was made by an older shmq: drain it with that version, then remove and \
             recreate it)"
        } else {
            " (it was made by a newer shmq: use that version)"
        }
    )]
    Incompatible {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// No such queue or group.
    #[error("{0} not found")]
    NotFound(String),
    /// The queue or group already exists.
    #[error("{0} already exists")]
    Exists(String),
    /// A queue or group name that is not allowed.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An option value that is not allowed.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A payload read as a type it is not: its length (or alignment) does
    /// not fit the type (`Delivery::value`).
    #[error("payload of {len} bytes is not a {type_name} ({size} bytes, align {align})")]
    WrongType {
        /// Bytes of the payload.
        len: usize,
        /// The type asked for.
        type_name: &'static str,
        /// Its size in bytes.
        size: usize,
        /// Its alignment in bytes.
        align: usize,
    },
    /// The lease on a delivery was taken away before it was acknowledged;
    /// the payload must be treated as gone. An ack=manual `receive` returns
    /// it too when its process was stopped (or starved) for longer than the
    /// lease after taking a message and before reading it, and no other
    /// message was ready: that message goes to another consumer; receive
    /// again.
    #[error("lease expired: the message was or will be redelivered; treat its payload as gone")]
    LeaseExpired,
    /// This producer's claim was aborted (it was stalled for longer than
    /// `unblock_timeout`, or the ring was seeked past it): the message was
    /// not published. Publish it again if it still matters.
    #[error(
        "claim aborted: this producer was stalled longer than unblock_timeout; the message was not published"
    )]
    Aborted,
    /// The dead-letter queue is full: the message was not dead-lettered and
    /// stays leased to the caller (nack) or in its group (after
    /// max_deliveries). Redrive or purge dead letters (`shmq dlq`).
    #[error(
        "dead-letter queue is full ({0} entries): the message stays leased; redrive or purge dead letters"
    )]
    DlqFull(u64),
    /// The message is larger than the whole dead-letter region holds (a
    /// queue made with `dlq_slots` set too low for its `max_message_size`;
    /// by default the region holds the largest message): it was not
    /// dead-lettered and stays leased (nack) or in its group (after
    /// max_deliveries), as with a full dead-letter queue. The C and
    /// Python faces report it as their dead-letter-queue-full error.
    #[error(
        "message of {len} bytes is larger than the whole dead-letter region ({max} bytes): it was not dead-lettered and stays leased"
    )]
    DlqTooLarge {
        /// The message's bytes (payload and envelope).
        len: usize,
        /// The most a dead letter may hold: the region's `dlq_slots`
        /// entries taken as one run.
        max: usize,
    },
    /// The ring is full and so is the spill (its `spill_max_bytes` budget,
    /// or its disk), and the queue's `spill_fallback` is `reject`: nothing
    /// was published. Consume faster, raise the budget or free the disk.
    #[error("queue and its spill are full: {0}; nothing was published")]
    SpillFull(String),
    /// A resource is held by someone else: the group already has a live
    /// consumer, or a table in the queue file is full.
    #[error("busy: {0}")]
    Busy(String),
    /// A batch went in only in part: its first `published` messages were
    /// published, from seq `first_seq` on (consecutively, unless a slot
    /// held by a stalled producer moved the rest one on), and the other
    /// `total - published` were not, for `cause` (`Full`, `SpillFull`,
    /// `Aborted`, `Timeout`). Retry only those: publishing the whole batch
    /// again would duplicate what went in.
    #[error(
        "only {published} of the batch's {total} messages were published (from seq {first_seq}); \
         the other {} were not, because {}: retry only those",
        total - published,
        cause.reason()
    )]
    PartlyPublished {
        /// The seq of the first message published.
        first_seq: u64,
        /// How many of the batch's messages went in (its first ones).
        published: usize,
        /// How many messages the batch had.
        total: usize,
        /// Why the rest did not.
        #[source]
        cause: Box<Error>,
    },
    /// A redrive went in only in part: `redriven` dead letters went back
    /// to their groups, and `left` keyed ones asked for stayed in the
    /// dead-letter queue, because a keyed dead letter goes back through
    /// the ring and it had no room (`cause`: `Timeout`, or the queue's
    /// `Full`/`SpillFull`); `why` says what holds the ring. Redrive again
    /// once there is room: those already redriven do not go twice.
    #[error(
        "redrove {redriven} dead letter(s); {left} keyed one(s) stayed in the dead-letter \
         queue, because {} (a keyed dead letter goes back through the ring): {why}",
        cause.reason()
    )]
    PartlyRedriven {
        /// Dead letters that went back to their groups.
        redriven: u64,
        /// Keyed dead letters that stayed in the DLQ.
        left: u64,
        /// What holds the ring (`Queue::why_full`).
        why: String,
        /// `Timeout`, `Full` or `SpillFull`.
        #[source]
        cause: Box<Error>,
    },
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The words of [`Error::TooLarge`]: the payload, key and headers apart.
fn too_large(len: usize, max: usize, payload: usize, key: usize, headers: usize) -> String {
    if len == payload {
        return format!(
            "payload of {len} bytes is larger than the queue's max_message_size of {max} bytes"
        );
    }
    format!(
        "message of {len} bytes is larger than the queue's max_message_size of {max} bytes: a \
         payload of {payload} bytes, an ordering key of {key} bytes, headers of {headers} bytes \
         and {} bytes of their framing (the ordering key and headers are stored with the payload)",
        len.saturating_sub(payload + key + headers)
    )
}

impl Error {
    /// Why the rest of a batch did not go in, as a clause.
    fn reason(&self) -> String {
        match self {
            Error::Full => "the queue is full (overflow=reject)".into(),
            Error::Timeout => "the queue stayed full until the timeout".into(),
            Error::Aborted => {
                "a claim was aborted (this producer was stalled longer than unblock_timeout)".into()
            }
            Error::SpillFull(s) => format!("the queue and its spill are full ({s})"),
            e => e.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
