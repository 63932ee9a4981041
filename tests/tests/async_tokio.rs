//! The async API on tokio: a task receives 100,000 messages from a
//! producer in another process, in order and none lost; 100 tasks wait
//! on 10 queues at once in one runtime thread; cancelled waits (timeouts,
//! lost `select!` branches) lose nothing and leave nothing behind; an
//! async producer waits for room; an ack=manual consumer awaits
//! redeliveries (a nack, a delayed nack) and a redriven dead letter; an
//! async producer of a message longer than the room left waits without
//! holding the thread.

use std::time::Duration;

use shmq::{ConsumerOptions, Options, Queue, Start};
use shmq_tests::{Worker, decode, s};

const WORKER: &str = env!("CARGO_BIN_EXE_shmq-worker");

fn queue(d: &str, name: &str, slots: u64) -> Queue {
    let q = Queue::create(name, &Options::new().dir(d).slots(slots).slot_size(64)).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    q
}

/// A single-threaded runtime with its I/O and time drivers: every wait of
/// a test shares one thread.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_tokio_task_receives_100_000_messages_from_another_process_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 1024);
    let rt = runtime();
    const N: u64 = 100_000;
    let producer = Worker::spawn(WORKER, &["produce", d, "q", "1", &N.to_string(), "16"]);
    let got = rt.block_on(async {
        let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
        let mut n = 0u64;
        while n < N {
            let m = tokio::time::timeout(Duration::from_secs(60), c.receive_async())
                .await
                .expect("a message within a minute")
                .unwrap();
            assert_eq!(decode(m.payload()), Some((1, n)), "in order, none lost");
            n += 1;
        }
        n
    });
    assert_eq!(got, N);
    producer.finish(Duration::from_secs(60));
}

#[test]
fn a_hundred_tasks_wait_on_ten_queues_in_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let rt = runtime();
    let queues: Vec<Queue> = (0..10)
        .map(|i| {
            let q = queue(d, &format!("q{i}"), 256);
            for g in 0..10 {
                q.create_group(&format!("t{g}"), Start::Earliest).unwrap();
            }
            q
        })
        .collect();
    rt.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let tasks: Vec<_> = queues
                    .iter()
                    .flat_map(|q| (0..10).map(move |g| (q.clone(), g)))
                    .map(|(q, g)| {
                        tokio::task::spawn_local(async move {
                            let mut c = q
                                .consumer(&format!("t{g}"), ConsumerOptions::new())
                                .unwrap();
                            let mut seen = Vec::new();
                            for _ in 0..5 {
                                let m = c.receive_async().await.unwrap();
                                seen.push(m.payload().to_vec());
                            }
                            seen
                        })
                    })
                    .collect();
                // Every task is asleep on its doorbell before anything comes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let producers: Vec<Worker> = (0..10)
                    .map(|i| {
                        Worker::spawn(WORKER, &["produce", d, &format!("q{i}"), "7", "5", "16"])
                    })
                    .collect();
                for t in tasks {
                    let seen = tokio::time::timeout(Duration::from_secs(60), t)
                        .await
                        .expect("every task gets its messages")
                        .unwrap();
                    let ids: Vec<_> = seen.iter().map(|p| decode(p).unwrap()).collect();
                    assert_eq!(ids, (0..5).map(|i| (7, i)).collect::<Vec<_>>());
                }
                for p in producers {
                    p.finish(Duration::from_secs(30));
                }
            })
            .await;
    });
}

#[test]
fn cancelled_waits_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 1024);
    let rt = runtime();
    rt.block_on(async {
        let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
        let mut p = q.producer().unwrap();
        // 10,000 waits given up: by a timeout, and by losing a select!.
        for i in 0..10_000u32 {
            if i % 2 == 0 {
                assert!(
                    tokio::time::timeout(Duration::ZERO, c.receive_async())
                        .await
                        .is_err()
                );
            } else {
                tokio::select! {
                    biased;
                    _ = std::future::ready(()) => {}
                    _ = c.receive_async() => panic!("nothing was published"),
                }
            }
        }
        assert!(
            c.receive_async_timeout(Duration::from_millis(20))
                .await
                .unwrap()
                .is_none()
        );
        // Nothing was taken by the cancelled waits: every message arrives.
        for i in 0..100u64 {
            p.publish(&i.to_le_bytes()).unwrap();
        }
        for i in 0..100u64 {
            let m = c.receive_async().await.unwrap();
            assert_eq!(m.payload(), i.to_le_bytes());
        }
        let batch = {
            p.publish(b"a").unwrap();
            p.publish(b"b").unwrap();
            c.receive_batch_async(10).await.unwrap().len()
        };
        assert_eq!(batch, 2);
    });
}

