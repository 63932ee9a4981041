//! A queue: its file, its mapping, and the operations that are not on a
//! producer's or consumer's path (groups, stats, remove).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::consumer::Consumer;
use crate::api::dlq::DeadLetters;
use crate::api::producer::Producer;
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::seek::resolve_seek;
use crate::open_queue::{OpenQueue, queue_file};
use crate::options::{ConsumerOptions, Options, Overflow, Seek, Start, check_group_name};
use crate::protocol::group::{GroupInfo, owner_pid};
use crate::protocol::registry::Registry;
use crate::protocol::ring::Peek;
use crate::record::envelope;

/// A copy of one retained message ([`Queue::peek`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peeked {
    /// Its seq.
    pub seq: u64,
    /// Publish time, CLOCK_REALTIME nanoseconds.
    pub timestamp_ns: u64,
    /// The producer's type tag.
    pub type_id: u32,
    /// The producer's correlation id.
    pub correlation_id: u64,
    /// The payload.
    pub payload: Vec<u8>,
    /// The ordering key it was published with.
    pub ordering_key: Option<Vec<u8>>,
    /// The headers it was published with, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Read from the journal (it was older than the ring holds).
    pub from_journal: bool,
    /// When it expires, if it was published with a time to live of its
    /// own ([`Meta::ttl`](crate::Meta::ttl)), CLOCK_REALTIME ns (as
    /// [`Message::expires_ns`](crate::Message::expires_ns)).
    pub expires_ns: Option<u64>,
}

/// A counters-and-cursors snapshot of a queue.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Queue name.
    pub name: String,
    /// Path of the queue file.
    pub path: PathBuf,
    /// Slots in the ring: its capacity in messages of up to `slot_size`.
    pub slots: u64,
    /// Bytes of payload a slot holds (a longer message takes several).
    pub slot_size: u64,
    /// The largest message the queue takes.
    pub max_message_size: u64,
    /// Bytes of the ring: `slots` slots of `slot_size + 32` bytes (rounded
    /// up to 8), what the messages in flight may take with their headers
    /// (`depth_bytes` of it are taken).
    pub capacity: u64,
    /// Bytes of the queue file: `slots × (slot_size + 32)` and
    /// `dlq_slots × (slot_size + 96)`, each rounded up to cache lines, plus
    /// the header and tables; all of it preallocated at create but the
    /// groups' lease tables (48 bytes a slot per group, allocated by a
    /// group's first ack=manual consumer) and the dead-letter entries
    /// (allocated as dead letters use them).
    pub file_size: u64,
    /// Overflow policy.
    pub overflow: Overflow,
    /// Seq the next message will get.
    pub next_seq: u64,
    /// Oldest seq still retained.
    pub oldest_seq: u64,
    /// Slots not yet finished by the slowest group (with no group: every
    /// slot retained): its messages, where each is one slot; a message
    /// longer than a slot counts the slots it takes.
    pub depth: u64,
    /// Bytes of the ring those slots hold: the bytes in flight.
    pub depth_bytes: u64,
    /// Messages published (positions claimed and not aborted).
    pub published: u64,
    /// Publishes refused with `Full`.
    pub rejected: u64,
    /// Keyed publishes not enqueued again (their key was remembered).
    pub deduplicated: u64,
    /// Positions aborted (stuck or dead producers, dropped reservations).
    pub aborted: u64,
    /// Live producer handles.
    pub producers: u64,
    /// Live consumers, all groups together.
    pub consumers: u64,
    /// Dead letters waiting in the dead-letter queue.
    pub dlq_depth: u64,
    /// Dead letters found damaged or missing when read back from the
    /// DLQ's overflow on disk (lost, counted: never silently).
    pub dlq_lost: u64,
    /// Messages spilled to disk so far (overflow=spill).
    pub spilled: u64,
    /// Payload bytes spilled to disk so far.
    pub spilled_bytes: u64,
    /// Messages on disk now, waiting to come back into the ring.
    pub spill_depth: u64,
    /// Segment files on disk now.
    pub spill_segments: u64,
    /// Bytes of segment files on disk now.
    pub spill_bytes_on_disk: u64,
    /// Publishes that found the spill full (its budget or its disk).
    pub spill_full: u64,
    /// Spilled messages found damaged or missing when read back (their
    /// positions were skipped).
    pub spill_lost: u64,
    /// The spill directory (overflow=spill).
    pub spill_dir: Option<PathBuf>,
    /// Messages scheduled for later ([`Meta::delay`](crate::Meta::delay),
    /// [`Meta::deliver_at`](crate::Meta::deliver_at)) and not yet due and
    /// moved into the ring, nor cancelled.
    pub scheduled: u64,
    /// When the earliest scheduled message is due (CLOCK_REALTIME ns), if
    /// any is scheduled. In the past: due, and moved in by the next
    /// consumer or producer that passes by.
    pub next_due_ns: Option<u64>,
    /// Scheduled messages cancelled so far.
    pub scheduled_cancelled: u64,
    /// Scheduled messages found damaged or missing on disk (reported by
    /// the call that met them, never delivered as read).
    pub scheduled_lost: u64,
    /// The journal (with `Options::journal`).
    pub journal: Option<JournalStats>,
    /// Every group.
    pub groups: Vec<GroupInfo>,
    /// While the ring is full or the queue spills: what holds it full (the
    /// group furthest behind, the spill's budget or disk), as
    /// [`Queue::why_full`] says it.
    pub why_full: Option<String>,
}

