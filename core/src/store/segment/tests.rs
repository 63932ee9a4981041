//! The segment format under test: records round-trip, damage is cut
//! off, hostile lengths refused; and properties of the reader under
//! random damage.

use super::*;

#[cfg(test)]
mod format {
    use super::*;

    fn rec(seq: u64, payload: &[u8]) -> Record<'_> {
        Record {
            seq,
            timestamp_ns: seq * 10,
            correlation_id: seq + 1,
            type_id: 7,
            enveloped: false,
            payload,
        }
    }

    /// A segment's bytes holding `n` records of `len` bytes from seq 100.
    fn filled(n: u64, len: usize) -> (Vec<u8>, Vec<u64>) {
        let mut buf = vec![0u8; 4096];
        let mut off = SEGMENT_HEADER_SIZE;
        let mut offs = Vec::new();
        for i in 0..n {
            let payload = vec![i as u8; len];
            write_record(&mut buf, off as usize, &rec(100 + i, &payload));
            offs.push(off);
            off += record_size(len as u64);
        }
        (buf, offs)
    }

    #[test]
    fn records_round_trip() {
        let (buf, offs) = filled(3, 13);
        match parse_at(&buf, offs[1], 64) {
            Parsed::Message(r, next) => {
                assert_eq!(r, rec(101, &[1u8; 13]));
                assert_eq!(next, offs[2]);
            }
            other => panic!("{other:?}"),
        }
        let s = scan(&buf, SEGMENT_HEADER_SIZE, 64);
        assert_eq!(
            s.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
            [100, 101, 102]
        );
        assert_eq!((s.end, s.damaged), (None, 0));
        assert_eq!(s.tail, offs[2] + record_size(13));
        assert_eq!(parse_at(&buf, s.tail, 64), Parsed::Empty);
    }

    #[test]
    fn a_torn_record_is_cut_and_later_ones_kept() {
        let (mut buf, offs) = filled(4, 20);
        // A flipped payload byte in record 1.
        buf[offs[1] as usize + RECORD_HEADER_SIZE as usize + 3] ^= 0x40;
        assert_eq!(parse_at(&buf, offs[1], 64), Parsed::Bad);
        let s = scan(&buf, SEGMENT_HEADER_SIZE, 64);
        assert_eq!(
            s.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
            [100, 102, 103]
        );
        assert_eq!(s.damaged, offs[2] - offs[1]);
    }

    #[test]
    fn hostile_lengths_are_refused() {
        let (mut buf, offs) = filled(1, 8);
        // A length larger than slot_size, and one past the end of the file.
        buf[offs[0] as usize + 4..offs[0] as usize + 8].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(parse_at(&buf, offs[0], 64), Parsed::Bad);
        buf[offs[0] as usize + 4..offs[0] as usize + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_at(&buf, offs[0], u32::MAX as u64), Parsed::Bad);
        assert_eq!(parse_at(&buf, u64::MAX - 7, 64), Parsed::Bad);
        assert_eq!(parse_at(&buf, 3, 64), Parsed::Bad, "unaligned");
    }

    #[test]
    fn end_records_name_the_next_segment() {
        let (mut buf, offs) = filled(2, 8);
        let end = offs[1] + record_size(8);
        write_end(&mut buf, end as usize, 102);
        let s = scan(&buf, SEGMENT_HEADER_SIZE, 64);
        assert_eq!((s.end, s.tail, s.messages.len()), (Some(102), end, 2));
    }

    #[test]
    fn headers_are_checked() {
        let p = Path::new("/x/00000000000000000005.seg");
        let h = new_header(9, 5, 1 << 20, 1);
        let b = h.as_bytes();
        check_header(b, p, 9, 5, 1 << 20).unwrap();
        let e = check_header(b, p, 8, 5, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("another queue") && e.contains("0005.seg"), "{e}");
        assert!(check_header(b, p, 9, 6, 1 << 20).is_err());
        assert!(check_header(b, p, 9, 5, 1 << 21).is_err());
        assert!(check_header(&b[..10], p, 9, 5, 1 << 20).is_err());
        let mut garbled = b.to_vec();
        garbled[20] ^= 1;
        assert!(check_header(&garbled, p, 9, 5, 1 << 20).is_err());
        let mut newer = h;
        newer.version = 2;
        newer.crc = crc32c::crc32c(&newer.as_bytes()[..60]);
        assert!(matches!(
            check_header(newer.as_bytes(), p, 9, 5, 1 << 20),
            Err(Error::Incompatible { found: 2, .. })
        ));
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_id("00000000000000000042.seg"), Some(42));
        assert_eq!(segment_id("42.seg"), None);
        assert_eq!(segment_id("0000000000000000004x.seg"), None);
        assert_eq!(
            segment_path(Path::new("/d"), 7),
            Path::new("/d/00000000000000000007.seg")
        );
    }
}

