//! overflow=spill (`protocol/spill.rs`): the switch to the spill against
//! a ring claim, and the refill back into the ring.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use super::{ME, World, model};
use crate::loom::Ordering;
use crate::options::Start;
use crate::protocol::group::commit_cursor;
use crate::protocol::ring::{Begin, Claim, Peek};

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
                    ring.commit(pos, 1, seen, &w.producers[pid as usize])
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
                spill::append(&ring, &sw.spill, log, &mut recs, &|_| 1, &mut |_| {})
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
                Peek::Ready(_) => {
                    // SAFETY (loom cell): committed and not yet released.
                    let v = w.cell(pos).with(|p| unsafe { *p });
                    commit_cursor(&w.groups[0].committed, pos + 1);
                    ring.notify_space();
                    return v;
                }
                Peek::Skip(_) | Peek::Settling => panic!("nothing is lost in this model"),
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
                            &|_| 1,
                            &|_, _| false,
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
