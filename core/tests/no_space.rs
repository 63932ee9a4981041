//! A directory without room for a queue file is an error at create, never
//! a SIGBUS at the first publish: the file is preallocated. Run on a 2 MiB
//! tmpfs that the test mounts (it needs root or CAP_SYS_ADMIN; elsewhere it
//! says so and passes without checking).

use std::path::{Path, PathBuf};
use std::process::Command;

use shmq::{ConsumerOptions, Error, Options, Overflow, Queue, Start};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallTmpfs {
    dir: tempfile::TempDir,
}

impl SmallTmpfs {
    fn mount(size: &str) -> Option<SmallTmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: could not mount a tmpfs here (needs root or CAP_SYS_ADMIN)");
            return None;
        }
        Some(SmallTmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn a_queue_file_larger_than_the_directory_fails_at_create_and_leaves_nothing() {
    let Some(fs) = SmallTmpfs::mount("2m") else {
        return;
    };
    let opts = Options::new()
        .dir(fs.path())
        .slots(64)
        .slot_size(65536)
        .dlq_slots(1);
    let err = Queue::create("big", &opts).unwrap_err();
    let Error::Io { context, source } = &err else {
        panic!("not Io: {err:?}")
    };
    assert_eq!(source.raw_os_error(), Some(28), "not ENOSPC: {err}");
    // It names what it needs and what there is.
    assert!(context.contains("needs 4"), "{context}"); // 4.2 MB: 64 × 65600 + ...
    assert!(context.contains("bytes are free"), "{context}");
    assert!(context.contains("64 slots of 65600 bytes"), "{context}");
    assert_eq!(entries(&fs.path()), 0, "a half-made file was left behind");
}

#[test]
fn a_queue_that_fits_fills_its_ring_without_a_signal() {
    let Some(fs) = SmallTmpfs::mount("2m") else {
        return;
    };
    // 16 × 64 KiB = ~1 MiB: fits. Every slot is written, and with the file
    // preallocated no page of it can be missing.
    let opts = Options::new()
        .dir(fs.path())
        .slots(16)
        .slot_size(65536)
        .dlq_slots(1)
        .overflow(Overflow::Reject);
    let q = Queue::create("fits", &opts).unwrap();
    assert!(q.file_size() > 16 * 65536 && q.file_size() == q.stats().file_size);
    q.create_group("g", Start::Earliest).unwrap();
    // Fill what is left of the tmpfs so nothing could back a sparse page.
    let filler = fs.path().join("filler");
    let _ = std::fs::write(&filler, vec![1u8; 4 << 20]);
    let mut p = q.producer().unwrap();
    let payload = vec![7u8; 50_000];
    let mut n = 0;
    while p.publish(&payload).is_ok() {
        n += 1;
    }
    assert_eq!(n, 16);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(c.receive().unwrap().payload(), &payload[..]);
}

/// A group's lease table is allocated by its first ack=manual consumer,
/// not at create: on a full directory that consumer is refused with
/// `ENOSPC` (naming the table), never killed by SIGBUS, and the queue goes
/// on for ack=auto groups.
#[test]
fn an_ack_manual_consumer_without_room_for_its_lease_table_is_refused() {
    let Some(fs) = SmallTmpfs::mount("2m") else {
        return;
    };
    // 16384 slots of 16 bytes: a 768 KiB ring, and 768 KiB of lease table
    // for each of two groups, which would not all fit.
    let opts = Options::new()
        .dir(fs.path())
        .slots(16384)
        .slot_size(16)
        .max_groups(2)
        .dlq_slots(1)
        .overflow(Overflow::Reject);
    let q = Queue::create("leases", &opts).unwrap();
    q.create_group("auto", Start::Earliest).unwrap();
    q.create_group("manual", Start::Earliest).unwrap();
    // Fill what is left of the tmpfs.
    let _ = std::fs::write(fs.path().join("filler"), vec![1u8; 4 << 20]);
    let manual = ConsumerOptions::new().ack(shmq::Ack::Manual);
    let Err(err) = q.consumer("manual", manual) else {
        panic!("an ack=manual consumer attached without room for its lease table")
    };
    let Error::Io { context, source } = &err else {
        panic!("not Io: {err:?}")
    };
    assert_eq!(source.raw_os_error(), Some(28), "not ENOSPC: {err}");
    assert!(
        context.contains("lease table of group \"manual\""),
        "{context}"
    );
    // Stats look at no lease table that is not there.
    let st = q.stats();
    assert!(st.groups.iter().all(|g| g.in_flight == 0));
    // The ack=auto group works, and the ring is whole.
    let mut p = q.producer().unwrap();
    for i in 0..100u32 {
        p.publish(&i.to_le_bytes()).unwrap();
    }
    let mut c = q.consumer("auto", ConsumerOptions::new()).unwrap();
    for i in 0..100u32 {
        assert_eq!(c.receive().unwrap().payload(), &i.to_le_bytes());
    }
    // With room again, the ack=manual consumer attaches and leases.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let mut w = q.consumer("manual", manual).unwrap();
    let m = w.receive().unwrap();
    assert_eq!((m.seq(), m.payload()), (0, &0u32.to_le_bytes()[..]));
    m.ack().unwrap();
    assert_eq!(
        q.stats()
            .groups
            .iter()
            .find(|g| g.name == "manual")
            .unwrap()
            .in_flight,
        0
    );
}

/// A journaled queue whose spill fills the disk they share (found by the
/// chaos run): the journal waited for room for its next segment, and its
/// cursor holds the ring's head, so the refill that frees the disk never
/// ran and every receive failed with `SpillFull` — for good. The journal
/// now gives way (its oldest segments, then the record, counted) and the
/// consumer drains everything.
#[test]
fn a_full_disk_never_wedges_a_journaled_queue() {
    let Some(fs) = SmallTmpfs::mount("2m") else {
        return;
    };
    let opts = Options::new()
        .dir(fs.path().join("q"))
        .slots(16)
        .slot_size(256)
        .overflow(Overflow::Spill)
        .spill_dir(fs.path().join("spill"))
        .spill_segment_size(64 << 10)
        .spill_fallback(Overflow::Reject)
        .journal(shmq::Retention::new(
            std::time::Duration::from_secs(3600),
            1 << 20,
        ));
    std::fs::create_dir(fs.path().join("q")).unwrap();
    let q = Queue::create("full", &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let mut published = 0u64;
    loop {
        match p.publish(&published.to_le_bytes().repeat(20)) {
            Ok(seq) => {
                assert_eq!(seq, published);
                published += 1;
            }
            Err(Error::SpillFull(_)) => break,
            Err(e) => panic!("publish {published}: {e}"),
        }
    }
    assert!(
        published > 1000,
        "only {published} before the disk was full"
    );
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    for want in 0..published {
        let m = c
            .receive_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("seq {want} of {published}: {e}"));
        assert_eq!(m.seq(), want);
        assert_eq!(m.payload(), &want.to_le_bytes().repeat(20)[..]);
    }
    let s = q.stats();
    assert_eq!(s.groups[0].lag, 0);
    assert!(
        s.journal.unwrap().skipped > 0,
        "the journal skipped nothing?"
    );
}
