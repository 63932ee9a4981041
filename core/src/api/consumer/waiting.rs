//! Waiting for a message: the receive calls, spinning, sleeping on the
//! ring's data signal, readiness for async waiters, and the idle chores a
//! consumer with nothing to do runs for the queue.

use super::expiry::Judged;
use super::*;
use crate::api::readiness::{Arm, For, Readiness};
use crate::error::{Error, Result};
use crate::loom::Ordering;
use crate::open_queue::dead_letters::{self as dlq};
use crate::options::Wait;
use crate::os;
use crate::protocol::ring::Peek;
use crate::protocol::signal::sleep_unless;
use std::time::{Duration, Instant};

/// How often a receive tries to bring dead letters back from the DLQ's
/// overflow while it holds some (`bring_back_overflowed_dead_letters`).
const OVERFLOW_RETRY_NS: u64 = 20_000_000;

/// Longest single sleep of a waiting consumer, so it notices stuck
/// producers, deadlines and signals.
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// How long `Wait::SpinYield` and `Wait::SpinFutex` poll once per pause
/// before they yield: about what a futex sleep and wake-up costs, so a
/// message that comes sooner is not delayed by one.
const SPIN_FOR: Duration = Duration::from_micros(20);
/// `sched_yield`s of `Wait::SpinFutex` between spinning and sleeping.
const YIELDS: u32 = 4;
/// Empty polls of `try_receive` between two looks for a stuck producer.
const STUCK_CHECK_EVERY: u32 = 64;

