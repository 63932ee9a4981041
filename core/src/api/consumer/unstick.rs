//! Stuck-producer recovery: aborting a position whose producer died
//! between its claim and its commit, or stalled past `unblock_timeout`
//! (the consumer half of the abort in `protocol/ring.rs`).

use super::*;
use crate::loom::Ordering;
use crate::os;
use crate::protocol::ring::{Peek, announces};

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
}

impl Consumer {
    /// Looks at the position we wait for: if it was claimed and its
    /// producer died, or it stayed uncommitted longer than
    /// `unblock_timeout`, aborts it. Returns true if it did.
    ///
    /// Called every few dozen empty polls, so it must not touch lines that
    /// producers write on every publish: `tail` is read at most once per
    /// [`LIVENESS_EVERY_NS`] (a read of it on every call took the line from
    /// the producer and put a cache miss on its next claim). The timeout
    /// runs from when this consumer first knew the position was claimed,
    /// so it never fires early.
    pub(super) fn unstick(&mut self) -> bool {
        let pos = self.next;
        let shared = self.shared.clone();
        let ring = shared.ring();
        if matches!(ring.peek(pos), Peek::Ready | Peek::Skip) {
            return false;
        }
        let now = os::clock::monotonic_ns();
        let mut st = match self.stuck {
            Some(st) if st.pos == pos => st,
            _ => Stuck {
                pos,
                claimed_since: None,
                last_check: now,
            },
        };
        let timed_out = st
            .claimed_since
            .is_some_and(|since| now.saturating_sub(since) >= self.unblock_timeout_ns);
        let check = now.saturating_sub(st.last_check) >= LIVENESS_EVERY_NS;
        self.stuck = Some(st);
        if !timed_out && !check {
            return false;
        }
        if check {
            st.last_check = now;
        }
        let seen = match ring.peek(pos) {
            Peek::Ready | Peek::Skip => return false,
            Peek::NotYet(word) => word,
        };
        // Acquire: pairs with the claimer's AcqRel CAS of tail. While the
        // queue spills, tail (less the flag) is the position being copied
        // back from the spill: not claimed, so never aborted.
        if crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire)) <= pos {
            // Nothing claimed there yet: the queue is just empty.
            st.claimed_since = None;
            self.stuck = Some(st);
            return false;
        }
        if st.claimed_since.is_none() {
            // First sight of the claim: the timeout runs from now.
            st.claimed_since = Some(now);
            self.stuck = Some(st);
            return false;
        }
        self.stuck = Some(st);
        let abort = timed_out || (check && self.claimer_is_dead(pos));
        if !abort {
            return false;
        }
        let aborted = ring.abort(pos, seen);
        if aborted {
            self.stuck = None;
            self.shared
                .header()
                .counters
                .aborted
                .fetch_add(1, Ordering::Relaxed);
        }
        aborted
    }

    /// Whether the producer that announced `pos` is known to be dead. A
    /// claimer that has not announced yet (it stalled right after its
    /// claim) is not known: only the timeout aborts it.
    pub(super) fn claimer_is_dead(&self, pos: u64) -> bool {
        self.shared.producer_records().iter().any(|r| {
            announces(
                r.announce.load(Ordering::Acquire),
                pos,
                self.shared.geo.slots - 1,
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
