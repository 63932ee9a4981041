//! shmq between processes in different PID namespaces (containers that
//! share only the queue's directory), with real kernel namespaces: each
//! "container" is a worker started under `unshare --pid --fork
//! --mount-proc --kill-child` (as root; CI runs as root). Its pid means
//! nothing outside; liveness is asked through the queue file's record
//! locks (`os/liveness.rs`), so a live worker there keeps its lease and
//! its group, and a killed one gives them back at once.
//!
//! Without root these tests say why and pass, unless `SHMQ_REQUIRE_TOOLS`
//! is set (CI sets it): then they fail.

use std::process::Command;
use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Error, Options, Queue, Start};
use shmq_tests::{Worker, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");
const LONG: Duration = Duration::from_secs(60);

/// Whether this process can make namespaces; if not, and the tools are not
/// required, the test returns early with a note.
fn namespaces_available() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("SHMQ_REQUIRE_TOOLS").is_none(),
            "unshare --pid --fork --mount-proc failed: these tests need root and util-linux"
        );
        eprintln!("skipped: unshare --pid needs root");
    }
    ok
}

/// `shmq-worker ARGS` as pid 1 of a new PID (and mount) namespace; killing
/// the returned worker (the `unshare` process) kills it too.
fn in_pid_namespace(args: &[&str]) -> Worker {
    let mut all = vec!["--pid", "--fork", "--mount-proc", "--kill-child", WORKER];
    all.extend_from_slice(args);
    Worker::spawn("unshare", &all)
}

fn manual() -> ConsumerOptions {
    ConsumerOptions::new().ack(Ack::Manual)
}

/// A worker in another PID namespace holds seq 0 (lease 60 s). A second
/// worker outside used to get it again within a second (`attempt 2`): the
/// holder's pid (1 there) was judged dead here.
#[test]
fn a_live_worker_in_another_pid_namespace_keeps_its_lease() {
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let opts = Options::new()
        .dir(dir.path())
        .lease(Duration::from_secs(60));
    let q = Queue::create("m", &opts).unwrap();
    q.create_group("m", Start::Earliest).unwrap();
    q.producer().unwrap().publish(b"job").unwrap();
    let mut holder = in_pid_namespace(&["hold", d, "m", "m"]);
    holder.wait_for_line("holding 0", LONG);
    let mut c = q.consumer("m", manual()).unwrap();
    match c.receive_timeout(Duration::from_secs(2)) {
        Err(Error::Timeout) => {}
        Ok(m) => panic!(
            "seq {} taken from a live worker (attempt {})",
            m.seq(),
            m.attempt()
        ),
        Err(e) => panic!("{e}"),
    }
    assert_eq!(q.stats().groups[0].in_flight, 1);
    // Killed there: its lease comes back here at once, not after 60 s.
    holder.kill();
    let t = Instant::now();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((m.seq(), m.attempt()), (0, 2));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    m.ack().unwrap();
}

/// An ack=auto consumer in another PID namespace: a second one outside
/// used to attach beside it (no `Busy`) and both received the same
/// messages.
#[test]
fn an_ack_auto_group_admits_one_consumer_across_pid_namespaces() {
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("a", &Options::new().dir(dir.path())).unwrap();
    q.create_group("a", Start::Earliest).unwrap();
    let mut first = in_pid_namespace(&["arm", d, "a", "a"]);
    first.wait_for_line("armed", LONG);
    match q.consumer("a", ConsumerOptions::new()) {
        Err(Error::Busy(why)) => assert!(why.contains("live consumer"), "{why}"),
        Ok(_) => panic!("a second ack=auto consumer attached"),
        Err(e) => panic!("{e}"),
    }
    first.kill();
    // Its death is seen at once from here.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match q.consumer("a", ConsumerOptions::new()) {
            Ok(_) => break,
            Err(Error::Busy(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("after the first was killed: {e}"),
        }
    }
}

