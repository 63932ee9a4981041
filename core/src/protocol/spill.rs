//! overflow=spill: when the ring is full, messages go to segment files on
//! disk, and come back into the ring, in seq order, as consumers free it.
//!
//! Consumers only ever read the ring, so everything they do — groups,
//! leases, acks, the DLQ, zero-copy borrows — works unchanged on spilled
//! messages. The spill is a seq range `read_seq .. end_seq` in front of
//! the ring:
//!
//! ```text
//!   ring positions (in slots)      spill (segment files)
//!   head ........ tail=read_seq    read_seq ........ end_seq
//!   groups read here               copied into the ring at `tail` when it
//!                                  has room; new publishes append at end_seq
//! ```
//!
//! **The switch.** A producer that finds the ring full takes the admin lock
//! and CASes `tail` from the value it saw to `tail | SPILLING` (having set
//! `read_seq = end_seq = tail`). The CAS races only with other producers'
//! claim CASes on the same word, so exactly one wins: either a producer
//! claimed the last free position (and the would-be spiller goes back to
//! the ring) or the spill starts at that seq. From then on every claim
//! sees a full ring (the flag is the top bit of `tail`), so every publish
//! takes the slow path to the spill, in seq order.
//!
//! **Refill.** Whoever holds the lock — a producer spilling, or a consumer
//! that ran out of ring messages — copies record `read_seq` into ring
//! position `read_seq` while it is below `head + slots`, commits it (the
//! same CAS as a producer's), records `read_seq + 1`, then stores `tail =
//! (read_seq + 1) | SPILLING`. Consumers abort a position only if `tail` is
//! past it, so nobody aborts the position being refilled; a refiller that
//! dies mid-copy leaves `tail` and `read_seq` where they were and the next
//! one copies the record again. When `read_seq == end_seq` the spill is
//! empty: its segments are deleted and `tail` is stored without the flag,
//! and producers claim in the ring again.
//!
//! Segments are deleted as soon as every record in them is back in the
//! ring: from then on the ring holds the messages (and gates its slots
//! until every group is past them), so the spill's copy is no longer
//! needed. loom model: `loom_spill_switch_keeps_seq_order`.

use crate::error::{Error, Result};
use crate::layout::{RingControl, SPILLING, SpillControl};
use crate::loom::Ordering;
use crate::options::Meta;
use crate::protocol::ring::{Ring, SlotStates};

/// A message as the spill holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub correlation_id: u64,
    pub type_id: u32,
    /// The body starts with an envelope (ordering key, headers): see
    /// `envelope.rs`. `payload` is then the whole body.
    pub enveloped: bool,
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record of a message published with `meta` at `ts` (CLOCK_REALTIME
    /// ns): `body` is its payload, or its whole body if `enveloped`. The
    /// spill hands out its seq.
    pub(crate) fn of(body: &'a [u8], enveloped: bool, meta: &Meta, ts: u64) -> Record<'a> {
        Record {
            seq: 0,
            timestamp_ns: ts,
            correlation_id: meta.correlation_id,
            type_id: meta.type_id,
            enveloped,
            payload: body,
        }
    }
}

/// What [`Log::read`] found for the record `read_seq`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// It was handed to the callback; the next record is at `(seg, off)`.
    Done {
        /// Segment of the next record.
        seg: u64,
        /// Offset of the next record.
        off: u64,
    },
    /// It is lost (damaged or missing); the read position already points
    /// at the next intact record.
    Lost,
}