/// What a queue's journal holds.
#[derive(Clone, Debug)]
pub struct JournalStats {
    /// Oldest retained seq (seek and replay from here on).
    pub first_seq: u64,
    /// CLOCK_REALTIME ns of the oldest retained message, if any.
    pub first_ns: Option<u64>,
    /// Seq of the next message to be journaled: everything retained below
    /// it is in the journal.
    pub next_seq: u64,
    /// Messages journaled so far.
    pub journaled: u64,
    /// Payload bytes journaled so far.
    pub journaled_bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Bytes of segment files on disk.
    pub bytes_on_disk: u64,
    /// Seqs whose retention ran out (their segment was deleted).
    pub expired: u64,
    /// Messages the journal skipped because the disk had no room for its
    /// next segment even after its own oldest were deleted (a full disk
    /// never holds the ring: replay has a gap there instead).
    pub skipped: u64,
}

/// A queue. Cheap to clone; every clone, producer and consumer shares one
/// mapping of the queue file.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{ConsumerOptions, Options, Queue};
/// let opts = Options::new().dir(dir.path()).slots(64).slot_size(128);
/// let q = Queue::create("doc-queue", &opts)?;
/// let mut consumer = q.consumer("readers", ConsumerOptions::new())?;
/// let mut producer = q.producer()?;
/// let seq = producer.publish(b"hello")?;
/// let msg = consumer.receive()?;
/// assert_eq!((msg.seq(), msg.payload()), (seq, &b"hello"[..]));
/// # drop(msg);
/// # Queue::remove("doc-queue", &opts)?;
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) shared: Arc<OpenQueue>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.shared.name)
            .field("path", &self.shared.path)
            .finish()
    }
}

fn queue_path(name: &str, opts: &Options) -> Result<PathBuf> {
    crate::options::check_queue_name(name)?;
    Ok(opts.get_dir().join(format!("{name}.shmq")))
}

impl Queue {
    /// Creates queue `name` (file `<dir>/<name>.shmq`, created exclusively
    /// with `opts.mode`, never through a symlink).
    pub fn create(name: &str, opts: &Options) -> Result<Queue> {
        let path = queue_path(name, opts)?;
        opts.check()?;
        Ok(Queue {
            shared: Arc::new(queue_file::create(name, path, opts)?),
        })
    }

    /// Opens queue `name` in `$SHMQ_DIR` or `/dev/shm`.
    pub fn open(name: &str) -> Result<Queue> {
        Queue::open_with(name, &Options::new())
    }

