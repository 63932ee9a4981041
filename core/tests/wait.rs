//! Every wait strategy delivers what `receive`, `receive_timeout` and
//! `receive_batch` promise: every message once, in order, from a producer
//! on another thread that now and then pauses (so the consumer waits in
//! each phase of its strategy: spinning, yielding, sleeping), and a timeout
//! on an empty queue.

use std::time::Duration;

use shmq::{ConsumerOptions, Error, Options, Queue, Start, Wait};

const N: u64 = 20_000;

fn check(wait: Wait) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new().dir(dir.path()).slots(64).slot_size(16);
    let q = Queue::create("w", &opts).unwrap();
    q.create_group("g", Start::Earliest).unwrap();
    let mut c = q.consumer("g", ConsumerOptions::new().wait(wait)).unwrap();
    assert!(matches!(
        c.receive_timeout(Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    assert!(
        c.receive_batch(8, Duration::from_millis(5))
            .unwrap()
            .is_empty()
    );
    let producer = {
        let mut p = q.producer().unwrap();
        std::thread::spawn(move || {
            for i in 0..N {
                p.publish(&i.to_le_bytes()).unwrap();
                if i % 2_000 == 0 {
                    // Long enough for the consumer to run out of spinning
                    // (and, with SpinFutex, to fall asleep).
                    std::thread::sleep(Duration::from_millis(3));
                }
            }
        })
    };
    let mut expect = 0u64;
    while expect < N {
        // Take turns: receive, receive_timeout, receive_batch.
        match expect % 3 {
            0 => {
                let m = c.receive().unwrap();
                assert_eq!(m.payload(), expect.to_le_bytes());
                expect += 1;
            }
            1 => {
                let m = c.receive_timeout(Duration::from_secs(60)).unwrap();
                assert_eq!(m.payload(), expect.to_le_bytes());
                expect += 1;
            }
            _ => {
                let b = c.receive_batch(16, Duration::from_secs(60)).unwrap();
                assert!(!b.is_empty());
                for m in b.iter() {
                    assert_eq!(m.payload(), expect.to_le_bytes(), "{wait:?}");
                    expect += 1;
                }
            }
        }
    }
    producer.join().unwrap();
    assert!(c.try_receive().unwrap().is_none());
    assert_eq!(ConsumerOptions::new().wait, Wait::SpinFutex);
}

#[test]
fn busy_spin_receives_everything_in_order() {
    check(Wait::BusySpin);
}

#[test]
fn spin_yield_receives_everything_in_order() {
    check(Wait::SpinYield);
}

#[test]
fn spin_futex_receives_everything_in_order() {
    check(Wait::SpinFutex);
}
