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
fn loom_runs_of_dead_letters_never_overlap() {
    // Three entries. One dead letter of two entries is given back by its
    // owner while a second claims a run of two and a third a run of one:
    // no entry is ever in two runs, and every word says exactly who holds
    // it (no PART word outlives its run).
    use crate::protocol::dead_letter_entry::{
        FREE, PART, WRITING, claim_run, give_back, state_of, word,
    };
    model("dlq runs", || {
        let states: Arc<Vec<AtomicU64>> = Arc::new(vec![
            AtomicU64::new(word(WRITING, 9)),
            AtomicU64::new(word(PART, 0)),
            AtomicU64::new(word(FREE, 0)),
        ]);
        let owner = {
            let states = states.clone();
            thread::spawn(move || give_back(&|i| &states[i], 3, 0, 9))
        };
        let claimers: Vec<_> = [(1u64, 2usize), (2, 1)]
            .into_iter()
            .map(|(pid, n)| {
                let states = states.clone();
                thread::spawn(move || (n, claim_run(|i| &states[i], 3, n, pid, |_| true)))
            })
            .collect();
        owner.join().unwrap();
        let got: Vec<(usize, Option<usize>)> =
            claimers.into_iter().map(|t| t.join().unwrap()).collect();
        let mut owner_of = [None; 3];
        for &(n, first) in &got {
            if let Some(f) = first {
                for k in f..f + n {
                    assert!(owner_of[k].is_none(), "entry {k} in two runs: {got:?}");
                    owner_of[k] = Some(f);
                }
            }
        }
        // Every entry's word says exactly who holds it.
        for (k, o) in owner_of.iter().enumerate() {
            let w = states[k].load(Ordering::Relaxed);
            match o {
                None => assert_eq!(state_of(w), FREE, "entry {k}: {got:?}"),
                Some(f) if *f == k => assert_eq!(state_of(w), WRITING, "entry {k}"),
                Some(f) => assert_eq!(w, word(PART, *f as u64), "entry {k}"),
            }
        }
    });
}

#[test]
fn loom_a_dead_owners_run_is_given_back_whole() {
    // The owner of a run of three died giving it back (its last PART
    // already freed): a claimer of three takes it over and gets it all.
    use crate::protocol::dead_letter_entry::{FREE, PART, WRITING, claim_run, word};
    model("dlq dead owner", || {
        let states: Arc<Vec<AtomicU64>> = Arc::new(vec![
            AtomicU64::new(word(WRITING, 9)),
            AtomicU64::new(word(PART, 0)),
            AtomicU64::new(word(FREE, 0)),
        ]);
        let a = {
            let states = states.clone();
            thread::spawn(move || claim_run(|i| &states[i], 3, 3, 1, |arg| arg != 9))
        };
        let b = {
            let states = states.clone();
            thread::spawn(move || claim_run(|i| &states[i], 3, 1, 2, |arg| arg != 9))
        };
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        // Either the run of three got all of it, or the single entry took
        // one and the run of three found no room: never both.
        match (a, b) {
            (Some(0), None) => {}
            (None, Some(_)) => {}
            other => panic!("{other:?}"),
        }
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
                        crate::protocol::dead_letter_entry::claim_run(
                            |i| &states[i],
                            states.len(),
                            1,
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
