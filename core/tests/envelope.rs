//! Ordering keys and headers travel with a message: through the ring, the
//! spill, the journal, the dead-letter queue and a redrive; their limits
//! are refused with clear errors and cost what they say against
//! `slot_size`.

use std::time::Duration;

use shmq::{
    Ack, ConsumerOptions, DeadLetter, Error, MAX_HEADERS, MAX_ORDERING_KEY, Meta, Nack, Options,
    Overflow, Queue, Reason, Retention, Start,
};

const T: Duration = Duration::from_secs(5);

fn meta(i: u64, key: &str, trace: &str) -> (String, String) {
    (format!("{key}-{}", i % 3), format!("{trace}-{i}"))
}

/// Checks that message `m` is the `i`-th one published by `publish`.
fn check(m: &shmq::Message<'_>, i: u64) {
    let (key, trace) = meta(i, "customer", "00-trace");
    assert_eq!(
        m.payload(),
        format!("payload {i}").as_bytes(),
        "seq {}",
        m.seq()
    );
    assert_eq!(m.ordering_key(), Some(key.as_bytes()));
    let h: Vec<_> = m.headers().collect();
    assert_eq!(
        h,
        vec![
            ("traceparent", trace.as_bytes()),
            ("content-type", &b"text/plain"[..]),
            ("traceparent", &b"second"[..]),
        ]
    );
    assert_eq!(m.header("traceparent"), Some(trace.as_bytes()), "the first");
    assert_eq!(m.header("missing"), None);
    assert_eq!(m.type_id(), 7);
    // The payload stays 8-byte aligned behind the envelope.
    assert_eq!(m.payload().as_ptr() as usize % 8, 0);
}

/// The metadata `check` expects, for `key` and `trace` of `meta`.
fn message_meta<'a>(key: &'a str, trace: &'a str) -> Meta<'a> {
    Meta::new()
        .type_id(7)
        .ordering_key(key)
        .header("traceparent", trace)
        .header("content-type", "text/plain")
        .header("traceparent", "second")
}

fn publish(p: &mut shmq::Producer, i: u64) -> u64 {
    let (key, trace) = meta(i, "customer", "00-trace");
    let payload = format!("payload {i}");
    p.publish_with(payload.as_bytes(), &message_meta(&key, &trace))
        .unwrap()
}

#[test]
fn keys_and_headers_round_trip_through_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "ring",
        &Options::new().dir(dir.path()).slots(8).slot_size(256),
    )
    .unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    for i in 0..20 {
        assert_eq!(publish(&mut p, i), i);
        let m = c.receive_timeout(T).unwrap();
        check(&m, i);
    }
    // A message without them has none, and a key alone or headers alone
    // come back alone.
    p.publish(b"plain").unwrap();
    p.publish_with(b"k", &Meta::new().ordering_key(b"only-key"))
        .unwrap();
    p.publish_with(b"h", &Meta::new().header("only", b"header"))
        .unwrap();
    let m = c.receive_timeout(T).unwrap();
    assert_eq!(
        (m.payload(), m.ordering_key(), m.headers().count()),
        (&b"plain"[..], None, 0)
    );
    drop(m);
    let m = c.receive_timeout(T).unwrap();
    assert_eq!(
        (m.ordering_key(), m.headers().count()),
        (Some(&b"only-key"[..]), 0)
    );
    drop(m);
    let m = c.receive_timeout(T).unwrap();
    assert_eq!(
        (m.ordering_key(), m.header("only")),
        (None, Some(&b"header"[..]))
    );
}

