//! In-process costs of the ring's fast paths, one thread publishing and
//! receiving in turn (so each figure is publish + receive of one message,
//! or of one batch, with no cross-core traffic): publish + try_receive,
//! reserve/commit (claim, write in place, commit), batches, fan-out to 1
//! and 4 groups (the whole and the producer's share), ack=manual.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use shmq::{Ack, ConsumerOptions, Options, Queue, Start};

fn queue(dir: &tempfile::TempDir, name: &str, groups: &[&str]) -> Queue {
    let opts = Options::new().dir(dir.path()).slots(4096).slot_size(1024);
    let q = Queue::create(name, &opts).expect("create");
    for g in groups {
        q.create_group(g, Start::Earliest).expect("group");
    }
    q
}

fn publish_receive(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("publish+receive");
    for size in [8usize, 64, 1024] {
        let q = queue(&dir, &format!("pr{size}"), &["g"]);
        let mut p = q.producer().expect("producer");
        let mut cons = q.consumer("g", ConsumerOptions::new()).expect("consumer");
        let payload = vec![7u8; size];
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                p.publish(&payload).expect("publish");
                let m = cons.try_receive().expect("receive").expect("a message");
                std::hint::black_box(m.payload()[0]);
            })
        });
    }
    group.finish();
}

fn reserve_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = queue(&dir, "rc", &["g"]);
    let mut p = q.producer().expect("producer");
    let mut cons = q.consumer("g", ConsumerOptions::new()).expect("consumer");
    c.bench_function("reserve+commit+receive/64", |b| {
        b.iter(|| {
            let mut r = p.reserve(64).expect("reserve");
            r.fill(3);
            r.commit().expect("commit");
            let m = cons.try_receive().expect("receive").expect("a message");
            std::hint::black_box(m.payload()[63]);
        })
    });
}

fn batches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = queue(&dir, "batch", &["g"]);
    let mut p = q.producer().expect("producer");
    let mut cons = q.consumer("g", ConsumerOptions::new()).expect("consumer");
    let payloads: Vec<[u8; 8]> = (0..256u64).map(|i| i.to_le_bytes()).collect();
    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function("publish_batch+receive_batch/256x8B", |b| {
        b.iter(|| {
            p.publish_batch(&payloads).expect("publish_batch");
            let batch = cons
                .receive_batch(payloads.len(), Duration::ZERO)
                .expect("receive_batch");
            assert_eq!(batch.len(), payloads.len());
            std::hint::black_box(batch.iter().map(|m| m.payload()[0]).sum::<u8>());
        })
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("fan-out publish cost");
    for n in [1usize, 4] {
        let names: Vec<String> = (0..n).map(|i| format!("g{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let q = queue(&dir, &format!("fan{n}"), &refs);
        let mut p = q.producer().expect("producer");
        let mut consumers: Vec<_> = refs
            .iter()
            .map(|g| q.consumer(g, ConsumerOptions::new()).expect("consumer"))
            .collect();
        let payload = [1u8; 64];
        // Publish 1024, then let every group drain them: the whole cost
        // grows with the groups (each reads every message)...
        group.throughput(Throughput::Elements(1024));
        group.bench_with_input(BenchmarkId::new("publish+drain", n), &n, |b, _| {
            b.iter(|| {
                for _ in 0..1024 {
                    p.publish(&payload).expect("publish");
                }
                for cons in &mut consumers {
                    let batch = cons.receive_batch(1024, Duration::ZERO).expect("drain");
                    assert_eq!(batch.len(), 1024);
                }
            })
        });
        // ...the producer's share (only the publishes timed) should not.
        group.bench_with_input(BenchmarkId::new("publish only", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    for _ in 0..1024 {
                        p.publish(&payload).expect("publish");
                    }
                    spent += t0.elapsed();
                    for cons in &mut consumers {
                        let batch = cons.receive_batch(1024, Duration::ZERO).expect("drain");
                        assert_eq!(batch.len(), 1024);
                    }
                }
                spent
            })
        });
    }
    group.finish();
}

fn manual_ack(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = queue(&dir, "manual", &["g"]);
    let mut p = q.producer().expect("producer");
    let mut cons = q
        .consumer("g", ConsumerOptions::new().ack(Ack::Manual))
        .expect("consumer");
    let payload = [9u8; 64];
    let mut group = c.benchmark_group("ack=manual");
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish+receive+ack/64", |b| {
        b.iter(|| {
            p.publish(&payload).expect("publish");
            let m = cons.try_receive().expect("receive").expect("a message");
            std::hint::black_box(m.payload()[0]);
            m.ack().expect("ack");
        })
    });
    group.finish();
}

/// An async receive when the message is already there, against
/// `try_receive` (the async API's promise: within 10%). The future is
/// polled once by hand with a no-op waker: with a message ready it
/// completes at its first poll, touching no runtime and no fd.
fn async_ready(c: &mut Criterion) {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("receive, the message there");
    let q = queue(&dir, "ready", &["g"]);
    let mut p = q.producer().expect("producer");
    let mut cons = q.consumer("g", ConsumerOptions::new()).expect("consumer");
    let payload = [7u8; 64];
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish+try_receive/64", |b| {
        b.iter(|| {
            p.publish(&payload).expect("publish");
            let m = cons.try_receive().expect("receive").expect("a message");
            std::hint::black_box(m.payload()[0]);
        })
    });
    let mut cx = Context::from_waker(Waker::noop());
    group.bench_function("publish+receive_async/64", |b| {
        b.iter(|| {
            p.publish(&payload).expect("publish");
            let mut f = std::pin::pin!(cons.receive_async());
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(m) => {
                    std::hint::black_box(m.expect("receive").payload()[0]);
                }
                Poll::Pending => panic!("a message was there"),
            }
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    async_ready(&mut c);
    publish_receive(&mut c);
    reserve_commit(&mut c);
    batches(&mut c);
    fan_out(&mut c);
    manual_ack(&mut c);
    c.final_summary();
}
