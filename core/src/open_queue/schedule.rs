//! The schedule lock and this process's handle on the schedule's files
//! (`store/schedule.rs`): taking the lock opens, checks and, if its last
//! holder died, repairs the schedule (the index rebuilt from the
//! segments, a move left half-done resolved) before anyone uses it.
//!
//! Lock order: the schedule lock, then the admin lock; never the other
//! way round (a holder of the schedule lock publishes, which may spill or
//! advance `head` under the admin lock).

use std::sync::MutexGuard;

use crate::error::{Error, Result};
use crate::layout::ScheduleControl;
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::open_queue::dedup;
use crate::os;
use crate::protocol::lock::AdminGuard;
use crate::protocol::ring::Peek;
use crate::protocol::schedule::{self as moving, Moving};
use crate::store::schedule::{Found, ScheduleFiles};
use crate::store::{access, owner};

/// The schedule lock, held, with this process's handle on its files.
pub(crate) struct ScheduleGuard<'a> {
    shared: &'a OpenQueue,
    // Dropped in this order: the files' process lock after the word.
    _lock: AdminGuard<'a>,
    files: MutexGuard<'a, Option<ScheduleFiles>>,
}

impl ScheduleGuard<'_> {
    /// The schedule's files.
    pub(crate) fn files(&mut self) -> &mut ScheduleFiles {
        self.files.as_mut().expect("opened when the lock was taken")
    }

    /// The control words.
    pub(crate) fn ctl(&self) -> &ScheduleControl {
        &self.shared.header().schedule
    }

    /// Rebuilds the index from the segments (its last holder died
    /// changing it, or it pointed at damage).
    pub(crate) fn rebuild(&mut self) -> Result<()> {
        let r = self.files().rebuild()?;
        let ctl = self.ctl();
        // Ids are never given twice, even those of records a dead holder
        // wrote and never counted.
        let next = ctl
            .next_id
            .load(Ordering::Relaxed)
            .max(r.last_id.saturating_add(1))
            .max(1);
        ctl.next_id.store(next, Ordering::Relaxed);
        self.files().settle()
    }

    /// Publishes the index's state in the queue header: the count and the
    /// earliest due time. Returns the latter (0: nothing scheduled).
    pub(crate) fn publish_state(&mut self) -> Result<u64> {
        let len = self.files().len();
        let due = self.files().first()?.map_or(0, |e| e.due_ns.max(1));
        let ctl = self.ctl();
        // Relaxed: the count is a statistic.
        ctl.count.store(len, Ordering::Relaxed);
        // A SeqCst RMW, as the Signal protocol's wakers make their change
        // (loom model `loom_a_sleeper_wakes_for_a_message_scheduled_earlier`):
        // a sleeper that registered loads it after (its re-check,
        // `Consumer::work_came`), or the `data` notify that follows an
        // earlier due time wakes it.
        ctl.next_due_ns.swap(due, Ordering::SeqCst);
        Ok(due)
    }
}

impl OpenQueue {
    /// The schedule's control words.
    pub(crate) fn schedule_ctl(&self) -> &ScheduleControl {
        &self.header().schedule
    }

    /// When the earliest scheduled message is due (0: none), as last
    /// published by a holder of the schedule lock.
    #[inline(always)]
    pub(crate) fn next_due_ns(&self) -> u64 {
        // Relaxed: a hint; acting on it takes the schedule lock.
        self.schedule_ctl().next_due_ns.load(Ordering::Relaxed)
    }

