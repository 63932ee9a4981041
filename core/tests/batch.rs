//! A batch that goes in only in part says so: how many, from which seq,
//! and why the rest did not, so that a retry of the rest duplicates
//! nothing. Reject, block with a timeout, a full spill, batches larger
//! than the ring.

use std::time::Duration;

use shmq::{ConsumerOptions, Error, Options, Overflow, Queue, Start};

fn queue(dir: &tempfile::TempDir, name: &str, o: Options) -> Queue {
    let q = Queue::create(name, &o.dir(dir.path()).slots(8).slot_size(128)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    q
}

fn batch(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("m{i}").into_bytes()).collect()
}

/// What group "g" can read now, as strings.
fn drain(q: &Queue) -> Vec<String> {
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut out = Vec::new();
    while let Some(m) = c.try_receive().unwrap() {
        out.push(String::from_utf8(m.payload().to_vec()).unwrap());
    }
    out
}

#[test]
fn reject_a_batch_larger_than_the_ring_says_how_many_went_in() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, "rj", Options::new().overflow(Overflow::Reject));
    let mut p = q.producer().unwrap();
    let err = p.publish_batch(&batch(10)).unwrap_err();
    let Error::PartlyPublished {
        first_seq,
        published,
        total,
        cause,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*first_seq, *published, *total), (0, 8, 10));
    assert!(matches!(**cause, Error::Full), "{cause:?}");
    let text = err.to_string();
    assert!(
        text.contains("only 8 of the batch's 10 messages were published (from seq 0)"),
        "{text}"
    );
    assert!(text.contains("the other 2 were not"), "{text}");
    assert!(!text.contains("nothing was published"), "{text}");
    assert_eq!(q.stats().published, 8);
    // Retrying only the rest, once there is room, duplicates nothing.
    assert_eq!(
        drain(&q),
        (0..8).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    let rest = &batch(10)[*published..];
    assert_eq!(p.publish_batch(rest).unwrap(), 8);
    assert_eq!(drain(&q), ["m8", "m9"]);
}

#[test]
fn reject_a_batch_that_fits_the_ring_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, "rj2", Options::new().overflow(Overflow::Reject));
    let mut p = q.producer().unwrap();
    p.publish_batch(&batch(5)).unwrap();
    // 3 free, 4 asked: none of them.
    assert!(matches!(p.publish_batch(&batch(4)), Err(Error::Full)));
    assert_eq!(q.stats().published, 5);
}

#[test]
fn block_with_a_timeout_returns_the_count_and_the_first_seq() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, "bl", Options::new());
    let mut p = q.producer().unwrap();
    let (first, n) = p
        .publish_batch_timeout(&batch(10), Duration::from_millis(200))
        .unwrap();
    assert_eq!((first, n), (0, 8));
    // Nothing fits any more: a timeout before any went in is Timeout.
    assert!(matches!(
        p.publish_batch_timeout(&batch(2), Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert_eq!(drain(&q).len(), 8);
}

#[test]
fn a_full_spill_part_way_says_how_many_went_in() {
    let dir = tempfile::tempdir().unwrap();
    let seg = 64 << 10;
    let q = queue(
        &dir,
        "sp",
        Options::new()
            .overflow(Overflow::Spill)
            .spill_dir(dir.path().join("spill"))
            .spill_segment_size(seg)
            .spill_max_bytes(seg)
            .spill_fallback(Overflow::Reject),
    );
    let mut p = q.producer().unwrap();
    let big: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("{i:0>100}").into_bytes())
        .collect();
    let err = p.publish_batch(&big).unwrap_err();
    let Error::PartlyPublished {
        first_seq,
        published,
        total,
        cause,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(matches!(**cause, Error::SpillFull(_)), "{cause:?}");
    assert_eq!((*first_seq, *total), (0, 2000));
    assert!(*published >= 8 && *published < 2000, "{published}");
    assert_eq!(q.stats().published, *published as u64);
    // Exactly the first `published` arrive, in order, and nothing else.
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    for (i, want) in big[..*published].iter().enumerate() {
        let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((m.seq(), m.payload()), (i as u64, &want[..]));
    }
    assert!(c.try_receive().unwrap().is_none());
}

#[test]
fn a_batch_with_metadata_puts_it_on_every_message_and_refuses_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(&dir, "meta", Options::new());
    let mut p = q.producer().unwrap();
    let meta = shmq::Meta::new().type_id(9).correlation_id(1234);
    assert_eq!(p.publish_batch_with(&batch(3), &meta).unwrap(), 0);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    for i in 0..3 {
        let m = c.receive_timeout(Duration::from_secs(1)).unwrap();
        assert_eq!((m.seq(), m.type_id(), m.correlation_id()), (i, 9, 1234));
    }
    let keyed = shmq::Meta::new().key(b"k");
    assert!(matches!(
        p.publish_batch_with(&batch(2), &keyed),
        Err(Error::InvalidOption(_))
    ));
    assert_eq!(q.stats().published, 3);
}
