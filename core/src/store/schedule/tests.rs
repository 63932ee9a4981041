use super::*;

fn files(dir: &Path) -> ScheduleFiles {
    ScheduleFiles::open(dir, 42, 4096, 8 << 20, false).unwrap()
}

fn whole(f: Found) -> Stored {
    match f {
        Found::Whole(s) => s,
        other => panic!("not whole: {other:?}"),
    }
}

fn msg(id: u64, due_ns: u64, body: &[u8]) -> ToSchedule<'_> {
    ToSchedule {
        id,
        due_ns,
        key: id * 10,
        timestamp_ns: 7,
        correlation_id: 8,
        type_id: 9,
        enveloped: id % 2 == 0,
        body,
    }
}

#[test]
fn messages_come_back_in_due_order_and_whole() {
    let d = tempfile::tempdir().unwrap();
    let mut f = files(d.path());
    assert!(
        f.catch_up().unwrap(),
        "a new index is dirty until it is built"
    );
    f.rebuild().unwrap();
    f.settle().unwrap();
    for (id, due) in [(1, 30), (2, 10), (3, 20)] {
        f.append(&msg(id, due, format!("m{id}").as_bytes()))
            .unwrap();
    }
    f.settle().unwrap();
    let mut got = Vec::new();
    while let Some(e) = f.first().unwrap() {
        let s = whole(f.read(&e).unwrap());
        assert_eq!(
            (s.key, s.timestamp_ns, s.correlation_id, s.type_id),
            (e.id * 10, 7, 8, 9)
        );
        assert_eq!(s.enveloped, e.id % 2 == 0);
        got.push((s.due_ns, s.body));
        f.finish(0).unwrap();
        f.settle().unwrap();
    }
    assert_eq!(
        got,
        vec![
            (10, b"m2".to_vec()),
            (20, b"m3".to_vec()),
            (30, b"m1".to_vec())
        ]
    );
}

#[test]
fn a_rebuild_finds_what_was_scheduled_and_not_what_was_done() {
    let d = tempfile::tempdir().unwrap();
    let mut f = files(d.path());
    f.rebuild().unwrap();
    for id in 1..=100 {
        f.append(&msg(id, 1000 - id, b"x")).unwrap();
    }
    // The ten earliest are done (moved or cancelled).
    for _ in 0..10 {
        f.finish(0).unwrap();
    }
    // A holder dies here: dirty. Another process's handle rebuilds.
    drop(f);
    let mut g = files(d.path());
    assert!(g.catch_up().unwrap());
    let r = g.rebuild().unwrap();
    assert_eq!((r.messages, r.last_id), (90, 100));
    g.settle().unwrap();
    let ids: Vec<u64> = {
        let mut v: Vec<u64> = g.entries().unwrap().iter().map(|e| e.id).collect();
        v.sort();
        v
    };
    assert_eq!(ids, (1..=90).collect::<Vec<_>>());
    // And the next append goes after the last record.
    g.append(&msg(101, 1, b"late")).unwrap();
    let e = g.first().unwrap().unwrap();
    assert_eq!(whole(g.read(&e).unwrap()).body, b"late");
}

#[test]
fn a_damaged_record_is_reported_and_stepped_over_by_a_rebuild() {
    let d = tempfile::tempdir().unwrap();
    let mut f = files(d.path());
    f.rebuild().unwrap();
    for id in 1..=3 {
        f.append(&msg(id, id, b"payload")).unwrap();
    }
    f.settle().unwrap();
    let second = *f.entries().unwrap().iter().find(|e| e.id == 2).unwrap();
    let seg = segment_path(d.path(), second.seg);
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.write_all_at(b"garbage!", second.off + 48).unwrap();
    let i = f.find(2).unwrap().unwrap();
    let e = f.entries().unwrap()[i];
    let Found::Damaged(err) = f.read(&e).unwrap() else {
        panic!("a damaged record read as whole or done")
    };
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let r = f.rebuild().unwrap();
    assert_eq!(r.messages, 2);
    assert!(r.damaged > 0);
    assert!(f.find(2).unwrap().is_none());
}

#[test]
fn a_segment_is_deleted_once_its_messages_are_done() {
    let d = tempfile::tempdir().unwrap();
    let mut f = files(d.path());
    f.rebuild().unwrap();
    let big = vec![7u8; 4000];
    // 8 MiB segments hold 2064 records of 4064 bytes: these take three.
    let n = 3 * (8 << 20) / 4096;
    for id in 1..=n {
        f.append(&msg(id, id, &big)).unwrap();
    }
    f.settle().unwrap();
    let count = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    assert_eq!(count(d.path()), 3);
    for _ in 0..n - 5 {
        f.finish(0).unwrap();
    }
    f.settle().unwrap();
    assert_eq!(count(d.path()), 1, "only the tail segment is left");
    assert_eq!(f.len(), 5);
}

#[test]
fn an_index_of_another_queue_or_version_is_refused() {
    let d = tempfile::tempdir().unwrap();
    drop(files(d.path()));
    let Err(err) = ScheduleFiles::open(d.path(), 43, 4096, 8 << 20, false) else {
        panic!("opened another queue's index")
    };
    assert!(err.to_string().contains("another queue"), "{err}");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(d.path().join("index"))
        .unwrap();
    file.write_all_at(&9u32.to_le_bytes(), 8).unwrap();
    assert!(matches!(
        ScheduleFiles::open(d.path(), 42, 4096, 8 << 20, false),
        Err(Error::Incompatible { found: 9, .. })
    ));
}

#[test]
fn a_record_marked_done_reads_as_done_and_a_missing_segment_as_damage() {
    let d = tempfile::tempdir().unwrap();
    let mut f = files(d.path());
    f.rebuild().unwrap();
    f.append(&msg(1, 10, b"one")).unwrap();
    f.append(&msg(2, 20, b"two")).unwrap();
    f.settle().unwrap();
    let one = f.entries().unwrap()[0];
    // Marked done on disk, the index not told (a holder killed between).
    let seg = segment_path(d.path(), one.seg);
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.write_all_at(&KIND_DONE.to_le_bytes(), one.off + 36)
        .unwrap();
    assert!(matches!(f.read(&one).unwrap(), Found::Done));
    // An entry pointing past its segment, or at a segment that is gone.
    let bad = ScheduleEntry {
        off: u64::MAX - 7,
        ..one
    };
    assert!(matches!(f.read(&bad).unwrap(), Found::Damaged(_)));
    let gone = ScheduleEntry { seg: 999, ..one };
    assert!(matches!(f.read(&gone).unwrap(), Found::Damaged(_)));
    f.forget(0).unwrap();
    f.settle().unwrap();
    assert_eq!(f.len(), 1);
}

#[test]
fn an_emptied_tail_is_deleted_when_the_next_segment_starts() {
    let d = tempfile::tempdir().unwrap();
    let mut f = files(d.path());
    f.rebuild().unwrap();
    let big = vec![7u8; 4000];
    let per_segment = (8 << 20) / 4064;
    let mut id = 0;
    // Fill most of the first segment, moving each message as it comes.
    for _ in 0..per_segment - 1 {
        id += 1;
        f.append(&msg(id, id, &big)).unwrap();
        f.finish(0).unwrap();
    }
    // The tail is empty; the next two start a second segment and a third.
    for _ in 0..per_segment + 1 {
        id += 1;
        f.append(&msg(id, id, &big)).unwrap();
        f.finish(0).unwrap();
    }
    f.settle().unwrap();
    let segs = std::fs::read_dir(d.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert_eq!(segs, 1, "only the tail is left");
}
