//! A received message (`Message`, borrowed in place) and a batch of them.

use super::*;
use crate::error::{Error, Result};
use crate::protocol::ring::Peek;
use crate::record::envelope::HeaderIter;
use crate::record::read::Body;
use std::marker::PhantomData;
use zerocopy::{FromBytes, Immutable, KnownLayout};

/// A received message: payload borrowed in place from shared memory, plus
/// its metadata.
pub struct Message<'a> {
    pub(super) seq: u64,
    /// Where its body lies: in a committed slot, a journal record or a
    /// dead-letter entry, held still while `'a` lasts.
    pub(super) body: Body,
    pub(super) timestamp_ns: u64,
    pub(super) type_id: u32,
    pub(super) correlation_id: u64,
    pub(super) attempt: u32,
    pub(super) _borrow: PhantomData<&'a [u8]>,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("seq", &self.seq)
            .field("len", &self.body.payload_len())
            .field("type_id", &self.type_id)
            .field("correlation_id", &self.correlation_id)
            .finish()
    }
}

impl<'m> Message<'m> {
    /// The whole body (envelope and payload), as stored.
    pub(crate) fn body(&self) -> (&[u8], bool) {
        self.body.stored()
    }
    /// The payload, in place in shared memory.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // The body is a committed slot's (or an entry's or record's, held
        // still) and not reused while the group's committed cursor is at
        // or below its seq, which holds until the delivery or batch
        // borrowing it ends.
        self.body.payload()
    }
    /// When the message expires, if it was published with a time to live
    /// of its own ([`Meta::ttl`](crate::Meta::ttl)): CLOCK_REALTIME ns. The
    /// queue's `message_ttl` is not included (it counts from
    /// [`timestamp_ns`](Self::timestamp_ns)). The bridges carry it as the
    /// header `shmq-expires-ns`.
    pub fn expires_ns(&self) -> Option<u64> {
        self.body.envelope().and_then(|e| e.expires_ns)
    }
    /// The ordering key it was published with ([`Meta::ordering_key`](crate::Meta::ordering_key)), in place.
    pub fn ordering_key(&self) -> Option<&[u8]> {
        self.body.envelope().and_then(|e| e.key)
    }
    /// Its headers, in the order they were published, in place
    /// ([`Meta::header`](crate::Meta::header)).
    pub fn headers(&self) -> HeaderIter<'_> {
        self.body
            .envelope()
            .map_or_else(HeaderIter::empty, |e| HeaderIter::of(&e))
    }
    /// The value of its first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
    /// The payload as a `T` (zerocopy), if it has `T`'s size and the slot
    /// offers `T`'s alignment (payloads are 8-byte aligned).
    pub fn value<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<&T> {
        T::ref_from_bytes(self.payload()).map_err(|_| Error::WrongType {
            len: self.body.payload_len(),
            type_name: std::any::type_name::<T>(),
            size: std::mem::size_of::<T>(),
            align: std::mem::align_of::<T>(),
        })
    }
    /// Position in the queue.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Publish time, CLOCK_REALTIME nanoseconds.
    #[inline]
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }
    /// The producer's type tag.
    #[inline]
    pub fn type_id(&self) -> u32 {
        self.type_id
    }
    /// The producer's correlation id.
    #[inline]
    pub fn correlation_id(&self) -> u64 {
        self.correlation_id
    }
    /// Delivery attempt: 1 for the first delivery (always, with
    /// ack=auto), more for a redelivery.
    #[inline]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Messages received together; one cursor update for all of them when
/// dropped.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use shmq::{ConsumerOptions, Options, Queue};
/// let q = Queue::create("doc-batch", &Options::new().dir(dir.path()).slots(16))?;
/// let mut c = q.consumer("g", ConsumerOptions::new())?;
/// q.producer()?.publish_batch(&[b"a", b"b", b"c"])?;
/// let batch = c.receive_batch(2, Duration::from_secs(1))?;
/// let got: Vec<Vec<u8>> = batch.iter().map(|m| m.payload().to_vec()).collect();
/// assert_eq!(got, [b"a", b"b"]);
/// drop(batch); // both are finished for the group here
/// assert!(c.receive_batch(8, Duration::ZERO)?.len() == 1);
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Batch<'c> {
    pub(super) consumer: &'c mut Consumer,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) count: usize,
}

impl Batch<'_> {
    /// The seq its consumer will look at next ([`Consumer::position`],
    /// which the batch's borrow of the consumer puts out of reach): the
    /// one after the batch's last.
    pub fn consumer_position(&self) -> u64 {
        self.consumer.position()
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.count
    }
    /// Whether no message came before the timeout.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The messages, in seq order.
    pub fn iter(&self) -> impl Iterator<Item = Message<'_>> + '_ {
        let mut pos = self.start;
        std::iter::from_fn(move || {
            while pos < self.end {
                let at = pos;
                match self.consumer.ring().peek(at) {
                    Peek::Ready(span) => {
                        pos += span;
                        if let Ok(m) = self.consumer.read(at) {
                            return Some(m);
                        }
                    }
                    Peek::Skip(span) => pos += span,
                    _ => pos += 1,
                }
            }
            None
        })
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("count", &self.count)
            .finish()
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.consumer.release(self.end);
    }
}
