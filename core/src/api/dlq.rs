//! The dead-letter queue's handle, `queue.dlq()`: list, redrive, purge.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mapped::Shared;
use crate::mapped::dead_letters::{DeadLetter, Reason, header, overflow, read, state};
use crate::protocol::group::load_group_name;
use crate::protocol::tables::dead_letter::{
    DELIVERING, FREE, READY, REDRIVE, WRITING, state_of, word,
};
use crate::sync::Ordering;

/// The dead-letter queue of a queue: `queue.dlq()`.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{Ack, ConsumerOptions, Nack, Options, Queue};
/// let q = Queue::create("doc-dlq", &Options::new().dir(dir.path()).slots(8))?;
/// let mut c = q.consumer("work", ConsumerOptions::new().ack(Ack::Manual))?;
/// q.producer()?.publish(b"poison")?;
/// c.receive()?.nack(Nack::DeadLetter)?;
/// let dead = q.dlq().list()?;
/// assert_eq!((dead[0].seq, dead[0].payload.as_slice()), (0, &b"poison"[..]));
/// assert_eq!(q.dlq().redrive(None)?, 1); // back to "work", and only to it
/// assert_eq!(c.receive()?.payload(), b"poison");
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone)]
pub struct DeadLetters {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("queue", &self.shared.name)
            .finish()
    }
}

impl DeadLetters {
    /// Every dead letter (READY, or redriven and not yet finished), oldest
    /// first.
    pub fn list(&self) -> Result<Vec<DeadLetter>> {
        let shared = &*self.shared;
        overflow::refill(shared, true)?;
        let mut out = Vec::new();
        for i in 0..shared.geo.dlq_slots as usize {
            let st = state(shared, i);
            let before = st.load(Ordering::Acquire);
            if !matches!(state_of(before), READY | REDRIVE | DELIVERING) {
                continue;
            }
            let raw = read(shared, i)?;
            let mut payload = vec![0u8; raw.len];
            // SAFETY: `raw.len <= slot_size` (checked by `read`), inside
            // the entry; a concurrent rewrite is detected below and the
            // copy discarded.
            unsafe {
                std::ptr::copy_nonoverlapping(raw.payload, payload.as_mut_ptr(), raw.len);
            }
            // Acquire fence + reload: the entry did not change while we
            // copied it (a purge + append in between changes the order).
            std::sync::atomic::fence(Ordering::Acquire);
            let again = read(shared, i)?;
            if st.load(Ordering::Relaxed) != before || again.order != raw.order {
                continue;
            }
            let rec = &shared.group_records()[raw.group as usize];
            let group = if rec.created_ns.load(Ordering::Acquire) == raw.group_created_ns {
                load_group_name(rec).unwrap_or_default()
            } else {
                String::new()
            };
            out.push((
                raw.order,
                DeadLetter {
                    seq: raw.seq,
                    group,
                    attempts: raw.attempts,
                    redrives: raw.redrive & 0xffff,
                    reason: Reason::from_raw(raw.reason).ok_or_else(|| {
                        Error::corrupt(&shared.path, format!("dead letter {i}: bad reason"))
                    })?,
                    first_delivery_ns: raw.first_ns,
                    last_delivery_ns: raw.last_ns,
                    dead_lettered_ns: raw.dead_ns,
                    timestamp_ns: raw.timestamp_ns,
                    type_id: raw.type_id,
                    correlation_id: raw.correlation_id,
                    redriven: state_of(before) != READY,
                    ..DeadLetter::body(&payload, raw.enveloped)
                },
            ));
        }
        out.sort_by_key(|(order, _)| *order);
        let mut out: Vec<DeadLetter> = out.into_iter().map(|(_, d)| d).collect();
        // Then those in the overflow, which came later.
        out.extend(overflow::list(shared)?);
        Ok(out)
    }

