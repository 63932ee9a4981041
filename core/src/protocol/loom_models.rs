//! loom models of every lock-free protocol, on the same code that runs on
//! the mapping (heap-built layouts stand in for the file).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shmq --release --lib loom`
//! (`.ci/loom` does this). Every role runs in a spawned thread (loom issue
//! #392: a role on the main thread hides interleavings), and every model
//! asserts that loom explored more than one execution.

use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::layout::{AdminLock, Doorbells, GroupRecord, RingControl, Sleepers};
use crate::options::Start;
use crate::protocol::doorbell;
use crate::protocol::group::{Groups, commit_cursor};
use crate::protocol::lock::Me;
use crate::protocol::ring::{Begin, Claim, Peek, Ring, holds_slot, notify, sleep_unless};
use crate::sync::{AtomicU64, Ordering};

/// A ring, a group table and payload cells on the heap.
struct World {
    ctl: RingControl,
    states: Vec<AtomicU64>,
    cells: Vec<UnsafeCell<u64>>,
    groups: Vec<GroupRecord>,
    lock: AdminLock,
    /// Each producer's announcement word, indexed by its id (every
    /// producer is alive in these models).
    announce: Vec<AtomicU64>,
    bells: Doorbells,
    sleepers: Sleepers,
}

impl World {
    fn new(slots: usize, groups: usize) -> Arc<World> {
        Arc::new(World {
            ctl: RingControl::new(),
            states: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            cells: (0..slots).map(|_| UnsafeCell::new(0)).collect(),
            groups: (0..groups).map(|_| GroupRecord::new()).collect(),
            lock: AdminLock::new(),
            announce: (0..4).map(|_| AtomicU64::new(0)).collect(),
            bells: Doorbells::new(),
            sleepers: Sleepers::new(),
        })
    }

    fn ring(&self) -> Ring<'_, &Vec<AtomicU64>> {
        Ring {
            ctl: &self.ctl,
            slots: &self.states,
            capacity: self.states.len() as u64,
            bells: &self.bells,
        }
    }

    fn groups(&self) -> Groups<'_> {
        Groups {
            records: &self.groups,
            ctl: &self.ctl,
            spill: None,
            journal: None,
        }
    }

    fn cell(&self, pos: u64) -> &UnsafeCell<u64> {
        &self.cells[pos as usize % self.cells.len()]
    }

    /// Publishes `value`, advancing head under the lock when full.
    fn publish(&self, value: u64, pid: u32) -> u64 {
        let ring = self.ring();
        let mut head = 0;
        let pos = loop {
            match ring.claim(1, &mut head) {
                Claim::Claimed(p) => break p,
                Claim::Full => {
                    let g = self.lock.lock(ME, |_, _| true);
                    head = self.groups().advance_head(&g);
                    drop(g);
                    thread::yield_now();
                }
            }
        };
        let Begin::Ours(seen) = self.begin(pos, pid) else {
            panic!("nothing aborts in this model")
        };
        // SAFETY (loom cell): the slot is ours between begin and commit;
        // loom reports a race if the protocol lets anyone else in.
        self.cell(pos).with_mut(|p| unsafe { *p = value });
        ring.commit(pos, seen, &self.announce[pid as usize])
            .expect("nobody aborts in this model");
        ring.notify_data();
        pos
    }

    /// `Ring::begin` for producer `pid`, scanning the others'
    /// announcements as the producer does over its records.
    fn begin(&self, pos: u64, pid: u32) -> Begin {
        self.ring()
            .begin(pos, &self.announce[pid as usize], || self.held(pos))
    }

    /// Whether any producer's announcement holds the slot of `pos` (the
    /// scan `Shared::slot_held` makes over the producer records).
    fn held(&self, pos: u64) -> bool {
        let mask = self.states.len() as u64 - 1;
        self.announce
            .iter()
            .any(|a| holds_slot(a.load(Ordering::SeqCst), pos, mask))
    }

    /// Spins until `pos` is committed and returns its value.
    fn read(&self, pos: u64) -> u64 {
        let ring = self.ring();
        loop {
            match ring.peek(pos) {
                // SAFETY (loom cell): committed and not yet released.
                Peek::Ready => return self.cell(pos).with(|p| unsafe { *p }),
                Peek::Skip => panic!("nothing aborts in this model"),
                _ => thread::yield_now(),
            }
        }
    }
}

impl<'a> crate::protocol::ring::SlotStates for &'a Vec<AtomicU64> {
    fn state(&self, pos: u64) -> &AtomicU64 {
        &self[(pos as usize) & (self.len() - 1)]
    }
}

const ME: Me = Me { pid: 1, key: 0 };

fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    model_with(name, 1_000, f)
}

/// [`model`] allowing `branches` branches per execution (models whose
/// roles wait for each other in loops need more than loom's default).
fn model_with(name: &str, branches: usize, f: impl Fn() + Sync + Send + 'static) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    RUNS.store(0, StdOrdering::SeqCst);
    let mut b = loom::model::Builder::new();
    b.max_branches = branches;
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(move || {
        RUNS.fetch_add(1, StdOrdering::SeqCst);
        f();
    });
    let runs = RUNS.load(StdOrdering::SeqCst);
    assert!(runs > 1, "{name}: loom explored only {runs} execution");
    eprintln!("{name}: {runs} executions");
}

#[test]
fn loom_claim_commit_two_producers() {
    model("claim/commit", || {
        let w = World::new(4, 1);
        let producers: Vec<_> = (1..=2u64)
            .map(|id| {
                let w = w.clone();
                thread::spawn(move || w.publish(id * 10, id as u32))
            })
            .collect();
        let consumer = {
            let w = w.clone();
            thread::spawn(move || [w.read(0), w.read(1)])
        };
        let pos: Vec<u64> = producers.into_iter().map(|p| p.join().unwrap()).collect();
        let got = consumer.join().unwrap();
        // Each producer got its own position and the consumer saw each
        // producer's value at that position.
        assert_ne!(pos[0], pos[1]);
        assert_eq!(got[pos[0] as usize], 10);
        assert_eq!(got[pos[1] as usize], 20);
    });
}

