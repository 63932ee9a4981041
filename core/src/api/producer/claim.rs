//! Claiming positions: the room the groups leave, the overflow policy
//! (block, reject, spill) when there is none, waiting for room (asleep or
//! through a readiness handle), and the spill path.

use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use crate::api::readiness::{Arm, For, Readiness};
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::options::Overflow;
use crate::protocol::ring::Claim;
use crate::protocol::signal::sleep_unless;
use crate::protocol::spill::Record;

use super::*;

/// How soon an async publisher refused the schedule's lock looks again
/// (a blocking one sleeps 200 µs between tries; an event loop's timer is
/// coarser).
const SCHEDULE_LOCK_RECHECK: Duration = Duration::from_millis(1);

/// Longest single sleep of a blocked publisher, so it notices new groups,
/// deadlines and signals.
const SLEEP_SLICE: Duration = Duration::from_millis(20);

impl Producer {
    /// Free positions as far as the groups' committed cursors say, read
    /// without the lock (`Groups::min_committed_unlocked`).
    pub(super) fn room(&self) -> u64 {
        // While the queue spills the flag makes this 0: no claim fits.
        self.room_from(|t| t)
    }

    /// `room` with `tail` read through `tail_of`.
    pub(super) fn room_from(&self, tail_of: fn(u64) -> u64) -> u64 {
        let ctl = &self.shared.header().ring;
        // SeqCst: as the cursors' loads (`min_committed_unlocked`).
        let tail = tail_of(ctl.tail.load(Ordering::SeqCst));
        let head = ctl.head.load(Ordering::SeqCst);
        let min = self
            .shared
            .groups()
            .min_committed_unlocked(head)
            .unwrap_or(head);
        (min + self.shared.geo.slots).saturating_sub(tail)
    }

    /// Claims `n` positions in the ring, applying the overflow policy when
    /// full (overflow=spill waits, as block does: this claim needs a slot).
    #[inline]
    pub(super) fn claim(&mut self, n: u64, deadline: Option<Instant>) -> Result<u64> {
        self.count_claims(n)?;
        let ring = self.shared.ring();
        if let Claim::Claimed(pos) = ring.claim(n, &mut self.cached_head) {
            return Ok(pos);
        }
        self.claim_slow(n, deadline, false)
            .map(|p| p.expect("no spill asked for"))
    }

    /// Like [`claim`](Self::claim), but `None` when the messages are to be
    /// spilled instead (overflow=spill and the ring is full or spilling).
    #[inline]
    pub(super) fn claim_or_spill(
        &mut self,
        n: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<u64>> {
        self.count_claims(n)?;
        let ring = self.shared.ring();
        if let Claim::Claimed(pos) = ring.claim(n, &mut self.cached_head) {
            return Ok(Some(pos));
        }
        self.claim_slow(n, deadline, true)
    }

    /// Counts `n` claims; once a ring's worth, checks the control words.
    #[inline(always)]
    fn count_claims(&mut self, n: u64) -> Result<()> {
        self.claims_since_check += n;
        if self.claims_since_check >= self.shared.geo.slots {
            self.check_control_words()?;
        }
        Ok(())
    }

    /// Once a ring's worth of claims: are the queue's control words still
    /// possible (`open_queue/control_words.rs`)? A producer that trusted
    /// impossible ones would report success for messages written over
    /// unread ones.
    #[cold]
    #[inline(never)]
    fn check_control_words(&mut self) -> Result<()> {
        // Counted again only once they passed: a queue found garbled stays
        // so, and every claim after that is refused too (the chaos run's
        // scribble phase caught 255 of every 256 going through).
        self.shared.check_control_words()?;
        self.claims_since_check = 0;
        // Scheduled messages come due whether or not a consumer waits.
        self.move_due_passing();
        Ok(())
    }

    /// Spills `recs` (see `protocol/spill.rs`); `claimed(seq)` is told the first
    /// seq before anything is written. `None`: the ring had room after
    /// all. When the spill is full too, applies `spill_fallback`: reject
    /// fails with [`Error::SpillFull`], block waits for the spill to drain
    /// (bounded by `deadline`).
    #[cold]
    pub(super) fn spill(
        &mut self,
        recs: &mut [Record<'_>],
        deadline: Option<Instant>,
        claimed: &mut dyn FnMut(u64),
    ) -> Result<Option<u64>> {
        let fallback =
            Overflow::from_raw(self.shared.config.spill_fallback).unwrap_or(Overflow::Block);
        loop {
            match self.shared.spill_append(recs, claimed) {
                Err(Error::SpillFull(why)) if fallback == Overflow::Block => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        // Room comes back when the spill drains into the
                        // ring (`room` is 0 while it spills).
                        self.refused = Refused::Room(1);
                        return Err(Error::Timeout);
                    }
                    // Wait for consumers to free the ring, then help move
                    // the spill back into it.
                    let _ = why;
                    let shared = self.shared.clone();
                    let slice = deadline.map_or(SLEEP_SLICE, |d| {
                        d.saturating_duration_since(Instant::now()).min(SLEEP_SLICE)
                    });
                    let h = shared.header();
                    sleep_unless(
                        &h.ring.space,
                        &h.sleepers.space,
                        shared.me.key,
                        slice,
                        || (self.room_while_spilling() > 0).then_some(()),
                    );
                    shared.help_spill(true)?;
                }
                other => return other,
            }
        }
    }

