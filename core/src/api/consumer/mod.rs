//! Receiving: a group's consumer walks the ring in seq order and borrows
//! each payload in place.

use std::sync::Arc;

use crate::api::readiness::Readiness;
use crate::error::{Error, Result};
use crate::layout::GroupRecord;
use crate::loom::Ordering;
use crate::open_queue::journal::{JournalReader, JournalRecord};
use crate::open_queue::{MappedSlots, OpenQueue, new_owner};
use crate::options::{Ack, ConsumerOptions, Wait, check_group_name};
use crate::os;
use crate::protocol::group::{commit_cursor, generation};
use crate::protocol::lease::{HeldLease, LeaseWord, Leases};
use crate::protocol::registry::Registry;
use crate::protocol::ring::Ring;

mod delivery;
mod expiry;
mod manual;
mod message;
mod redriven;
mod replay;
mod unstick;
mod waiting;

pub use delivery::{Delivery, Receipt};
use delivery::{Lease, Origin};
use manual::Manual;
pub use message::{Batch, Message};
use unstick::Stuck;

/// The consumer of one group. With ack=auto (the default) a message is
/// committed for the group when it is received, its slot is released when
/// the [`Delivery`] is dropped, and a group has at most one live consumer
/// at a time; with ack=manual any number of consumers compete for the
/// group's messages, each leased until acked. Not to be used in a child
/// after `fork`.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// use shmq::{Ack, ConsumerOptions, Options, Queue, Start};
/// let q = Queue::create("doc-consumer", &Options::new().dir(dir.path()).slots(16))?;
/// q.create_group("audit", Start::Earliest)?;
/// q.producer()?.publish_batch(&[b"a", b"b", b"c"])?;
///
/// let mut audit = q.consumer("audit", ConsumerOptions::new())?;
/// assert_eq!(audit.receive()?.payload(), b"a");
/// assert_eq!(audit.try_receive()?.map(|m| m.seq()), Some(1));
/// let batch = audit.receive_batch(10, Duration::ZERO)?;
/// assert_eq!(batch.len(), 1); // "c"
/// drop(batch);
///
/// // Competing workers: each message leased to one, acked when done.
/// let mut worker = q.consumer("work", ConsumerOptions::new().ack(Ack::Manual))?;
/// # let _ = worker.try_receive()?;
/// # Ok::<(), shmq::Error>(())
/// ```
pub struct Consumer {
    /// The open queue; its mapping outlives every message we lend.
    shared: Arc<OpenQueue>,
    /// Our group's record in the group table (`group_records()[i]`).
    group_index: usize,
    /// Our group's name, as the user gave it.
    group: String,
    /// Our owner word (pid and token) in the group record (ack=auto) or
    /// the consumer registry (ack=manual); only we write it while attached.
    owner: u64,
    /// The group's generation when we attached: another means it was
    /// deleted or made again, and we must stop (`check_group`).
    generation: u32,
    /// The next position to deliver; never past the ring's tail.
    next: u64,
    /// Messages delivered by this handle (`Stats` of the group add it).
    delivered: u64,
    /// The queue's slot size: a slot's length word above it is corrupt.
    slot_size: usize,
    /// The most body bytes any record holds (its span at most half the
    /// ring): a bound for reading a header's length before the span.
    max_room: usize,
    /// The longest record, in slots (`Geometry::max_span`).
    max_span: u64,
    /// The queue's `unblock_timeout`, in ns.
    unblock_timeout_ns: u64,
    /// The queue's `message_ttl`, in ns (0: none); and what an expired
    /// message becomes (`api/consumer/expiry.rs`).
    ttl_ns: u64,
    on_expiry: crate::options::OnExpiry,
    /// What we know of the position we wait for, if it looks stuck.
    stuck: Option<Stuck>,
    /// Empty polls since attaching: every `STUCK_CHECK_EVERY`th runs the
    /// rarer idle chores.
    empty_polls: u32,
    /// Set for ack=manual consumers.
    manual: Option<Manual>,
    /// overflow=spill: look for spilled messages to copy back into the
    /// ring when the ring has none for us.
    spill: bool,
    /// The queue keeps a journal: journal the ring when idle.
    journal: bool,
    /// Set while the group's cursor is below `head`: reading the journal
    /// (see `open_queue/journal.rs`).
    replay: Option<JournalReader>,
    /// How `wait` waits.
    wait: Wait,
    /// The lease of the live `Origin::Leased` delivery. A [`Delivery`]
    /// borrows its consumer mutably, so there is at most one at a time.
    held: HeldLease,
    /// The DLQ entry of the live `Origin::Redriven` delivery.
    redriven: usize,
    /// CLOCK_MONOTONIC ns of our last try to bring dead letters back from
    /// the DLQ's overflow (`poll_any`).
    overflow_tried_ns: u64,
    /// The async waiter's doorbell, made by the first `readiness`/`arm`.
    readiness: Option<Readiness>,
}