#[test]
fn loom_capacity_gating() {
    model("gating", || {
        let w = World::new(2, 1);
        {
            let g = w.lock.lock(ME, |_, _| true);
            w.groups().create(&g, "g", Start::Earliest, 0).unwrap();
        }
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                for v in 0..3 {
                    w.publish(v + 100, 2);
                }
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                for pos in 0..3 {
                    // Reads the slot, then releases it; a producer that
                    // reused it early would race with this read.
                    assert_eq!(w.read(pos), pos + 100);
                    commit_cursor(&w.groups[0].committed, pos + 1);
                    w.ring().notify_space();
                }
            })
        };
        producer.join().unwrap();
        consumer.join().unwrap();
        assert_eq!(w.ctl.tail.load(Ordering::Relaxed), 3);
    });
}

#[test]
fn loom_wake_up_is_never_lost() {
    // A consumer that finds nothing sleeps on `data`; the producer's
    // notify must wake it. The loom futex ignores timeouts, so a lost
    // wake-up is a deadlock that loom reports.
    model("wake-up", || {
        let w = World::new(2, 1);
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                loop {
                    if ring.peek(0) == Peek::Ready {
                        break;
                    }
                    let ready = sleep_unless(
                        &w.ctl.data,
                        &w.sleepers.data,
                        1,
                        std::time::Duration::from_secs(1),
                        || (ring.peek_sc(0) == Peek::Ready).then_some(()),
                    );
                    if ready.is_some() {
                        break;
                    }
                }
                // SAFETY (loom cell): committed.
                w.cell(0).with(|p| unsafe { *p })
            })
        };
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.publish(7, 3))
        };
        producer.join().unwrap();
        assert_eq!(consumer.join().unwrap(), 7);
    });
}

#[test]
fn loom_repairing_a_dead_sleeper_never_loses_a_live_ones_wake_up() {
    // Slot 0 of the data sleepers holds a sleeper killed in its sleep (key
    // 99, its bit still set). A repairer clears it while a live consumer
    // (key 7) goes to sleep and a producer publishes: whichever slot the
    // consumer takes, it is woken (a lost wake-up deadlocks the model),
    // and at the end no bit and no slot is left.
    model("sleeper repair", || {
        let w = World::new(2, 1);
        w.sleepers.data[0].store(99, Ordering::Relaxed);
        w.ctl.data.waiters.store(1, Ordering::Relaxed);
        let flag = Arc::new(AtomicU64::new(0));
        let repairer = {
            let w = w.clone();
            thread::spawn(move || {
                crate::protocol::ring::repair_sleepers(&w.ctl.data, &w.sleepers.data, |k| k != 99)
            })
        };
        let sleeper = {
            let (w, flag) = (w.clone(), flag.clone());
            thread::spawn(move || {
                while sleep_unless(
                    &w.ctl.data,
                    &w.sleepers.data,
                    7,
                    std::time::Duration::from_secs(1),
                    || (flag.load(Ordering::SeqCst) == 1).then_some(()),
                )
                .is_none()
                {}
            })
        };
        flag.store(1, Ordering::SeqCst);
        notify(&w.ctl.data, &w.ctl.data_armed, &w.bells.data);
        sleeper.join().unwrap();
        repairer.join().unwrap();
        assert_eq!(w.ctl.data.waiters.load(Ordering::Relaxed), 0);
        assert!(
            w.sleepers
                .data
                .iter()
                .all(|s| s.load(Ordering::Relaxed) == 0)
        );
    });
}

#[test]
fn loom_space_wake_up_is_never_lost() {
    // A producer waiting for room sleeps on `space`; the consumer's cursor
    // store and notify must wake it.
    model("space wake-up", || {
        let w = World::new(2, 1);
        w.groups[0].state.store(1, Ordering::Relaxed);
        w.ctl.tail.store(2, Ordering::Relaxed);
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                loop {
                    let room = || {
                        let tail = w.ctl.tail.load(Ordering::SeqCst);
                        let min = w.groups[0].committed.load(Ordering::SeqCst);
                        (tail < min + 2).then_some(())
                    };
                    if room().is_some() {
                        break;
                    }
                    if sleep_unless(
                        &w.ctl.space,
                        &w.sleepers.space,
                        1,
                        std::time::Duration::from_secs(1),
                        room,
                    )
                    .is_some()
                    {
                        break;
                    }
                }
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                commit_cursor(&w.groups[0].committed, 1);
                notify(&w.ctl.space, &w.ctl.space_armed, &w.bells.space);
            })
        };
        consumer.join().unwrap();
        producer.join().unwrap();
    });
}

#[test]
fn loom_abort_vs_late_commit() {
    // A consumer gives up on a claimed position while its producer is
    // still writing: exactly one of them wins, the loser learns it, and the
    // producer's announcement is withdrawn once it stops writing.
    model("abort vs commit", || {
        let w = World::new(2, 1);
        let producer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
                    panic!("room for one")
                };
                let seen = match w.begin(pos, 1) {
                    Begin::Ours(seen) => seen,
                    Begin::Aborted => return false,
                    Begin::Held => panic!("no older lap here"),
                };
                // SAFETY (loom cell): ours until commit; nobody reads an
                // aborted slot and no later lap exists here.
                w.cell(pos).with_mut(|p| unsafe { *p = 42 });
                ring.commit(pos, seen, &w.announce[1]).is_ok()
            })
        };
        let aborter = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let Peek::NotYet(seen) = ring.peek(0) else {
                    return false;
                };
                if w.ctl.tail.load(Ordering::Acquire) == 0 {
                    return false; // not claimed yet: nothing to abort
                }
                ring.abort(0, seen)
            })
        };
        let committed = producer.join().unwrap();
        let aborted = aborter.join().unwrap();
        assert!(committed != aborted, "exactly one wins");
        if committed {
            assert_eq!(w.ring().peek(0), Peek::Ready);
        } else {
            assert_eq!(w.ring().peek(0), Peek::Skip);
        }
        assert_eq!(w.announce[1].load(Ordering::Relaxed), 0, "withdrawn");
    });
}

