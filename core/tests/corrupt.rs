//! Opening files that are not healthy queue files gives a clear error,
//! never a panic or undefined behaviour.

use std::io::{Seek, SeekFrom, Write};

use shmq::{Error, Options, Queue};

fn setup() -> (tempfile::TempDir, Options) {
    let dir = tempfile::tempdir().unwrap();
    let o = Options::new().dir(dir.path()).slots(8).slot_size(64);
    (dir, o)
}

fn poke(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

fn open_err(name: &str, o: &Options) -> Error {
    Queue::open_with(name, o).expect_err("opening must fail")
}

#[test]
fn truncated_file() {
    let (dir, o) = setup();
    drop(Queue::create("t", &o).unwrap());
    drop(Queue::create("t2", &o).unwrap());
    let path = dir.path().join("t2.shmq");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    // The header is intact, the slots are cut off.
    f.set_len(len - 4096).unwrap();
    let e = open_err("t2", &o);
    assert!(e.to_string().contains("file size"), "{e}");
    let path = dir.path().join("t.shmq");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(100).unwrap();
    let e = open_err("t", &o);
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("shorter than a queue header"), "{e}");
}

#[test]
fn foreign_file() {
    let (dir, o) = setup();
    std::fs::write(dir.path().join("f.shmq"), vec![0x5au8; 65536]).unwrap();
    let e = open_err("f", &o);
    assert!(e.to_string().contains("not a shmq queue file"), "{e}");
    std::fs::write(dir.path().join("empty.shmq"), b"").unwrap();
    assert!(matches!(open_err("empty", &o), Error::Corrupt { .. }));
}

#[test]
fn newer_version() {
    let (dir, o) = setup();
    drop(Queue::create("v", &o).unwrap());
    poke(&dir.path().join("v.shmq"), 8, &99u32.to_le_bytes());
    let e = open_err("v", &o);
    assert!(
        matches!(
            e,
            Error::Incompatible {
                found: 99,
                expected: 7,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("made by a newer shmq"), "{e}");
}

#[test]
fn older_version_is_refused_with_what_to_do() {
    // Layout 6 (before records of any span): its state words hold a seq
    // where this one reads a lap and a span, so every message of it would
    // look like another position's; it is refused rather than half-served.
    let (dir, o) = setup();
    drop(Queue::create("old", &o).unwrap());
    poke(&dir.path().join("old.shmq"), 8, &6u32.to_le_bytes());
    let e = open_err("old", &o);
    assert!(
        matches!(
            e,
            Error::Incompatible {
                found: 6,
                expected: 7,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("recreate it"), "{e}");
}

/// docs/versioning.md tells users which layout this build reads and what
/// happens to the files of another: it must name the version the code
/// refuses others against.
#[test]
fn the_versioning_doc_names_this_layout_version() {
    let (dir, o) = setup();
    drop(Queue::create("d", &o).unwrap());
    poke(&dir.path().join("d.shmq"), 8, &1u32.to_le_bytes());
    let Error::Incompatible { expected, .. } = open_err("d", &o) else {
        panic!("layout 1 was not refused as incompatible");
    };
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/versioning.md"),
    )
    .unwrap();
    let named = format!("## The queue file's layout version (today: {expected})");
    assert!(doc.contains(&named), "docs/versioning.md lacks {named:?}");
    let words = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains(&format!(
            "this shmq reads version {expected} (it was made by an older"
        )),
        "docs/versioning.md quotes another version in its example message"
    );
}

#[test]
fn garbled_header_fails_its_checksum() {
    let (dir, o) = setup();
    drop(Queue::create("g", &o).unwrap());
    // slots: 8 -> 2^40, which would map far beyond the file.
    poke(&dir.path().join("g.shmq"), 16, &(1u64 << 40).to_le_bytes());
    let e = open_err("g", &o);
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn garbled_cursors() {
    let (dir, o) = setup();
    drop(Queue::create("c", &o).unwrap());
    // head (offset 320 + 64) beyond tail.
    poke(&dir.path().join("c.shmq"), 384, &5u64.to_le_bytes());
    let e = open_err("c", &o);
    assert!(e.to_string().contains("cursors out of range"), "{e}");
}

#[test]
fn half_initialized_file() {
    let (dir, o) = setup();
    drop(Queue::create("h", &o).unwrap());
    // The ready word, right after the 272-byte config.
    poke(&dir.path().join("h.shmq"), 272, &0u32.to_le_bytes());
    let e = open_err("h", &o);
    assert!(e.to_string().contains("incomplete"), "{e}");
}

#[test]
fn garbled_message_length_is_an_error_not_a_read() {
    let (dir, o) = setup();
    let q = Queue::create("m", &o).unwrap();
    let mut c = q.consumer("g", shmq::ConsumerOptions::new()).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"first").unwrap();
    p.publish(b"second").unwrap();
    // The first slot's len field (len at +24 in the slot); the slots
    // region's offset is the config's `slots_offset` (at byte 80).
    let file = std::fs::read(dir.path().join("m.shmq")).unwrap();
    let slots_offset = u64::from_le_bytes(file[80..88].try_into().unwrap());
    poke(
        &dir.path().join("m.shmq"),
        slots_offset + 24,
        &u32::MAX.to_le_bytes(),
    );
    let e = c.receive().unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    // The group moves on past it.
    assert_eq!(c.receive().unwrap().payload(), b"second");
}

/// Publishes until one fails; returns how many succeeded and the error.
/// Every publish after that one must fail too.
fn publish_until_error(p: &mut shmq::Producer) -> (u32, Error) {
    for n in 0..10_000 {
        if let Err(e) = p.try_publish(b"after") {
            for later in 0..1000 {
                assert!(
                    p.try_publish(b"later").is_err(),
                    "publish {later} after the first refusal went through"
                );
            }
            return (n, e);
        }
    }
    panic!("10,000 publishes into a garbled queue succeeded");
}

/// A queue scribbled on while its producer runs (the chaos run's scribble
/// phase): the producer used to go on publishing "successfully" over
/// unread messages into a queue every opener refused. Now it finds out
/// within one ring's worth of claims.
#[test]
fn a_running_producer_stops_at_impossible_cursors() {
    let (dir, o) = setup();
    let q = Queue::create("live", &o).unwrap();
    q.create_group("g", shmq::Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"before").unwrap();
    // head (offset 320 + 64) far past the tail: room for ever, it says.
    poke(&dir.path().join("live.shmq"), 384, &1000u64.to_le_bytes());
    let (ok, e) = publish_until_error(&mut p);
    assert!(ok <= 8, "{ok} publishes succeeded after the cursors broke");
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("cursors out of range"), "{e}");
}

#[test]
fn a_running_producer_stops_at_a_garbled_header() {
    let (dir, o) = setup();
    let q = Queue::create("hdr", &o).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"before").unwrap();
    poke(
        &dir.path().join("hdr.shmq"),
        16,
        &(1u64 << 40).to_le_bytes(),
    );
    let (ok, e) = publish_until_error(&mut p);
    assert!(ok <= 8, "{ok} publishes succeeded after the header broke");
    assert!(e.to_string().contains("header changed"), "{e}");
}

