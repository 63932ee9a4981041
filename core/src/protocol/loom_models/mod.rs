//! loom models of every lock-free protocol, on the same code that runs on
//! the mapping (heap-built layouts stand in for the file): one file per
//! protocol, named after its file in `protocol/`; here, the heap-built
//! worlds they share and the `model` runner.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shmq --release --lib loom`
//! (`.ci/run loom` does this). Every role runs in a spawned thread (loom
//! issue #392: a role on the main thread hides interleavings), and every
//! model asserts that loom explored more than one execution.

use std::sync::atomic::{AtomicUsize, Ordering as StdOrdering};

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::layout::{AdminLock, Doorbells, GroupRecord, ProducerRecord, RingControl, Sleepers};
use crate::loom::{AtomicU64, Ordering};
use crate::protocol::group::Groups;
use crate::protocol::lock::ThisProcess;
use crate::protocol::ring::{Begin, Claim, Peek, Ring};

mod dead_letter_entry; // the DLQ entry's claim
mod dedup_table;
mod doorbell; // the async waiter's doorbell: arm, ring, cancel, release
mod lanes; // ordering lanes of an ack=manual group
mod lease; // leases: take, expire, ack, redeliver
mod lock; // the admin lock's take-over of a dead holder
mod registry; // a consumer or producer record's claim, by its key
mod ring; // claim, commit, abort, capacity, sleep and wake-up
mod schedule; // a scheduled message's move into the ring, its mover killed
mod spill; // the switch to the spill and the refill // the dedup table, keyed commits below head

/// A ring, a group table and payload cells on the heap.
struct World {
    ctl: RingControl,
    states: Vec<AtomicU64>,
    cells: Vec<UnsafeCell<u64>>,
    groups: Vec<GroupRecord>,
    lock: AdminLock,
    /// Each producer's record (its announcement), indexed by its id
    /// (every producer is alive in these models).
    producers: Vec<ProducerRecord>,
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
            producers: (0..4).map(|_| ProducerRecord::new()).collect(),
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
        ring.commit(pos, 1, seen, &self.producers[pid as usize])
            .expect("nobody aborts in this model");
        ring.notify_data();
        pos
    }

    /// `Ring::begin` of a record of `span` slots for producer `pid`,
    /// checking the revoked writers as the producer does.
    fn begin_span(&self, pos: u64, span: u64, pid: u32) -> Begin {
        self.ring()
            .begin(pos, span, &self.producers[pid as usize], |p, s| {
                self.held(p, s)
            })
    }

    /// [`begin_span`](Self::begin_span) of a one-slot record.
    fn begin(&self, pos: u64, pid: u32) -> Begin {
        self.begin_span(pos, 1, pid)
    }

    /// Whether a revoked writer may still write a slot of `pos .. pos +
    /// span` (`OpenQueue::held` over the producer records).
    fn held(&self, pos: u64, span: u64) -> bool {
        crate::protocol::announcement::held(
            &self.ctl,
            &self.producers,
            pos,
            span,
            self.states.len() as u64,
            |_| true,
        )
    }

    /// A consumer's abort of the claimed, unwritten position `pos` (word
    /// `seen`) and the settle of its span that follows: true if it is
    /// aborted (by us or anyone) and settled, so that a group may pass
    /// it; false if it was committed first or its asymmetric producer
    /// holds it (inside its commit).
    fn abort(&self, pos: u64, seen: u64) -> bool {
        let ring = self.ring();
        ring.abort(pos, seen) && ring.settle_abort(&self.producers, pos, |_| true).is_some()
    }

    /// The same world with every producer committing asymmetrically
    /// (light fences on the publish path, heavy ones on the rare side).
    fn asymmetric(w: Arc<World>) -> Arc<World> {
        for r in w.producers.iter() {
            r.mode
                .store(crate::layout::commit_mode::ASYMMETRIC, Ordering::Relaxed);
        }
        w
    }

    /// Spins until `pos` is committed and returns its value.
    fn read(&self, pos: u64) -> u64 {
        let ring = self.ring();
        loop {
            match ring.peek(pos) {
                // SAFETY (loom cell): committed and not yet released.
                Peek::Ready(_) => return self.cell(pos).with(|p| unsafe { *p }),
                Peek::Skip(_) | Peek::Settling => panic!("nothing aborts in this model"),
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

/// The process of every role (a key is never 0: it is the admin lock's word).
const ME: ThisProcess = ThisProcess { pid: 1, key: 4 };

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
            max_in_flight: self.records.len() as u64,
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