#[test]
fn loom_stalled_writer_holds_its_slot() {
    // Two producers share a one-slot ring. A consumer aborts position 0
    // (whoever claimed it may still be writing) and lets the ring move on;
    // the producer of position 1 — the same slot — must not write it while
    // the first may still be writing. loom's cell reports the race if the
    // announcement protocol lets both in.
    model("stalled writer", || {
        let w = World::new(1, 1);
        let producers: Vec<_> = (1..=2u32)
            .map(|id| {
                let w = w.clone();
                thread::spawn(move || {
                    let ring = w.ring();
                    let mut head = 0;
                    let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
                        return; // the ring never made room: nothing to do
                    };
                    if let Begin::Ours(seen) = w.begin(pos, id) {
                        // SAFETY (loom cell): the race under test.
                        w.cell(pos).with_mut(|p| unsafe { *p = pos + 10 });
                        let _ = ring.commit(pos, seen, &w.announce[id as usize]);
                    }
                })
            })
            .collect();
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                let Peek::NotYet(seen) = ring.peek(0) else {
                    return;
                };
                if w.ctl.tail.load(Ordering::SeqCst) == 0 || !ring.abort(0, seen) {
                    return;
                }
                // Position 0 is skipped: the group moves past it and the
                // slot may be claimed for position 1.
                w.ctl.head.store(1, Ordering::Release);
            })
        };
        for p in producers {
            p.join().unwrap();
        }
        consumer.join().unwrap();
        // Position 0 ended committed or aborted; a claimed position 1
        // ended aborted (held) or committed.
        let word = w.states[0].load(Ordering::Relaxed);
        assert_ne!(word & 3, 0, "the slot's word was written");
    });
}

/// A batch of `n` positions by producer `id`, announced once
/// (`Ring::announce_from`), each written with `pos + 10` unless a
/// consumer aborted it or a stalled writer holds its slot. Returns the
/// positions it committed, or `None` if the ring had no room.
fn publish_batch(w: &World, id: u32, n: u64) -> Option<Vec<u64>> {
    let ring = w.ring();
    let mut head = w.ctl.head.load(Ordering::Acquire);
    let Claim::Claimed(start) = ring.claim(n, &mut head) else {
        return None;
    };
    let me = &w.announce[id as usize];
    ring.announce_from(start, me);
    let mut committed = Vec::new();
    for pos in start..start + n {
        if let Begin::Ours(seen) = ring.begin_announced(pos, || w.held(pos)) {
            // SAFETY (loom cell): the race under test.
            w.cell(pos).with_mut(|p| unsafe { *p = pos + 10 });
            if ring.commit_announced(pos, seen).is_ok() {
                committed.push(pos);
            }
        }
    }
    ring.end_announced(me);
    Some(committed)
}

#[test]
fn loom_stalled_batch_holds_its_slots() {
    // A batch announces its first position only. Producer 1 writes
    // positions 0 and 1 of a two-slot ring as one batch; a consumer gives
    // up on whichever are not committed yet and lets the ring move a lap;
    // producer 2's batch of positions 2 and 3 (the same two slots) must
    // write neither slot while producer 1 may still write it. loom's cell
    // reports the race if one announcement does not hold both slots
    // (producer 2's position 3 is in the slot of 1, not of the announced 0).
    model_with("stalled batch", 2_000, || {
        let w = World::new(2, 1);
        let first = {
            let w = w.clone();
            thread::spawn(move || publish_batch(&w, 1, 2))
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                for pos in 0..2 {
                    match ring.peek(pos) {
                        Peek::Ready | Peek::Skip => {}
                        Peek::NotYet(seen) => {
                            if w.ctl.tail.load(Ordering::SeqCst) <= pos || !ring.abort(pos, seen) {
                                return; // not claimed yet, or committed meanwhile
                            }
                        }
                    }
                }
                // Both positions are done with: the ring moves a lap.
                w.ctl.head.store(2, Ordering::Release);
            })
        };
        consumer.join().unwrap();
        let second = {
            let w = w.clone();
            thread::spawn(move || publish_batch(&w, 2, 2))
        };
        // Either may find the ring full (the second can claim first).
        let (a, b) = (first.join().unwrap(), second.join().unwrap());
        assert!(a.is_some() || b.is_some(), "one of them had room");
        assert_eq!(w.announce[1].load(Ordering::Relaxed), 0, "withdrawn");
        assert_eq!(w.announce[2].load(Ordering::Relaxed), 0, "withdrawn");
    });
}

/// One group's lease records, record and ordering lanes on the heap.
struct LeaseWorld {
    records: Vec<crate::layout::LeaseRecord>,
    group: GroupRecord,
    lanes: Vec<AtomicU64>,
}

impl LeaseWorld {
    fn new(slots: usize) -> Arc<LeaseWorld> {
        Self::with_lanes(slots, 1)
    }
    fn with_lanes(slots: usize, lanes: usize) -> Arc<LeaseWorld> {
        Arc::new(LeaseWorld {
            records: (0..slots)
                .map(|_| crate::layout::LeaseRecord::new())
                .collect(),
            group: GroupRecord::new(),
            lanes: (0..lanes).map(|_| AtomicU64::new(0)).collect(),
        })
    }
    fn leases(&self) -> crate::protocol::lease::Leases<'_> {
        crate::protocol::lease::Leases {
            records: &self.records,
            group: &self.group,
            lanes: &self.lanes,
        }
    }
}

