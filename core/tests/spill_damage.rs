//! Property over real files: a spilled backlog one of whose segment files
//! is damaged (random byte flips past the header, a truncation, or a flip
//! in the header) either opens and gives back only messages that were
//! published, in order, with every other one counted as lost — or fails
//! to open with a `Corrupt` error that names the damaged file. Never a
//! panic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use shmq::{ConsumerOptions, Error, Options, Overflow, Queue, Start};

const SEG: u64 = 64 << 10;
const HEADER: u64 = 64;

fn opts(dir: &Path) -> Options {
    Options::new()
        .dir(dir.join("q"))
        .slots(16)
        .slot_size(256)
        .overflow(Overflow::Spill)
        .spill_dir(dir.join("spill"))
        .spill_segment_size(SEG)
}

fn payload(i: u64) -> Vec<u8> {
    let mut v = format!("message {i} ").into_bytes();
    v.resize(20 + (i * 37 % 230) as usize, b'x');
    v
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Damage {
    /// (offset past the header, as a fraction in 1/65536 of the rest; xor mask)
    Flips(Vec<(u16, u8)>),
    /// New length, as a fraction in 1/65536 of the file's.
    Truncate(u16),
    /// One byte of the 64-byte segment header flipped (offset, xor mask).
    Header(u8, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => proptest::collection::vec((any::<u16>(), 1u8..=255), 1..8).prop_map(Damage::Flips),
        1 => any::<u16>().prop_map(Damage::Truncate),
        1 => (0u8..64, 1u8..=255).prop_map(|(at, mask)| Damage::Header(at, mask)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn damaged_segments_lose_only_what_was_damaged(
        n in 17u64..1200,
        which in any::<prop::sample::Index>(),
        damage in damage(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("q")).unwrap();
        let o = opts(dir.path());
        {
            let q = Queue::create("d", &o).unwrap();
            q.create_group("a", Start::Earliest).unwrap();
            let mut p = q.producer().unwrap();
            for i in 0..n {
                prop_assert_eq!(p.publish(&payload(i)).unwrap(), i);
            }
        }
        let segs = segment_files(&dir.path().join("spill"));
        prop_assert!(!segs.is_empty(), "{n} messages spilled");
        let seg = which.get(&segs).clone();
        let mut bytes = std::fs::read(&seg).unwrap();
        let len = bytes.len() as u64;
        let header_hit = match &damage {
            Damage::Flips(flips) => {
                for &(at, mask) in flips {
                    let i = HEADER + (len - HEADER) * at as u64 / 65536;
                    bytes[i as usize] ^= mask;
                }
                false
            }
            Damage::Truncate(to) => {
                let to = len * *to as u64 / 65536;
                bytes.truncate(to as usize);
                to < HEADER
            }
            Damage::Header(at, mask) => {
                bytes[*at as usize] ^= mask;
                true
            }
        };
        std::fs::write(&seg, &bytes).unwrap();

        let q = match Queue::open_with("d", &o) {
            Ok(q) => q,
            Err(e) => {
                let name = seg.file_name().unwrap().to_string_lossy().into_owned();
                // A flipped version field reads as a segment of another
                // format version.
                prop_assert!(
                    matches!(e, Error::Corrupt { .. })
                        || header_hit && matches!(e, Error::Incompatible { .. }),
                    "{e}"
                );
                prop_assert!(e.to_string().contains(&name), "{e} names {name}");
                return Ok(());
            }
        };
        let mut c = q.consumer("a", ConsumerOptions::new()).unwrap();
        let mut received = 0u64;
        let mut last = None;
        loop {
            match c.receive_timeout(Duration::from_millis(30)) {
                Ok(m) => {
                    let seq = m.seq();
                    prop_assert!(seq < n, "seq {seq} never published");
                    prop_assert_eq!(m.payload(), &payload(seq)[..], "seq {}", seq);
                    prop_assert!(last < Some(seq), "{last:?} then {seq}");
                    last = Some(seq);
                    received += 1;
                }
                Err(Error::Timeout) => break,
                Err(e) => prop_assert!(false, "receive: {e}"),
            }
        }
        let lost = q.stats().spill_lost;
        if header_hit {
            prop_assert!(lost + received <= n, "lost {lost} + received {received} > {n}");
        } else {
            prop_assert_eq!(lost + received, n, "lost {} + received {}", lost, received);
        }
    }
}