#[test]
fn limits_are_refused_and_count_against_slot_size() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "limits",
        &Options::new().dir(dir.path()).slots(8).slot_size(64),
    )
    .unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    // 64 bytes of payload fit alone, not with a key in front.
    let full = [1u8; 64];
    p.publish(&full).unwrap();
    let e = p
        .publish_with(&full, &Meta::new().ordering_key("k"))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooLarge {
                len: 88,
                max: 64,
                payload: 64,
                ordering_key: 1,
                headers: 0
            }
        ),
        "{e:?}"
    );
    // The message says what counts against max_message_size (here
    // slot_size: a ring of 8 slots is no whole page), apart.
    let e = p
        .publish_with(
            b"x",
            &Meta::new().ordering_key(&"k".repeat(60)).header("h", "vv"),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "message of 89 bytes is larger than the queue's max_message_size of 64 bytes: a payload \
         of 1 bytes, an ordering key of 60 bytes, headers of 3 bytes and 25 bytes of their \
         framing (the ordering key and headers are stored with the payload)"
    );
    // Envelope: 16 fixed bytes + the key, rounded to 8: 24 for "k".
    p.publish_with(&[2u8; 40], &Meta::new().ordering_key("k"))
        .unwrap();
    assert!(matches!(
        p.publish_with(&[2u8; 41], &Meta::new().ordering_key("k")),
        Err(Error::TooLarge { .. })
    ));
    let long = vec![b'k'; MAX_ORDERING_KEY + 1];
    let e = p
        .publish_with(b"x", &Meta::new().ordering_key(&long))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidOption(m) if m.contains("1024")),
        "{e}"
    );
    let mut many = Meta::new();
    for _ in 0..=MAX_HEADERS {
        many = many.header("h", b"");
    }
    let e = p.publish_with(b"x", &many).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidOption(m) if m.contains("16")),
        "{e}"
    );
    assert!(matches!(
        p.publish_with(b"x", &Meta::new().header("", b"v")),
        Err(Error::InvalidOption(_))
    ));
    // A batch and a reservation take none (and publish nothing).
    assert!(matches!(
        p.publish_batch_with(&[b"a"], &Meta::new().ordering_key("k")),
        Err(Error::InvalidOption(_))
    ));
    let mut r = p.reserve(4).unwrap();
    r.copy_from_slice(b"resv");
    r.set_meta(Meta::new().header("a", b"b"));
    assert!(matches!(r.commit(), Err(Error::InvalidOption(_))));
    // Nothing refused went in: the two that fit, then nothing more.
    assert_eq!(c.receive_timeout(T).unwrap().payload(), &full[..]);
    let m = c.receive_timeout(T).unwrap();
    assert_eq!(
        (m.payload(), m.ordering_key()),
        (&[2u8; 40][..], Some(&b"k"[..]))
    );
    drop(m);
    assert!(c.try_receive().unwrap().is_none());
}

#[test]
fn keys_and_headers_survive_the_spill_and_a_journal_replay() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("q")).unwrap();
    let opts = Options::new()
        .dir(dir.path().join("q"))
        .slots(8)
        .slot_size(256)
        .overflow(Overflow::Spill)
        .spill_dir(dir.path().join("spill"))
        .spill_segment_size(64 << 10)
        .journal(Retention::new(Duration::from_secs(3600), 1 << 22));
    let q = Queue::create("spilled", &opts).unwrap();
    q.create_group("late", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    // Far more than the ring holds: most go through the spill.
    for i in 0..100 {
        publish(&mut p, i);
    }
    assert!(q.stats().spilled > 0);
    let mut c = q.consumer("late", ConsumerOptions::new()).unwrap();
    for i in 0..100 {
        let m = c.receive_timeout(T).unwrap();
        assert_eq!(m.seq(), i);
        check(&m, i);
    }
    drop(c);
    // A group that starts at seq 0 now replays them from the journal.
    q.create_group("replay", Start::Earliest).unwrap();
    let mut r = q.consumer("replay", ConsumerOptions::new()).unwrap();
    r.seek(shmq::Seek::Seq(0)).unwrap();
    for i in 0..100 {
        let m = r.receive_timeout(T).unwrap();
        assert_eq!(m.seq(), i);
        check(&m, i);
    }
}