/// The spill's records, wherever they live: segment files in production
/// (`segment::Segments`), a `Vec` in tests and loom models. Every method is
/// called under the admin lock and keeps `ctl`'s write and read positions.
pub(crate) trait Log {
    /// Writes `rec` (whose seq is `ctl.end_seq`) at the write position,
    /// rolling to a new segment when needed, but does not move the write
    /// position: the caller moves `end_seq` (the record counts from then
    /// on), then calls [`record_written`](Self::record_written). A holder
    /// killed in between leaves a state [`repair`](Self::repair) finishes:
    /// never a counted record that the next append writes over, nor an
    /// uncounted one ahead of it.
    fn write_record(&mut self, ctl: &SpillControl, rec: &Record<'_>) -> Result<()>;
    /// Moves the write position past the record `write_record` wrote.
    fn record_written(&mut self, ctl: &SpillControl);
    /// Finishes what a holder killed between recording `end_seq` and
    /// moving the write position left: called under the lock before
    /// anything else reads or writes the log.
    fn repair(&mut self, ctl: &SpillControl) -> Result<()>;
    /// Reads record `ctl.read_seq` at the read position, handing it to `f`.
    fn read(&mut self, ctl: &SpillControl, f: &mut dyn FnMut(&Record<'_>)) -> Result<Read>;
    /// Drops everything: the spill is empty (`read_seq == end_seq`).
    fn clear(&mut self, ctl: &SpillControl) -> Result<()>;
    /// Undoes appends back to a saved write position (a batch that could
    /// not be spilled whole); `None`: the log was empty before them.
    fn truncate(&mut self, ctl: &SpillControl, to: Option<(u64, u64)>) -> Result<()>;
}

/// Whether the queue is spilling, from a `tail` word.
#[inline(always)]
pub(crate) fn spilling(tail: u64) -> bool {
    tail & SPILLING != 0
}

/// The next ring position, from a `tail` word.
#[inline(always)]
pub(crate) fn ring_tail(tail: u64) -> u64 {
    tail & !SPILLING
}

/// The seq the next published message gets: `end_seq` while spilling.
pub(crate) fn end_seq(ring: &RingControl, spill: &SpillControl) -> u64 {
    // Acquire pairs with the Release/SeqCst stores of `tail`; `end_seq` is
    // written before the flag is set and only grows while it is.
    let t = ring.tail.load(Ordering::Acquire);
    if spilling(t) {
        spill.end_seq.load(Ordering::Acquire).max(ring_tail(t))
    } else {
        t
    }
}

/// Appends `recs` to the spill, first switching the queue to spilling if
/// it is not yet (the ring is full: the caller found no room). Returns the
/// first seq, or `None` if the ring had room after all (a claim there won
/// the race): claim in the ring again. Called under the admin lock.
pub(crate) fn append<S: SlotStates, L: Log>(
    ring: &Ring<'_, S>,
    ctl: &SpillControl,
    log: &mut L,
    recs: &mut [Record<'_>],
    span: &dyn Fn(&Record<'_>) -> u64,
    claimed: &mut dyn FnMut(u64),
) -> Result<Option<u64>> {
    // The ring positions the records would take: a spilled record's seq is
    // the position it goes back to.
    let n: u64 = recs.iter().map(span).sum();
    // Acquire: pairs with claims' AcqRel CAS and refills' stores of tail.
    let t = ring.ctl.tail.load(Ordering::Acquire);
    if !spilling(t) {
        let head = ring.ctl.head.load(Ordering::Acquire);
        if t + n <= head + ring.capacity {
            return Ok(None);
        }
        // Set before the flag, so that a set flag always comes with a
        // valid range (a holder killed right here leaves them unused).
        ctl.end_seq.store(t, Ordering::Relaxed);
        ctl.read_seq.store(t, Ordering::Relaxed);
        // AcqRel: the one CAS that decides between this switch and a
        // producer's claim of position t (see the module doc).
        if ring
            .ctl
            .tail
            .compare_exchange(t, t | SPILLING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Ok(None);
        }
        ctl.active.store(1, Ordering::Release);
    }
    crate::loom::fault_point("spill.switched");
    let first = ctl.end_seq.load(Ordering::Relaxed);
    claimed(first);
    let saved = (ctl.segments.load(Ordering::Relaxed) != 0).then(|| {
        (
            ctl.write_seg.load(Ordering::Relaxed),
            ctl.write_off.load(Ordering::Relaxed),
        )
    });
    let mut seq = first;
    for (i, rec) in recs.iter_mut().enumerate() {
        rec.seq = seq;
        seq += span(rec);
        if let Err(e) = log.write_record(ctl, rec) {
            if i > 0 {
                // All or nothing: forget the records of this batch.
                ctl.end_seq.store(first, Ordering::Release);
                log.truncate(ctl, saved)?;
            }
            ctl.full.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        // Release: stats readers see the count after the record. The
        // record counts from here (a holder killed now leaves the write
        // position to `Log::repair`).
        ctl.end_seq.store(seq, Ordering::Release);
        log.record_written(ctl);
        ctl.spilled.fetch_add(1, Ordering::Relaxed);
        ctl.spilled_bytes
            .fetch_add(rec.payload.len() as u64, Ordering::Relaxed);
    }
    Ok(Some(first))
}

/// What a [`refill`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Refilled {
    /// Messages copied back into the ring.
    pub copied: u64,
    /// Messages found lost (their positions were aborted).
    pub lost: u64,
    /// The spill became empty and the queue went back to the ring.
    pub back_to_ring: bool,
}

/// Copies spilled messages back into the ring while it has room, and
/// switches back to the ring when the spill is empty. `limit()` returns
/// `head + slots` after advancing `head` (it is called only when the ring
/// looks full); `span(rec)` is the slots a record takes; `held(pos, span)`
/// says whether a revoked stalled producer of an older lap still writes
/// one of those slots; `write(pos, rec)` copies a record into its slots.
/// Called under the admin lock.
pub(crate) fn refill<S: SlotStates, L: Log>(
    ring: &Ring<'_, S>,
    ctl: &SpillControl,
    log: &mut L,
    limit: &mut dyn FnMut() -> u64,
    span: &dyn Fn(&Record<'_>) -> u64,
    held: &dyn Fn(u64, u64) -> bool,
    write: &mut dyn FnMut(u64, &Record<'_>),
) -> Result<Refilled> {
    let mut out = Refilled::default();
    let mut room_below = 0;
    loop {
        let t = ring.ctl.tail.load(Ordering::Acquire);
        if !spilling(t) {
            return Ok(out);
        }
        let mut pos = ring_tail(t);
        let read = ctl.read_seq.load(Ordering::Relaxed);
        if read > pos {
            // A refiller died between recording read_seq and storing tail.
            ring.ctl.tail.store(read | SPILLING, Ordering::Release);
            pos = read;
        }
        if pos >= ctl.end_seq.load(Ordering::Relaxed) {
            log.clear(ctl)?;
            crate::loom::fault_point("refill.cleared");
            ctl.active.store(0, Ordering::Release);
            // SeqCst: producers asleep for space re-check with SeqCst loads
            // of tail (the caller then wakes them, `Ring::notify_space`);
            // Release for the claimers' Acquire of everything above.
            ring.ctl.tail.store(pos, Ordering::SeqCst);
            out.back_to_ring = true;
            return Ok(out);
        }
        if pos >= room_below {
            room_below = limit();
            if pos >= room_below {
                return Ok(out);
            }
        }
        let state = ring.slots.state(pos);
        // SeqCst: as a producer's `Ring::begin` — with the revocation
        // count and scan in `held`, the later-lap half of the
        // stalled-writer protocol.
        crate::loom::sc_fence();
        let word = state.load(Ordering::SeqCst);
        let done_before = ring.is_for(word, pos);
        // What the record needs, and whether it could be written.
        let (mut copied, mut wanted) = (false, 1);
        let mut blocked = false;
        let read = log.read(ctl, &mut |rec| {
            wanted = span(rec);
            if done_before {
                return;
            }
            if pos + wanted > room_below
                || (ring.ctl.revoked.load(Ordering::SeqCst) != 0 && held(pos, wanted))
            {
                blocked = true;
                return;
            }
            ring.note_long(pos, wanted);
            write(pos, rec);
            copied = true;
        })?;
        if blocked {
            if pos + wanted > room_below {
                // Room for a longer record: ask for it once more.
                room_below = limit();
                if pos + wanted <= room_below {
                    continue;
                }
            }
            // Consumers must free more of the ring, or a stalled, revoked
            // producer of an older lap still writes these slots: later.
            return Ok(out);
        }
        crate::loom::fault_point("refill.copied");
        let next = match read {
            Read::Done { seg, off } => {
                if copied && ring.commit_cas(pos, wanted, word).is_err() {
                    return Err(Error::Busy(format!(
                        "spill refill of position {pos} raced with another writer"
                    )));
                }
                ctl.read_seg.store(seg, Ordering::Relaxed);
                ctl.read_off.store(off, Ordering::Relaxed);
                out.copied += u64::from(copied);
                pos + if done_before {
                    ring.span_of(word).max(1)
                } else {
                    wanted
                }
            }
            // A refiller killed after its commit (and its move of the
            // read position) left this one in the ring already: the log
            // has nothing more for it, and nothing is lost.
            Read::Lost if done_before => pos + ring.span_of(word).max(1),
            // Lost: its position is aborted, one slot at a time (the
            // next intact record says where the next seq is, and each
            // slot before it is asked for in turn).
            Read::Lost => {
                ring.abort_unbegun(pos, 1, word);
                ctl.lost.fetch_add(1, Ordering::Relaxed);
                out.lost += 1;
                pos + 1
            }
        };
        crate::loom::fault_point("refill.committed");
        ctl.read_seq.store(next, Ordering::Relaxed);
        crate::loom::fault_point("refill.recorded");
        // Release: the record's commit (or abort) and the read position
        // before consumers and producers see the new tail.
        ring.ctl.tail.store(next | SPILLING, Ordering::Release);
        ring.notify_data();
    }
}

/// An in-memory log, for tests and loom models: records in a `Vec`.
#[cfg(any(test, loom))]
#[derive(Default)]
pub(crate) struct VecLog {
    pub records: Vec<(u64, Vec<u8>)>,
    /// Records removed from the front (read back).
    pub dropped: usize,
    /// Appends allowed before `SpillFull` (None: unlimited).
    pub room: Option<usize>,
}

#[cfg(any(test, loom))]
impl Log for VecLog {
    fn record_written(&mut self, _ctl: &SpillControl) {}

    fn repair(&mut self, _ctl: &SpillControl) -> Result<()> {
        Ok(())
    }

    fn write_record(&mut self, _ctl: &SpillControl, rec: &Record<'_>) -> Result<()> {
        if let Some(room) = self.room {
            if self.records.len() - self.dropped >= room {
                return Err(Error::SpillFull("test budget".into()));
            }
        }
        self.records.push((rec.seq, rec.payload.to_vec()));
        Ok(())
    }

    fn read(&mut self, ctl: &SpillControl, f: &mut dyn FnMut(&Record<'_>)) -> Result<Read> {
        let want = ctl.read_seq.load(Ordering::Relaxed);
        let Some((seq, payload)) = self.records.get(self.dropped) else {
            return Ok(Read::Lost);
        };
        assert_eq!(*seq, want, "records come back in seq order");
        f(&Record {
            seq: *seq,
            timestamp_ns: 0,
            correlation_id: 0,
            type_id: 0,
            enveloped: false,
            payload,
        });
        self.dropped += 1;
        Ok(Read::Done {
            seg: 0,
            off: self.dropped as u64,
        })
    }

    fn clear(&mut self, _ctl: &SpillControl) -> Result<()> {
        self.records.clear();
        self.dropped = 0;
        Ok(())
    }

    fn truncate(&mut self, ctl: &SpillControl, _to: Option<(u64, u64)>) -> Result<()> {
        let end = ctl.end_seq.load(Ordering::Relaxed);
        self.records.retain(|(s, _)| *s < end);
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::layout::slot_state::{ABORTED, COMMITTED};
    use crate::loom::AtomicU64;
    use crate::protocol::ring::Claim;

    struct Fixture {
        ctl: Box<RingControl>,
        spill: Box<SpillControl>,
        slots: Vec<AtomicU64>,
        bells: Box<crate::layout::Doorbells>,
    }

    fn fixture(cap: usize) -> Fixture {
        Fixture {
            ctl: Box::new(RingControl::new()),
            spill: Box::new(SpillControl::new()),
            slots: (0..cap).map(|_| AtomicU64::new(0)).collect(),
            bells: Box::new(crate::layout::Doorbells::new()),
        }
    }

    impl Fixture {
        fn ring(&self) -> Ring<'_, &[AtomicU64]> {
            Ring {
                ctl: &self.ctl,
                slots: &self.slots[..],
                capacity: self.slots.len() as u64,
                bells: &self.bells,
            }
        }

        /// A full ring (tail at its capacity, nothing read) that then
        /// spills `payloads`.
        fn spilled(&self, payloads: &[&[u8]]) -> VecLog {
            self.ctl
                .tail
                .store(self.slots.len() as u64, Ordering::Relaxed);
            let mut log = VecLog::default();
            let mut recs: Vec<Record<'_>> = payloads.iter().map(|p| rec(p)).collect();
            append(
                &self.ring(),
                &self.spill,
                &mut log,
                &mut recs,
                &|_| 1,
                &mut |_| {},
            )
            .unwrap();
            log
        }

        /// Refills with room below position 8 and no slot held; returns
        /// what it did and the copies it made.
        fn refill_all(&self, log: &mut impl Log) -> (Refilled, Vec<(u64, Vec<u8>)>) {
            let mut got = Vec::new();
            let r = refill(
                &self.ring(),
                &self.spill,
                log,
                &mut || 8,
                &|_| 1,
                &|_, _| false,
                &mut |pos, r| got.push((pos, r.payload.to_vec())),
            )
            .unwrap();
            (r, got)
        }
    }

    fn rec(payload: &[u8]) -> Record<'_> {
        Record {
            seq: 0,
            timestamp_ns: 0,
            correlation_id: 0,
            type_id: 0,
            enveloped: false,
            payload,
        }
    }

    #[test]
    fn full_ring_spills_then_refills_in_order_then_goes_back() {
        let f = fixture(2);
        let ring = f.ring();
        let mut log = VecLog::default();
        let mut head = 0;
        assert_eq!(ring.claim(2, &mut head), Claim::Claimed(0));
        // Ring has room: append says so.
        f.ctl.head.store(1, Ordering::Relaxed);
        assert_eq!(
            append(
                &ring,
                &f.spill,
                &mut log,
                &mut [rec(b"x")],
                &|_| 1,
                &mut |_| {}
            )
            .unwrap(),
            None
        );
        f.ctl.head.store(0, Ordering::Relaxed);
        // Full: the spill starts at seq 2 and claims now see a full ring.
        assert_eq!(
            append(
                &ring,
                &f.spill,
                &mut log,
                &mut [rec(b"a"), rec(b"b")],
                &|_| 1,
                &mut |_| {}
            )
            .unwrap(),
            Some(2)
        );
        assert_eq!(end_seq(&f.ctl, &f.spill), 4);
        assert_eq!(f.spill.active.load(Ordering::Relaxed), 1);
        assert_eq!(ring.claim(1, &mut 10), Claim::Full);
        // Positions 0 and 1 were committed in the ring meanwhile.
        for p in 0..2 {
            f.slots[p].store(f.ring().word(p as u64, 1, COMMITTED), Ordering::Relaxed);
        }
        let mut written = Vec::new();
        let mut limit_head = 0;
        let refill_now = |limit_head: u64, log: &mut VecLog, written: &mut Vec<(u64, Vec<u8>)>| {
            refill(
                &ring,
                &f.spill,
                log,
                &mut || limit_head + 2,
                &|_| 1,
                &|_, _| false,
                &mut |pos, r| written.push((pos, r.payload.to_vec())),
            )
            .unwrap()
        };
        // No room yet (head 0): nothing moves.
        assert_eq!(
            refill_now(limit_head, &mut log, &mut written),
            Refilled::default()
        );
        limit_head = 1;
        let r = refill_now(limit_head, &mut log, &mut written);
        assert_eq!((r.copied, r.back_to_ring), (1, false));
        assert_eq!(written, [(2, b"a".to_vec())]);
        assert_eq!(
            f.slots[0].load(Ordering::Relaxed),
            f.ring().word(2, 1, COMMITTED)
        );
        // A publish while spilling goes to the spill, after b.
        assert_eq!(
            append(
                &ring,
                &f.spill,
                &mut log,
                &mut [rec(b"c")],
                &|_| 1,
                &mut |_| {}
            )
            .unwrap(),
            Some(4)
        );
        limit_head = 3;
        let r = refill_now(limit_head, &mut log, &mut written);
        assert_eq!((r.copied, r.back_to_ring), (2, true));
        assert_eq!(written[1..], [(3, b"b".to_vec()), (4, b"c".to_vec())]);
        assert_eq!(f.ctl.tail.load(Ordering::Relaxed), 5, "back to the ring");
        assert_eq!(f.spill.active.load(Ordering::Relaxed), 0);
        assert_eq!(ring.claim(1, &mut 4), Claim::Claimed(5));
    }

    #[test]
    fn a_lost_record_aborts_its_position_and_the_rest_flows() {
        let f = fixture(4);
        let mut log = f.spilled(&[b"a", b"b"]);
        // Record 4 is damaged: the log says it is lost and moves past it.
        log.dropped = 1;
        struct Lossy(VecLog, bool);
        impl Log for Lossy {
            fn write_record(&mut self, c: &SpillControl, r: &Record<'_>) -> Result<()> {
                self.0.write_record(c, r)
            }
            fn record_written(&mut self, c: &SpillControl) {
                self.0.record_written(c)
            }
            fn repair(&mut self, c: &SpillControl) -> Result<()> {
                self.0.repair(c)
            }
            fn read(&mut self, c: &SpillControl, f: &mut dyn FnMut(&Record<'_>)) -> Result<Read> {
                if !self.1 {
                    self.1 = true;
                    return Ok(Read::Lost);
                }
                self.0.read(c, f)
            }
            fn clear(&mut self, c: &SpillControl) -> Result<()> {
                self.0.clear(c)
            }
            fn truncate(&mut self, c: &SpillControl, to: Option<(u64, u64)>) -> Result<()> {
                self.0.truncate(c, to)
            }
        }
        let (r, got) = f.refill_all(&mut Lossy(log, false));
        assert_eq!((r.copied, r.lost, r.back_to_ring), (1, 1, true));
        assert_eq!(
            f.slots[0].load(Ordering::Relaxed),
            f.ring().word(4, 1, ABORTED)
        );
        assert_eq!(got, [(5, b"b".to_vec())]);
        assert_eq!(f.spill.lost.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_batch_that_does_not_fit_is_not_spilled_at_all() {
        let f = fixture(2);
        let ring = f.ring();
        f.ctl.tail.store(2, Ordering::Relaxed);
        let mut log = VecLog {
            room: Some(2),
            ..VecLog::default()
        };
        let e = append(
            &ring,
            &f.spill,
            &mut log,
            &mut [rec(b"a"), rec(b"b"), rec(b"c")],
            &|_| 1,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(e, Error::SpillFull(_)));
        assert_eq!(f.spill.end_seq.load(Ordering::Relaxed), 2);
        assert!(log.records.is_empty());
        assert_eq!(f.spill.full.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_refiller_killed_after_recording_read_seq_is_repaired() {
        let f = fixture(4);
        let mut log = f.spilled(&[b"a", b"b"]);
        // It copied and committed 4 and recorded read_seq 5, then died.
        f.slots[0].store(f.ring().word(4, 1, COMMITTED), Ordering::Relaxed);
        log.dropped = 1;
        f.spill.read_seq.store(5, Ordering::Relaxed);
        let (r, got) = f.refill_all(&mut log);
        assert_eq!(got, [(5, b"b".to_vec())]);
        assert!(r.back_to_ring);
        assert_eq!(f.ctl.tail.load(Ordering::Relaxed), 6);
    }

    #[test]
    fn a_record_committed_by_a_dead_refiller_is_not_copied_twice() {
        let f = fixture(4);
        let mut log = f.spilled(&[b"a"]);
        // Committed in the ring, but neither read_seq nor tail recorded.
        f.slots[0].store(f.ring().word(4, 1, COMMITTED), Ordering::Relaxed);
        let (r, got) = f.refill_all(&mut log);
        assert_eq!((got.len(), r.copied, r.back_to_ring), (0, 0, true));
        assert_eq!(f.ctl.tail.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_held_slot_waits() {
        let f = fixture(2);
        let ring = f.ring();
        let mut log = f.spilled(&[b"a"]);
        f.slots[0].store(f.ring().word(0, 1, ABORTED), Ordering::Relaxed);
        // A revoked writer is counted, and its slots overlap ours.
        f.ctl.revoked.store(1, Ordering::Relaxed);
        let r = refill(
            &ring,
            &f.spill,
            &mut log,
            &mut || 4,
            &|_| 1,
            &|_, _| true,
            &mut |_, _| panic!("must not write a held slot"),
        )
        .unwrap();
        assert_eq!(r, Refilled::default());
        assert_eq!(f.ctl.tail.load(Ordering::Relaxed), 2 | SPILLING);
    }

    #[test]
    fn long_records_spill_and_come_back_at_the_positions_their_seqs_name() {
        let f = fixture(8);
        let ring = f.ring();
        f.ctl.tail.store(8, Ordering::Relaxed);
        let mut log = VecLog::default();
        // A record's span is its length here: 3 slots, then 1, then 2.
        let span = |r: &Record<'_>| r.payload.len() as u64;
        let mut recs = [rec(b"aaa"), rec(b"b"), rec(b"cc")];
        assert_eq!(
            append(&ring, &f.spill, &mut log, &mut recs, &span, &mut |_| {}).unwrap(),
            Some(8)
        );
        assert_eq!(recs.map(|r| r.seq), [8, 11, 12]);
        assert_eq!(end_seq(&f.ctl, &f.spill), 14);
        // Room for the first two only (up to position 12).
        let mut got = Vec::new();
        let r = refill(
            &ring,
            &f.spill,
            &mut log,
            &mut || 12,
            &span,
            &|_, _| false,
            &mut |pos, r| got.push((pos, r.payload.to_vec())),
        )
        .unwrap();
        assert_eq!((r.copied, r.back_to_ring), (2, false));
        assert_eq!(got, [(8, b"aaa".to_vec()), (11, b"b".to_vec())]);
        assert_eq!(ring.peek(8), crate::protocol::ring::Peek::Ready(3));
        assert_eq!(f.ctl.tail.load(Ordering::Relaxed), 12 | SPILLING);
        // Room for the last: it goes to 12 and 13, and the ring is back.
        let r = refill(
            &ring,
            &f.spill,
            &mut log,
            &mut || 16,
            &span,
            &|_, _| false,
            &mut |pos, r| got.push((pos, r.payload.to_vec())),
        )
        .unwrap();
        assert_eq!((r.copied, r.back_to_ring), (1, true));
        assert_eq!(got[2], (12, b"cc".to_vec()));
        assert_eq!(f.ctl.tail.load(Ordering::Relaxed), 14);
    }
}
