//! A scheduled message's move into the ring (`protocol/schedule.rs`): its
//! mover killed after any step, `head` moving past its position (and the
//! ring forgetting it) at any moment, and the next holder of the schedule
//! lock resolving what was left. The message reaches the ring once.
//!
//! And the sleeper's side (`Consumer::work_came`, `wait`): a consumer
//! that cut its sleep by the earliest due time it saw is woken when a
//! message is scheduled earlier (the scheduler's SeqCst store of
//! `next_due_ns`, then `notify` of `data`).

use loom::sync::Arc;
use loom::sync::atomic::AtomicBool;
use loom::thread;

use super::{ME, World, model, model_with};
use crate::layout::ScheduleControl;
use crate::loom::Ordering;
use crate::options::Start;
use crate::protocol::group::commit_cursor;
use crate::protocol::ring::{Begin, Claim, Peek};
use crate::protocol::schedule::{self as moving, Moving};
use crate::protocol::signal::sleep_unless;

/// The schedule id of the message moved.
const ID: u64 = 7;
/// The mover's producer id in the world.
const MOVER: u32 = 2;

/// One run: the mover does its first `steps` steps of four and dies
/// (four: it finished). With `planted`, the resolver ignores
/// `moving_landed` (the bug the word exists for).
fn move_killed_after(steps: u32, planted: bool) {
    let w = World::new(2, 1);
    {
        let g = w.lock.lock(ME, |_, _| true);
        w.groups().create(&g, "g", Start::Earliest, 0).unwrap();
    }
    let ctl = Arc::new(ScheduleControl::new());
    let dead = Arc::new(AtomicBool::new(false));
    // The message is still scheduled (its record not marked done).
    let scheduled = Arc::new(AtomicBool::new(true));
    let mover = {
        let (w, ctl, scheduled) = (w.clone(), ctl.clone(), scheduled.clone());
        thread::spawn(move || {
            if steps == 0 {
                return;
            }
            moving::begin_move(&ctl, ID);
            if steps == 1 {
                return;
            }
            let ring = w.ring();
            let mut head = 0;
            let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
                panic!("an empty ring has room")
            };
            moving::claimed(&ctl, pos);
            if steps == 2 {
                return;
            }
            let Begin::Ours(seen) = w.begin(pos, MOVER) else {
                // Aborted under us: impossible while we live (nobody
                // aborts a live producer's claim in this model).
                panic!("a live mover's claim was aborted")
            };
            ring.commit(pos, 1, seen, &w.producers[MOVER as usize])
                .expect("nobody aborts a live mover's claim");
            if steps == 3 {
                return;
            }
            scheduled.store(false, Ordering::SeqCst);
            moving::end_move(&ctl);
        })
    };
    // A consumer of the group, then `head` moved past what it read,
    // noting a landed move first, as `advance_head_locked` does; the ring
    // then forgets the position (its slot reused).
    let consumer = {
        let (w, ctl, dead) = (w.clone(), ctl.clone(), dead.clone());
        thread::spawn(move || {
            let ring = w.ring();
            loop {
                match ring.peek(0) {
                    Peek::Ready(_) => break,
                    Peek::Skip(_) => break,
                    Peek::NotYet(seen) => {
                        if dead.load(Ordering::SeqCst) {
                            if ring.ctl.tail.load(Ordering::SeqCst) == 0 {
                                // Never claimed: nothing to pass.
                                return;
                            }
                            // The mover died with its claim unwritten.
                            w.abort(0, seen);
                        } else {
                            thread::yield_now();
                        }
                    }
                    Peek::Settling => thread::yield_now(),
                }
            }
            commit_cursor(&w.groups[0].committed, 1);
            let g = w.lock.lock(ME, |_, _| true);
            w.groups().advance_head_settling(&g, |from, to| {
                moving::note_landed(&ctl, from, to, |pos| {
                    matches!(w.ring().peek(pos), Peek::Ready(_))
                });
            });
        })
    };
    mover.join().unwrap();
    dead.store(true, Ordering::SeqCst);
    // The next holder of the schedule lock.
    let resolver = {
        let (w, ctl, scheduled) = (w.clone(), ctl.clone(), scheduled.clone());
        thread::spawn(move || {
            loop {
                let found = {
                    let _admin = w.lock.lock(ME, |_, _| true);
                    let ring = w.ring();
                    let head = ring.ctl.head.load(Ordering::SeqCst);
                    let published = |pos: u64| {
                        if pos < head {
                            // The slot may be reused: the ring no longer
                            // knows (as `dedup::resolve` answers).
                            return Some(false);
                        }
                        match ring.peek(pos) {
                            Peek::Ready(_) => Some(true),
                            Peek::Skip(_) => Some(false),
                            Peek::NotYet(_) | Peek::Settling => None,
                        }
                    };
                    if planted {
                        ctl.moving_landed.store(0, Ordering::SeqCst);
                    }
                    moving::resolve_move(&ctl, published)
                };
                match found {
                    Moving::Undecided => thread::yield_now(),
                    Moving::Landed(_) => {
                        scheduled.store(false, Ordering::SeqCst);
                        moving::end_move(&ctl);
                        return;
                    }
                    Moving::Nothing | Moving::Lost(_) => {
                        moving::end_move(&ctl);
                        return;
                    }
                }
            }
        })
    };
    resolver.join().unwrap();
    consumer.join().unwrap();
    // The mover commits at its third step.
    let committed = steps >= 3;
    // Still scheduled: it will move again (a second copy in the ring).
    let copies = committed as u32 + scheduled.load(Ordering::SeqCst) as u32;
    assert_eq!(
        copies, 1,
        "killed after {steps} steps: the message went {copies} times"
    );
}

