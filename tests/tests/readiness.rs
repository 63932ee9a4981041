//! The readiness handle (async waiters' doorbells) across processes: a
//! publish in another process makes an armed consumer's fd readable; one
//! arm, one ring; cancelled waits leave nothing behind; a waiter killed
//! while armed costs one extra system call, once; producers wait for room
//! the same way; nobody armed, no system call.

use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use shmq::{Ack, Arm, ConsumerOptions, Error, Options, Queue, Start};
use shmq_tests::{Worker, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");

/// Whether `fd` is readable within `timeout`.
fn readable(fd: impl AsFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_fd().as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, its count 1.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    n == 1 && p.revents & libc::POLLIN != 0
}

fn queue(d: &str, name: &str, slots: u64) -> Queue {
    let q = Queue::create(name, &Options::new().dir(d).slots(slots).slot_size(64)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    q
}

#[test]
fn a_publish_in_another_process_rings_an_armed_consumer_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 1024);
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    // Idle, ack=auto, no journal: armed with no timer at all.
    assert_eq!(
        c.arm().unwrap(),
        Arm::Waiting {
            recheck_after: None
        }
    );
    assert!(!readable(c.readiness().unwrap(), Duration::ZERO));
    // 20,000 messages from another process, received through the
    // try / arm / wait / drain loop an event loop runs.
    const N: u64 = 20_000;
    let producer = Worker::spawn(WORKER, &["produce", d, "q", "1", &N.to_string(), "16"]);
    let (mut got, mut waits) = (0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(120);
    while got < N {
        assert!(Instant::now() < deadline, "got {got} of {N}");
        if let Some(m) = c.try_receive().unwrap() {
            let (id, index) = shmq_tests::decode(m.payload()).unwrap();
            assert_eq!((id, index), (1, got), "in order, none lost");
            got += 1;
            continue;
        }
        match c.arm().unwrap() {
            Arm::Ready => {}
            Arm::Waiting { recheck_after } => {
                waits += 1;
                let wait = recheck_after.unwrap_or(Duration::from_secs(10));
                readable(c.readiness().unwrap(), wait);
                c.readiness().unwrap().drain();
            }
        }
    }
    producer.finish(Duration::from_secs(60));
    assert!(
        waits > 0,
        "the consumer never had to wait: the test proves nothing"
    );
}

#[test]
fn already_ready_is_said_and_one_arm_brings_one_ring() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 1024);
    let mut p = q.producer().unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    p.publish(b"x").unwrap();
    assert_eq!(c.arm().unwrap(), Arm::Ready);
    assert!(c.try_receive().unwrap().is_some());
    assert!(matches!(c.arm().unwrap(), Arm::Waiting { .. }));
    for _ in 0..100 {
        p.publish(b"y").unwrap();
    }
    assert!(readable(c.readiness().unwrap(), Duration::from_secs(10)));
    assert_eq!(c.readiness().unwrap().drain(), 1, "one arm, one ring");
    assert!(!readable(c.readiness().unwrap(), Duration::ZERO));
    // Level-triggered: it stays readable until drained.
    while c.try_receive().unwrap().is_some() {}
    assert!(matches!(c.arm().unwrap(), Arm::Waiting { .. }));
    p.publish(b"z").unwrap();
    assert!(readable(c.readiness().unwrap(), Duration::from_secs(10)));
    assert!(readable(c.readiness().unwrap(), Duration::ZERO));
    c.readiness().unwrap().drain();
    assert!(!readable(c.readiness().unwrap(), Duration::ZERO));
}