const T0: crate::protocol::lease::Now = crate::protocol::lease::Now {
    mono: 1_000,
    real: 1,
};
const LATE: crate::protocol::lease::Now = crate::protocol::lease::Now {
    mono: 1_000_000,
    real: 2,
};

#[test]
fn loom_lease_take_vs_expire_vs_ack() {
    // Consumer 1 takes position 0 and acks it; consumer 2, whose clock says
    // the lease ran out, tries to take it again at the same time. Never
    // both: an ack that succeeded is never redelivered, and a redelivered
    // lease makes the first holder's ack fail. Whoever holds it last acks,
    // and the group commits it exactly once.
    model("lease take/expire/ack", || {
        let w = LeaseWorld::new(2);
        let first = {
            let w = w.clone();
            thread::spawn(move || {
                let l = w.leases();
                let held = l.take_new(0, 1, T0, 10).expect("first to take it");
                let acked = l.ack(&held).is_ok();
                if acked {
                    l.advance_committed();
                }
                acked
            })
        };
        let second = {
            let w = w.clone();
            thread::spawn(move || {
                let l = w.leases();
                let (held, _) = l.take_again(0, 2, LATE, 10, &mut |_| true)?;
                l.ack(&held).expect("nobody takes it from us here");
                l.advance_committed();
                Some(held.attempt())
            })
        };
        let acked_first = first.join().unwrap();
        let second = second.join().unwrap();
        assert!(
            acked_first != second.is_some(),
            "exactly one of them finished it"
        );
        if let Some(attempt) = second {
            assert_eq!(attempt, 2);
        }
        assert_eq!(w.group.committed.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_out_of_order_acks_commit() {
    // Two consumers ack positions 1 and 0 at once: whichever finishes last
    // moves `committed` over both.
    model("out-of-order acks", || {
        let w = LeaseWorld::new(4);
        let (a, b) = {
            let l = w.leases();
            (
                l.take_new(0, 1, T0, 10).unwrap(),
                l.take_new(1, 2, T0, 10).unwrap(),
            )
        };
        let acks: Vec<_> = [b, a]
            .into_iter()
            .map(|held| {
                let w = w.clone();
                thread::spawn(move || {
                    let l = w.leases();
                    l.ack(&held).unwrap();
                    l.advance_committed();
                })
            })
            .collect();
        for t in acks {
            t.join().unwrap();
        }
        assert_eq!(w.group.committed.load(Ordering::Relaxed), 2);
    });
}

#[test]
fn loom_redelivery_goes_to_exactly_one_consumer() {
    // A nacked message waits; two consumers look for it at once.
    model("redelivery to one", || {
        let w = LeaseWorld::new(2);
        {
            let l = w.leases();
            let held = l.take_new(0, 1, T0, 10).unwrap();
            l.requeue(&held, 0).unwrap();
        }
        let takers: Vec<_> = [2u32, 3]
            .into_iter()
            .map(|me| {
                let w = w.clone();
                thread::spawn(move || {
                    w.leases()
                        .take_again(0, me, T0, 10, &mut |_| true)
                        .is_some()
                })
            })
            .collect();
        let got: Vec<bool> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(got.iter().filter(|g| **g).count(), 1, "{got:?}");
    });
}

#[test]
fn loom_two_dead_letterings_take_two_entries() {
    // Two consumers dead-letter at once into a two-entry DLQ: each gets an
    // entry, never the same; with one entry, exactly one gets it.
    for entries in [2usize, 1] {
        model("dlq append", move || {
            let states: Arc<Vec<AtomicU64>> =
                Arc::new((0..entries).map(|_| AtomicU64::new(0)).collect());
            let appenders: Vec<_> = [1u32, 2]
                .into_iter()
                .map(|pid| {
                    let states = states.clone();
                    thread::spawn(move || {
                        crate::protocol::tables::claim_dead_letter(
                            states.iter(),
                            pid as u64,
                            |_| true,
                        )
                    })
                })
                .collect();
            let got: Vec<Option<usize>> =
                appenders.into_iter().map(|t| t.join().unwrap()).collect();
            let taken: Vec<usize> = got.iter().flatten().copied().collect();
            assert_eq!(taken.len(), entries.min(2), "{got:?}");
            if let [a, b] = taken[..] {
                assert_ne!(a, b, "two appenders in one entry");
            }
        });
    }
}

#[test]
fn loom_one_of_two_producers_publishes_a_key() {
    // Two producers publish with the same key at once, each looking it up
    // under the admin lock: one publishes (its entry ends PUBLISHED with
    // its seq), the other waits and then gets that seq back.
    use crate::protocol::tables::{Lookup, lookup_or_reserve};
    model("dedup insert", || {
        let table: Arc<Vec<crate::layout::DedupEntry>> =
            Arc::new((0..2).map(|_| crate::layout::DedupEntry::new()).collect());
        let lock = Arc::new(AdminLock::new());
        let next = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|pid| {
                let (table, lock, next) = (table.clone(), lock.clone(), next.clone());
                thread::spawn(move || {
                    loop {
                        let me = Me { pid, key: 0 };
                        let found = {
                            let _g = lock.lock(me, |_, _| true);
                            lookup_or_reserve(
                                &table,
                                &next,
                                42,
                                pid as u64,
                                1,
                                1_000,
                                |_| true,
                                |_| None,
                            )
                        };
                        match found {
                            Lookup::Mine(i) => {
                                // "Publish": this producer's message gets seq
                                // 100 + pid.
                                table[i].seq.store(100 + pid as u64, Ordering::Relaxed);
                                table[i].state.store(
                                    crate::protocol::tables::dedup::PUBLISHED,
                                    Ordering::Release,
                                );
                                return (true, 100 + pid as u64);
                            }
                            Lookup::Published(seq) => return (false, seq),
                            Lookup::Wait => thread::yield_now(),
                            Lookup::Full => panic!("two entries, one key"),
                        }
                    }
                })
            })
            .collect();
        let r: Vec<(bool, u64)> = producers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(r.iter().filter(|(mine, _)| *mine).count(), 1, "{r:?}");
        assert_eq!(r[0].1, r[1].1, "both see the one seq: {r:?}");
    });
}

#[test]
fn loom_head_never_passes_an_unsettled_keyed_commit() {
    // A keyed producer records its position (keyed_pos, then the entry's
    // seq), commits, and dies before it marks its entry PUBLISHED. A
    // consumer reads the message and moves its group past it; a producer
    // moves `head` under the admin lock, settling what it passes. Whenever
    // `head` passed the position, the entry says PUBLISHED: the retry of
    // the key is told "published" without looking at a slot that may
    // have been reused since.
    use crate::protocol::tables::dedup::{PENDING, PUBLISHED};
    model("keyed settle", || {
        let w = World::new(2, 1);
        {
            let g = w.lock.lock(ME, |_, _| true);
            w.groups().create(&g, "g", Start::Earliest, 0).unwrap();
        }
        let entry = Arc::new(crate::layout::DedupEntry::new());
        entry.state.store((2 << 2) | PENDING, Ordering::Relaxed);
        entry.seq.store(u64::MAX, Ordering::Relaxed);
        let keyed = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let producer = {
            let (w, entry, keyed) = (w.clone(), entry.clone(), keyed.clone());
            thread::spawn(move || {
                let ring = w.ring();
                let mut head = 0;
                let Claim::Claimed(pos) = ring.claim(1, &mut head) else {
                    panic!("an empty ring has room")
                };
                // `dedup::claimed`, then the publish; no `published`.
                keyed.1.store(0, Ordering::Relaxed);
                keyed.0.store(pos + 1, Ordering::SeqCst);
                entry.seq.store(pos, Ordering::Release);
                let Begin::Ours(seen) = w.begin(pos, 2) else {
                    panic!("nothing aborts in this model")
                };
                ring.commit(pos, seen, &w.announce[2]).unwrap();
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                w.read(0);
                commit_cursor(&w.groups[0].committed, 1);
            })
        };
        let settler = {
            let (w, entry, keyed) = (w.clone(), entry.clone(), keyed.clone());
            thread::spawn(move || {
                let g = w.lock.lock(ME, |_, _| true);
                let table = std::slice::from_ref(&*entry);
                w.groups().advance_head_settling(&g, |from, to| {
                    crate::protocol::tables::settle_passed(
                        table,
                        std::iter::once((&keyed.0, &keyed.1)),
                        from,
                        to,
                        |pos| matches!(w.ring().peek(pos), Peek::Ready),
                    )
                })
            })
        };
        producer.join().unwrap();
        consumer.join().unwrap();
        let head = settler.join().unwrap();
        if head > 0 {
            assert_eq!(entry.state.load(Ordering::Relaxed), PUBLISHED);
        }
    });
}

#[test]
fn loom_a_dead_holders_lock_is_taken_over_once() {
    // The admin lock's holder (pid 9) died inside its critical section.
    // Two waiters take it over at once (the non-waiting take-over that
    // refills use): at most one holds it at a time, even when one reads
    // the other's pid beside the dead holder's start time.
    model("lock take-over", || {
        let lock = Arc::new(AdminLock::new());
        lock.holder.store(9, Ordering::Relaxed);
        lock.holder_key.store(5, Ordering::Relaxed);
        let cell = Arc::new(UnsafeCell::new(0u64));
        // Start times: pid 1 → 11, pid 2 → 12; pid 9 is dead. A start of 0
        // is "being written": only the pid is asked about.
        let alive = |pid: u32, start: u64| pid != 9 && (start == 0 || start == 10 + pid as u64);
        let takers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|pid| {
                let (lock, cell) = (lock.clone(), cell.clone());
                thread::spawn(move || {
                    let me = Me {
                        pid,
                        key: 10 + pid as u64,
                    };
                    loop {
                        if let Some(g) = lock.try_lock_or_take(me, alive) {
                            // SAFETY (loom cell): loom reports a race if two
                            // holders get here at once.
                            cell.with_mut(|p| unsafe { *p += 1 });
                            drop(g);
                            return;
                        }
                        thread::yield_now();
                    }
                })
            })
            .collect();
        for t in takers {
            t.join().unwrap();
        }
        // SAFETY (loom cell): both takers are done.
        assert_eq!(cell.with(|p| unsafe { *p }), 2);
        assert_eq!(lock.holder.load(Ordering::Relaxed), 0);
    });
}

#[test]
fn loom_spill_switch_keeps_seq_order() {
    // A one-group ring of 2 slots holding one message; two producers
    // publish at once, each into the ring if its claim fits, else to the
    // spill (under the admin lock, `spill::append`), while the consumer
    // reads seq 0. Then the consumer reads the rest from the ring, copying
    // spilled messages back into it (`spill::refill`) when the ring has
    // none. Whoever wins the last free position, every message arrives
    // once, at the seq its publish returned, in order, and no slot is
    // written while the consumer reads it (the payload cells are loom
    // cells). Planting a plain store for the switch CAS fails it.
    use crate::layout::SpillControl;
    use crate::protocol::spill::{self, Record, VecLog};

    struct SpillWorld {
        w: Arc<World>,
        spill: SpillControl,
        /// The log, touched only under the admin lock.
        log: UnsafeCell<VecLog>,
    }
    // SAFETY: `log` is accessed only while holding `w.lock` (loom checks
    // the cell's accesses against that ordering).
    unsafe impl Sync for SpillWorld {}
    // SAFETY: as above; every other field is Send.
    unsafe impl Send for SpillWorld {}

    fn with_log<R>(sw: &SpillWorld, f: impl FnOnce(&mut VecLog) -> R) -> R {
        // SAFETY: the caller holds the admin lock (see `SpillWorld`).
        sw.log.with_mut(|l| f(unsafe { &mut *l }))
    }

    /// Publishes `values` with one claim (or one spill append); returns
    /// the first seq.
    fn publish(sw: &SpillWorld, values: &[u64], pid: u32) -> u64 {
        let w = &sw.w;
        let ring = w.ring();
        let n = values.len() as u64;
        let mut head = 0;
        loop {
            if let Claim::Claimed(first) = ring.claim(n, &mut head) {
                for (i, v) in values.iter().enumerate() {
                    let pos = first + i as u64;
                    let Begin::Ours(seen) = w.begin(pos, pid) else {
                        panic!("nothing aborts in this model")
                    };
                    // SAFETY (loom cell): ours between begin and commit.
                    w.cell(pos).with_mut(|p| unsafe { *p = *v });
                    ring.commit(pos, seen, &w.announce[pid as usize])
                        .expect("nobody aborts in this model");
                }
                ring.notify_data();
                return first;
            }
            let g = w.lock.lock(ME, |_, _| true);
            head = w.groups().advance_head(&g);
            let bytes: Vec<[u8; 8]> = values.iter().map(|v| v.to_le_bytes()).collect();
            let mut recs: Vec<Record<'_>> = bytes
                .iter()
                .map(|b| Record {
                    seq: 0,
                    timestamp_ns: 0,
                    correlation_id: 0,
                    type_id: 0,
                    enveloped: false,
                    payload: b,
                })
                .collect();
            let r = with_log(sw, |log| {
                spill::append(&ring, &sw.spill, log, &mut recs, &mut |_| {})
            })
            .expect("the model's log has room");
            drop(g);
            if let Some(seq) = r {
                return seq;
            }
            thread::yield_now();
        }
    }

    fn read(sw: &SpillWorld, pos: u64) -> u64 {
        let w = &sw.w;
        let ring = w.ring();
        loop {
            match ring.peek(pos) {
                Peek::Ready => {
                    // SAFETY (loom cell): committed and not yet released.
                    let v = w.cell(pos).with(|p| unsafe { *p });
                    commit_cursor(&w.groups[0].committed, pos + 1);
                    ring.notify_space();
                    return v;
                }
                Peek::Skip => panic!("nothing is lost in this model"),
                Peek::NotYet(_) if sw.spill.active.load(Ordering::Acquire) == 0 => {
                    thread::yield_now();
                }
                Peek::NotYet(_) => {
                    let g = w.lock.lock(ME, |_, _| true);
                    with_log(sw, |log| {
                        spill::refill(
                            &ring,
                            &sw.spill,
                            log,
                            &mut || w.groups().advance_head(&g) + 2,
                            &|_| false,
                            &mut |p, rec| {
                                let v = u64::from_le_bytes(rec.payload.try_into().unwrap());
                                // SAFETY (loom cell): refill writes only a
                                // position no one else may write yet.
                                w.cell(p).with_mut(|c| unsafe { *c = v });
                            },
                        )
                    })
                    .expect("refill");
                    drop(g);
                    thread::yield_now();
                }
            }
        }
    }

    model("spill switch", || {
        let w = World::new(2, 1);
        {
            let g = w.lock.lock(ME, |_, _| true);
            w.groups().create(&g, "g", Start::Earliest, 0).unwrap();
        }
        // Seq 0 is in the ring already: one slot is free.
        w.publish(100, 3);
        let sw = Arc::new(SpillWorld {
            w,
            spill: SpillControl::new(),
            log: UnsafeCell::new(VecLog::default()),
        });
        // Producer 1 publishes one message (it fits in the free slot);
        // producer 2 a batch of two (it does not: it spills).
        let p1 = {
            let sw = sw.clone();
            thread::spawn(move || publish(&sw, &[101], 1))
        };
        let p2 = {
            let sw = sw.clone();
            thread::spawn(move || publish(&sw, &[201, 202], 2))
        };
        // Meanwhile the consumer reads seq 0, freeing its slot.
        let first = {
            let sw = sw.clone();
            thread::spawn(move || read(&sw, 0))
        };
        let (s1, s2) = (p1.join().unwrap(), p2.join().unwrap());
        let mut got = vec![first.join().unwrap()];
        // Then it reads the rest, through the spill.
        let rest = {
            let sw = sw.clone();
            thread::spawn(move || [1, 2, 3].map(|pos| read(&sw, pos)))
        };
        got.extend(rest.join().unwrap());
        assert!(s1 == 3 && s2 == 1 || s1 == 1 && s2 == 2, "seqs {s1}, {s2}");
        assert_eq!(got[0], 100);
        assert_eq!(got[s1 as usize], 101, "producer 1's message at its seq");
        assert_eq!(got[s2 as usize], 201, "producer 2's batch at its seq");
        assert_eq!(got[s2 as usize + 1], 202, "in order");
    });
}

/// An async consumer arms doorbell entry 0 for seq 0 (its re-check reads
/// the slot with SeqCst); `producers` producers publish one message each.
/// Whatever the interleaving: the re-check saw the message or exactly one
/// ring came (never a lost one, never two for one arm).
fn doorbell_model(name: &str, producers: u32) {
    model(name, move || {
        let w = World::new(4, 1);
        let id = doorbell::entry_value(1, 7);
        let i = doorbell::claim(&w.bells.data, &w.ctl.data_armed, id, |_| false).unwrap();
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let ring = w.ring();
                doorbell::arm(&w.ctl.data_armed, i, || {
                    (ring.peek_sc(0) == Peek::Ready).then_some(())
                })
                .is_some()
            })
        };
        let ps: Vec<_> = (0..producers)
            .map(|p| {
                let w = w.clone();
                thread::spawn(move || w.publish(10 + u64::from(p), p))
            })
            .collect();
        for p in ps {
            p.join().unwrap();
        }
        let saw = consumer.join().unwrap();
        let rung = crate::sync::doorbell::rung(id);
        assert!(rung <= 1, "one arm, at most one ring: {rung}");
        assert!(saw || rung == 1, "a lost wake-up: not seen, not rung");
    });
}

