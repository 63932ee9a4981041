//! A consumer giving up on a claimed position: the abort CAS, and the
//! settle of the aborted record's span from the producers' announcements
//! (revoking a live writer, and leaving a record its asymmetric producer
//! is committing to that producer). The protocol is in the module doc of
//! `protocol/ring`.

use super::{Ring, SlotStates, asymmetric, state_of};
use crate::layout::ProducerRecord;
use crate::layout::commit_mode::ASYMMETRIC;
use crate::layout::slot_state::ABORTED;
use crate::loom::{Ordering, heavy_fence};
use crate::protocol::announcement::{announcement, announces, revoke};

impl<S: SlotStates> Ring<'_, S> {
    /// Aborts claimed position `pos`, whose word was last seen as `seen`
    /// (from [`Peek::NotYet`]; the caller checked `tail > pos`), with its
    /// span left to [`settle`](Self::settle), which the caller does next.
    /// Returns true if the position is now aborted (by us or anyone).
    ///
    ///
    /// Never below `head` ([`lapped`](Self::lapped)).
    pub(crate) fn abort(&self, pos: u64, seen: u64) -> bool {
        if self.lapped(pos) {
            return false;
        }
        // SeqCst: the aborter half of the Dekker pair with the writer's
        // announcement and load (its scan follows, in `settle`'s caller);
        // Acquire on failure so a loser sees the winner.
        match self.slots.state(pos).compare_exchange(
            seen,
            self.word(pos, 0, ABORTED),
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(now) => self.is_for(now, pos) && state_of(now) == ABORTED,
        }
    }

    /// Settles the span of aborted record `pos` (`ABORTED(pos, 0)`) to
    /// `span`, unless someone settled it first; returns the settled span,
    /// or `None` if its asymmetric producer committed it meanwhile.
    /// The caller found `span` with the scan of the announcements that
    /// follows the abort (`OpenQueue::settle_abort`), and revoked a live
    /// writer before this.
    pub(crate) fn settle(&self, pos: u64, span: u64) -> Option<u64> {
        let span = span.clamp(1, self.max_span());
        // Release: consumers that read the settled word (Acquire) and move
        // past it see the revocation made before.
        match self.slots.state(pos).compare_exchange(
            self.word(pos, 0, ABORTED),
            self.word(pos, span, ABORTED),
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // Sleepers do not take a settling word for work: wake
                // them now that it may be passed.
                let _ = self.notify_data();
                Some(span)
            }
            Err(now) if self.is_for(now, pos) => {
                (state_of(now) == ABORTED).then(|| self.span_of(now).max(1))
            }
            // Lapped meanwhile (we were stalled): nothing to settle.
            Err(_) => Some(span),
        }
    }

    /// Settles the span of the record at `pos`, which someone aborted
    /// (`ABORTED(pos, 0)`): the end its producer announced (among
    /// `records`), revoking that producer if `alive` says it lives and so
    /// may be writing it; one slot if nobody announces it (its claimer
    /// never began it). Returns the span, or `None` when the record is
    /// not settled: its live asymmetric producer is inside its commit (it
    /// will commit or give up by itself), it committed meanwhile, or this
    /// process cannot make the heavy fence that settling a live
    /// asymmetric producer's record needs. The caller then waits as for a
    /// record not yet written.
    pub(crate) fn settle_abort(
        &self,
        records: &[ProducerRecord],
        pos: u64,
        alive: impl Fn(&ProducerRecord) -> bool,
    ) -> Option<u64> {
        // After the abort's SeqCst CAS (ours, or another's that our
        // Acquire load of the word followed), the scanning half of the
        // Dekker pair with the writer's announcement: the heavy fence
        // pairs with an asymmetric producer's light one, and is at least
        // a SeqCst fence for a CAS producer's SeqCst announcement.
        let fenced = heavy_fence();
        let writer = records.iter().find_map(|r| {
            announcement(r)
                .filter(|&(a, end)| announces(a, end, pos) && end > pos)
                .map(|(_, end)| (r, end))
        });
        match writer {
            Some((r, end)) => {
                if alive(r) {
                    if asymmetric(r) && !fenced {
                        // Without the heavy fence we cannot tell whether
                        // it will see a revocation: leave it its record.
                        return None;
                    }
                    revoke(self.ctl, r, pos);
                    if asymmetric(r) {
                        // The revocation, the heavy fence, then the mark:
                        // the settler half of the commit's Dekker pair.
                        // Either the producer reads the revocation before
                        // it stores and gives up, or we read its mark. A
                        // fence refused now (ENOMEM, a filter installed
                        // since) decides nothing: settle nothing.
                        if !heavy_fence() {
                            return None;
                        }
                        // Acquire: pairs with the Release clearing of the
                        // mark after the store of COMMITTED.
                        if r.committing.load(Ordering::Acquire) == pos + 1 {
                            return None;
                        }
                    }
                }
                // A dead writer writes nothing more, and a live CAS one
                // fails its commit on the aborted word.
                self.settle(pos, end - pos)
            }
            // Nobody announces `pos`, as far as we can see. Without the
            // heavy fence a live asymmetric claimer's announcement may
            // only be late: settle nothing while one lives.
            None if !fenced
                && records
                    .iter()
                    .any(|r| r.mode.load(Ordering::SeqCst) == ASYMMETRIC && alive(r)) =>
            {
                None
            }
            None => self.settle(pos, 1),
        }
    }

    /// Aborts record `pos .. pos + span` for a claimer known to be dead, if
    /// it is claimed (`pos < tail`, the ring's tail less any spill flag)
    /// and still unwritten. Returns true if this call aborted it.
    pub(crate) fn abort_unwritten(&self, pos: u64, span: u64, tail: u64) -> bool {
        // Acquire: as in `peek`; a committed or aborted word is left alone.
        let word = self.slots.state(pos).load(Ordering::Acquire);
        if pos >= tail || self.is_for(word, pos) {
            return false;
        }
        // A dead producer's announcement stays after it died, and the ring
        // goes on without it.
        if self.lapped(pos) {
            return false;
        }
        self.abort_unbegun(pos, span, word)
    }

    /// Whether `pos` is below `head`, where no abort may touch its slot:
    /// every group is past `pos`, and the word the caller loaded there
    /// (before this) may be a later lap's committed record. A consumer
    /// stopped (or held up in a chore) while it watched a stuck claim
    /// resumes with that position and the time it first saw the claim, so
    /// its timeout has run out; once the ring had lapped it, its abort
    /// replaced the later record's word and that message was lost (found
    /// by the chaos run). `head` is loaded after the caller's load of the
    /// word: a later lap's word in the slot was committed by a producer
    /// that had read `head` past `pos` (Acquire) before it claimed, so we
    /// read it past too. loom: `loom_a_stale_abort_never_hits_a_later_lap`.
    fn lapped(&self, pos: u64) -> bool {
        pos < self.ctl.head.load(Ordering::Acquire)
    }
}