#[test]
fn cancelled_waits_and_dropped_handles_leave_no_fd_no_arm_and_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 64);
    // In a process of its own, so that no other test's fds are counted.
    let out = Worker::spawn(WORKER, &["churn", d, "q", "g"]).finish(Duration::from_secs(120));
    assert!(
        out.contains("rung 0\n"),
        "a cancelled wait left its arm: {out:?}"
    );
    let counts: Vec<usize> = out
        .lines()
        .find_map(|l| l.strip_prefix("fds "))
        .unwrap_or_else(|| panic!("{out:?}"))
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(counts[0], counts[1], "no fd left behind");
    // Disarmed: a publish rings nobody.
    let mut p = q.producer().unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    while c.try_receive().unwrap().is_some() {} // the worker's message
    assert!(matches!(c.arm().unwrap(), Arm::Waiting { .. }));
    c.disarm();
    p.publish(b"x").unwrap();
    assert!(!readable(c.readiness().unwrap(), Duration::from_millis(50)));
    drop(c);
    // Every entry is free again: 64 handles fit, the 65th is refused
    // with a reason, and one dropped makes room.
    let manual = ConsumerOptions::new().ack(Ack::Manual);
    q.create_group("m", Start::Earliest).unwrap();
    let mut many: Vec<_> = (0..64)
        .map(|_| {
            let mut c = q.consumer("m", manual).unwrap();
            c.readiness().unwrap();
            c
        })
        .collect();
    let mut extra = q.consumer("m", manual).unwrap();
    match extra.readiness() {
        Err(Error::Busy(why)) => assert!(why.contains("64 async waiters"), "{why}"),
        other => panic!("the 65th handle: {other:?}"),
    }
    many.pop();
    extra.readiness().unwrap();
}

#[test]
fn a_producer_waits_for_room_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "q",
        &Options::new()
            .dir(d)
            .slots(8)
            .slot_size(64)
            .overflow(shmq::Overflow::Reject),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    // Messages the consume worker accepts (it checks their order).
    let msg = |i| shmq_tests::encode(1, i, 16);
    for i in 0..8 {
        p.publish(&msg(i)).unwrap();
    }
    assert!(matches!(p.publish(&msg(8)), Err(Error::Full)));
    assert!(matches!(p.arm(1).unwrap(), Arm::Waiting { .. }));
    assert!(!readable(p.readiness().unwrap(), Duration::ZERO));
    // A consumer in another process frees room.
    let consumer = Worker::spawn(WORKER, &["consume", d, "q", "g", "1", "30"]);
    assert!(readable(p.readiness().unwrap(), Duration::from_secs(30)));
    p.readiness().unwrap().drain();
    p.publish(&msg(8)).unwrap();
    consumer.finish(Duration::from_secs(30));
    // With room already, arm says so.
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    c.try_receive().unwrap();
    assert_eq!(p.arm(1).unwrap(), Arm::Ready);
}

/// `sendto` calls of `shmq-worker produce` run under strace, or `None`
/// without strace (unless `SHMQ_REQUIRE_TOOLS` is set: then it fails).
fn sendtos_of_a_producer(d: &str, queue: &str, count: u64) -> Option<usize> {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("SHMQ_REQUIRE_TOOLS").is_none(),
            "strace is needed (SHMQ_REQUIRE_TOOLS is set)"
        );
        eprintln!("skipped: strace is not installed");
        return None;
    }
    let log = std::path::Path::new(d).join(format!("strace-{count}.log"));
    let out = Command::new("strace")
        .args(["-f", "-e", "trace=sendto", "-o"])
        .arg(&log)
        .args([WORKER, "produce", d, queue, "1", &count.to_string(), "16"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    Some(text.lines().filter(|l| l.contains("sendto(")).count())
}

/// Every system call a `shmq-worker publish-quiet` makes between its two
/// `getppid` markers, or `None` without strace (as above).
fn syscalls_while_publishing(d: &str, queue: &str, count: u64, keyed: bool) -> Option<Vec<String>> {
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(
            std::env::var_os("SHMQ_REQUIRE_TOOLS").is_none(),
            "strace is needed (SHMQ_REQUIRE_TOOLS is set)"
        );
        eprintln!("skipped: strace is not installed");
        return None;
    }
    let log = std::path::Path::new(d).join(format!("strace-quiet-{keyed}.log"));
    let k = if keyed { "1" } else { "0" };
    let out = Command::new("strace")
        .args(["-f", "-o"])
        .arg(&log)
        .args([WORKER, "publish-quiet", d, queue, &count.to_string(), k])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let marks: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("getppid("))
        .collect();
    assert_eq!(marks.len(), 2, "two markers in {text}");
    Some(
        lines[marks[0] + 1..marks[1]]
            .iter()
            .map(|l| l.to_string())
            .collect(),
    )
}