/// What a poll found to deliver next, taken but not yet lent.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ToDeliver {
    /// ack=auto: the message at this position.
    Pos(u64),
    /// ack=manual: a lease we now hold.
    Leased(HeldLease),
    /// A dead letter redriven to our group, in this DLQ entry.
    Redriven(usize),
    /// ack=auto, replaying: this journal record.
    Journal(JournalRecord),
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.shared.name)
            .field("group", &self.group)
            .field("next", &self.next)
            .finish()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        match &self.manual {
            Some(m) => Registry {
                records: self.shared.consumer_records(),
            }
            .unregister(m.holder, self.owner, self.shared.me.key),
            None => self.shared.groups().detach(self.group_index, self.owner),
        }
        // Detaching may commit the last delivery: producers waiting for
        // room (asleep or armed) hear of it.
        self.ring().notify_space();
    }
}

impl Consumer {
    pub(crate) fn new(
        shared: Arc<OpenQueue>,
        group: &str,
        opts: ConsumerOptions,
    ) -> Result<Consumer> {
        check_group_name(group)?;
        let owner = new_owner(shared.me);
        let registry = Registry {
            records: shared.consumer_records(),
        };
        let mut created_unasked = false;
        let (idx, next, generation, delivered, manual) = {
            let g = shared.lock();
            let groups = shared.groups();
            let idx = match (groups.find(&g, group), opts.create) {
                (Some(i), _) => i,
                (None, Some(false)) => {
                    return Err(Error::NotFound(format!(
                        "group {group:?} of queue {:?} (create the group first, or let the \
                         consumer create it)",
                        shared.name
                    )));
                }
                (None, create) => {
                    created_unasked = create.is_none();
                    shared.create_group_locked(&g, group, opts.start)?
                }
            };
            let sharers = registry.count(idx, |p, k| shared.alive(p, k));
            let manual = match opts.ack {
                Ack::Auto => {
                    if sharers > 0 {
                        return Err(Error::Busy(format!(
                            "group {group:?} has {sharers} live ack=manual consumer(s); its consumers must all use ack=manual"
                        )));
                    }
                    groups.attach(
                        &g,
                        idx,
                        group,
                        owner,
                        shared.me.key,
                        |p, k| shared.alive(p, k),
                        || os::fault::point("consumer.attaching_owner"),
                    )?;
                    None
                }
                Ack::Manual => {
                    if let Some(pid) = groups.live_owner(idx, |p, k| shared.alive(p, k)) {
                        return Err(Error::Busy(format!(
                            "group {group:?} has a live ack=auto consumer (pid {pid}); stop it first"
                        )));
                    }
                    let rec = &groups.records[idx];
                    shared.allocate_leases(&g, idx)?;
                    let leases = shared.leases(idx);
                    let (committed, next) = (
                        rec.committed.load(Ordering::Acquire),
                        rec.next.load(Ordering::Acquire),
                    );
                    if sharers == 0 && committed < next && !leases.word(committed).is_for(committed)
                    {
                        // The window is an ack=auto consumer's that died
                        // holding a delivery (no lease word speaks of it):
                        // what an ack=auto attach does, we do. Otherwise
                        // `committed` would wait for ever on positions
                        // nobody leased, and the in-flight gate with it.
                        rec.committed.store(next, Ordering::SeqCst);
                        leases.reset();
                    } else if sharers == 0 && committed == next {
                        // Nothing in flight: any lease word is from an
                        // ack=auto period or an older lap. Forget them all.
                        leases.reset();
                    }
                    let taken = registry.register(
                        owner,
                        shared.me,
                        idx,
                        os::clock::realtime_ns(),
                        |p, k| shared.alive(p, k),
                        || os::fault::point("consumer.registering"),
                    )?;
                    if taken.was_dead {
                        shared.release_holder(taken.index);
                    }
                    Some(Manual {
                        holder: taken.index,
                        lease_ns: shared.config.lease_ns,
                        max_deliveries: shared.config.max_deliveries,
                        last_scan: 0,
                        seen_hint: u64::MAX,
                        scan_from: None,
                    })
                }
            };
            let rec = &groups.records[idx];
            (
                idx,
                rec.next.load(Ordering::Acquire),
                generation(rec),
                rec.delivered.load(Ordering::Relaxed),
                manual,
            )
        };
        if created_unasked {
            eprintln!(
                "shmq: warning: consumer {group:?} created a group of that name in queue {:?} \
                 (from {:?}): it keeps every message from there until it reads it. Creating a \
                 missing group unasked is deprecated: pass ConsumerOptions::create(true) \
                 (Python create=True, C .create = 1) to create it on purpose, or create(false) \
                 to refuse a missing group",
                shared.name, opts.start
            );
        }
        Consumer {
            group_index: idx,
            group: group.to_string(),
            owner,
            generation,
            next,
            delivered,
            slot_size: shared.geo.slot_size as usize,
            max_room: shared.geo.body_room(shared.geo.max_span()),
            max_span: shared.geo.max_span(),
            unblock_timeout_ns: shared.config.unblock_timeout_ns,
            ttl_ns: shared.config.message_ttl_ns,
            // Validated when the queue was opened.
            on_expiry: crate::options::OnExpiry::from_raw(shared.config.on_expiry)
                .unwrap_or_default(),
            stuck: None,
            empty_polls: 0,
            manual,
            spill: shared.spill.is_some(),
            journal: shared.journal.is_some(),
            replay: None,
            wait: opts.wait,
            held: HeldLease {
                pos: 0,
                word: LeaseWord(0),
                keyed: false,
            },
            redriven: 0,
            overflow_tried_ns: 0,
            readiness: None,
            shared,
        }
        .start_below_head()
    }