/// A producer in another PID namespace that claimed a position and is
/// still writing it (here: it never commits) is live: its position is
/// aborted only after `unblock_timeout`, not at once as a dead one's.
#[test]
fn a_live_producer_in_another_pid_namespace_is_not_taken_for_dead() {
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let opts = Options::new()
        .dir(dir.path())
        .unblock_timeout(Duration::from_secs(30));
    let q = Queue::create("p", &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut claimer = in_pid_namespace(&["hold-claim", d, "p"]);
    claimer.wait_for_line("holding", LONG);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    assert!(matches!(
        c.receive_timeout(Duration::from_millis(1500)),
        Err(Error::Timeout)
    ));
    assert_eq!(q.stats().aborted, 0, "a live producer's claim was aborted");
    claimer.kill();
    // Dead now: its claim is aborted without waiting out the 30 s.
    let mut p = q.producer().unwrap();
    p.publish(b"after").unwrap();
    let m = c.receive_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(m.payload(), b"after");
    assert_eq!(q.stats().aborted, 1);
}

/// Two queues of one name in two directories, each spilling to its
/// default spill directory: making, using and removing the second leaves
/// the first's segments alone (they used to share `/var/tmp/shmq-UID/NAME`,
/// and the second's create deleted the first's spilled messages). Given
/// one spill directory explicitly, the second is refused at create.
#[test]
fn two_queues_of_one_name_never_touch_each_others_spill() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let name = format!("orders-{}", std::process::id());
    let spill = |d: &std::path::Path| {
        Options::new()
            .dir(d)
            .slots(16)
            .overflow(shmq::Overflow::Spill)
            .journal(shmq::Retention::new(Duration::from_secs(3600), 1 << 30))
    };
    let qa = Queue::create(&name, &spill(a.path())).unwrap();
    qa.create_group("g", Start::Earliest).unwrap();
    let mut p = qa.producer().unwrap();
    for i in 0..100u32 {
        p.publish(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(qa.stats().spilled, 84);
    let qb = Queue::create(&name, &spill(b.path())).unwrap();
    assert_ne!(qa.spill_dir(), qb.spill_dir());
    qb.create_group("g", Start::Earliest).unwrap();
    qb.producer().unwrap().publish(b"b").unwrap();
    drop(qb);
    Queue::remove(&name, &spill(b.path())).unwrap();
    let mut c = qa.consumer("g", ConsumerOptions::new()).unwrap();
    for i in 0..100u32 {
        let m = c.receive_timeout(LONG).unwrap();
        assert_eq!(m.payload(), i.to_le_bytes());
    }
    drop(c);
    // The journal kept all 100 too.
    let mut r = qa.consumer("g", ConsumerOptions::new()).unwrap();
    assert_eq!(r.seek(shmq::Seek::Earliest).unwrap(), 0);
    assert_eq!(
        r.receive_timeout(LONG).unwrap().payload(),
        0u32.to_le_bytes()
    );
    drop(r);
    // One spill directory given to both: the second is refused, and the
    // first is untouched.
    let shared = a.path().join("one-spill");
    let qx = Queue::create("x", &spill(a.path()).spill_dir(&shared)).unwrap();
    match Queue::create("x", &spill(b.path()).spill_dir(&shared)) {
        Err(Error::Exists(why)) => {
            assert!(why.contains("belongs to queue"), "{why}");
            assert!(
                why.contains(&a.path().join("x.shmq").display().to_string()),
                "{why}"
            );
        }
        other => panic!("a second queue got another's spill directory: {other:?}"),
    }
    assert!(shared.join("queue").exists());
    drop(qx);
    drop(p);
    drop(qa);
    Queue::remove(&name, &spill(a.path())).unwrap();
}

/// A producer in another mount namespace that sees the queue's directory
/// at another path and has its own `/var/tmp` (a container with one shared
/// volume): the queue's spill directory, as it sees it, is not the
/// queue's. It used to spill there (`published 5000`) and the consumer
/// outside got none of it ("spill segment is missing"). Now it does not
/// spill: it waits for ring room instead, and every message arrives.
#[test]
fn a_producer_that_sees_another_spill_directory_does_not_spill_there() {
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let view = tempfile::tempdir().unwrap();
    let opts = Options::new()
        .dir(dir.path())
        .slots(64)
        .overflow(shmq::Overflow::Spill);
    let q = Queue::create("sq", &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let script = format!(
        "mount -t tmpfs tmpfs /var/tmp && mount --bind {} {} && exec {WORKER} produce {} sq 1 5000 16",
        s(dir.path()),
        s(view.path()),
        s(view.path()),
    );
    let producer = Worker::spawn("unshare", &["--mount", "sh", "-c", &script]);
    // The ring fills; the producer would spill now, and waits instead.
    let deadline = Instant::now() + LONG;
    while q.stats().published < 64 {
        assert!(
            Instant::now() < deadline,
            "the producer never filled the ring"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = q.stats();
    assert_eq!((st.published, st.spilled), (64, 0), "{st:?}");
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let mut n = 0u64;
    while n < 5000 {
        let m = c
            .receive_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("after {n}: {e}; {:?}", q.stats()));
        assert_eq!(shmq_tests::decode(m.payload()), Some((1, n)));
        n += 1;
    }
    producer.finish(LONG);
    let st = q.stats();
    assert_eq!(
        (st.spilled, st.spill_lost, st.published),
        (0, 0, 5000),
        "{st:?}"
    );
    drop(c);
    drop(q);
    Queue::remove("sq", &opts).unwrap();
}

/// `shmq-worker ARGS` in a new network namespace (and nothing else new):
/// a container of Docker or Podman without a shared network.
fn in_net_namespace(args: &[&str]) -> Worker {
    let mut all = vec!["--net", WORKER];
    all.extend_from_slice(args);
    Worker::spawn("unshare", &all)
}

/// An async consumer (tokio) in another network namespace is woken by a
/// producer here: its doorbell used to be an abstract socket, which lives
/// in a network namespace, and it returned only at its 10 s timeout.
#[test]
fn an_async_consumer_in_another_network_namespace_is_woken() {
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("n", &Options::new().dir(dir.path())).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut w = in_net_namespace(&["await-one", d, "n", "g"]);
    let out = w.read_all();
    // Armed well before the publish (it prints, then arms in microseconds).
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    q.producer().unwrap().publish(b"wake").unwrap();
    let deadline = t + LONG;
    while !w.exited() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = t.elapsed();
    let out = out.join().unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["waiting", "got 0"],
        "{out}"
    );
    assert!(took < Duration::from_secs(3), "woken after {took:?}");
}

/// An async producer (tokio) in another network namespace, waiting for
/// room in a full ring, is woken by a consumer here.
#[test]
fn an_async_producer_in_another_network_namespace_is_woken() {
    if !namespaces_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("r", &Options::new().dir(dir.path()).slots(4)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    for _ in 0..4 {
        p.publish(b"full").unwrap();
    }
    let mut w = in_net_namespace(&["await-room", d, "r"]);
    let out = w.read_all();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    c.receive().unwrap();
    drop(c);
    let deadline = t + LONG;
    while !w.exited() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = t.elapsed();
    let out = out.join().unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["waiting", "published 4"],
        "{out}"
    );
    assert!(took < Duration::from_secs(3), "woken after {took:?}");
}