#[test]
fn keys_and_headers_survive_the_dead_letter_queue_and_a_redrive() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "dlq",
        &Options::new()
            .dir(dir.path())
            .slots(8)
            .slot_size(256)
            .max_deliveries(2),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    publish(&mut p, 4);
    let mut c = q
        .consumer("g", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    c.receive_timeout(T)
        .unwrap()
        .nack(Nack::DeadLetter)
        .unwrap();
    let dl = q.dlq().list().unwrap();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].payload, b"payload 4");
    assert_eq!(dl[0].ordering_key.as_deref(), Some(&b"customer-1"[..]));
    assert_eq!(dl[0].headers.len(), 3);
    assert_eq!(
        dl[0].headers[0],
        ("traceparent".to_string(), b"00-trace-4".to_vec())
    );
    assert_eq!(q.dlq().redrive(None).unwrap(), 1);
    let m = c.receive_timeout(T).unwrap();
    check(&m, 4);
    m.ack().unwrap();
}

#[test]
fn a_dead_letter_added_from_outside_is_its_groups_alone_and_redrives_with_its_key_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "added",
        &Options::new()
            .dir(dir.path())
            .slots(8)
            .slot_size(256)
            .dlq_slots(2),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    q.create_group("other", Start::Earliest).unwrap();
    let (key, trace) = meta(4, "customer", "00-trace");
    let m = message_meta(&key, &trace).correlation_id(4);
    q.dlq()
        .add("g", b"payload 4", &m, Reason::MaxDeliveries, 5)
        .unwrap();
    let dl = q.dlq().list().unwrap();
    assert_eq!(dl.len(), 1);
    let d = &dl[0];
    assert_eq!((d.seq, d.group.as_str()), (DeadLetter::ADDED, "g"));
    assert_eq!(
        (d.attempts, d.reason, d.redrives),
        (5, Reason::MaxDeliveries, 0)
    );
    assert_eq!((d.type_id, d.correlation_id), (7, 4));
    assert_eq!(d.payload, b"payload 4");
    assert_eq!(d.ordering_key.as_deref(), Some(key.as_bytes()));
    assert_eq!(d.headers.len(), 3);
    assert!(d.dead_lettered_ns > 0);
    let stats = q.groups();
    let g = stats.iter().find(|g| g.name == "g").unwrap();
    assert_eq!(g.dead_lettered, 1);
    // A redrive gives it to "g", as one of its own; "other" never sees it.
    assert_eq!(q.dlq().redrive(None).unwrap(), 1);
    let mut c = q
        .consumer("g", ConsumerOptions::new().ack(Ack::Manual))
        .unwrap();
    let got = c.receive_timeout(T).unwrap();
    check(&got, 4);
    got.ack().unwrap();
    let mut o = q.consumer("other", ConsumerOptions::new()).unwrap();
    assert!(o.try_receive().unwrap().is_none());
    assert!(q.dlq().is_empty());

    // What it refuses, with nothing added.
    let add = |group: &str, payload: &[u8], m: &Meta<'_>| {
        q.dlq().add(group, payload, m, Reason::Nacked, 1)
    };
    assert!(matches!(
        add("nope", b"x", &Meta::new()),
        Err(Error::NotFound(_))
    ));
    // The envelope counts against slot_size, as for a publish.
    let e = add("g", &[0u8; 250], &Meta::new().header("h", "v")).unwrap_err();
    assert!(matches!(e, Error::TooLarge { max: 256, .. }), "{e}");
    let long = "k".repeat(MAX_ORDERING_KEY + 1);
    let e = add("g", b"x", &Meta::new().ordering_key(&long)).unwrap_err();
    assert!(matches!(e, Error::InvalidOption(_)), "{e}");
    assert!(q.dlq().is_empty());
    add("g", b"a", &Meta::new()).unwrap();
    add("g", b"b", &Meta::new()).unwrap();
    assert!(matches!(
        add("g", b"c", &Meta::new()),
        Err(Error::DlqFull(2))
    ));
    assert_eq!(q.dlq().len(), 2);
}

#[test]
fn peek_shows_keys_and_headers_apart_from_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "peek",
        &Options::new().dir(dir.path()).slots(8).slot_size(256),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    publish(&mut p, 2);
    let seen = q.peek(0, 1).unwrap();
    assert_eq!(seen[0].payload, b"payload 2");
    assert_eq!(seen[0].ordering_key.as_deref(), Some(&b"customer-2"[..]));
    assert_eq!(
        seen[0].headers[1],
        ("content-type".to_string(), b"text/plain".to_vec())
    );
}