#[test]
fn loom_a_move_killed_at_any_step_reaches_the_ring_once() {
    for steps in 0..=4 {
        model_with("schedule move", 5_000, move || {
            move_killed_after(steps, false)
        });
    }
}

#[test]
#[should_panic(expected = "the message went 2 times")]
fn loom_planted_a_resolver_blind_to_landed_moves_is_caught() {
    model_with("schedule move, planted", 5_000, || {
        move_killed_after(3, true)
    });
}

/// A consumer asleep with nothing scheduled (its sleep cut by nothing);
/// a producer schedules a message (the earliest), and notifies, unless
/// `planted`. The loom futex ignores timeouts: a lost wake-up is a
/// deadlock loom reports. (`planted`, the notify left out, was run by
/// hand and loom reported the deadlock; it is not a `should_panic` test,
/// since a deadlock panics inside loom's scheduler and aborts the test
/// process.)
fn sleeper_wakes_for_an_earlier_due_time(planted: bool) {
    let w = World::new(2, 1);
    let ctl = Arc::new(ScheduleControl::new());
    let sleeper = {
        let (w, ctl) = (w.clone(), ctl.clone());
        thread::spawn(move || {
            // `schedule_seen`: read once, for the cap and the re-check.
            let seen = match ctl.next_due_ns.load(Ordering::SeqCst) {
                0 => u64::MAX,
                // Scheduled already: the sleep is cut at its due time (a
                // timed sleep, which loom's futex does not model).
                _ => return,
            };
            let earlier = || {
                let d = ctl.next_due_ns.load(Ordering::SeqCst);
                (d != 0 && d < seen).then_some(())
            };
            if earlier().is_none() {
                sleep_unless(
                    &w.ctl.data,
                    &w.sleepers.data,
                    1,
                    std::time::Duration::from_secs(1),
                    earlier,
                );
            }
        })
    };
    let scheduler = {
        let (w, ctl) = (w.clone(), ctl.clone());
        thread::spawn(move || {
            // `ScheduleGuard::publish_state` (a SeqCst RMW, as the Signal
            // protocol's waker makes its change), then the scheduled
            // publish's notify.
            ctl.next_due_ns.swap(5, Ordering::SeqCst);
            if !planted {
                w.ring().notify_data();
            }
        })
    };
    scheduler.join().unwrap();
    sleeper.join().unwrap();
}

#[test]
fn loom_a_sleeper_wakes_for_a_message_scheduled_earlier() {
    model("schedule wake-up", || {
        sleeper_wakes_for_an_earlier_due_time(false)
    });
}
