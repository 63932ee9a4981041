//! The record claim (`protocol/registry.rs`): a dead owner's record taken
//! once, by its key.

use loom::sync::Arc;
use loom::thread;

use super::model;
use crate::layout::ConsumerRecord;
use crate::loom::Ordering;
use crate::protocol::lock::ThisProcess;
use crate::protocol::registry::Registry;

#[test]
fn loom_a_dead_owners_record_is_taken_once_and_never_shows_another_key() {
    // The record's owner (pid 9, key 5) died. Two consumers (pids 1 and
    // 2, keys 11 and 12) register at once while a third process looks at
    // the record: exactly one takes it, and whoever sees a taker's owner
    // word sees that taker's key (the key is the claim, stored first).
    model("registry take-over", || {
        let records = Arc::new([ConsumerRecord::new()]);
        records[0].owner.store(9 << 32 | 1, Ordering::Relaxed);
        records[0].owner_key.store(5, Ordering::Relaxed);
        let alive = |_pid: u32, key: u64| key == 11 || key == 12;
        let takers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|pid| {
                let records = records.clone();
                thread::spawn(move || {
                    let me = ThisProcess {
                        pid: pid as u32,
                        key: 10 + pid,
                    };
                    let registry = Registry {
                        records: &records[..],
                    };
                    registry
                        .register(pid << 32 | 1, me, 0, 0, alive, || {})
                        .map(|t| (pid, t.was_dead))
                        .ok()
                })
            })
            .collect();
        let looker = {
            let records = records.clone();
            thread::spawn(move || {
                let owner = records[0].owner.load(Ordering::Acquire);
                let key = records[0].owner_key.load(Ordering::Acquire);
                if owner >> 32 != 9 {
                    assert_eq!(key, 10 + (owner >> 32), "owner {owner:#x} beside key {key}");
                }
            })
        };
        let won: Vec<_> = takers
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        looker.join().unwrap();
        assert_eq!(won.len(), 1, "{won:?}");
        let (pid, was_dead) = won[0];
        assert!(was_dead);
        assert_eq!(records[0].owner.load(Ordering::Relaxed), pid << 32 | 1);
        assert_eq!(records[0].owner_key.load(Ordering::Relaxed), 10 + pid);
    });
}
