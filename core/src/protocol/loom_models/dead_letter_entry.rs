//! The dead-letter entry's claim (`protocol/dead_letter_entry.rs`).

use loom::sync::Arc;
use loom::thread;

use super::{ME, World, model};
use crate::layout::AdminLock;
use crate::loom::{AtomicU64, Ordering};
use crate::options::Start;
use crate::protocol::group::commit_cursor;
use crate::protocol::lock::ThisProcess;
use crate::protocol::ring::{Begin, Claim, Peek};

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
                        crate::protocol::dead_letter_entry::claim(states.iter(), pid as u64, |_| {
                            true
                        })
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