/// Properties of the reader under random damage: whatever the bytes, it
/// never panics, never returns a record that was not written, and keeps
/// every record that the damage did not touch.
#[cfg(test)]
mod props {
    use std::collections::{BTreeSet, HashMap};

    use proptest::prelude::*;

    use super::*;

    const MAX_LEN: u64 = 256;

    /// A record as written: its offset and owned fields.
    #[derive(Debug, Clone)]
    struct Written {
        off: u64,
        seq: u64,
        timestamp_ns: u64,
        correlation_id: u64,
        type_id: u32,
        payload: Vec<u8>,
    }

    impl Written {
        fn record(&self) -> Record<'_> {
            Record {
                seq: self.seq,
                timestamp_ns: self.timestamp_ns,
                correlation_id: self.correlation_id,
                type_id: self.type_id,
                enveloped: false,
                payload: &self.payload,
            }
        }
        /// Bytes the record's crc covers: header and payload.
        fn span(&self) -> std::ops::Range<u64> {
            self.off..self.off + RECORD_HEADER_SIZE + self.payload.len() as u64
        }
    }

    /// Random records (lengths up to MAX_LEN, increasing seqs with gaps),
    /// then an END record or not, then zeros.
    fn segment() -> impl Strategy<Value = (Vec<u8>, Vec<Written>, Option<(u64, u64)>)> {
        let rec = (
            1u64..4,
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..=MAX_LEN as usize),
                1 => proptest::collection::vec(Just(0u8), 0..=MAX_LEN as usize),
            ],
        );
        (
            any::<u32>(),
            proptest::collection::vec(rec, 0..24),
            any::<bool>(),
            0usize..600,
        )
            .prop_map(|(first, recs, with_end, zeros)| {
                let mut seq = first as u64;
                let mut off = SEGMENT_HEADER_SIZE;
                let mut written = Vec::new();
                for (gap, ts, corr, ty, payload) in recs {
                    written.push(Written {
                        off,
                        seq,
                        timestamp_ns: ts,
                        correlation_id: corr,
                        type_id: ty,
                        payload,
                    });
                    off += record_size(written.last().unwrap().payload.len() as u64);
                    seq += gap;
                }
                let end = with_end.then_some((off, seq));
                let size = off + if with_end { RECORD_HEADER_SIZE } else { 0 } + zeros as u64;
                let mut buf = vec![0u8; size as usize];
                buf[..SEGMENT_HEADER_SIZE as usize]
                    .copy_from_slice(new_header(1, first as u64, size, 0).as_bytes());
                for w in &written {
                    write_record(&mut buf, w.off as usize, &w.record());
                }
                if let Some((at, next)) = end {
                    write_end(&mut buf, at as usize, next);
                }
                (buf, written, end)
            })
    }

    /// Byte flips (index taken modulo the length, a non-zero xor mask) and
    /// maybe a truncation (a fraction of the length, in 1/1000).
    fn damage() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<u32>)> {
        (
            proptest::collection::vec((any::<usize>(), 1u8..=255), 0..6),
            proptest::option::of(0u32..=1000),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn scan_keeps_every_intact_record_and_invents_none(
            (mut buf, written, end) in segment(),
            (flips, cut) in damage(),
        ) {
            let mut touched = BTreeSet::new();
            for &(i, mask) in &flips {
                let i = SEGMENT_HEADER_SIZE as usize + i % (buf.len() - SEGMENT_HEADER_SIZE as usize).max(1);
                if i < buf.len() {
                    buf[i] ^= mask;
                    touched.insert(i as u64);
                }
            }
            // Two flips of one byte may cancel out: "touched" stays
            // conservative (a record counted as damaged may come back).
            let len = match cut {
                Some(c) => buf.len() * c as usize / 1000,
                None => buf.len(),
            } as u64;
            buf.truncate(len as usize);

            let s = scan(&buf, SEGMENT_HEADER_SIZE, MAX_LEN);

            // Only records that were written, byte for byte, in order.
            let by_seq: HashMap<u64, &Written> = written.iter().map(|w| (w.seq, w)).collect();
            let mut last = None;
            for &(seq, off) in &s.messages {
                let w = by_seq.get(&seq);
                prop_assert!(w.is_some(), "seq {seq} at {off} was never written");
                let w = w.unwrap();
                prop_assert_eq!(off, w.off);
                match parse_at(&buf, off, MAX_LEN) {
                    Parsed::Message(r, next) => {
                        prop_assert_eq!(r, w.record());
                        prop_assert_eq!(next, off + record_size(w.payload.len() as u64));
                    }
                    other => prop_assert!(false, "scan returned {off}, which parses as {other:?}"),
                }
                prop_assert!(last < Some(seq), "seqs increase: {last:?} then {seq}");
                last = Some(seq);
            }
            if let Some(next) = s.end {
                prop_assert_eq!(Some(next), end.map(|e| e.1), "END invented");
            }
            // Aligned: a record cut short of its padding ends past the cut.
            prop_assert!(s.tail <= len.max(SEGMENT_HEADER_SIZE).div_ceil(8) * 8);

            // Every record the damage did not touch, before the cut.
            let intact = |r: std::ops::Range<u64>| r.end <= len && touched.range(r).next().is_none();
            let found: BTreeSet<u64> = s.messages.iter().map(|m| m.0).collect();
            for w in &written {
                if intact(w.span()) {
                    prop_assert!(found.contains(&w.seq), "intact record {} at {} lost", w.seq, w.off);
                }
            }
            if let Some((at, next)) = end {
                if intact(at..at + RECORD_HEADER_SIZE) {
                    prop_assert_eq!(s.end, Some(next));
                    prop_assert_eq!(s.tail, at);
                }
            }
            if flips.is_empty() && cut.is_none() {
                prop_assert_eq!(s.damaged, 0);
                prop_assert_eq!(s.messages.len(), written.len());
            }
        }

        #[test]
        fn parse_at_takes_any_bytes_and_offset(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            off in prop_oneof![0u64..600, any::<u64>(), (u64::MAX - 64)..=u64::MAX],
            max_len in prop_oneof![0u64..1024, any::<u64>()],
        ) {
            match parse_at(&bytes, off, max_len) {
                Parsed::Message(r, next) => {
                    prop_assert!(r.payload.len() as u64 <= max_len);
                    prop_assert!(next <= (bytes.len() as u64).div_ceil(8) * 8);
                    prop_assert!(next > off);
                }
                Parsed::End(_) | Parsed::Empty | Parsed::Bad => {}
            }
            let s = scan(&bytes, off.min(1024), max_len);
            prop_assert!(s.tail >= off.min(1024));
        }

        #[test]
        fn check_header_rejects_every_flipped_header(
            creation_id in any::<u64>(),
            first_seq in any::<u64>(),
            size in any::<u64>(),
            now in any::<u64>(),
            at in 0usize..SEGMENT_HEADER_SIZE as usize,
            mask in 1u8..=255,
            cut in 0usize..SEGMENT_HEADER_SIZE as usize,
        ) {
            let p = Path::new("/x/00000000000000000001.seg");
            let h = new_header(creation_id, first_seq, size, now);
            let mut b = h.as_bytes().to_vec();
            b.extend_from_slice(&[0u8; 16]);
            prop_assert!(check_header(&b, p, creation_id, first_seq, size).is_ok());
            prop_assert!(check_header(&b[..cut], p, creation_id, first_seq, size).is_err());
            b[at] ^= mask;
            let e = check_header(&b, p, creation_id, first_seq, size);
            prop_assert!(e.is_err(), "flip of byte {at} by {mask:#x} accepted");
            prop_assert!(e.unwrap_err().to_string().contains("0001.seg"));
        }

        #[test]
        fn check_header_takes_any_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..128),
            creation_id in any::<u64>(),
            first_seq in any::<u64>(),
            size in any::<u64>(),
        ) {
            let _ = check_header(&bytes, Path::new("x.seg"), creation_id, first_seq, size);
        }
    }
}