#[test]
fn publishing_keyed_or_not_makes_no_system_call_while_nobody_waits() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "quiet",
        &Options::new()
            .dir(d)
            .slots(1 << 14)
            .slot_size(128)
            .ordering_lanes(64),
    )
    .unwrap();
    // Groups that will lease (keyed, with lanes) and read, but nobody
    // waits while the producer runs.
    q.create_group("ordered", Start::Earliest).unwrap();
    q.create_group("audit", Start::Earliest).unwrap();
    let Some(unkeyed) = syscalls_while_publishing(d, "quiet", 5_000, false) else {
        return;
    };
    assert_eq!(
        unkeyed,
        Vec::<String>::new(),
        "unkeyed publishes made system calls"
    );
    let keyed = syscalls_while_publishing(d, "quiet", 5_000, true).unwrap();
    assert_eq!(
        keyed,
        Vec::<String>::new(),
        "keyed publishes made system calls"
    );
    // And what they published is there, keyed, for a group with lanes.
    let mut c = q
        .consumer("ordered", ConsumerOptions::new().ack(shmq::Ack::Manual))
        .unwrap();
    let mut first_keyed = None;
    for _ in 0..5_000 {
        c.receive_timeout(Duration::from_secs(10))
            .unwrap()
            .ack()
            .unwrap();
    }
    while let Some(m) = c.try_receive().unwrap() {
        if first_keyed.is_none() {
            first_keyed = m.ordering_key().map(<[u8]>::to_vec);
        }
        m.ack().unwrap();
    }
    assert_eq!(first_keyed.as_deref(), Some(&b"customer-0"[..]));
}

#[test]
fn a_waiter_killed_while_armed_costs_one_ring_and_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 1 << 16);
    // Nobody armed (a consumer with a handle, not armed): no sendto at all.
    let mut idle = q.consumer("g", ConsumerOptions::new()).unwrap();
    idle.readiness().unwrap();
    let Some(calls) = sendtos_of_a_producer(d, "q", 10_000) else {
        return;
    };
    assert_eq!(calls, 0, "no system call while nobody is armed");
    drop(idle);
    q.create_group("dead", Start::Latest).unwrap();
    let mut w = Worker::spawn(WORKER, &["arm", d, "q", "dead"]);
    w.wait_for_line("armed", Duration::from_secs(30));
    w.kill();
    // The first publish rings the dead doorbell, finds it gone and frees
    // its entry; the rest ring nobody.
    assert_eq!(sendtos_of_a_producer(d, "q", 1_000), Some(1));
    assert_eq!(sendtos_of_a_producer(d, "q", 1_000), Some(0));
    // A later waiter is woken as ever.
    let mut c = q
        .consumer("g", ConsumerOptions::new().start(Start::Latest))
        .unwrap();
    while c.try_receive().unwrap().is_some() {}
    assert!(matches!(c.arm().unwrap(), Arm::Waiting { .. }));
    let producer = Worker::spawn(WORKER, &["produce", d, "q", "2", "1", "16"]);
    assert!(readable(c.readiness().unwrap(), Duration::from_secs(30)));
    producer.finish(Duration::from_secs(30));
}

/// A consumer SIGKILLed while asleep in its futex wait left the `waiters`
/// count set for ever: every later publish made a futex wake for nobody.
/// Now the sleeper's bit is cleared once its process is seen dead (a
/// producer notices its wakes waking nobody): a few hundred wasted wakes
/// at most, then none.
#[test]
fn a_sleeper_killed_in_its_sleep_costs_publishers_a_few_wakes_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create("leak", &Options::new().dir(d).slots(1 << 14).slot_size(128)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    // A blocking consumer with nothing to read: asleep on the futex.
    let sleeper = Worker::spawn(WORKER, &["consume", d, "leak", "g", "1", "600"]);
    std::thread::sleep(Duration::from_millis(500));
    sleeper.kill();
    let Some(calls) = syscalls_while_publishing(d, "leak", 5_000, false) else {
        return;
    };
    let wakes = calls.iter().filter(|l| l.contains("futex(")).count();
    assert!(
        wakes <= 300,
        "{wakes} futex calls for 5,000 publishes after the sleeper died"
    );
    // And the next producer makes none at all.
    let Some(calls) = syscalls_while_publishing(d, "leak", 5_000, false) else {
        return;
    };
    assert!(!calls.iter().any(|l| l.contains("futex(")), "{calls:?}");
}