    /// The producer's readiness handle, for waiting for room in an event
    /// loop (see [`Readiness`]): made at the first call, the same one
    /// afterwards; at most 64 per queue (`Busy` past that).
    pub fn readiness(&mut self) -> Result<&Readiness> {
        if self.readiness.is_none() {
            self.readiness = Some(Readiness::new(&self.shared, For::Space)?);
        }
        Ok(self.readiness.as_ref().expect("made above"))
    }

    /// Arms the readiness handle until the ring has room for `n` messages
    /// (call it after a publish with a zero timeout found the ring full),
    /// and for the message that publish refused, however many slots that
    /// takes. [`Arm::Ready`]: there may be room, publish again.
    /// [`Arm::Waiting`]: its fd becomes readable when consumers may have
    /// freed some.
    pub fn arm(&mut self, n: u64) -> Result<Arm> {
        self.readiness()?;
        let wanted = match self.refused {
            Refused::Room(span) => n.max(span),
            // Nothing rings when the schedule's lock is let go: look again
            // soon, as a blocking publish does.
            Refused::ScheduleLock => {
                return Ok(Arm::Waiting {
                    recheck_after: Some(SCHEDULE_LOCK_RECHECK),
                });
            }
        };
        let armed = self
            .readiness
            .as_ref()
            .expect("made above")
            .arm(|| self.room() >= wanted);
        if !armed {
            return Ok(Arm::Ready);
        }
        // Consumers ring when they move their cursors, but room also comes
        // back in ways nobody rings for (a dead consumer's lease running
        // out, a spill or journal drained in steps producers help with):
        // a waiting producer rechecks as a sleeping one does.
        Ok(Arm::Waiting {
            recheck_after: Some(SLEEP_SLICE),
        })
    }

    /// Takes back an arm that will not be waited for.
    pub fn disarm(&mut self) {
        if let Some(r) = &self.readiness {
            r.disarm();
        }
    }

    /// Free ring positions past the refill point while the queue spills.
    pub(super) fn room_while_spilling(&self) -> u64 {
        self.room_from(crate::protocol::spill::ring_tail)
    }

    /// The ring looked full. Advancing `head` takes the admin lock and reads
    /// every group's cursor (lines consumers write), so a blocked producer
    /// first waits, briefly, for a worthwhile amount of room (an eighth of
    /// the ring) rather than taking the lock for every slot freed.
    #[cold]
    pub(super) fn claim_slow(
        &mut self,
        n: u64,
        deadline: Option<Instant>,
        spill: bool,
    ) -> Result<Option<u64>> {
        // The ring looks full: slow already, so the control words are
        // checked (a garbled queue slows its consumers, and a producer
        // that claims rarely would take long to finish a ring's worth).
        self.check_control_words()?;
        let worthwhile = n.max(self.shared.geo.slots / 8);
        let backoff = Backoff::new();
        let spill = spill && self.overflow == Overflow::Spill;
        loop {
            if self.journal {
                // The journal's cursor may be what holds the ring full.
                self.shared.help_journal(false)?;
            }
            // Expired messages at the cursor of a group nobody consumes
            // would hold the ring for good (SPEC guarantee 14), and with
            // it a spill's refill.
            if self.room() < n && self.shared.expire_for_idle_groups() {
                continue;
            }
            if self.overflow == Overflow::Spill
                && crate::protocol::spill::spilling(
                    self.shared.header().ring.tail.load(Ordering::Acquire),
                )
            {
                if spill {
                    return Ok(None);
                }
                // A claim that needs a ring slot waits for the spill to
                // drain: help it along.
                self.shared.help_spill(false)?;
            }
            let room = self.room();
            // A blocked publisher holds out for a worthwhile amount of room
            // while it spins; one whose deadline has come takes what is there.
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            let wanted = if self.overflow != Overflow::Reject
                && !backoff.is_completed()
                && !spill
                && !out_of_time
            {
                worthwhile
            } else {
                n
            };
            if room >= wanted {
                self.cached_head = self.shared.advance_head();
                if let Claim::Claimed(pos) = self.shared.ring().claim(n, &mut self.cached_head) {
                    return Ok(Some(pos));
                }
                // Another producer took the room first: look again.
                continue;
            }
            if spill {
                return Ok(None);
            }
            if self.overflow == Overflow::Reject && room < n {
                self.refused = Refused::Room(n);
                self.shared
                    .header()
                    .counters
                    .rejected
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Error::Full);
            }
            if out_of_time {
                self.refused = Refused::Room(n);
                return Err(Error::Timeout);
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(SLEEP_SLICE),
                None => SLEEP_SLICE,
            };
            let h = self.shared.header();
            sleep_unless(
                &h.ring.space,
                &h.sleepers.space,
                self.shared.me.key,
                slice,
                || (self.room() >= n).then_some(()),
            );
        }
    }
}
