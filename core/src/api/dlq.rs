//! The dead-letter queue's handle, `queue.dlq()`: list, redrive, purge.

use std::sync::Arc;

use std::time::Instant;

use crate::api::producer::Producer;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::open_queue::dead_letters::{
    DeadLetter, Entry, Raw, Reason, append, count_redrive, give_back, overflow, read, state,
};
use crate::options::Meta;
use crate::protocol::dead_letter_entry::{
    DELIVERING, READY, REDRIVE, WRITING, deliverer, state_of, word, writer,
};
use crate::protocol::group::load_group_name;
use crate::record::envelope::{self, HeaderIter, Target};

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
    pub(crate) shared: Arc<OpenQueue>,
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
            // A concurrent rewrite is detected below and the copy
            // discarded.
            // SAFETY: `raw` came from `read`.
            let payload = unsafe { raw.copy_stored() };
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
            let body = DeadLetter::body(&payload, raw.enveloped);
            out.push((
                raw.order,
                DeadLetter {
                    seq: raw.seq,
                    group,
                    attempts: raw.attempts,
                    // Redriven through the ring, the count came in its
                    // envelope.
                    redrives: (raw.redrive & 0xffff).max(body.redrives),
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
                    ..body
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

    /// Adds a dead letter that comes from outside the queue: a message
    /// another system gave up on (`shmq-bridge from-nats` puts here what
    /// JetStream's `max_deliver` dropped), with its ordering key, headers,
    /// type id and correlation id (`meta`; its idempotency key is not
    /// kept), `reason` and the `attempts` it had there. It belongs to
    /// group `group`: a redrive delivers it to that group alone, as if the
    /// group had dead-lettered it. It never had a seq in this queue: its
    /// [`DeadLetter::seq`] is [`DeadLetter::ADDED`].
    ///
    /// Refused: a group that does not exist (`NotFound`), a message whose
    /// envelope and payload are longer than the queue's
    /// `max_message_size` (`TooLarge`), metadata the envelope cannot hold
    /// (`InvalidOption`), a full DLQ (`DlqFull`; on an overflow=spill
    /// queue it goes to the overflow instead), one longer than the whole
    /// DLQ region (`DlqTooLarge`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{DeadLetter, Meta, Options, Queue, Reason, Start};
    /// let q = Queue::create("doc-dlq-add", &Options::new().dir(dir.path()).slots(8))?;
    /// q.create_group("work", Start::Latest)?;
    /// let meta = Meta::new().ordering_key("k").header("why", "gave up elsewhere");
    /// q.dlq().add("work", b"from afar", &meta, Reason::MaxDeliveries, 5)?;
    /// let dead = &q.dlq().list()?[0];
    /// assert_eq!((dead.seq, dead.attempts, dead.group.as_str()), (DeadLetter::ADDED, 5, "work"));
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn add(
        &self,
        group: &str,
        payload: &[u8],
        meta: &Meta<'_>,
        reason: Reason,
        attempts: u32,
    ) -> Result<()> {
        let shared = &*self.shared;
        let (idx, created_ns) = {
            let g = shared.lock();
            let idx = shared
                .groups()
                .find(&g, group)
                .ok_or_else(|| Error::NotFound(format!("group {group:?}")))?;
            let created = shared.group_records()[idx]
                .created_ns
                .load(Ordering::Acquire);
            (idx, created)
        };
        let plan = envelope::plan(meta.ordering_key, &meta.headers, None)?;
        let head = plan.as_ref().map_or(0, |p| p.size);
        let len = head.saturating_add(payload.len());
        let max = shared.config.max_message_size as usize;
        if len > max {
            return Err(envelope::too_large(payload.len(), plan.as_ref(), max));
        }
        let mut body = vec![0u8; len];
        if let Some(p) = &plan {
            p.write(&mut body[..head]);
        }
        body[head..].copy_from_slice(payload);
        let now = crate::os::clock::realtime_ns();
        let entry = Entry {
            seq: DeadLetter::ADDED,
            redrives: 0,
            group: idx,
            group_created_ns: created_ns,
            attempts,
            reason,
            first_ns: now,
            last_ns: now,
            timestamp_ns: now,
            type_id: meta.type_id,
            correlation_id: meta.correlation_id,
            enveloped: plan.is_some(),
            payload: &body,
        };
        append(shared, &entry)?;
        shared.group_records()[idx]
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends dead letters back to the group that dead-lettered them, and
    /// only to it: all of them (`None`) or those of one seq. Returns how
    /// many. A redriven message starts a fresh count of deliveries (its
    /// `attempt()` is 1 again): after `max_deliveries` more without an ack
    /// it is a dead letter again. Its [`DeadLetter`] keeps its history
    /// meanwhile: the attempts and reason of its dead-lettering, and how
    /// many times it was redriven (`redrives`). A dead letter whose group was deleted stays (it is listed
    /// with an empty group name; purge it).
    ///
    /// A dead letter with an ordering key goes back to the end of its key,
    /// as if published now: it is published into the ring again (with a
    /// new seq, its key, headers, type id and correlation id) for its
    /// group alone, which leases it only after every earlier message of
    /// its key, while every other group passes it by. That needs room in
    /// the ring (or the spill): one that finds none stays in the DLQ, and
    /// the call fails with [`Error::PartlyRedriven`] (how many went, how
    /// many were left, and what holds the ring). This call does not wait
    /// for room: see [`redrive_timeout`](Self::redrive_timeout). An
    /// unkeyed dead letter is delivered from the DLQ itself, before the
    /// group's next message.
    pub fn redrive(&self, seq: Option<u64>) -> Result<u64> {
        self.redrive_until(seq, Instant::now())
    }

    /// [`redrive`](Self::redrive), waiting up to `timeout` for ring room
    /// for the keyed dead letters, as a publish does. Those still without
    /// room then stay in the DLQ and the call fails with
    /// [`Error::PartlyRedriven`], whose `cause` is [`Error::Timeout`] (or
    /// `Full`/`SpillFull`: the queue's overflow policy refused them):
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use shmq::{Ack, ConsumerOptions, Error, Meta, Nack, Options, Queue, Start};
    /// let q = Queue::create("doc-redrive", &Options::new().dir(dir.path()).slots(8))?;
    /// let mut c = q.consumer("work", ConsumerOptions::new().ack(Ack::Manual))?;
    /// let mut p = q.producer()?;
    /// p.publish_with(b"poison", &Meta::new().ordering_key("k"))?;
    /// c.receive()?.nack(Nack::DeadLetter)?;
    /// q.create_group("slow", Start::Latest)?;
    /// for _ in 0..8 {
    ///     p.publish(b"x")?; // "slow" now holds the ring full
    /// }
    /// match q.dlq().redrive_timeout(None, Duration::from_millis(10)) {
    ///     Err(Error::PartlyRedriven { redriven: 0, left: 1, why, .. }) => {
    ///         assert!(why.starts_with("group \"slow\" holds the ring"), "{why}");
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(q.dlq().len(), 1); // still there, to redrive later
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn redrive_timeout(&self, seq: Option<u64>, timeout: std::time::Duration) -> Result<u64> {
        let now = Instant::now();
        self.redrive_until(seq, now.checked_add(timeout).unwrap_or(now + YEAR))
    }

    fn redrive_until(&self, seq: Option<u64>, deadline: Instant) -> Result<u64> {
        let shared = &*self.shared;
        overflow::refill(shared, true)?;
        let mut ring = Rerouter {
            deadline,
            ..Rerouter::default()
        };
        let mut n = self.redrive_region(seq, &mut ring)?;
        // Those still in the overflow are redriven as they come back.
        n += overflow::redrive(shared, seq)?;
        // Keyed ones come back as redriven: they go through the ring too.
        while ring.failed.is_none() && overflow::refill(shared, true)? > 0 {
            if self.redrive_region(None, &mut ring)? == 0 {
                break;
            }
        }
        if n > 0 {
            shared.ring().notify_data();
        }
        match ring.failed {
            Some(cause @ (Error::Timeout | Error::Full | Error::SpillFull(_))) if ring.left > 0 => {
                Err(Error::PartlyRedriven {
                    redriven: n,
                    left: ring.left,
                    why: crate::api::room::why_full(shared),
                    cause: Box::new(cause),
                })
            }
            Some(e) if n == 0 => Err(e),
            _ if n == 0 && ring.left == 0 && seq.is_some() => Err(Error::NotFound(format!(
                "dead letter with seq {} (whose group still exists)",
                seq.unwrap_or_default()
            ))),
            _ => Ok(n),
        }
    }

    /// One pass over the DLQ region: READY entries (of `seq`, if given)
    /// are redriven; keyed entries already marked for redrive (back from
    /// the overflow) go through the ring. Returns how many READY ones went.
    fn redrive_region(&self, seq: Option<u64>, ring: &mut Rerouter) -> Result<u64> {
        let shared = &*self.shared;
        let mut n = 0;
        for i in 0..shared.geo.dlq_slots as usize {
            let st = state(shared, i);
            let w = st.load(Ordering::Acquire);
            let ready = state_of(w) == READY;
            if !ready && state_of(w) != REDRIVE {
                continue;
            }
            let raw = read(shared, i)?;
            if ready && seq.is_some_and(|s| s != raw.seq) {
                continue;
            }
            let rec = &shared.group_records()[raw.group as usize];
            if rec.state.load(Ordering::Acquire) != crate::protocol::group::ACTIVE
                || rec.created_ns.load(Ordering::Acquire) != raw.group_created_ns
            {
                continue;
            }
            if raw.enveloped && ring.failed.is_some() && keyed(&raw) {
                // The ring took no more: it waits in the DLQ for the next
                // redrive (never the DLQ's way, which would put it before
                // earlier messages of its key).
                ring.left += u64::from(ready);
                continue;
            }
            if raw.enveloped {
                crate::os::fault::point("redrive.rerouting");
                match ring.reroute(&self.shared, i, w, &raw) {
                    Rerouted::Yes => {
                        n += u64::from(ready);
                        continue;
                    }
                    Rerouted::Unkeyed => {}
                    Rerouted::Lost => continue,
                    Rerouted::NoRoom => {
                        ring.left += u64::from(ready);
                        continue;
                    }
                }
            }
            if !ready {
                continue;
            }
            crate::os::fault::point("redrive.taking");
            // Own it to give it a fresh delivery budget, as an SQS redrive
            // does; then hand it to its group. Owned as its group's
            // deliverer, not as a writer: should we die here, a consumer
            // of the group takes it as a dead deliverer's redriven letter
            // (the redrive goes on), where an entry WRITING by a dead
            // process is free for the next dead letter to overwrite (found
            // by the chaos run: the dead letter was lost). Counted first: a
            // consumer that takes it decrements.
            rec.redrive.fetch_add(1, Ordering::AcqRel);
            let owned = word(DELIVERING, deliverer(u64::from(raw.group), shared.me.key));
            if st
                .compare_exchange(w, owned, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                rec.redrive.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            if !same_letter(shared, i, &raw) {
                // Another dead letter took the entry between our read and
                // our CAS (READY is every letter's word): not the one we
                // judged, for a group we did not check. Given back as it was.
                st.store(w, Ordering::Release);
                rec.redrive.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            // The history stays (attempts, reason); the redrive is counted
            // and the deliveries since it start again.
            // SAFETY: entry `i` is ours (DELIVERING by us) until we store
            // REDRIVE.
            unsafe { count_redrive(shared, i) };
            crate::os::fault::point("redrive.taken");
            // Release: the reset count is seen by whoever takes it.
            st.store(word(REDRIVE, raw.group as u64), Ordering::Release);
            n += 1;
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
            // Taken as its writer, then its run given back: should we die
            // in between, the next claimer finishes the purge.
            if state_of(w) == READY
                && st
                    .compare_exchange(
                        w,
                        word(WRITING, writer(shared.me.key)),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                give_back(shared, i);
                n += 1;
            }
        }
        n
    }
}

/// What [`Rerouter::reroute`] did with a dead letter.
enum Rerouted {
    /// Published into the ring for its group; the entry is free.
    Yes,
    /// It has no ordering key: redrive it the DLQ's way.
    Unkeyed,
    /// Somebody else took the entry first.
    Lost,
    /// No room in the ring: it stays (`Rerouter::failed` says why).
    NoRoom,
}

/// Redrives keyed dead letters through the ring, so that each goes to the
/// end of its key: a producer made at the first one.
struct Rerouter {
    producer: Option<Producer>,
    /// How long a keyed one waits for ring room.
    deadline: Instant,
    /// Why the ring took no more (the rest stay in the DLQ).
    failed: Option<Error>,
    /// Keyed dead letters asked for that stayed in the DLQ for want of
    /// room.
    left: u64,
}

impl Default for Rerouter {
    fn default() -> Rerouter {
        Rerouter {
            producer: None,
            deadline: Instant::now(),
            failed: None,
            left: 0,
        }
    }
}

/// A deadline that never comes (a `Duration::MAX` timeout).
const YEAR: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Whether dead letter `raw` has an ordering key (so goes back through
/// the ring, to the end of its key).
fn keyed(raw: &Raw) -> bool {
    // A copy: the entry is not ours yet (another process may purge and
    // reuse it meanwhile); the bytes only choose the path, and
    // `Rerouter::publish` reads the entry again once it owns it.
    // SAFETY: `raw` came from `read`.
    let body = unsafe { raw.copy_stored() };
    matches!(envelope::split(&body, true), Ok((Some(e), _)) if e.key.is_some())
}

impl Rerouter {
    /// Publishes dead letter `i` (in state word `w`: READY, or REDRIVE
    /// back from the overflow) into the ring for its group, if it has an
    /// ordering key.
    ///
    /// While it publishes, the entry is DELIVERING by us and counted in
    /// its group's `redrive`: should we die there, the group's consumer
    /// takes it as a dead consumer's redriven letter (delivered from the
    /// DLQ; perhaps twice, never lost). Only once the ring has it is the
    /// entry freed.
    fn reroute(&mut self, shared: &Arc<OpenQueue>, i: usize, w: u64, raw: &Raw) -> Rerouted {
        if !keyed(raw) {
            return Rerouted::Unkeyed;
        }
        let st = state(shared, i);
        let rec = &shared.group_records()[raw.group as usize];
        let ready = state_of(w) == READY;
        let delivering = word(DELIVERING, deliverer(u64::from(raw.group), shared.me.key));
        if ready {
            rec.redrive.fetch_add(1, Ordering::AcqRel);
        }
        if st
            .compare_exchange(w, delivering, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            if ready {
                rec.redrive.fetch_sub(1, Ordering::AcqRel);
            }
            return Rerouted::Lost;
        }
        if !same_letter(shared, i, raw) {
            // As in `redrive_region`: another letter in the entry now.
            st.store(w, Ordering::Release);
            if ready {
                rec.redrive.fetch_sub(1, Ordering::AcqRel);
            }
            return Rerouted::Lost;
        }
        let published = self.publish(shared, i);
        let done = match &published {
            Ok(()) => {
                // Our reads of the entry happen before its reuse (the
                // Release stores of the give-back).
                give_back(shared, i);
                true
            }
            Err(_) => {
                st.store(w, Ordering::Release);
                ready
            }
        };
        if done {
            rec.redrive.fetch_sub(1, Ordering::AcqRel);
        }
        match published {
            Ok(()) => Rerouted::Yes,
            Err(e) => {
                self.failed = Some(e);
                Rerouted::NoRoom
            }
        }
    }

    /// Publishes entry `i` (DELIVERING by us) for its group.
    fn publish(&mut self, shared: &Arc<OpenQueue>, i: usize) -> Result<()> {
        // Read again now that it is ours.
        let raw = read(shared, i)?;
        // SAFETY: the entry is ours (DELIVERING by us) until we store its
        // next state, so the bytes hold still.
        let body = unsafe { raw.stored() };
        let (Some(env), payload) = envelope::split(body, raw.enveloped)
            .map_err(|e| Error::corrupt(&shared.path, format!("dead letter {i}: {e}")))?
        else {
            return Err(Error::corrupt(
                &shared.path,
                format!("dead letter {i} lost its envelope"),
            ));
        };
        let mut meta = Meta::new()
            .type_id(raw.type_id)
            .correlation_id(raw.correlation_id);
        meta.ordering_key = env.key;
        for (name, value) in HeaderIter::of(&env) {
            meta.headers.push(name, value);
        }
        let before = env.target.map_or(0, |t| t.redrives);
        let target = Target {
            group: raw.group,
            created_ns: raw.group_created_ns,
            redrives: before.max((raw.redrive & 0xffff) as u16).saturating_add(1),
        };
        if self.producer.is_none() {
            self.producer = Some(Producer::new(shared.clone())?);
        }
        let producer = self.producer.as_mut().expect("made above");
        producer.publish_redriven(payload, &meta, target, self.deadline)?;
        Ok(())
    }
}

/// Whether entry `i`, which we own now (DELIVERING by us), still holds the
/// dead letter `raw` was read from: READY is one word for every letter an
/// entry holds, so the CAS that made it ours cannot tell; the entry's
/// `order` (a counter every write of an entry takes anew) can. Found by a
/// review: a redriver paused between its read and its CAS, while a purge
/// and another group's dead-lettering reused the entry, handed that
/// letter to the first letter's group. An entry that no longer reads is
/// not the letter either: the caller gives it back as it was (returning
/// with the entry still ours would keep it from its group while we live).
fn same_letter(shared: &OpenQueue, i: usize, raw: &Raw) -> bool {
    read(shared, i).is_ok_and(|now| now.order == raw.order)
}