    /// Takes the schedule lock (waiting for it if `wait`, else `None` if
    /// another holds it), its files opened, repaired and up to date.
    pub(crate) fn schedule_lock(&self, wait: bool) -> Result<Option<ScheduleGuard<'_>>> {
        let files = if wait {
            self.schedule
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        } else {
            match self.schedule.try_lock() {
                Ok(f) => f,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
            }
        };
        let lock = &self.schedule_ctl().lock;
        let word = if wait {
            lock.lock(self.me, |p, k| self.alive(p, k))
        } else {
            match lock.try_lock_or_take(self.me, |p, k| self.alive(p, k)) {
                Some(g) => g,
                None => return Ok(None),
            }
        };
        let mut g = ScheduleGuard {
            shared: self,
            _lock: word,
            files,
        };
        if g.files.is_none() {
            *g.files = Some(self.open_schedule_files()?);
        }
        if g.files().catch_up()? {
            g.rebuild()?;
        }
        self.resolve_move(&mut g)?;
        g.publish_state()?;
        Ok(Some(g))
    }

    /// The schedule's directory, made and recorded as this queue's on the
    /// first use, checked on every later one; then its files.
    fn open_schedule_files(&self) -> Result<ScheduleFiles> {
        let Some(store) = &self.store_dir else {
            return Err(Error::InvalidOption(format!(
                "queue {} was made by an older shmq and records no store directory, so it \
                 cannot schedule messages: make it again",
                self.path.display()
            )));
        };
        if let Some(why) = &self.stores_refused {
            return Err(Error::InvalidOption(why.clone()));
        }
        let dir = store.join("schedule");
        let id = self.config.creation_id;
        let ctl = self.schedule_ctl();
        // Under the schedule lock: `made` changes only here.
        if ctl.made.load(Ordering::Acquire) == 0 {
            access::private_dir(store, self.trust)?;
            match owner::read(store) {
                Some(o) if o.creation_id == id => {}
                Some(o) if crate::open_queue::queue_file::still_owns(&o, store) => {
                    return Err(Error::InvalidOption(format!(
                        "the store directory {} of queue {} belongs to another queue ({}): \
                         make this one with another (Options::spill_dir, shmq create --spill-dir)",
                        store.display(),
                        self.path.display(),
                        o.queue.display()
                    )));
                }
                // Nobody's, or a queue's that is gone.
                _ => owner::write(store, id, &self.path)?,
            }
            // Nothing was ever scheduled for this queue: whatever is there
            // is an earlier queue's of this name.
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io(format!("clearing {}", dir.display()), e))?;
            }
            access::private_dir(&dir, self.trust)?;
            ctl.made.store(1, Ordering::Release);
        } else {
            access::check_dir(store, self.trust)?;
            if let Some(why) = owner::refusal(store, id, &self.path) {
                return Err(Error::InvalidOption(why));
            }
            if !dir.is_dir() {
                // Made once, and gone: another mount, or removed by hand.
                // A new one would forget every message scheduled.
                return Err(Error::corrupt(
                    &dir,
                    "the queue's schedule directory is missing (this process sees another \
                     directory than the one its messages were scheduled in, or it was removed)",
                ));
            }
            access::check_dir(&dir, self.trust)?;
        }
        let sync =
            crate::options::SyncMode::from_raw(self.config.sync_mode, self.config.sync_every)
                == Some(crate::options::SyncMode::Always);
        ScheduleFiles::open(
            &dir,
            id,
            self.config.max_message_size,
            self.config.spill_segment_size,
            sync,
        )
    }

    /// A move its holder did not finish (it died): finished if the
    /// message reached the ring, else left scheduled to move again.
    fn resolve_move(&self, g: &mut ScheduleGuard<'_>) -> Result<()> {
        if g.ctl().moving_id.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let found = {
            let _admin = self.lock();
            moving::resolve_move(g.ctl(), |pos| dedup::resolve(self, pos))
        };
        match found {
            Moving::Nothing | Moving::Lost(_) => {}
            Moving::Landed(id) => {
                if let Some(i) = g.files().find(id)? {
                    let e = g.files().entries()?[i];
                    match g.files().read(&e)? {
                        Found::Whole(_) => {
                            g.files().finish(i)?;
                        }
                        // Marked done already, or unreadable: it is in
                        // the ring either way.
                        Found::Done | Found::Damaged(_) => g.files().forget(i)?,
                    }
                    g.files().settle()?;
                }
            }
            // Decided within a moment (its producer is dead): the next
            // holder asks again, and meanwhile nothing moves.
            Moving::Undecided => {
                return Err(Error::Busy(
                    "a scheduled message's move into the ring is not decided yet".into(),
                ));
            }
        }
        moving::end_move(g.ctl());
        Ok(())
    }

    /// Under the admin lock, before `head` moves from `from` to `to`
    /// (see `protocol/schedule.rs`).
    pub(crate) fn note_schedule_landed(&self, from: u64, to: u64) {
        let ring = self.ring();
        moving::note_landed(self.schedule_ctl(), from, to, |pos| {
            os::fault::point("schedule.note_landed");
            matches!(ring.peek(pos), Peek::Ready(_))
        });
    }

    /// Under the admin lock, before any spill append or the switch back
    /// to the ring (as `dedup::cancel_unfinished_spills` does for keyed
    /// publishes): a move whose spill seq is at or past the spill's
    /// `end_seq` belongs to a mover killed inside its append (a live one
    /// holds the admin lock for the whole append, and ring positions lie
    /// below `end_seq`). That seq will be given to another message, so the
    /// move's position is taken back: it resolves as not moved, and moves
    /// again. Returns whether it was.
    pub(crate) fn cancel_unfinished_schedule_spill(&self) -> bool {
        let ctl = self.schedule_ctl();
        // SeqCst: as `note_landed` reads them.
        if ctl.moving_id.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let word = self.ring().ctl.tail.load(Ordering::Acquire);
        if !crate::protocol::spill::spilling(word) {
            return false;
        }
        let pos = ctl.moving_pos.load(Ordering::SeqCst);
        let end = self.header().spill.end_seq.load(Ordering::Acquire);
        pos != 0
            && pos > end
            && ctl
                .moving_pos
                .compare_exchange(pos, 0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
    }
}