/// A `tail` scribbled far past the ring under a waiting consumer: every
/// later position then looks claimed long ago, and the consumer used to
/// abort them one after another for ever, its receive never returning
/// (the chaos run's scribble phase, seed 2). It now reports the queue
/// corrupt before its first abort.
#[test]
fn a_waiting_consumer_stops_at_a_tail_past_the_ring() {
    let (dir, o) = setup();
    let o = o.unblock_timeout(std::time::Duration::from_millis(100));
    let q = Queue::create("tail", &o).unwrap();
    q.create_group("g", shmq::Start::Earliest).unwrap();
    let mut c = q.consumer("g", shmq::ConsumerOptions::new()).unwrap();
    q.producer().unwrap().publish(b"before").unwrap();
    assert_eq!(c.receive().unwrap().payload(), b"before");
    // tail (offset 320) far past head and the ring.
    poke(
        &dir.path().join("tail.shmq"),
        320,
        &(1u64 << 62).to_le_bytes(),
    );
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = c
            .receive_timeout(std::time::Duration::from_secs(2))
            .map(|m| m.seq());
        let _ = done.send(r);
    });
    let r = finished
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the receive came back by its timeout");
    let e = r.expect_err("nothing was published after the scribble");
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("cursors out of range"), "{e}");
    assert_eq!(q.stats().aborted, 0, "nothing was aborted");
}

/// The store directory's record (offset 960) scribbled while a producer
/// runs: every opener refuses the file, so the producer stops too (the
/// chaos run's scribble phase, seed 5, saw producers go on publishing).
#[test]
fn a_running_producer_stops_at_a_garbled_store_directory() {
    let (dir, o) = setup();
    let q = Queue::create("store", &o).unwrap();
    let mut p = q.producer().unwrap();
    p.publish(b"before").unwrap();
    poke(&dir.path().join("store.shmq"), 968, b"/elsewhere");
    let e = open_err("store", &o);
    assert!(e.to_string().contains("spill directory garbled"), "{e}");
    let (ok, e) = publish_until_error(&mut p);
    assert!(ok <= 8, "{ok} publishes succeeded after the record broke");
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("spill directory"), "{e}");
}
