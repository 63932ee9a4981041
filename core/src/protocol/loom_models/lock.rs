//! The admin lock (`protocol/lock.rs`): a dead holder taken over once.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use super::model;
use crate::layout::AdminLock;
use crate::loom::Ordering;
use crate::protocol::lock::ThisProcess;

#[test]
fn loom_a_dead_holders_lock_is_taken_over_once() {
    // The admin lock's holder (key 5) died inside its critical section,
    // before it wrote its pid. Two waiters take it over at once (the
    // non-waiting take-over that refills use): at most one holds it at a
    // time, and each is known by its key from its first instant.
    model("lock take-over", || {
        let lock = Arc::new(AdminLock::new());
        lock.holder_key.store(5, Ordering::Relaxed);
        let cell = Arc::new(UnsafeCell::new(0u64));
        // Keys: pid 1 → 11, pid 2 → 12; key 5 is dead.
        let alive = |_pid: u32, key: u64| key == 11 || key == 12;
        let takers: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|pid| {
                let (lock, cell) = (lock.clone(), cell.clone());
                thread::spawn(move || {
                    let me = ThisProcess {
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
        assert_eq!(lock.holder_key.load(Ordering::Relaxed), 0);
        assert_eq!(lock.holder.load(Ordering::Relaxed), 0);
    });
}