    /// A new consumer whose group is below `head` (created at the journal's
    /// earliest, or seeked there by another handle): ack=auto replays the
    /// journal; ack=manual moves the group to `head` (replay is ack=auto).
    fn start_below_head(mut self) -> Result<Consumer> {
        os::fault::point("consumer.attaching");
        if self.journal {
            let shared = self.shared.clone();
            let g = shared.lock();
            // Read again under the lock: `new` read the cursors under an
            // earlier hold of it, and meanwhile other consumers of the
            // group (ack=manual) may have taken it far past `head`. Only a
            // group whose finished cursor is below `head` is behind it; a
            // seek of any other would move a live group back and look,
            // to its other consumers, like a delete.
            let head = shared.header().ring.head.load(Ordering::Acquire);
            let rec = self.record();
            let behind = if self.manual.is_some() {
                rec.committed.load(Ordering::Acquire) < head
            } else {
                self.next < head
            };
            if behind {
                if self.manual.is_some() {
                    self.next = shared.groups().seek(
                        &g,
                        self.group_index,
                        &self.group,
                        crate::options::Start::Seq(
                            shared.header().ring.head.load(Ordering::Acquire),
                        ),
                        self.owner,
                        |p, k| shared.alive(p, k),
                    )?;
                    self.generation = generation(self.record());
                } else {
                    self.replay = JournalReader::new(&shared);
                }
            }
        }
        Ok(self)
    }

    /// The lease protocol over our group's records.
    #[inline(always)]
    fn leases(&self) -> Leases<'_> {
        self.shared.leases(self.group_index)
    }

    #[inline(always)]
    fn ring(&self) -> Ring<'_, MappedSlots> {
        self.shared.ring()
    }

    #[inline(always)]
    fn record(&self) -> &GroupRecord {
        &self.shared.group_records()[self.group_index]
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The seq this consumer will look at next.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Whether this consumer acks manually.
    pub fn ack_mode(&self) -> Ack {
        if self.manual.is_some() {
            Ack::Manual
        } else {
            Ack::Auto
        }
    }

    /// Fails if our group was deleted or taken from us.
    fn check_group(&mut self) -> Result<()> {
        let rec = self.record();
        if generation(rec) == self.generation
            && (self.manual.is_some() || rec.owner.load(Ordering::Acquire) == self.owner)
        {
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "group {:?}: deleted or taken over by another consumer while this one was attached",
            self.group
        )))
    }

    /// Hands out everything below `next` (the durable cursor: a restarted
    /// consumer resumes there).
    #[inline(always)]
    fn advance(&mut self, next: u64, delivered: u64) {
        self.next = next;
        self.delivered += delivered;
        let rec = &self.shared.group_records()[self.group_index];
        // Release: the cursor is read by others (stats, a successor) with
        // Acquire. The consumer is the only writer while attached.
        rec.next.store(next, Ordering::Release);
        rec.delivered.store(self.delivered, Ordering::Relaxed);
    }

    /// Releases the slots below `committed` for reuse.
    #[inline(always)]
    fn release(&self, committed: u64) {
        commit_cursor(&self.record().committed, committed);
        self.ring().notify_space();
    }
}
