//! Publishing a begun record, and a producer giving its own record up:
//! the CAS commit, the asymmetric-fence commit (mark, light fence, read
//! our revocation, plain store), and the exact-span aborts a producer
//! makes of its own record. The protocol is in the module doc of
//! `protocol/ring`.

use super::{Ring, SlotStates, asymmetric};
use crate::layout::ProducerRecord;
use crate::layout::slot_state::{ABORTED, COMMITTED};
use crate::loom::{Ordering, fault_point, light_fence};
use crate::protocol::announcement::clear_revocation;

impl<S: SlotStates> Ring<'_, S> {
    /// Publishes the record `pos .. pos + span`, begun with older word
    /// `seen`: the only store to the state word on the publish path. Fails
    /// if a consumer aborted it first. Either way our announcement is
    /// withdrawn after the record's writes.
    #[inline]
    pub(crate) fn commit(
        &self,
        pos: u64,
        span: u64,
        seen: u64,
        me: &ProducerRecord,
    ) -> Result<(), ()> {
        let r = self.commit_announced(pos, span, seen, me);
        self.end_announced(me);
        r
    }

    /// [`commit`](Self::commit) of a record of a batch
    /// ([`announce_from`](Self::announce_from)): the announcement stays.
    #[inline]
    pub(crate) fn commit_announced(
        &self,
        pos: u64,
        span: u64,
        seen: u64,
        me: &ProducerRecord,
    ) -> Result<(), ()> {
        if asymmetric(me) {
            self.commit_asymmetric(pos, span, seen, me)
        } else {
            // Lost to a consumer's abort: settle its span ourselves, while
            // our announcement still stands (its settler may have scanned
            // too late to see it, and would settle one slot over payload).
            self.commit_cas(pos, span, seen)
                .inspect_err(|_| self.settle_own(pos, span))
        }
    }

    /// The CAS commit of record `pos .. pos + span` from older word
    /// `seen`: a CAS producer's, and the spill refill's (which writes
    /// under the admin lock, at positions nobody claims).
    #[inline]
    pub(crate) fn commit_cas(&self, pos: u64, span: u64, seen: u64) -> Result<(), ()> {
        // SeqCst: Release makes the payload and header visible to the
        // consumer's Acquire load of COMMITTED; SeqCst (with the load of
        // `data.waiters` in `notify_data`) is the waker half of the Signal
        // protocol.
        self.slots
            .state(pos)
            .compare_exchange(
                seen,
                self.word(pos, span, COMMITTED),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .map(drop)
            .map_err(drop)
    }

    /// The asymmetric commit (see "The asymmetric-fence commit" in the
    /// module doc): mark, light fence, read our own `revoked`, then a
    /// plain store of the word. No locked instruction.
    #[inline(always)]
    fn commit_asymmetric(
        &self,
        pos: u64,
        span: u64,
        seen: u64,
        me: &ProducerRecord,
    ) -> Result<(), ()> {
        // Relaxed, then the light fence: the producer half of the Dekker
        // pair with the settler's revocation, heavy fence and load of
        // `committing` (`settle_abort`).
        me.committing.store(pos + 1, Ordering::Relaxed);
        light_fence();
        // Relaxed: ordered by the fences of the pair above; the revoker's
        // swap is its other side.
        if me.revoked.load(Ordering::Relaxed) == pos + 1 {
            // A consumer aborted the record and found us not yet
            // committing: it settles the span unless we do first.
            self.give_up(pos, span, seen);
            me.committing.store(0, Ordering::Release);
            return Err(());
        }
        // Stopped here, we hold `pos` (SPEC guarantee 5): a settler that
        // revokes us finds the mark and waits for us to run or die.
        fault_point("producer.committing");
        // Release: makes the payload and header visible to the consumer's
        // Acquire load of COMMITTED. It may replace an unsettled
        // ABORTED(pos, 0): the settler that made it found our mark.
        let committed = self.word(pos, span, COMMITTED);
        #[cfg(not(loom))]
        self.slots.state(pos).store(committed, Ordering::Release);
        // loom mis-orders a plain store against a concurrent RMW of the
        // same word (tokio-rs/loom#254): the model swaps instead, and
        // checks what the plain store may replace.
        #[cfg(loom)]
        {
            let before = self.slots.state(pos).swap(committed, Ordering::Release);
            assert!(
                before == seen || before == self.word(pos, 0, ABORTED),
                "the commit replaced {before:#x}: a record settled as skipped"
            );
        }
        // Release: a settler that reads the mark gone (Acquire) and then
        // CASes the word finds COMMITTED there.
        me.committing.store(0, Ordering::Release);
        // A settler that found our mark revoked us all the same: we write
        // no slot of this record any more, so clear it (as `held` would),
        // or the rest of a batch would find itself held by it.
        let r = me.revoked.load(Ordering::Relaxed);
        if r == pos + 1 {
            clear_revocation(self.ctl, me, r);
        }
        Ok(())
    }

    /// An asymmetric producer that found itself revoked gives its record
    /// up with its exact span (from the word it saw, or from the
    /// aborter's unsettled `ABORTED(pos, 0)`), and wakes the readers that
    /// a settle sent back to wait (it found our mark).
    #[cold]
    fn give_up(&self, pos: u64, span: u64, seen: u64) {
        if !self.abort_unbegun(pos, span, seen) {
            self.settle_own(pos, span);
        }
        let _ = self.notify_data();
    }

    /// Withdraws our announcement: we write no slot any more.
    #[inline]
    pub(crate) fn end_announced(&self, me: &ProducerRecord) {
        // Release: our slot writes happen before the (Acquire) scan of a
        // later lap's producer that sees the announcement gone.
        me.announce.store(0, Ordering::Release);
    }

    /// Gives up our begun record `pos .. pos + span` (a dropped
    /// reservation). Returns false if a consumer had aborted it already.
    pub(crate) fn abort_own(&self, pos: u64, span: u64, seen: u64, me: &ProducerRecord) -> bool {
        let ok = self.abort_unbegun(pos, span, seen);
        if !ok {
            // A consumer aborted it first: its span is ours to tell.
            self.settle_own(pos, span);
        }
        me.announce.store(0, Ordering::Release);
        ok
    }

    /// Settles our own aborted record `pos .. pos + span` to its exact
    /// span (a consumer aborted it to `ABORTED(pos, 0)`), before we stop
    /// announcing it.
    #[cold]
    fn settle_own(&self, pos: u64, span: u64) {
        let _ = self.slots.state(pos).compare_exchange(
            self.word(pos, 0, ABORTED),
            self.word(pos, span, ABORTED),
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
    }

    /// Gives up the slots `pos .. pos + span` at the end of our begun,
    /// not yet committed record, which we shortened (a reservation
    /// truncated to fewer slots): they become an aborted record of their
    /// own, so that readers stepping from our record's shorter span find
    /// a word there. A plain store: nobody else writes that slot's word
    /// while our announcement names the longer record (a consumer that
    /// aborts ours skips all of it). Our commit's Release publishes it.
    pub(crate) fn abort_rest(&self, pos: u64, span: u64) {
        self.slots
            .state(pos)
            .store(self.word(pos, span, ABORTED), Ordering::Relaxed);
    }

    /// Aborts record `pos .. pos + span` that its claimer will not write
    /// (it is ours, or its claimer is dead), from older word `seen`.
    pub(crate) fn abort_unbegun(&self, pos: u64, span: u64, seen: u64) -> bool {
        self.slots
            .state(pos)
            .compare_exchange(
                seen,
                self.word(pos, span, ABORTED),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}
