//! Unit tests of the lease protocol (one group's records, no shared
//! memory).

use super::*;

fn world(slots: usize) -> (Vec<LeaseRecord>, GroupRecord) {
    (
        (0..slots).map(|_| LeaseRecord::new()).collect(),
        GroupRecord::new(),
    )
}

const NOW: Now = Now {
    mono: 1000,
    real: 5,
};

/// The protocol over `recs`, with a window of `max_in_flight`.
fn over<'a>(recs: &'a [LeaseRecord], g: &'a GroupRecord, max_in_flight: u64) -> Leases<'a> {
    Leases {
        records: recs,
        group: g,
        lanes: &[],
        max_in_flight,
    }
}

#[test]
fn words_pack_and_unpack() {
    let w = LeaseWord::new(0x1_2345_6789, LEASED, 7, 300, 5);
    assert_eq!(
        (w.state(), w.attempt(), w.holder(), w.epoch()),
        (LEASED, 7, 300, 5)
    );
    assert!(w.is_for(0x1_2345_6789));
    assert!(!w.is_for(0x1_2345_6788));
    assert!(!LeaseWord(0).is_for(0));
    assert_eq!(LeaseWord::new(1, READY, 999, 0, 0).attempt(), 255);
}

#[test]
fn take_ack_and_commit_out_of_order() {
    let (recs, g) = world(4);
    let l = over(&recs, &g, recs.len() as u64);
    let a = l.take_new(0, 1, 1, NOW, 100).unwrap();
    assert_eq!(g.next.load(Ordering::Relaxed), 1);
    assert!(l.take_new(0, 1, 2, NOW, 100).is_none(), "taken already");
    let b = l.take_new(1, 1, 2, NOW, 100).unwrap();
    assert_eq!((a.attempt(), b.attempt()), (1, 1));
    assert_eq!(l.in_flight(), 2);
    l.ack(&b).unwrap();
    assert!(!l.advance_committed(|_| 1), "0 is still leased");
    l.ack(&a).unwrap();
    assert!(l.advance_committed(|_| 1));
    assert_eq!(g.committed.load(Ordering::Relaxed), 2);
    assert_eq!(l.ack(&a), Err(()), "acked twice");
}

#[test]
fn a_stalled_dispatcher_never_takes_over_a_later_lap() {
    let (recs, g) = world(4);
    let l = over(&recs, &g, recs.len() as u64);
    // Position 1 was delivered and acked; its record now serves
    // position 5 (the next lap).
    g.next.store(1, Ordering::Relaxed);
    let h = l.take_new(1, 1, 1, NOW, 100).unwrap();
    l.ack(&h).unwrap();
    g.next.store(5, Ordering::Relaxed);
    let later = l.take_new(5, 1, 2, NOW, 100).unwrap();
    // A consumer that read "next = 1" long ago comes back now.
    assert!(l.take_new(1, 1, 3, NOW, 100).is_none());
    l.skip(1, 1);
    assert_eq!(l.word(5), later.word, "the later lap's lease is untouched");
    assert_eq!(g.next.load(Ordering::Relaxed), 6);
}

#[test]
fn the_gate_keeps_dispatch_within_the_table() {
    // Two records for a ring of eight: position 2 shares position 0's
    // record, and may go out only once 0 is finished.
    let (recs, g) = world(2);
    let l = over(&recs, &g, 2);
    assert!(l.may_dispatch(0));
    let a = l.take_new(0, 1, 1, NOW, 100).unwrap();
    let b = l.take_new(1, 1, 1, NOW, 100).unwrap();
    assert!(!l.may_dispatch(2), "0 and 1 are in flight");
    l.ack(&b).unwrap();
    assert!(!l.advance_committed(|_| 1), "0 is still leased");
    assert!(
        !l.may_dispatch(2),
        "acked out of order: still in the window"
    );
    l.ack(&a).unwrap();
    assert!(l.advance_committed(|_| 1));
    assert!(l.may_dispatch(2) && l.may_dispatch(3) && !l.may_dispatch(4));
    let c = l.take_new(2, 1, 2, NOW, 100).unwrap();
    assert_eq!(l.word(2), c.word);
    assert_eq!(l.ack(&a), Err(()), "0's late ack does not touch 2's lease");
}

#[test]
fn a_record_longer_than_the_table_takes_one_lease_and_commits_by_its_span() {
    // A message of five slots with a table of two records: its later
    // slots write no words (they would land on its own record, and on
    // the next message's), and `committed` steps over it by its span.
    let (recs, g) = world(2);
    let l = over(&recs, &g, 2);
    let long = l.take_new(0, 5, 1, NOW, 100).unwrap();
    assert_eq!(g.next.load(Ordering::Relaxed), 5);
    assert_eq!(l.word(0), long.word, "its own record is untouched");
    assert!(!l.may_dispatch(5), "0 is in flight and 5 - 2 >= 0");
    assert_eq!(l.in_flight(), 1);
    l.ack(&long).unwrap();
    let span = |p: u64| if p == 0 { 5 } else { 1 };
    assert!(l.advance_committed(span));
    assert_eq!(g.committed.load(Ordering::Relaxed), 5);
    let short = l.take_new(5, 1, 1, NOW, 100).unwrap();
    l.ack(&short).unwrap();
    assert!(l.advance_committed(span));
    assert_eq!(g.committed.load(Ordering::Relaxed), 6);
    // A garbled span never carries `committed` past `next`.
    let x = l.take_new(6, 1, 1, NOW, 100).unwrap();
    l.ack(&x).unwrap();
    assert!(l.advance_committed(|_| 1 << 40));
    assert_eq!(g.committed.load(Ordering::Relaxed), 7);
}