#[test]
fn an_async_producer_waits_for_room() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 8);
    let rt = runtime();
    rt.block_on(async {
        let mut p = q.producer().unwrap();
        for i in 0..8u64 {
            p.publish_async(&shmq_tests::encode(1, i, 16))
                .await
                .unwrap();
        }
        // Full: the ninth waits, without blocking the runtime, until a
        // consumer in another process reads.
        let consumer = Worker::spawn(WORKER, &["consume", d, "q", "g", "9", "30"]);
        let ninth = shmq_tests::encode(1, 8, 16);
        let meta = shmq::Meta::new().type_id(3);
        let seq =
            tokio::time::timeout(Duration::from_secs(30), p.publish_with_async(&ninth, &meta))
                .await
                .expect("room within 30 s")
                .unwrap();
        assert_eq!(seq, 8);
        let out = consumer.finish(Duration::from_secs(30));
        assert!(out.contains("count 9"), "{out}");
        // Cancelled while waiting for room: nothing was published.
        for i in 9..17u64 {
            p.publish_async(&shmq_tests::encode(1, i, 16))
                .await
                .unwrap();
        }
        let before = q.stats().published;
        assert!(
            tokio::time::timeout(Duration::from_millis(50), p.publish_async(b"never"))
                .await
                .is_err()
        );
        assert_eq!(q.stats().published, before);
    });
}

#[test]
fn an_async_manual_consumer_gets_redeliveries_and_redriven_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = queue(d, "q", 64);
    let rt = runtime();
    rt.block_on(async {
        let mut p = q.producer().unwrap();
        let mut c = q
            .consumer("g", ConsumerOptions::new().ack(shmq::Ack::Manual))
            .unwrap();
        let within = Duration::from_secs(10);
        let first = p.publish(b"first").unwrap();
        let second = p.publish(b"second").unwrap();
        // A nack: the same message again, its attempt counted.
        let m = tokio::time::timeout(within, c.receive_async())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.seq(), m.attempt()), (first, 1));
        m.nack(shmq::Nack::Requeue).unwrap();
        let m = tokio::time::timeout(within, c.receive_async())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.seq(), m.attempt()), (first, 2));
        m.ack().unwrap();
        // A delayed nack: nothing is there until it comes due, so the
        // future sleeps, and wakes when the delay has run out.
        let m = tokio::time::timeout(within, c.receive_async())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.seq(), second);
        m.nack(shmq::Nack::RequeueAfter(Duration::from_millis(300)))
            .unwrap();
        let asked = std::time::Instant::now();
        let m = tokio::time::timeout(within, c.receive_async())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((m.seq(), m.attempt()), (second, 2));
        assert!(
            asked.elapsed() >= Duration::from_millis(250),
            "not before its delay"
        );
        m.nack(shmq::Nack::DeadLetter).unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(100), c.receive_async())
                .await
                .is_err(),
            "nothing left to deliver"
        );
        // Redriven by someone else while the consumer awaits: it wakes and
        // gets it back.
        let dir_of_queue = d.to_string();
        let redriver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let q = Queue::open_with("q", &Options::new().dir(&dir_of_queue)).unwrap();
            q.dlq().redrive(None).unwrap()
        });
        let m = tokio::time::timeout(within, c.receive_async())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(redriver.join().unwrap(), 1);
        assert_eq!(m.payload(), b"second");
        m.ack().unwrap();
        assert_eq!(q.dlq().len(), 0);
    });
}