impl Consumer {
    /// Waits for the next message, as long as it takes.
    // Always inlined, with the ack=auto delivery apart, for the reason
    // `try_receive` is (see `Origin`).
    #[inline(always)]
    pub fn receive(&mut self) -> Result<Delivery<'_>> {
        match self.wait(None, true)? {
            Some(ToDeliver::Pos(pos)) if self.manual.is_none() => self.deliver_auto(pos),
            Some(got) => self.deliver(got),
            None => Err(Error::Timeout),
        }
    }

    /// Waits at most `timeout` for the next message ([`Error::Timeout`]).
    /// [`poll`](Self::poll) is the same with `Ok(None)` for a timeout, as
    /// [`try_receive`](Self::try_receive) and an empty
    /// [`receive_batch`](Self::receive_batch) say "nothing came".
    pub fn receive_timeout(&mut self, timeout: Duration) -> Result<Delivery<'_>> {
        let got = self
            .wait(Some(Instant::now() + timeout), true)?
            .ok_or(Error::Timeout)?;
        self.deliver(got)
    }

    /// Waits at most `timeout` for the next message; `Ok(None)` if none
    /// came (a Kafka consumer's `poll(timeout)`).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use shmq::{ConsumerOptions, Options, Queue};
    /// let q = Queue::create("doc-poll", &Options::new().dir(dir.path()).slots(8))?;
    /// let mut c = q.consumer("g", ConsumerOptions::new())?;
    /// assert!(c.poll(Duration::from_millis(10))?.is_none());
    /// q.producer()?.publish(b"hi")?;
    /// assert_eq!(c.poll(Duration::from_secs(1))?.unwrap().payload(), b"hi");
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Delivery<'_>>> {
        match self.wait(Some(Instant::now() + timeout), true)? {
            Some(got) => self.deliver(got).map(Some),
            None => Ok(None),
        }
    }

    /// The consumer's readiness handle: a file descriptor an event loop
    /// watches (see [`Readiness`] for the loop and its rules). Made at the
    /// first call (a socket, and an entry of the queue's table of async
    /// waiters: at most 64 per queue, `Busy` past that); the same handle
    /// afterwards.
    pub fn readiness(&mut self) -> Result<&Readiness> {
        if self.readiness.is_none() {
            self.readiness = Some(Readiness::new(&self.shared, For::Data)?);
        }
        Ok(self.readiness.as_ref().expect("made above"))
    }

    /// Arms the readiness handle for the next message, after doing what a
    /// sleeping `receive` does before it sleeps (copy spilled messages
    /// back, journal, look for stuck producers). [`Arm::Ready`]: there may
    /// be a message already, try again. [`Arm::Waiting`]: its fd becomes
    /// readable when one may have come. Call it only after `try_receive`
    /// found nothing.
    pub fn arm(&mut self) -> Result<Arm> {
        self.arm_for(true)
    }

    /// [`arm`](Self::arm) for a loop that takes redriven dead letters
    /// (`redriven`) or not (`receive_batch_async`, whose batches are the
    /// ring's: a redriven letter waiting for `receive` is not its work,
    /// or it would be told "ready" for ever).
    pub(crate) fn arm_for(&mut self, redriven: bool) -> Result<Arm> {
        if self.idle_chores(true)? {
            return Ok(Arm::Ready);
        }
        self.readiness()?;
        let seen = self.schedule_seen();
        let work = self.work_came(seen, redriven);
        let armed = self.readiness.as_ref().expect("made above").arm(work);
        if !armed {
            return Ok(Arm::Ready);
        }
        Ok(Arm::Waiting {
            recheck_after: self.recheck_after(seen),
        })
    }

    /// Whether a receive may take the ack=auto fast path (one load of the
    /// slot's state word): ack=auto, not replaying the journal, and no
    /// dead letter redriven to the group. `try_receive` and the async
    /// receive's polls decide with this one test.
    #[inline(always)]
    pub(super) fn on_auto_fast_path(&self) -> bool {
        self.manual.is_none()
            && self.replay.is_none()
            && self.record().redrive.load(Ordering::Relaxed) == 0
    }

    /// For the async API: `try_receive`'s ack=auto fast path, the position
    /// of a ready message, or `None` when that path does not apply or has
    /// nothing (then [`poll_for_async`](Self::poll_for_async) decides). A
    /// bare position, so a future's first poll can go straight on to
    /// [`deliver_auto`](Self::deliver_auto) as `try_receive` does, with
    /// no `ToDeliver` to build and match.
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn poll_ready_auto(&mut self) -> Option<u64> {
        if self.on_auto_fast_path() {
            self.poll_once()
        } else {
            None
        }
    }

    /// For the async API: what a `try_receive` would deliver, taken but
    /// not yet made a [`Delivery`] (so that a caller's loop borrows
    /// nothing), or `None` after the empty poll's chores.
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn poll_for_async(&mut self) -> Result<Option<ToDeliver>> {
        let got = if self.on_auto_fast_path() {
            self.poll_once().map(ToDeliver::Pos)
        } else {
            self.poll_any(true)?
        };
        if got.is_none() {
            self.idle_chores(false)?;
        }
        Ok(got)
    }

    /// Whether the ring has the next position ready (or aborted, to skip)
    /// for this consumer: what `receive_batch` takes, without taking it.
    #[cfg(feature = "tokio")]
    pub(crate) fn has_message(&self) -> bool {
        // Not a settling word: it may be held by its producer's commit.
        matches!(self.ring().peek(self.next), Peek::Ready(_) | Peek::Skip(_))
    }

    /// Takes back an arm that will not be waited for (a wait given up).
    pub fn disarm(&mut self) {
        if let Some(r) = &self.readiness {
            r.disarm();
        }
    }

    /// The re-check a waiter makes after registering (SeqCst loads, the
    /// Signal and doorbell protocols' other half): the position it waits
    /// for committed or aborted, a dead letter redriven to the group, or
    /// (ack=manual) a redelivery hint moved or a release hint set. One condition for the sleeping
    /// `receive` and for `arm`, so the two wait for the same things.
    /// `seen`: the schedule's `next_due_ns` the waiter cut its wait by
    /// ([`schedule_seen`](Self::schedule_seen)): a message scheduled
    /// earlier than that is work (a time to wake for).
    /// `redriven`: whether the waiter takes redriven dead letters (a
    /// `receive_batch` does not: they wait for `receive`).
    pub(super) fn work_came(&self, seen: u64, redriven: bool) -> impl Fn() -> bool + '_ {
        let ring = self.ring();
        let next = self.next;
        let rec = self.record();
        let hint = self.manual.as_ref().map(|m| m.seen_hint);
        // ack=manual: a message past the in-flight window is not work
        // until `committed` moves (`commit_finished` then rings `data`).
        let geo = &self.shared.geo;
        let window =
            (self.manual.is_some() && geo.max_in_flight < geo.slots).then_some(geo.max_in_flight);
        // A message scheduled earlier than the sleep was cut for (the
        // scheduler's SeqCst store, then its `data` notify).
        let schedule = &self.shared.header().schedule.next_due_ns;
        let due_seen = match seen {
            0 => u64::MAX,
            d => d,
        };
        move || {
            // Settling is not work: a record aborted but not settled is
            // held by its producer's commit (which notifies), or settled
            // within a moment by its aborter.
            (matches!(ring.peek_sc(next), Peek::Ready(_) | Peek::Skip(_))
                && window
                    .is_none_or(|w| next < rec.committed.load(Ordering::SeqCst).saturating_add(w)))
                || (redriven && rec.redrive.load(Ordering::SeqCst) != 0)
                || hint.is_some_and(|h| rec.redeliver_hint.load(Ordering::SeqCst) != h)
                || (hint.is_some() && rec.released.iter().any(|r| r.load(Ordering::SeqCst) != 0))
                || matches!(schedule.load(Ordering::SeqCst), d if d != 0 && d < due_seen)
        }
    }

    /// How long an armed async waiter may wait for a ring: forever, unless
    /// something only time changes may be pending, in which case the
    /// sleeping `receive`'s slice.
    pub(super) fn recheck_after(&self, seen: u64) -> Option<Duration> {
        let hdr = self.shared.header();
        let tail = hdr.ring.tail.load(Ordering::Acquire);
        // A position claimed below the tail but not committed: its
        // producer may have died (unstick after `unblock_timeout`).
        let claimed_unwritten = (tail & !crate::layout::SPILLING) > self.next;
        // Leases out (ack=manual): they may run out, and delayed nacks
        // come due, with no publish to ring for them.
        let leases_out =
            self.manual.is_some() && self.record().committed.load(Ordering::Acquire) < self.next;
        let time_matters =
            claimed_unwritten || leases_out || tail & crate::layout::SPILLING != 0 || self.journal;
        if !os::fence::usable() {
            // This process cannot make the heavy fence, so an asymmetric
            // producer's commit may not ring us (`protocol/doorbell.rs`).
            return Some(crate::protocol::signal::FENCELESS_SLICE);
        }
        let slice = time_matters.then_some(SLEEP_SLICE);
        // A scheduled message comes due with nothing to ring for it.
        match until_due(seen) {
            Some(due) => Some(slice.map_or(due, |s| s.min(due))),
            None => slice,
        }
    }

    /// The next message if one is ready, without waiting. Busy-polling
    /// with it makes no system call (ack=auto).
    // Always inlined: returned through memory, the `Delivery` was moved
    // about the caller's stack in pieces the store buffer cannot forward
    // (see `Origin`); inlined, its fields stay scalars.
    #[inline(always)]
    pub fn try_receive(&mut self) -> Result<Option<Delivery<'_>>> {
        if self.on_auto_fast_path() {
            // The ack=auto fast path: one load of the slot's state word.
            return match self.poll_once() {
                Some(pos) => self.deliver_auto(pos).map(Some),
                None => self.idle_chores(false).map(|_| None),
            };
        }
        self.try_receive_not_auto()
    }

    /// `try_receive` for ack=manual, or with redriven dead letters waiting.
    #[inline(never)]
    pub(super) fn try_receive_not_auto(&mut self) -> Result<Option<Delivery<'_>>> {
        match self.poll_any(true)? {
            Some(got) => self.deliver(got).map(Some),
            None => self.idle_chores(false).map(|_| None),
        }
    }

    /// What a consumer that found nothing does for the queue, the one
    /// place for it: copy spilled messages back into the ring (every
    /// call), then — on every call if `now`, else on every
    /// `STUCK_CHECK_EVERY`th — [`look_around`](Self::look_around).
    /// Returns whether any of it may have made a message ready: poll again
    /// before waiting.
    #[inline(always)]
    pub(super) fn idle_chores(&mut self, now: bool) -> Result<bool> {
        let mut moved = self.spill && self.refill_spill()?;
        // Relaxed: a hint (0: nothing scheduled); the move takes the lock.
        if self.shared.next_due_ns() != 0 {
            moved |= self.move_due()?;
        }
        self.empty_polls = self.empty_polls.wrapping_add(1);
        if now || self.empty_polls % STUCK_CHECK_EVERY == 0 {
            moved |= self.look_around()?;
        }
        Ok(moved)
    }

    /// Scheduled messages are due: move them into the ring (unless
    /// someone else is at it). Returns whether any moved.
    #[cold]
    #[inline(never)]
    ///
    /// Never fails the receive: a scheduled message's trouble (damage, a
    /// directory this process cannot use) is not this consumer's; whoever
    /// lists or schedules meets it.
    fn move_due(&mut self) -> Result<bool> {
        Ok(crate::api::producer::move_due(&self.shared).unwrap_or(false))
    }

    /// The schedule's `next_due_ns` (SeqCst: a sleeper's first half of
    /// the Signal protocol's re-check, `work_came`), read once per wait:
    /// what the wait is cut by and what its re-check compares with.
    pub(super) fn schedule_seen(&self) -> u64 {
        self.shared
            .header()
            .schedule
            .next_due_ns
            .load(Ordering::SeqCst)
    }

    /// The ring has nothing for us: if the queue spills, copy spilled
    /// messages back into it (unless someone else holds the lock, and so
    /// is doing it). Returns whether anything moved.
    #[cold]
    #[inline(never)]
    pub(super) fn refill_spill(&mut self) -> Result<bool> {
        // Relaxed: a hint on a line that ring-mode publishes never write;
        // the refill itself runs under the admin lock.
        if self.shared.header().spill.active.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        self.shared.help_spill(false)
    }

    /// The idle chores past the spill: fails if the group is no longer
    /// ours; aborts the position we wait for if its producer died or
    /// stalled (`unstick`); journals what is pending; and once a second
    /// per process repairs the signals of sleepers killed in their sleep.
    /// Returns whether a position was aborted or records journaled.
    #[cold]
    #[inline(never)]
    fn look_around(&mut self) -> Result<bool> {
        self.check_group()?;
        let mut moved = self.unstick()?;
        if self.journal {
            moved |= self.shared.help_journal(false)? > 0;
        }
        // Once a second per process: a sleeper killed in its futex wait
        // left its bit in a signal's `waiters` (every notify would make a
        // wake call for nobody); producers find it through their wasted
        // wakes, idle consumers here.
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = os::clock::monotonic_ns();
        let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) >= 1_000_000_000
            && LAST
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok()
        {
            let h = self.shared.header();
            if h.ring.data.waiters.load(Ordering::Relaxed) != 0
                || h.ring.space.waiters.load(Ordering::Relaxed) != 0
            {
                self.shared.repair_sleepers();
            }
        }
        Ok(moved)
    }

    /// The first ready position at or after `next`, skipping aborted ones.
    #[inline(always)]
    pub(super) fn poll_once(&mut self) -> Option<u64> {
        loop {
            match self.ring().peek(self.next) {
                Peek::Ready(span) => {
                    match self.judge(self.next) {
                        Judged::Deliver => return Some(self.next),
                        Judged::Expired if !self.expire_at_cursor(self.next) => {
                            // The dead-letter queue refused it: late, not lost.
                            return Some(self.next);
                        }
                        // A dead letter redriven for another group, or an
                        // expired message dead-lettered or dropped.
                        Judged::OtherGroup | Judged::Expired => {}
                    }
                    let next = self.next + span;
                    self.advance(next, 0);
                    self.release(next);
                }
                // Aborted.
                Peek::Skip(span) => {
                    let next = self.next + span;
                    self.advance(next, 0);
                    self.release(next);
                }
                Peek::Settling => {
                    // Not settled: wait for its producer, as for NotYet.
                    self.shared.settle_abort(self.next)?;
                }
                Peek::NotYet(_) => return None,
            }
        }
    }

    /// Spins, then sleeps, until a message is ready or `deadline` passes.
    pub(super) fn wait(
        &mut self,
        deadline: Option<Instant>,
        redriven: bool,
    ) -> Result<Option<ToDeliver>> {
        if let Some(g) = self.poll_any(redriven)? {
            return Ok(Some(g));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // A zero timeout is a poll: copy spilled messages back into the
            // ring, and look for stuck producers now and then, as
            // `try_receive` does.
            if self.idle_chores(false)? {
                return self.poll_any(redriven);
            }
            return Ok(None);
        }
        self.check_group()?;
        if self.wait != Wait::SpinFutex {
            return self.spin(deadline, redriven);
        }
        if let Some(g) = self.spin_for(deadline, redriven)? {
            return Ok(Some(g));
        }
        for _ in 0..YIELDS {
            std::thread::yield_now();
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
        }
        loop {
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
            if self.idle_chores(true)? {
                // Chores that keep finding something to do (a queue
                // changing under them) still end at the deadline.
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return self.poll_any(redriven);
                }
                continue;
            }
            let mut slice = SLEEP_SLICE;
            let seen = self.schedule_seen();
            if let Some(due) = until_due(seen) {
                // Woken at the due time (a timed sleep never ends early):
                // the next pass moves it in.
                slice = slice.min(due);
            }
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Ok(None);
                }
                slice = slice.min(d - now);
            }
            let work = self.work_came(seen, redriven);
            let h = self.shared.header();
            sleep_unless(
                &h.ring.data,
                &h.sleepers.data,
                self.shared.me.key,
                slice,
                || work().then_some(()),
            );
        }
    }

    /// `wait` for [`Wait::BusySpin`] and [`Wait::SpinYield`]: polls until a
    /// message is ready or `deadline` passes, never sleeping; every empty
    /// poll runs the idle chores, every `STUCK_CHECK_EVERY`th looks at the
    /// clock.
    pub(super) fn spin(
        &mut self,
        deadline: Option<Instant>,
        redriven: bool,
    ) -> Result<Option<ToDeliver>> {
        if self.wait == Wait::SpinYield {
            if let Some(g) = self.spin_for(deadline, redriven)? {
                return Ok(Some(g));
            }
        }
        let mut polls: u32 = 0;
        loop {
            match self.wait {
                Wait::BusySpin => std::hint::spin_loop(),
                _ => std::thread::yield_now(),
            }
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
            // As in the sleeping loop: spilled messages copied back,
            // stuck producers, the group, the journal.
            let chored = self.idle_chores(false)?;
            polls = polls.wrapping_add(1);
            // Every STUCK_CHECK_EVERY polls, whether or not the chores did
            // something: they may keep doing something for ever.
            if polls % STUCK_CHECK_EVERY == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                return if chored {
                    self.poll_any(redriven)
                } else {
                    Ok(None)
                };
            }
        }
    }

    /// The first phase of `Wait::SpinYield` and `Wait::SpinFutex`: one
    /// poll per pause for `SPIN_FOR` (or until `deadline`). Polling at every
    /// pause rather than backing off exponentially keeps a message that
    /// comes during the spin from waiting out a long pause (crossbeam's
    /// `Backoff` pauses 64 times at its last step, ~1.4 µs here).
    pub(super) fn spin_for(
        &mut self,
        deadline: Option<Instant>,
        redriven: bool,
    ) -> Result<Option<ToDeliver>> {
        let start = Instant::now();
        let mut polls: u32 = 0;
        loop {
            std::hint::spin_loop();
            if let Some(g) = self.poll_any(redriven)? {
                return Ok(Some(g));
            }
            polls = polls.wrapping_add(1);
            if polls % STUCK_CHECK_EVERY == 0 {
                let now = Instant::now();
                if now - start >= SPIN_FOR || deadline.is_some_and(|d| now >= d) {
                    return Ok(None);
                }
            }
        }
    }

    /// Dead letters wait in the DLQ's overflow on disk while the region
    /// has no run free for them, among them letters already redriven to a
    /// group. Whoever frees a run brings them back, but only if the admin
    /// lock is free then (it does not wait for it), and nothing else would
    /// try again before the next DLQ call: the chaos run saw five redriven
    /// letters wait there for good while their group's workers delivered
    /// thousands of messages. So a receive tries too, at most every
    /// `OVERFLOW_RETRY_NS`, while the overflow holds something (two loads
    /// when it holds nothing).
    #[inline(always)]
    fn bring_back_overflowed_dead_letters(&mut self) {
        if dlq::overflow::pending(&self.shared) == 0 {
            return;
        }
        let now = os::clock::monotonic_ns();
        if now.saturating_sub(self.overflow_tried_ns) < OVERFLOW_RETRY_NS {
            return;
        }
        self.overflow_tried_ns = now;
        // An error is left for the next DLQ operation to report, as the
        // ack's refill does.
        let _ = dlq::overflow::refill(&self.shared, false);
    }

    /// The next thing to deliver, in either mode: a redriven dead letter
    /// first, then (ack=manual) a due redelivery, then the next message.
    #[inline(always)]
    pub(super) fn poll_any(&mut self, redriven: bool) -> Result<Option<ToDeliver>> {
        if redriven {
            self.bring_back_overflowed_dead_letters();
            if self.record().redrive.load(Ordering::Acquire) != 0 {
                if let Some(entry) = dlq::take_redriven(&self.shared, self.group_index) {
                    return Ok(Some(ToDeliver::Redriven(entry)));
                }
            }
        }
        if self.replay.is_some() {
            return self.poll_journal();
        }
        if self.manual.is_some() {
            return self.poll_manual();
        }
        Ok(self.poll_once().map(ToDeliver::Pos))
    }
}

/// How long until `due` (a schedule's `next_due_ns`; 0: nothing
/// scheduled), if something is scheduled. Past due and still there (the
/// ring full, or another process moving it): the ordinary slice, not a
/// spin; its move rings `data`.
fn until_due(due: u64) -> Option<Duration> {
    match due {
        0 => None,
        due => match due.saturating_sub(os::clock::schedule_now_ns()) {
            0 => Some(SLEEP_SLICE),
            left => Some(Duration::from_nanos(left)),
        },
    }
}
