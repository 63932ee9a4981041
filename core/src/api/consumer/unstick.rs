//! Stuck-producer recovery: aborting a position whose producer died
//! between its claim and its commit, or stalled past `unblock_timeout`
//! (the consumer half of the abort in `protocol/ring/`).

use super::*;
use crate::loom::Ordering;
use crate::os;
use crate::protocol::announcement::claims;

/// How often (at most) to ask whether a claimer's process is alive.
const LIVENESS_EVERY_NS: u64 = 10_000_000;

/// A position a consumer waits for, watched for a stuck producer.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stuck {
    pub(super) pos: u64,
    /// Monotonic time when we first knew it was claimed.
    pub(super) claimed_since: Option<u64>,
    /// Monotonic time of the last look at `tail` and the claimer's life.
    pub(super) last_check: u64,
    /// `tail` when `claimed_since` was set: every position below it was
    /// claimed by then (a record's later slots, aborted one by one when
    /// its claimer never announced it, inherit the time).
    pub(super) tail_then: u64,
}

impl Consumer {
    /// Looks at the position we wait for: if it was claimed and its
    /// producer died, or it stayed uncommitted longer than
    /// `unblock_timeout`, aborts it. Returns true if it did.
    ///
    /// Before it aborts, the queue's control words are checked: a `tail`
    /// garbled far past the ring would have every later position look
    /// claimed long ago, and be aborted one after another for ever
    /// (`Corrupt` instead).
    ///
    /// Called every few dozen empty polls, so it must not touch lines that
    /// producers write on every publish: `tail` is read at most once per
    /// [`LIVENESS_EVERY_NS`] (a read of it on every call took the line from
    /// the producer and put a cache miss on its next claim). The timeout
    /// runs from when this consumer first knew the position was claimed,
    /// so it never fires early.
    pub(super) fn unstick(&mut self) -> Result<bool> {
        let pos = self.next;
        let shared = self.shared.clone();
        let ring = shared.ring();
        if ring.peek(pos).is_done() {
            return Ok(false);
        }
        if self
            .stuck
            .is_some_and(|st| st.pos == pos && st.claimed_since.is_some())
        {
            // Stopped here, a consumer resumes with a position its group
            // may have left a lap behind, and a timeout long run out: the
            // abort below must not touch that slot (`Ring::abort`).
            os::fault::point("unstick.watching");
        }
        let now = os::clock::monotonic_ns();
        let mut st = match self.stuck {
            Some(st) if st.pos == pos => st,
            // The claim of `pos` was known when that of the last stuck
            // position was: its time carries over.
            Some(st) if st.pos < pos && pos < st.tail_then => Stuck { pos, ..st },
            _ => Stuck {
                pos,
                claimed_since: None,
                last_check: now,
                tail_then: 0,
            },
        };
        let timed_out = st
            .claimed_since
            .is_some_and(|since| now.saturating_sub(since) >= self.unblock_timeout_ns);
        let check = now.saturating_sub(st.last_check) >= LIVENESS_EVERY_NS;
        self.stuck = Some(st);
        if !timed_out && !check {
            return Ok(false);
        }
        if check {
            st.last_check = now;
        }
        let seen = match ring.peek(pos) {
            crate::protocol::ring::Peek::NotYet(word) => word,
            _ => return Ok(false),
        };
        // Acquire: pairs with the claimer's AcqRel CAS of tail. While the
        // queue spills, tail (less the flag) is the position being copied
        // back from the spill: not claimed, so never aborted.
        let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        if tail <= pos {
            // Nothing claimed there yet: the queue is just empty.
            st.claimed_since = None;
            self.stuck = Some(st);
            return Ok(false);
        }
        if st.claimed_since.is_none() {
            // First sight of the claim: the timeout runs from now.
            st.claimed_since = Some(now);
            st.tail_then = tail;
            self.stuck = Some(st);
            return Ok(false);
        }
        self.stuck = Some(st);
        let abort = timed_out || (check && self.claimer_is_dead(pos));
        if !abort {
            return Ok(false);
        }
        // Rare: an abort is worth a look at the control words first.
        self.shared.check_control_words()?;
        // Its span: the announced record's, revoking a live writer; not
        // settled (and not counted) while its producer is inside its
        // asymmetric commit, which then holds the position.
        let aborted = ring.abort(pos, seen) && self.shared.settle_abort(pos).is_some();
        if aborted {
            self.shared
                .header()
                .counters
                .aborted
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(aborted)
    }

    /// Whether the producer that announced `pos` is known to be dead. A
    /// claimer that has not announced yet (it stalled right after its
    /// claim) is not known: only the timeout aborts it.
    pub(super) fn claimer_is_dead(&self, pos: u64) -> bool {
        self.shared.producer_records().iter().any(|r| {
            claims(
                r.announce.load(Ordering::Acquire),
                pos,
                self.shared.geo.slots,
            ) && {
                let owner = r.owner.load(Ordering::Acquire);
                !self.shared.alive(
                    crate::protocol::group::owner_pid(owner),
                    r.owner_key.load(Ordering::Acquire),
                )
            }
        })
    }
}