    /// Opens queue `name` in `opts.dir` (the other options are read from
    /// the file).
    pub fn open_with(name: &str, opts: &Options) -> Result<Queue> {
        let path = queue_path(name, opts)?;
        Ok(Queue {
            shared: Arc::new(queue_file::open(name, path, opts)?),
        })
    }

    /// Opens queue `name`, creating it with `opts` if it does not exist. An
    /// existing queue keeps the options it was created with.
    pub fn open_or_create(name: &str, opts: &Options) -> Result<Queue> {
        match Queue::create(name, opts) {
            Err(Error::Exists(_)) => Queue::open_with(name, opts),
            other => other,
        }
    }

    /// Removes queue `name` of the default directory (as [`open`](Self::open)
    /// finds it): [`remove`](Self::remove) with default options.
    pub fn remove_default(name: &str) -> Result<()> {
        Queue::remove(name, &Options::default())
    }

    /// Removes queue `name`'s file; new opens fail with `NotFound`. Fails
    /// with `Busy`, naming their pids and groups, while consumers of other
    /// processes are attached: they would go on reading the removed file
    /// and never see the messages of a queue made again under its name (as
    /// [`delete_group`](Self::delete_group) and
    /// [`seek_group`](Self::seek_group) refuse a live consumer). This
    /// process's own consumers do not count (it has them in hand: they keep
    /// their mapping). [`remove_forced`](Self::remove_forced) removes it
    /// anyway.
    ///
    pub fn remove(name: &str, opts: &Options) -> Result<()> {
        match Queue::open_with(name, opts) {
            Ok(q) => {
                let live = q.shared.others_live_consumers();
                if !live.is_empty() {
                    let who: Vec<String> = live
                        .iter()
                        .map(|(pid, group)| format!("pid {pid} (group {group:?})"))
                        .collect();
                    return Err(Error::Busy(format!(
                        "queue {name:?} has {} live consumer(s): {}; they would go on reading \
                         the removed file and never see a queue made again under its name: \
                         stop them first, or remove it anyway (shmq rm --force, \
                         Queue::remove_forced)",
                        live.len(),
                        who.join(", ")
                    )));
                }
            }
            Err(e @ Error::NotFound(_)) => return Err(e),
            // A file nobody can open is nobody's queue any more (a
            // garbled or foreign file, another layout version): remove
            // it without asking.
            Err(_) => {}
        }
        Queue::remove_forced(name, opts)
    }

    /// Removes queue `name`'s file even while consumers are attached:
    /// processes that have it open keep using their mapping, and never see
    /// a queue made again under the name. New opens fail with `NotFound`.
    pub fn remove_forced(name: &str, opts: &Options) -> Result<()> {
        queue_file::remove(name, queue_path(name, opts)?)
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Path of the queue file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The spill directory (overflow=spill), where its segment files go.
    pub fn spill_dir(&self) -> Option<PathBuf> {
        self.shared.spill_dir()
    }

    /// Slots in the ring: its capacity in messages of up to `slot_size`
    /// bytes (a longer message takes several).
    pub fn slots(&self) -> u64 {
        self.shared.geo.slots
    }

    /// Bytes of payload a slot holds; a longer message takes consecutive
    /// slots, up to [`max_message_size`](Self::max_message_size).
    pub fn slot_size(&self) -> usize {
        self.shared.geo.slot_size as usize
    }

    /// The largest message the queue takes (payload, ordering key and
    /// headers together; `Options::max_message_size`).
    pub fn max_message_size(&self) -> usize {
        self.shared.config.max_message_size as usize
    }

    /// Every message's time to live (`Options::message_ttl`), if the
    /// queue has one: a message expires at the earlier of its own expiry
    /// ([`Message::expires_ns`](crate::Message::expires_ns)) and its
    /// timestamp plus this.
    pub fn message_ttl(&self) -> Option<std::time::Duration> {
        match self.shared.config.message_ttl_ns {
            0 => None,
            ns => Some(std::time::Duration::from_nanos(ns)),
        }
    }

    /// The delay every message of the queue is published with unless it
    /// says otherwise (`Options::delivery_delay`), if any.
    pub fn delivery_delay(&self) -> Option<std::time::Duration> {
        match self.shared.config.delivery_delay_ns {
            0 => None,
            ns => Some(std::time::Duration::from_nanos(ns)),
        }
    }

    /// Bytes of the queue file, all of them taken at create (the file is
    /// preallocated, so a directory without room fails there, not later).
    pub fn file_size(&self) -> u64 {
        self.shared.geo.total_size
    }

    /// Writes the mapping back to its file and waits for it: for a queue
    /// whose `dir` is on a disk, so its contents survive a reboot.
    pub fn flush(&self) -> Result<()> {
        self.shared
            .map
            .flush()
            .map_err(|e| Error::io(format!("flushing {}", self.shared.path.display()), e))
    }

    /// The queue's overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.shared.overflow()
    }