#[test]
fn an_old_word_is_taken_whatever_its_tag_says() {
    // A record skipped by long messages for 2^31 positions keeps a
    // word whose tag reads as a later lap's, and for 2^32 one whose
    // tag reads as the new position's: the cursor decides both.
    for distance in [(1u64 << 31) + 2, 1 << 32] {
        let (recs, g) = world(2);
        let l = over(&recs, &g, 2);
        let old = 3u64;
        g.next.store(old, Ordering::Relaxed);
        g.committed.store(old, Ordering::Relaxed);
        let h = l.take_new(old, 1, 1, NOW, 100).unwrap();
        l.ack(&h).unwrap();
        assert!(l.advance_committed(|_| 1));
        let now = old + distance;
        g.next.store(now, Ordering::Relaxed);
        g.committed.store(now, Ordering::Relaxed);
        let h = l.take_new(now, 1, 1, NOW, 100).expect("delivered");
        assert_eq!(l.word(now), h.word);
    }
}

#[test]
fn a_dead_indexers_word_is_freed_with_a_new_epoch_not_zero() {
    let (recs, g) = world(2);
    let l = over(&recs, &g, 2);
    // A keyed dispatcher (holder 7) died indexing position 0.
    recs[0]
        .word
        .store(LeaseWord::new(0, TAKING, 0, 7, 3).0, Ordering::Relaxed);
    l.release_holder(7, NOW);
    let w = l.word(0);
    assert!(w.0 != 0 && w.state() == FREE && !w.is_for(0));
    // The next dispatcher takes it.
    assert!(l.take_new(0, 1, 1, NOW, 100).is_some());
}

#[test]
fn expiry_redelivers_once_and_the_old_holder_loses() {
    let (recs, g) = world(4);
    let l = over(&recs, &g, recs.len() as u64);
    let first = l.take_new(0, 1, 1, NOW, 100).unwrap();
    let mut alive = |_| true;
    // Not yet expired.
    assert!(l.take_again(0, 2, NOW, 100, &mut alive).is_none());
    let later = Now {
        mono: 1100,
        real: 6,
    };
    let (second, why) = l.take_again(0, 2, later, 100, &mut alive).unwrap();
    assert_eq!((why, second.attempt()), (Reclaimed::Expired, 2));
    assert!(l.take_again(0, 3, later, 100, &mut alive).is_none());
    assert_eq!(l.ack(&first), Err(()), "LeaseExpired");
    assert_eq!(l.extend(&first, 5000), Err(()));
    assert_eq!(l.times(0), (5, 6));
    l.ack(&second).unwrap();
    assert!(l.advance_committed(|_| 1));
}

#[test]
fn a_dead_holder_loses_its_lease_at_once() {
    let (recs, g) = world(4);
    let l = over(&recs, &g, recs.len() as u64);
    l.take_new(0, 1, 1, NOW, 1_000_000).unwrap();
    let mut alive = |h| h != 1;
    let (h, why) = l.take_again(0, 2, NOW, 100, &mut alive).unwrap();
    assert_eq!((why, h.attempt()), (Reclaimed::Expired, 2));
}

#[test]
fn requeue_after_a_delay_and_extend() {
    let (recs, g) = world(4);
    let l = over(&recs, &g, recs.len() as u64);
    let h = l.take_new(0, 1, 1, NOW, 100).unwrap();
    let h = l.extend(&h, 10_000).unwrap();
    let mut alive = |_| true;
    let at = |mono| Now { mono, real: 0 };
    assert!(
        l.take_again(0, 2, at(5000), 100, &mut alive).is_none(),
        "extended"
    );
    l.requeue(&h, 6000).unwrap();
    assert_eq!(l.ack(&h), Err(()), "given back");
    assert!(
        l.take_again(0, 2, at(5999), 100, &mut alive).is_none(),
        "not before"
    );
    let (h2, why) = l.take_again(0, 2, at(6000), 100, &mut alive).unwrap();
    assert_eq!((why, h2.attempt()), (Reclaimed::Ready, 2));
}

#[test]
fn dead_letters_and_skips_finish_positions() {
    let (recs, g) = world(4);
    let l = over(&recs, &g, recs.len() as u64);
    l.skip(0, 1);
    let h = l.take_new(1, 1, 1, NOW, 100).unwrap();
    let t = l.begin_dead(&h).unwrap();
    let h = l.restore(&t);
    assert_eq!(l.in_flight(), 1, "restored: still leased");
    let t = l.begin_dead(&h).unwrap();
    l.finish_dead(&t);
    assert!(l.advance_committed(|_| 1));
    assert_eq!(g.committed.load(Ordering::Relaxed), 2);
}

#[test]
fn a_reused_registry_index_gives_back_the_dead_holders_leases() {
    let (recs, g) = world(4);
    let l = over(&recs, &g, recs.len() as u64);
    l.take_new(0, 1, 7, NOW, 1_000_000).unwrap();
    l.take_new(1, 1, 8, NOW, 1_000_000).unwrap();
    l.release_holder(7, NOW);
    assert_eq!(l.word(0).state(), READY);
    assert_eq!(l.word(1).state(), LEASED);
    assert_eq!(g.expired.load(Ordering::Relaxed), 1);
}