#[test]
fn loom_doorbell_arm_vs_publish_is_never_lost() {
    doorbell_model("doorbell arm vs publish", 1);
}

#[test]
fn loom_doorbell_two_producers_ring_once() {
    doorbell_model("doorbell two producers", 2);
}

#[test]
fn loom_doorbell_cancel_vs_ring() {
    // A waiter armed with nothing there gives up (cancel) while a producer
    // publishes: either the cancel took the arm back (no ring) or the
    // producer rang, once; never both, never neither.
    model("doorbell cancel vs ring", || {
        let w = World::new(4, 1);
        let id = doorbell::entry_value(1, 9);
        let i = doorbell::claim(&w.bells.data, &w.ctl.data_armed, id, |_| false).unwrap();
        assert!(doorbell::arm(&w.ctl.data_armed, i, || None::<()>).is_none());
        let cancel = {
            let w = w.clone();
            thread::spawn(move || doorbell::disarm(&w.ctl.data_armed, i))
        };
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.publish(5, 1))
        };
        producer.join().unwrap();
        let took_back = cancel.join().unwrap();
        let rung = crate::sync::doorbell::rung(id);
        assert_eq!(took_back, rung == 0, "cancel {took_back}, rung {rung}");
    });
}

#[test]
fn loom_doorbell_release_vs_ring_frees_one_owner() {
    // The owner releases its entry while a producer rings it and a new
    // waiter claims a doorbell: the new owner never inherits an armed bit,
    // and no entry holds a released value afterwards.
    model("doorbell release vs ring", || {
        let w = World::new(4, 1);
        let (old, new) = (doorbell::entry_value(1, 1), doorbell::entry_value(2, 2));
        let i = doorbell::claim(&w.bells.data, &w.ctl.data_armed, old, |_| false).unwrap();
        assert!(doorbell::arm(&w.ctl.data_armed, i, || None::<()>).is_none());
        let owner = {
            let w = w.clone();
            thread::spawn(move || {
                doorbell::release(&w.bells.data, &w.ctl.data_armed, i, old);
                doorbell::claim(&w.bells.data, &w.ctl.data_armed, new, |_| false).unwrap()
            })
        };
        let producer = {
            let w = w.clone();
            thread::spawn(move || w.publish(5, 1))
        };
        producer.join().unwrap();
        let j = owner.join().unwrap();
        assert_eq!(w.bells.data[j].load(Ordering::Relaxed), new);
        assert!(
            w.bells
                .data
                .iter()
                .all(|e| e.load(Ordering::Relaxed) != old),
            "the released value is gone"
        );
        assert_eq!(
            w.ctl.data_armed.load(Ordering::Relaxed) & (1 << j),
            0,
            "the new owner starts unarmed"
        );
    });
}