    /// A new producer. Producers are cheap; use one per thread.
    pub fn producer(&self) -> Result<Producer> {
        Producer::new(self.shared.clone())
    }

    /// A consumer of group `group`, which is created (at `opts.start`) if it
    /// does not exist. A group has at most one live consumer at a time.
    pub fn consumer(&self, group: &str, opts: ConsumerOptions) -> Result<Consumer> {
        Consumer::new(self.shared.clone(), group, opts)
    }

    /// Creates group `group` starting at `start`, so it retains everything
    /// from there before any consumer runs.
    pub fn create_group(&self, group: &str, start: Start) -> Result<()> {
        check_group_name(group)?;
        let g = self.shared.lock();
        self.shared
            .create_group_locked(&g, group, start)
            .map(|_| ())
    }

    /// Deletes group `group`: it stops retaining messages. Fails with
    /// `Busy` while a live consumer is attached.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        check_group_name(group)?;
        let g = self.shared.lock();
        self.shared
            .groups()
            .delete(&g, group, |p, k| self.shared.alive(p, k))?;
        drop(g);
        // Space may have been freed.
        self.shared.ring().notify_space();
        Ok(())
    }

    /// Every group, in table order.
    pub fn groups(&self) -> Vec<GroupInfo> {
        self.shared.group_infos()
    }

    /// Why a publish finds (or would find) no room: the group that holds
    /// the ring (or that there is none), and for a spilling queue what
    /// holds the spill full — its `spill_max_bytes` budget, its disk —
    /// with the option that helps. What the CLI prints while a publisher
    /// waits, and what the Python and C faces add to a publish's
    /// `Timeout`, `Full` and `SpillFull`.
    pub fn why_full(&self) -> String {
        crate::api::room::why_full(&self.shared)
    }

    /// The dead-letter queue.
    pub fn dlq(&self) -> DeadLetters {
        DeadLetters {
            shared: self.shared.clone(),
        }
    }

    /// Copies up to `count` retained messages from seq `from` on (from the
    /// oldest retained, if `from` is older), out of the journal where it
    /// has them and then the ring, without a group: no cursor, lease or
    /// counter moves, and no consumer notices. For operators (`shmq
    /// peek`): it holds the admin lock while it copies, so producers that
    /// need room wait for it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Options, Queue, Start};
    /// let q = Queue::create("doc-peek", &Options::new().dir(dir.path()).slots(8))?;
    /// q.create_group("g", Start::Earliest)?;
    /// q.producer()?.publish_batch(&[b"a", b"b", b"c"])?;
    /// let seen = q.peek(1, 10)?;
    /// assert_eq!(seen.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(seen[0].payload, b"b");
    /// assert_eq!(q.groups()[0].lag, 3); // nobody's cursor moved
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn peek(&self, from: u64, count: usize) -> Result<Vec<Peeked>> {
        let shared = &*self.shared;
        let mut out = Vec::new();
        // Under the admin lock `head` cannot move, so no slot at or past it
        // is written again while we copy it (as in `resolve_seek`).
        let g = shared.lock();
        let ring = shared.ring();
        let head = ring.ctl.head.load(Ordering::Acquire);
        let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        let mut pos = from;
        if pos < head {
            if let Some(mut r) = crate::open_queue::journal::JournalReader::new(shared) {
                while out.len() < count && pos < head {
                    match r.find(pos, &shared.header().journal)? {
                        Some(rec) if rec.seq < head => {
                            // SAFETY: the reader `r` holds the record's
                            // segment until its next read.
                            let body = unsafe { rec.stored() };
                            let o = envelope::owned(body, rec.enveloped);
                            out.push(Peeked {
                                seq: rec.seq,
                                timestamp_ns: rec.timestamp_ns,
                                type_id: rec.type_id,
                                correlation_id: rec.correlation_id,
                                payload: o.payload,
                                ordering_key: o.ordering_key,
                                headers: o.headers,
                                from_journal: true,
                                expires_ns: o.expires_ns,
                            });
                            pos = rec.seq + 1;
                        }
                        _ => break,
                    }
                }
            }
            pos = pos.max(head);
        }
        while out.len() < count && pos < tail {
            let span = match ring.peek(pos) {
                Peek::Ready(span) => {
                    // SAFETY: committed, and `head <= pos` holds while we
                    // hold the admin lock, so nobody rewrites the slot.
                    let Some(rec) = (unsafe { shared.committed_record(pos) }) else {
                        return Err(Error::corrupt(
                            &shared.path,
                            format!(
                                "the record of seq {pos} claims more bytes than its slots hold"
                            ),
                        ));
                    };
                    let o = envelope::owned(rec.payload, rec.enveloped);
                    out.push(Peeked {
                        seq: pos,
                        timestamp_ns: rec.timestamp_ns,
                        type_id: rec.type_id,
                        correlation_id: rec.correlation_id,
                        payload: o.payload,
                        ordering_key: o.ordering_key,
                        headers: o.headers,
                        from_journal: false,
                        expires_ns: o.expires_ns,
                    });
                    span
                }
                Peek::Skip(span) => span,
                // Not committed yet (or its abort not settled): later ones
                // are not readable in order.
                Peek::Settling | Peek::NotYet(_) => break,
            };
            pos += span;
        }
        drop(g);
        Ok(out)
    }

    /// Moves group `group` to `to` (replay or skip) while no consumer is
    /// attached; returns the seq it will receive next. Seeks are clamped
    /// to what the queue retains ([`Seek`] says what that is): compare the
    /// seq returned with the one asked for.
    pub fn seek_group(&self, group: &str, to: Seek) -> Result<u64> {
        check_group_name(group)?;
        let g = self.shared.lock();
        let groups = self.shared.groups();
        let idx = groups
            .find(&g, group)
            .ok_or_else(|| Error::NotFound(format!("group {group:?}")))?;
        let sharers = Registry {
            records: self.shared.consumer_records(),
        }
        .count(idx, |p, k| self.shared.alive(p, k));
        if sharers > 0 {
            return Err(Error::Busy(format!(
                "group {group:?} has {sharers} live ack=manual consumer(s); stop them first"
            )));
        }
        let start = resolve_seek(&self.shared, &g, to)?;
        let pos = groups.seek(&g, idx, group, start, 0, |p, k| self.shared.alive(p, k))?;
        if let Some(leases) = self.shared.leases_in_use(idx) {
            leases.reset();
        }
        drop(g);
        self.shared.ring().notify_space();
        Ok(pos)
    }

    /// A snapshot of counters and cursors. Never waits long for another
    /// process: with a journal, if the admin lock is not free within
    /// 100 ms (a process stopped while holding it), the journal's figures
    /// are those its words say, without the last messages not yet copied.
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        let hdr = shared.header();
        let groups = self.groups();
        let head = hdr.ring.head.load(Ordering::Acquire);
        let tail = crate::protocol::spill::end_seq(&hdr.ring, &hdr.spill);
        let sp = &hdr.spill;
        let spilling = crate::protocol::spill::spilling(hdr.ring.tail.load(Ordering::Acquire));
        let lost = sp.lost.load(Ordering::Relaxed);
        let aborted = hdr.counters.aborted.load(Ordering::Relaxed);
        let min_committed = groups.iter().map(|g| g.committed).min();
        let producers = shared
            .producer_records()
            .iter()
            .filter(|r| {
                let owner = r.owner.load(Ordering::Acquire);
                owner != 0
                    && self
                        .shared
                        .alive(owner_pid(owner), r.owner_key.load(Ordering::Acquire))
            })
            .count() as u64;
        Stats {
            name: shared.name.clone(),
            path: shared.path.clone(),
            slots: shared.geo.slots,
            slot_size: shared.geo.slot_size,
            max_message_size: shared.config.max_message_size,
            capacity: shared.geo.slots * shared.geo.slot_stride,
            file_size: shared.geo.total_size,
            overflow: shared.overflow(),
            next_seq: tail,
            oldest_seq: head,
            depth: tail.saturating_sub(min_committed.unwrap_or(head)),
            depth_bytes: tail.saturating_sub(min_committed.unwrap_or(head))
                * shared.geo.slot_stride,
            published: tail
                .saturating_sub(hdr.counters.extra_slots.load(Ordering::Relaxed))
                .saturating_sub(aborted + lost),
            spilled: sp.spilled.load(Ordering::Relaxed),
            spilled_bytes: sp.spilled_bytes.load(Ordering::Relaxed),
            spill_depth: if spilling {
                tail.saturating_sub(sp.read_seq.load(Ordering::Relaxed))
            } else {
                0
            },
            spill_segments: sp.segments.load(Ordering::Relaxed),
            spill_bytes_on_disk: sp.bytes_on_disk.load(Ordering::Relaxed),
            spill_full: sp.full.load(Ordering::Relaxed),
            spill_lost: lost,
            spill_dir: self.spill_dir(),
            scheduled: hdr.schedule.count.load(Ordering::Relaxed),
            next_due_ns: Some(hdr.schedule.next_due_ns.load(Ordering::Relaxed)).filter(|&d| d != 0),
            scheduled_cancelled: hdr.schedule.cancelled.load(Ordering::Relaxed),
            scheduled_lost: hdr.schedule.lost.load(Ordering::Relaxed),
            journal: shared.journal.as_ref().and_then(|_| {
                // The lock brings the journal up to date first; a live
                // holder that keeps it (a process stopped holding it) must
                // not hang a look at the queue: the journal's words then.
                let g = shared.lock_within(crate::open_queue::STATS_PATIENCE);
                let (first_seq, first_ns, next_seq) = shared.journal_range(g.as_ref())?;
                let j = &hdr.journal;
                Some(JournalStats {
                    first_seq,
                    first_ns,
                    next_seq,
                    journaled: j.spilled.load(Ordering::Relaxed),
                    journaled_bytes: j.spilled_bytes.load(Ordering::Relaxed),
                    segments: j.segments.load(Ordering::Relaxed),
                    bytes_on_disk: j.bytes_on_disk.load(Ordering::Relaxed),
                    expired: j.lost.load(Ordering::Relaxed),
                    skipped: j.full.load(Ordering::Relaxed),
                })
            }),
            rejected: hdr.counters.rejected.load(Ordering::Relaxed),
            deduplicated: hdr.counters.deduplicated.load(Ordering::Relaxed),
            aborted,
            producers,
            consumers: groups.iter().map(|g| g.consumers).sum(),
            dlq_depth: self.dlq().len(),
            dlq_lost: shared.header().dlq_spill.lost.load(Ordering::Relaxed),
            why_full: (spilling
                || crate::protocol::spill::ring_tail(hdr.ring.tail.load(Ordering::Acquire))
                    .saturating_sub(head)
                    >= shared.geo.slots)
                .then(|| crate::api::room::why_full_with(shared, &groups)),
            groups,
        }
    }
}
