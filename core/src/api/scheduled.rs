//! The queue's scheduled messages, listed and cancelled
//! ([`Queue::scheduled`], [`Queue::cancel_scheduled`]).

use crate::api::queue::Queue;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::options::key_hash;
use crate::record::envelope;
use crate::store::schedule::Found;

/// A message scheduled for later, as [`Queue::scheduled`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// Its schedule id (what its publish returned; what
    /// [`Queue::cancel_scheduled`] takes).
    pub id: u64,
    /// When it is due, CLOCK_REALTIME nanoseconds.
    pub due_ns: u64,
    /// When it was published, CLOCK_REALTIME nanoseconds.
    pub published_ns: u64,
    /// The producer's type tag.
    pub type_id: u32,
    /// The producer's correlation id.
    pub correlation_id: u64,
    /// Whether it was published with an idempotency key
    /// ([`Meta::key`](crate::Meta::key)); cancel it by that key with
    /// [`Queue::cancel_scheduled_key`].
    pub keyed: bool,
    /// The payload.
    pub payload: Vec<u8>,
    /// The ordering key it was published with.
    pub ordering_key: Option<Vec<u8>>,
    /// The headers it was published with, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// When it expires, if it was published with a time to live
    /// ([`Meta::ttl`](crate::Meta::ttl), counted from its due time),
    /// CLOCK_REALTIME ns.
    pub expires_ns: Option<u64>,
}

impl Queue {
    /// The first `limit` scheduled messages, earliest due first (the
    /// schedule is read under its lock; with a million messages scheduled
    /// a listing of all of them is a second's work and a gigabyte).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use shmq::{Meta, Options, Queue};
    /// let q = Queue::create("doc-scheduled", &Options::new().dir(dir.path()).spill_dir(dir.path().join("store")))?;
    /// let mut p = q.producer()?;
    /// let hour = Duration::from_secs(3600);
    /// let late = p.publish_with(b"in two hours", &Meta::new().delay(2 * hour))?;
    /// let soon = p.publish_with(b"in an hour", &Meta::new().delay(hour).key("reminder-7"))?;
    /// let listed = q.scheduled(10)?;
    /// assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), [soon, late]);
    /// assert_eq!(listed[0].payload, b"in an hour");
    /// assert!(q.cancel_scheduled(late)?);
    /// assert!(q.cancel_scheduled_key("reminder-7")?);
    /// assert_eq!((q.stats().scheduled, q.stats().scheduled_cancelled), (0, 2));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn scheduled(&self, limit: usize) -> Result<Vec<Scheduled>> {
        if self.shared.header().schedule.made.load(Ordering::Acquire) == 0 {
            // Nothing was ever scheduled: no need to make the directory.
            return Ok(Vec::new());
        }
        let mut g = self
            .shared
            .schedule_lock(true)?
            .expect("a waiting take always takes");
        let mut first: Vec<_> = g.files().entries()?.to_vec();
        first.sort_unstable_by_key(|e| (e.due_ns, e.id));
        let mut out = Vec::with_capacity(limit.min(first.len()));
        for e in &first {
            if out.len() == limit {
                break;
            }
            // Done or damaged ones are the mover's to clear and report;
            // the listing shows what will be delivered.
            let Found::Whole(s) = g.files().read(e)? else {
                continue;
            };
            let o = envelope::owned(&s.body, s.enveloped);
            out.push(Scheduled {
                id: s.id,
                due_ns: s.due_ns,
                published_ns: s.timestamp_ns,
                type_id: s.type_id,
                correlation_id: s.correlation_id,
                keyed: s.key != 0,
                payload: o.payload,
                ordering_key: o.ordering_key,
                headers: o.headers,
                expires_ns: o.expires_ns,
            });
        }
        Ok(out)
    }

    /// Cancels scheduled message `id` (its publish's return): it will not
    /// be delivered. `false` if no message of that id is scheduled (it
    /// came due and was moved into the ring, or was cancelled before).
    pub fn cancel_scheduled(&self, id: u64) -> Result<bool> {
        self.cancel_where(|files| files.find(id))
    }

    /// Cancels the scheduled message published with idempotency key `key`
    /// ([`Meta::key`](crate::Meta::key)); the earliest due if several are.
    /// The key stays remembered (a publish with it again is still a
    /// duplicate while the queue remembers it).
    pub fn cancel_scheduled_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let hash = key_hash(key.as_ref());
        self.cancel_where(|files| files.find_key(hash))
    }

    fn cancel_where(
        &self,
        find: impl FnOnce(&mut crate::store::schedule::ScheduleFiles) -> Result<Option<usize>>,
    ) -> Result<bool> {
        if self.shared.header().schedule.made.load(Ordering::Acquire) == 0 {
            return Ok(false);
        }
        let mut g = self
            .shared
            .schedule_lock(true)?
            .expect("a waiting take always takes");
        let Some(i) = find(g.files())? else {
            return Ok(false);
        };
        let e = g.files().entries()?[i];
        let cancelled = match g.files().read(&e)? {
            Found::Whole(_) => {
                g.files().finish(i)?;
                g.ctl().cancelled.fetch_add(1, Ordering::Relaxed);
                true
            }
            // Moved or cancelled already, the index not told.
            Found::Done => {
                g.files().forget(i)?;
                false
            }
            // It would never have been delivered: cancelled all the same.
            Found::Damaged(_) => {
                g.files().forget(i)?;
                g.ctl().lost.fetch_add(1, Ordering::Relaxed);
                true
            }
        };
        g.files().settle()?;
        g.publish_state()?;
        Ok(cancelled)
    }
}

/// Refuses what cannot be scheduled.
pub(crate) fn not_for_reservations() -> Error {
    Error::InvalidOption(
        "this queue delays every message (Options::delivery_delay), and a reservation is \
         written in the ring: publish the message instead"
            .into(),
    )
}