    /// Dead letters waiting (not redriven), in the region and in its
    /// overflow.
    pub fn len(&self) -> u64 {
        let shared = &*self.shared;
        (0..shared.geo.dlq_slots as usize)
            .filter(|&i| state_of(state(shared, i).load(Ordering::Relaxed)) == READY)
            .count() as u64
            + overflow::pending(shared)
    }

    /// Whether no dead letter is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends dead letters back to the group that dead-lettered them, and
    /// only to it: all of them (`None`) or those of one seq. Returns how
    /// many. A redriven message starts a fresh count of deliveries (its
    /// `attempt()` is 1 again): after `max_deliveries` more without an ack
    /// it is a dead letter again. Its [`DeadLetter`] keeps its history
    /// meanwhile: the attempts and reason of its dead-lettering, and how
    /// many times it was redriven (`redrives`). A dead letter whose group was deleted stays (it is listed
    /// with an empty group name; purge it).
    pub fn redrive(&self, seq: Option<u64>) -> Result<u64> {
        let shared = &*self.shared;
        overflow::refill(shared, true)?;
        let mut n = 0;
        for i in 0..shared.geo.dlq_slots as usize {
            let st = state(shared, i);
            let w = st.load(Ordering::Acquire);
            if state_of(w) != READY {
                continue;
            }
            let raw = read(shared, i)?;
            if seq.is_some_and(|s| s != raw.seq) {
                continue;
            }
            let rec = &shared.group_records()[raw.group as usize];
            if rec.state.load(Ordering::Acquire) != 1
                || rec.created_ns.load(Ordering::Acquire) != raw.group_created_ns
            {
                continue;
            }
            // Own it (as a writer) to give it a fresh delivery budget, as
            // an SQS redrive does; then hand it to its group. Count first:
            // a consumer that takes it decrements.
            if st
                .compare_exchange(
                    w,
                    word(WRITING, shared.me.pid as u64),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            // SAFETY: entry `i` is ours (WRITING by us) until we store
            // REDRIVE; its header is inside the mapping.
            // The history stays (attempts, reason); the redrive is counted
            // and the deliveries since it start again.
            unsafe {
                let r = std::ptr::addr_of_mut!((*header(shared, i)).redrive);
                r.write((r.read() & 0xffff).saturating_add(1).min(0xffff));
            }
            rec.redrive.fetch_add(1, Ordering::AcqRel);
            // Release: the reset count is seen by whoever takes it.
            st.store(word(REDRIVE, raw.group as u64), Ordering::Release);
            n += 1;
        }
        // Those still in the overflow are redriven as they come back.
        n += overflow::redrive(shared, seq)?;
        if n > 0 {
            shared.ring().notify_data();
        }
        if n == 0 && seq.is_some() {
            return Err(Error::NotFound(format!(
                "dead letter with seq {} (whose group still exists)",
                seq.unwrap_or_default()
            )));
        }
        Ok(n)
    }

    /// Deletes every waiting dead letter (not those redriven), in the
    /// region and in its overflow. Returns how many.
    pub fn purge(&self) -> Result<u64> {
        let shared = &*self.shared;
        let mut n = 0;
        loop {
            let freed = self.purge_region();
            n += freed;
            // The overflow comes back into the freed entries, to be purged
            // in turn (or redriven, if it was).
            if overflow::refill(shared, true)? == 0 {
                if freed == 0 {
                    return Ok(n);
                }
                if overflow::pending(shared) == 0 {
                    n += self.purge_region();
                    return Ok(n);
                }
            }
        }
    }

    fn purge_region(&self) -> u64 {
        let shared = &*self.shared;
        let mut n = 0;
        for i in 0..shared.geo.dlq_slots as usize {
            let st = state(shared, i);
            let w = st.load(Ordering::Acquire);
            if state_of(w) == READY
                && st
                    .compare_exchange(w, word(FREE, 0), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                n += 1;
            }
        }
        n
    }
}