#[test]
fn an_idle_async_consumer_wakes_for_a_scheduled_message_with_nothing_else_happening() {
    // The scheduler is another process, gone before the message is due:
    // nothing rings for it, and the awaiting task moves it in at its time.
    let dir = tempfile::tempdir().unwrap();
    let d = s(dir.path());
    let q = Queue::create(
        "q",
        &Options::new()
            .dir(d)
            .slots(16)
            .slot_size(64)
            .spill_dir(dir.path().join("store")),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let rt = runtime();
    rt.block_on(async {
        let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
        let t = std::time::Instant::now();
        let waiting = c.receive_async();
        Worker::spawn(WORKER, &["schedule", d, "q", "1", "1", "300"])
            .finish(Duration::from_secs(60));
        let m = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("woken for the due message")
            .unwrap();
        assert_eq!(decode(m.payload()), Some((1, 0)));
        assert!(t.elapsed() >= Duration::from_millis(300));
    });
}

/// A message longer than the room left (it takes several slots) does not
/// make an async producer spin: it waits, yielding the runtime's one
/// thread, and a consumer task on that thread frees the room. (It used to
/// arm for one slot, find it, try again and fail, for ever, so neither
/// the consumer task nor its own timeout ever ran.)
#[test]
fn an_async_producer_of_a_long_message_yields_to_the_consumer_on_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::create(
        "q",
        &Options::new()
            .dir(dir.path())
            .slots(64)
            .slot_size(64)
            .max_message_size(400),
    )
    .unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut p = q.producer().unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    // 62 of 64 slots taken: two left, and the long message needs four.
    for i in 0..62u8 {
        p.publish(&[i; 16]).unwrap();
    }
    let long = vec![9u8; 400];
    // Armed for what the refused publish needs, not for one slot.
    assert!(matches!(p.try_publish(&long), Err(shmq::Error::Timeout)));
    assert!(matches!(p.arm(1).unwrap(), shmq::Arm::Waiting { .. }));
    p.disarm();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = runtime();
        let r = rt.block_on(async {
            // No consumer runs: the wait ends by its own timeout.
            let waited =
                tokio::time::timeout(Duration::from_millis(200), p.publish_async(&long)).await;
            assert!(waited.is_err(), "{waited:?}");
            // A consumer task on the same thread makes room.
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < 63 {
                    got.push(c.receive_async().await.unwrap().payload().len());
                }
                got
            });
            let seq = tokio::time::timeout(Duration::from_secs(10), p.publish_async(&long))
                .await
                .expect("room within 10 s")
                .unwrap();
            let got = reader.await.unwrap();
            (seq, got)
        });
        let _ = done.send(r);
    });
    let (seq, got) = finished
        .recv_timeout(Duration::from_secs(30))
        .expect("the runtime's thread came back (an async publish spun)");
    assert_eq!(seq, 62);
    let mut want = vec![16; 62];
    want.push(400);
    assert_eq!(got, want);
}

/// CPU time this thread has used (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A dead letter redriven to the group waits for `receive`: a batch's
/// wait, sync or async, sleeps through it instead of being told "work
/// came" for ever (it spun for its whole timeout, and the async one
/// without end, yielding only its tokio budget).
#[test]
fn a_batch_wait_sleeps_through_a_redriven_dead_letter_that_receive_takes() {
    let dir = tempfile::tempdir().unwrap();
    let q = queue(s(dir.path()), "q", 64);
    {
        let manual = ConsumerOptions::new().ack(shmq::Ack::Manual);
        let mut c = q.consumer("g", manual).unwrap();
        q.producer().unwrap().publish(b"again").unwrap();
        c.receive().unwrap().nack(shmq::Nack::DeadLetter).unwrap();
    }
    q.dlq().redrive(None).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new()).unwrap();
    let wall = std::time::Instant::now();
    let cpu = thread_cpu();
    assert_eq!(
        c.receive_batch(8, Duration::from_millis(300))
            .unwrap()
            .len(),
        0
    );
    let rt = runtime();
    rt.block_on(async {
        let waited =
            tokio::time::timeout(Duration::from_millis(300), c.receive_batch_async(8)).await;
        assert!(waited.is_err(), "nothing is in the ring");
    });
    let (wall, cpu) = (wall.elapsed(), thread_cpu() - cpu);
    assert!(
        cpu < wall / 4,
        "the batch waits used {cpu:?} of CPU in {wall:?}: they spun"
    );
    // `receive` takes the letter; the ring's next message comes in a batch.
    assert_eq!(c.receive().unwrap().payload(), b"again");
    q.producer().unwrap().publish(b"next").unwrap();
    rt.block_on(async {
        let b = tokio::time::timeout(Duration::from_secs(10), c.receive_batch_async(8))
            .await
            .expect("a batch within 10 s")
            .unwrap();
        let got: Vec<Vec<u8>> = b.iter().map(|m| m.payload().to_vec()).collect();
        assert_eq!(got, [b"next".to_vec()]);
    });
}