// ---- ordering lanes (protocol/lanes.rs) ----

use crate::protocol::lanes::Keyed;
use crate::protocol::lease::{ACKED, DEAD, FINISHING, Held, LEASED, READY, WAITING};

/// Whether position `p`'s word says it is finished for the group (or
/// being handed on, which no expiry undoes).
fn finished(w: &LeaseWorld, p: u64) -> bool {
    let st = w.leases().word(p).state();
    matches!(st, ACKED | DEAD | FINISHING)
}

/// One consumer's step over the positions `0..n` at the cursor or due
/// again: a lease it got, if any (`lanes[p]`: position p's lane).
fn lane_step(
    w: &LeaseWorld,
    me: u32,
    lanes: &[usize],
    alive: &mut impl FnMut(u32) -> bool,
) -> Option<Held> {
    let l = w.leases();
    let next = w.group.next.load(Ordering::Acquire);
    if (next as usize) < lanes.len() {
        if let Keyed::Leased(h) = l.take_keyed(next, lanes[next as usize], me, T0, 1_000_000, alive)
        {
            return Some(h);
        }
    }
    (0..next).find_map(|p| l.take_again(p, me, T0, 1_000_000, alive).map(|(h, _)| h))
}

#[test]
fn loom_lanes_a_waiter_and_its_predecessors_finisher() {
    // Position 0 (lane 0) is leased to consumer 1. Consumer 2 indexes
    // position 1 of the same lane while consumer 1 acks (or dead-letters)
    // 0. Whoever leases 1 does so only after 0 finished; exactly one
    // lease of 1; and once both are quiet 1 is not left waiting (the
    // Dekker pair: with the indexer's re-check removed, or either side's
    // SeqCst weakened, loom finds 1 stuck WAITING).
    for dead_letter in [false, true] {
        model("lanes: waiter vs finisher", move || {
            let w = LeaseWorld::with_lanes(4, 2);
            let first = match w.leases().take_keyed(0, 0, 1, T0, 1_000_000, &mut |_| true) {
                Keyed::Leased(h) => h,
                other => panic!("{other:?}"),
            };
            let finisher = {
                let w = w.clone();
                thread::spawn(move || {
                    let l = w.leases();
                    if dead_letter {
                        let t = l.begin_dead(&first).unwrap();
                        l.finish_dead(&t);
                    } else {
                        l.ack(&first).unwrap();
                    }
                    l.advance_committed();
                    let got = l
                        .take_again(1, 1, T0, 1_000_000, &mut |_| true)
                        .map(|(h, _)| h);
                    if got.is_some() {
                        assert!(finished(&w, 0));
                    }
                    got
                })
            };
            let indexer = {
                let w = w.clone();
                thread::spawn(move || {
                    let l = w.leases();
                    let got = match l.take_keyed(1, 0, 2, T0, 1_000_000, &mut |_| true) {
                        Keyed::Leased(h) => Some(h),
                        _ => l
                            .take_again(1, 2, T0, 1_000_000, &mut |_| true)
                            .map(|(h, _)| h),
                    };
                    if got.is_some() {
                        assert!(finished(&w, 0), "1 leased before 0 finished");
                    }
                    got
                })
            };
            let a = finisher.join().unwrap();
            let b = indexer.join().unwrap();
            assert!(!(a.is_some() && b.is_some()), "1 leased twice");
            let st = w.leases().word(1).state();
            if a.is_none() && b.is_none() {
                assert_eq!(st, READY, "1 is due, not stuck");
            } else {
                assert_eq!(st, LEASED);
            }
            assert_ne!(st, WAITING);
            assert!(
                w.group.committed.load(Ordering::Relaxed) <= 1,
                "committed passed 1"
            );
        });
    }
}

