//! Nobody gets in where they don't belong: a queue file or a spill,
//! journal or DLQ directory that another user owns, or that others may
//! write, is refused (naming the path and the owner) unless the options
//! trust that owner or group; the default spill directory is this user's
//! own. Another user's files are made here by `chown` to a uid that is not
//! ours, which needs root; elsewhere the tests say so and pass unchecked.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use shmq::{Error, Options, Overflow, Queue, Retention};

const OTHER: u32 = 4242;

fn root() -> bool {
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    if me != 0 {
        eprintln!("skipped: needs root to give files to another user");
    }
    me == 0
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn spill_opts(dir: &Path, spill: &Path) -> Options {
    Options::new()
        .dir(dir)
        .slots(16)
        .slot_size(64)
        .overflow(Overflow::Spill)
        .spill_dir(spill)
        .spill_segment_size(64 << 10)
}

fn refused(r: shmq::Result<Queue>, path: &Path, why: &str) {
    let err = r.unwrap_err();
    let Error::Io { context, source } = &err else {
        panic!("not Io: {err:?}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    assert!(context.contains(&path.display().to_string()), "{context}");
    assert!(context.contains(why), "{context}");
}

#[test]
fn a_spill_dir_of_another_user_is_refused_unless_trusted() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let spill = t.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    chown(&spill, OTHER, OTHER);
    refused(
        Queue::create("victim", &spill_opts(t.path(), &spill)),
        &spill,
        "owned by user 4242 (as this process sees it), not this user",
    );
    refused(
        Queue::create("victim", &spill_opts(t.path(), &spill)),
        &spill,
        "trust that owner (Options::trust_owner(4242), shmq --trust-owner 4242)",
    );
    // An owner unmapped in a user namespace shows as the overflow uid: the
    // error says what that is.
    chown(&spill, 65534, 65534);
    refused(
        Queue::create("victim", &spill_opts(t.path(), &spill)),
        &spill,
        "owned by uid 65534 as this process sees it (the overflow uid",
    );
    chown(&spill, OTHER, OTHER);
    assert!(
        !t.path().join("victim.shmq").exists(),
        "a queue file was made anyway"
    );
    // Said to trust that owner (a queue shared on purpose): it works.
    let q = Queue::create("victim", &spill_opts(t.path(), &spill).trust_owner(OTHER)).unwrap();
    q.producer().unwrap().publish(b"x").unwrap();
    drop(q);
    // Opened again without the trust: refused again.
    refused(
        Queue::open_with("victim", &Options::new().dir(t.path())),
        &spill,
        "owned by user 4242",
    );
    assert!(Queue::open_with("victim", &Options::new().dir(t.path()).trust_group(OTHER)).is_ok());
}

#[test]
fn a_spill_dir_others_may_write_is_refused() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let spill = t.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    chmod(&spill, 0o777);
    refused(
        Queue::create("ww", &spill_opts(t.path(), &spill)),
        &spill,
        "writable by every user",
    );
    // The advice is what helps, not a trust option that cannot.
    refused(
        Queue::create("ww", &spill_opts(t.path(), &spill).trust_owner(0)),
        &spill,
        &format!(
            "no trust option makes that safe (anyone could replace the files); take others' write permission away (chmod o-w {})",
            spill.display()
        ),
    );
    // Sticky changes nothing where the segment files are.
    chmod(&spill, 0o1777);
    refused(
        Queue::create("ww", &spill_opts(t.path(), &spill)),
        &spill,
        "writable by every user",
    );
    chmod(&spill, 0o770);
    refused(
        Queue::create("ww", &spill_opts(t.path(), &spill)),
        &spill,
        "writable by group",
    );
    let gid = std::fs::metadata(&spill).unwrap().gid();
    assert!(Queue::create("ww", &spill_opts(t.path(), &spill).trust_group(gid)).is_ok());
}

#[test]
fn a_directory_above_that_another_user_controls_is_refused() {
    if !root() {
        return;
    }
    // The attack on the old default: mallory makes /var/tmp/shmq (0777)
    // before the victim's first spill; the victim's own directory inside
    // it could be moved away at any time.
    let t = tempfile::tempdir().unwrap();
    let planted = t.path().join("shmq");
    std::fs::create_dir(&planted).unwrap();
    chown(&planted, OTHER, OTHER);
    chmod(&planted, 0o777);
    let spill = planted.join("victimq");
    refused(
        Queue::create("victimq", &spill_opts(t.path(), &spill)),
        &planted,
        "owned by user 4242",
    );
    // A sticky, root-owned directory above (as /var/tmp) is fine.
    let sticky = t.path().join("vartmp");
    std::fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    let q = Queue::create("ok", &spill_opts(t.path(), &sticky.join("mine"))).unwrap();
    let mode = std::fs::metadata(sticky.join("mine")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700, "the spill directory is made private");
    drop(q);
}

#[test]
fn a_queue_file_of_another_user_is_refused_unless_trusted() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let o = Options::new()
        .dir(t.path())
        .slots(16)
        .slot_size(64)
        .mode(0o660);
    drop(Queue::create("shared", &o).unwrap());
    let file = t.path().join("shared.shmq");
    chown(&file, OTHER, OTHER);
    refused(Queue::open_with("shared", &o), &file, "owned by user 4242");
    // A queue shared between users on purpose: its users trust its owner
    // or its group.
    assert!(Queue::open_with("shared", &o.clone().trust_owner(OTHER)).is_ok());
    assert!(Queue::open_with("shared", &o.clone().trust_group(OTHER)).is_ok());
    // Its mode is its owner's choice: shared with everyone, still trusted.
    chmod(&file, 0o666);
    assert!(Queue::open_with("shared", &o.clone().trust_owner(OTHER)).is_ok());
    // A directory above it that another user controls: refused.
    let t2 = tempfile::tempdir().unwrap();
    let theirs = t2.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let o2 = Options::new().dir(&theirs).slots(16).slot_size(64);
    drop(Queue::create("q", &o2).unwrap());
    chown(&theirs, OTHER, OTHER);
    refused(Queue::open_with("q", &o2), &theirs, "owned by user 4242");
    refused(Queue::create("q2", &o2), &theirs, "owned by user 4242");
}

#[test]
fn a_journal_dir_of_another_user_is_refused() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let spill = t.path().join("spill");
    let o = Options::new()
        .dir(t.path())
        .slots(16)
        .slot_size(64)
        .spill_dir(&spill)
        .spill_segment_size(64 << 10)
        .journal(Retention::new(std::time::Duration::from_secs(60), 1 << 20));
    let q = Queue::create("j", &o).unwrap();
    q.producer().unwrap().publish(b"x").unwrap();
    q.flush().unwrap();
    drop(q);
    let journal = spill.join("journal");
    assert!(journal.is_dir());
    chown(&journal, OTHER, OTHER);
    refused(Queue::open_with("j", &o), &journal, "owned by user 4242");
}

#[test]
fn the_default_spill_dir_is_this_users_own() {
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    let name = format!("access-default-{}", std::process::id());
    let root = Path::new(&format!("/var/tmp/shmq-{uid}")).to_path_buf();
    // A queue in /dev/shm spills to ROOT/NAME; one in any other directory
    // to ROOT/NAME-HASH, so that two queues of one name never share one.
    assert_eq!(
        Options::new().dir("/dev/shm").get_spill_dir(&name),
        root.join(&name)
    );
    let t = tempfile::tempdir().unwrap();
    let o = Options::new()
        .dir(t.path())
        .slots(16)
        .slot_size(64)
        .overflow(Overflow::Spill)
        .spill_segment_size(64 << 10);
    let want = o.get_spill_dir(&name);
    assert_eq!(want.parent(), Some(root.as_path()));
    let leaf = want.file_name().unwrap().to_str().unwrap();
    assert!(
        leaf.starts_with(&format!("{name}-")) && leaf.len() == name.len() + 9,
        "{leaf}"
    );
    let other = tempfile::tempdir().unwrap();
    assert_ne!(Options::new().dir(other.path()).get_spill_dir(&name), want);
    let q = Queue::create(&name, &o).unwrap();
    assert_eq!(q.spill_dir().as_deref(), Some(want.as_path()));
    let root = want.parent().unwrap();
    for d in [root, want.as_path()] {
        let m = std::fs::metadata(d).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o700), "{}", d.display());
    }
    drop(q);
    Queue::remove(&name, &o).unwrap();
    let _ = std::fs::remove_dir_all(&want);
}