#[test]
fn loom_lanes_collisions_keep_order_with_two_consumers() {
    // 2 lanes, 3 keys: positions 0 (key a, lane 0), 1 (key b, lane 1),
    // 2 (key c, lane 0: collides with a). Two consumers dispatch and ack.
    // At most one lease per lane at a time, lane 0 in seq order, and
    // everything finished in the end.
    model("lanes: collisions", || {
        let w = LeaseWorld::with_lanes(4, 2);
        let lanes = [0usize, 1, 0];
        // Lane -> position leased now (+1), and the last one acked (+1).
        let busy: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
        let order: Arc<Vec<AtomicU64>> = Arc::new((0..2).map(|_| AtomicU64::new(0)).collect());
        let workers: Vec<_> = (1..=2u32)
            .map(|me| {
                let (w, busy, order) = (w.clone(), busy.clone(), order.clone());
                thread::spawn(move || {
                    let mut done = 0;
                    for _ in 0..3 {
                        let Some(h) = lane_step(&w, me, &lanes, &mut |_| true) else {
                            thread::yield_now();
                            continue;
                        };
                        let lane = lanes[h.pos as usize];
                        let was = busy[lane].swap(h.pos + 1, Ordering::SeqCst);
                        assert_eq!(was, 0, "two leases in lane {lane}");
                        let last = order[lane].load(Ordering::SeqCst);
                        assert!(last < h.pos + 1, "lane {lane} out of order");
                        order[lane].store(h.pos + 1, Ordering::SeqCst);
                        busy[lane].store(0, Ordering::SeqCst);
                        w.leases().ack(&h).unwrap();
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        let done: u32 = workers.into_iter().map(|t| t.join().unwrap()).sum();
        // Quiet now: whatever is left is due to whoever looks.
        let mut rest = done;
        while let Some(h) = lane_step(&w, 3, &lanes, &mut |_| true) {
            w.leases().ack(&h).unwrap();
            rest += 1;
        }
        assert_eq!(rest, 3, "every message finished once");
        w.leases().advance_committed();
        assert_eq!(w.group.committed.load(Ordering::Relaxed), 3);
    });
}

#[test]
fn loom_lanes_a_stale_ack_does_not_hand_the_lane_on() {
    // Consumer 1's lease of keyed 0 runs out as it acks; consumer 2 takes
    // it again. Only the winner's finish releases 1, once.
    model("lanes: stale ack", || {
        let w = LeaseWorld::with_lanes(4, 1);
        let first = match w.leases().take_keyed(0, 0, 1, T0, 10, &mut |_| true) {
            Keyed::Leased(h) => h,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            w.leases().take_keyed(1, 0, 1, T0, 10, &mut |_| true),
            Keyed::Waiting
        );
        let late = {
            let w = w.clone();
            thread::spawn(move || w.leases().ack(&first).is_ok())
        };
        let again = {
            let w = w.clone();
            thread::spawn(move || {
                let l = w.leases();
                let (h, _) = l.take_again(0, 2, LATE, 10, &mut |_| true)?;
                assert!(
                    !finished(&w, 1) && l.word(1).state() == WAITING,
                    "1 released early"
                );
                l.ack(&h).unwrap();
                Some(())
            })
        };
        let acked = late.join().unwrap();
        let retook = again.join().unwrap().is_some();
        assert!(acked != retook, "exactly one finished 0");
        assert_eq!(w.leases().word(0).state(), ACKED);
        assert_eq!(w.leases().word(1).state(), READY);
    });
}

#[test]
fn loom_lanes_a_dead_finisher_is_helped_while_the_next_is_indexed() {
    // Consumer 1 died after deciding to ack keyed 0 (FINISHING) and before
    // handing its lane on. A scanner finishes it for it while consumer 2
    // indexes 1: 0 ends ACKED exactly once and 1 is not stuck.
    model("lanes: dead finisher", || {
        let w = LeaseWorld::with_lanes(4, 1);
        let first = match w.leases().take_keyed(0, 0, 1, T0, 1_000_000, &mut |_| true) {
            Keyed::Leased(h) => h,
            other => panic!("{other:?}"),
        };
        let fin = first.word.next(0, FINISHING, 1, 1);
        w.records[0].word.store(fin.0, Ordering::SeqCst);
        let dead = |h: u32| h != 1;
        let scanner = {
            let w = w.clone();
            thread::spawn(move || {
                let mut alive = dead;
                assert!(
                    w.leases()
                        .take_again(0, 3, T0, 1_000_000, &mut alive)
                        .is_none()
                );
            })
        };
        let indexer = {
            let w = w.clone();
            thread::spawn(move || {
                let mut alive = dead;
                w.leases().take_keyed(1, 0, 2, T0, 1_000_000, &mut alive)
            })
        };
        scanner.join().unwrap();
        let k = indexer.join().unwrap();
        assert_eq!(w.leases().word(0).state(), ACKED);
        match k {
            Keyed::Leased(_) => {}
            _ => assert_eq!(w.leases().word(1).state(), READY, "1 is due"),
        }
        let _ = DEAD;
    });
}
