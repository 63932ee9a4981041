//! A worker process for the cross-process tests.
//!
//! ```text
//! shmq-worker produce DIR QUEUE ID COUNT SIZE     publish COUNT messages
//! shmq-worker consume DIR QUEUE GROUP COUNT SECS  receive COUNT, check order
//! shmq-worker hold-claim DIR QUEUE                reserve a slot, never commit
//! shmq-worker publish-batch DIR QUEUE COUNT       one publish_batch of COUNT
//!                                                 messages; print `published FIRST`
//! shmq-worker open DIR QUEUE                      open and print the stats
//! shmq-worker redrive DIR QUEUE                   redrive every dead letter; print
//!                                                 `redrove N`
//! shmq-worker work DIR QUEUE GROUP                ack=manual: print `got SEQ ATTEMPT`
//!                                                 per delivery, then ack (nack a
//!                                                 payload starting "poison"); exit
//!                                                 after 3 s without a message
//! shmq-worker produce-large DIR QUEUE COUNT SIZE  reserve and write in place COUNT
//!                                                 messages of SIZE bytes
//!                                                 (`fill_large`), printing
//!                                                 `sent i` after each commit
//! shmq-worker mixed DIR COUNT                     in DIR (a 64 MB tmpfs), a queue
//!                                                 of a 32 MiB ring: COUNT messages,
//!                                                 every tenth an 8 MiB frame, the
//!                                                 rest 16-byte events, through a
//!                                                 producer and a consumer thread;
//!                                                 prints `ok FRAMES EVENTS FILE_SIZE`
//! shmq-worker hold-large DIR QUEUE GROUP          ack=manual: take one message,
//!                                                 check it whole, print
//!                                                 `holding SEQ`, never ack
//! shmq-worker produce-keyed DIR QUEUE ID COUNT    publish COUNT messages with keys
//!                                                 "ID-i", printing `sent i` after each
//! shmq-worker hold DIR QUEUE GROUP                ack=manual: take one message,
//!                                                 print `holding SEQ`, never ack
//! shmq-worker await-one DIR QUEUE GROUP           tokio: print `waiting`, then
//!                                                 receive_async (10 s at most): print
//!                                                 `got SEQ` or `nothing`
//! shmq-worker await-room DIR QUEUE                tokio: print `waiting`, then
//!                                                 publish_async (10 s at most): print
//!                                                 `published SEQ` or `nothing`
//! shmq-worker hold-ack DIR QUEUE GROUP FLAG       ack=manual: take one message,
//!                                                 print `holding SEQ`, ack it once
//!                                                 the file FLAG exists
//! shmq-worker produce-logged DIR QUEUE ID COUNT SIZE  publish COUNT messages,
//!                                                 printing `sent i` after each
//! shmq-worker arm DIR QUEUE GROUP                 arm a readiness handle (the queue
//!                                                 empty), print `armed`, wait forever
//! shmq-worker churn DIR QUEUE GROUP               10,000 arms taken back, 10,000
//!                                                 async waits cancelled (tokio), then
//!                                                 a publish (prints `rung N`: 0 is no
//!                                                 arm left), 1,000 readiness handles
//!                                                 made and dropped; prints `fds BEFORE AFTER`
//! shmq-worker ordered DIR QUEUE GROUP SEED        ack=manual, keyed messages: per
//!                                                 delivery sleep 0-2 ms, nack ~1 in 8,
//!                                                 else ack and print
//!                                                 `acked KEY SEQ START_NS END_NS`; exit
//!                                                 after 3 s without a message
//! shmq-worker work-ids DIR QUEUE GROUP            as `work`, printing
//!                                                 `got SEQ ATTEMPT ID INDEX`
//! shmq-worker envelope-produce DIR QUEUE TAG COUNT  publish COUNT messages "TAG-i"
//!                                                 with ordering key "key-TAG-i" and
//!                                                 headers lang=TAG, lang=again,
//!                                                 trace=t-TAG (python/tests/
//!                                                 test_cross_envelope.py)
//! shmq-worker envelope-dump DIR QUEUE GROUP COUNT SEEK  receive COUNT (after a seek
//!                                                 to seq SEEK, unless it is "-"),
//!                                                 printing `SEQ\tKEY\tPAYLOAD` and
//!                                                 `\tNAME=VALUE` per header
//! shmq-worker dead-letter DIR QUEUE GROUP         receive one message (ack=manual)
//!                                                 and nack it to the DLQ
//! shmq-worker purge DIR QUEUE                      purge the DLQ
//! shmq-worker publish-quiet DIR QUEUE COUNT KEYED  publish COUNT messages (KEYED=1:
//!                                                 with an ordering key and two
//!                                                 headers) between two getppid(2)
//!                                                 calls, the markers a strace of
//!                                                 "no system call" looks between
//! shmq-worker schedule DIR QUEUE ID COUNT DELAY_MS  schedule COUNT messages
//!                                                 (producer ID's, indices 0..)
//!                                                 DELAY_MS from now, printing
//!                                                 `scheduled I ID` after each
//! ```
//! `consume` checks that each producer's messages arrive in its order with
//! no gap and no duplicate, and prints one line per producer:
//! `producer ID first LAST count N`. A violation exits with status 3.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::io::Write;

use shmq::{Ack, ConsumerOptions, Error, Options, Queue};
use shmq_tests::{decode, encode};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let opts = Options::new().dir(a(1));
    match a(0) {
        "redrive" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let n = q.dlq().redrive(None).unwrap_or_else(|e| fail(e));
            println!("redrove {n}");
        }
        "dead-letter" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let manual = ConsumerOptions::new().ack(Ack::Manual);
            let mut c = q.consumer(a(3), manual).unwrap_or_else(|e| fail(e));
            let m = c
                .receive_timeout(Duration::from_secs(10))
                .unwrap_or_else(|e| fail(e));
            let seq = m.seq();
            m.nack(shmq::Nack::DeadLetter).unwrap_or_else(|e| fail(e));
            println!("dead-lettered {seq}");
        }
        "purge" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let n = q.dlq().purge().unwrap_or_else(|e| fail(e));
            println!("purged {n}");
        }
        "produce" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let id: u32 = a(3).parse().unwrap();
            let count: u64 = a(4).parse().unwrap();
            let size: usize = a(5).parse().unwrap();
            println!("started");
            for i in 0..count {
                let msg = encode(id, i, size);
                loop {
                    match p.publish_timeout(&msg, Duration::from_secs(60)) {
                        Ok(_) => break,
                        // A claim aborted because we looked stuck: publish
                        // again, as a user would.
                        Err(Error::Aborted) => continue,
                        Err(e) => fail(e),
                    }
                }
            }
            println!("done");
        }
        "schedule" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let id: u32 = a(3).parse().unwrap();
            let count: u64 = a(4).parse().unwrap();
            let delay = Duration::from_millis(a(5).parse().unwrap());
            for i in 0..count {
                let meta = shmq::Meta::new().delay(delay);
                let sid = p
                    .publish_with(&encode(id, i, 16), &meta)
                    .unwrap_or_else(|e| fail(e));
                println!("scheduled {i} {sid}");
                let _ = std::io::stdout().flush();
            }
        }
        "publish-batch" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let count: u64 = a(3).parse().unwrap();
            let batch: Vec<Vec<u8>> = (0..count).map(|i| encode(0, i, 16)).collect();
            let first = p.publish_batch(&batch).unwrap_or_else(|e| fail(e));
            println!("published {first}");
        }
        "publish-quiet" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let count: u64 = a(3).parse().unwrap();
            let keyed = a(4) == "1";
            let keys: Vec<String> = (0..64).map(|k| format!("customer-{k}")).collect();
            let payload = [7u8; 16];
            let mut publish = |i: u64| {
                let key = &keys[i as usize % keys.len()];
                let r = if keyed {
                    p.publish_with(
                        &payload,
                        &shmq::Meta::new()
                            .ordering_key(key)
                            .header("traceparent", b"00-0af7651916cd43dd-01")
                            .header("content-type", b"application/json"),
                    )
                } else {
                    p.publish(&payload)
                };
                r.unwrap_or_else(|e| fail(e));
            };
            // Warm up: the first publish may fault pages in.
            publish(0);
            // SAFETY: getppid has no preconditions; it is the marker.
            unsafe { libc::getppid() };
            for i in 1..count {
                publish(i);
            }
            // SAFETY: as above.
            unsafe { libc::getppid() };
            println!("done");
        }
        "consume" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().create(true))
                .unwrap_or_else(|e| fail(e));
            let count: u64 = a(4).parse().unwrap();
            let secs: f64 = a(5).parse().unwrap();
            let deadline = Instant::now() + Duration::from_secs_f64(secs);
            let mut next: BTreeMap<u32, (u64, u64, u64)> = BTreeMap::new();
            let mut last_seq = None;
            let mut got = 0;
            while got < count {
                let left = deadline.saturating_duration_since(Instant::now());
                let m = match c.receive_timeout(left) {
                    Ok(m) => m,
                    Err(Error::Timeout) => {
                        eprintln!("consume: timed out after {got} of {count}");
                        std::process::exit(2);
                    }
                    Err(e) => fail(e),
                };
                if let Some(prev) = last_seq {
                    if m.seq() <= prev {
                        eprintln!("consume: seq {} after {prev}", m.seq());
                        std::process::exit(3);
                    }
                }
                last_seq = Some(m.seq());
                let (id, idx) = decode(m.payload()).unwrap_or_else(|| {
                    eprintln!("consume: bad payload at seq {}", m.seq());
                    std::process::exit(3)
                });
                let e = next.entry(id).or_insert((idx, idx, 0));
                if e.2 > 0 && idx != e.1 + 1 {
                    eprintln!("consume: producer {id}: index {idx} after {}", e.1);
                    std::process::exit(3);
                }
                e.1 = idx;
                e.2 += 1;
                got += 1;
            }
            for (id, (first, last, n)) in next {
                println!("producer {id} first {first} last {last} count {n}");
            }
        }
        "hold-claim" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let r = p.reserve(12).unwrap_or_else(|e| fail(e));
            println!("reserved {}", r.seq());
            println!("holding");
            std::thread::sleep(Duration::from_secs(600));
            drop(r);
        }
        "produce-logged" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let id: u32 = a(3).parse().unwrap();
            let count: u64 = a(4).parse().unwrap();
            let size: usize = a(5).parse().unwrap();
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for i in 0..count {
                loop {
                    match p.publish_timeout(&encode(id, i, size), Duration::from_secs(60)) {
                        Ok(_) => break,
                        Err(Error::Aborted) => continue,
                        Err(e) => fail(e),
                    }
                }
                let _ = writeln!(out, "sent {i}");
                let _ = out.flush();
            }
        }
        "produce-large" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let count: u64 = a(3).parse().unwrap();
            let size: usize = a(4).parse().unwrap();
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for i in 0..count {
                loop {
                    let mut r = p
                        .reserve_timeout(size, Duration::from_secs(60))
                        .unwrap_or_else(|e| fail(e));
                    shmq_tests::fill_large(&mut r, i);
                    match r.commit() {
                        Ok(_) => break,
                        Err(Error::Aborted) => continue,
                        Err(e) => fail(e),
                    }
                }
                let _ = writeln!(out, "sent {i}");
                let _ = out.flush();
            }
        }
        "mixed" => {
            let count: u64 = a(2).parse().unwrap();
            // 8192 slots of 4 KiB strides: a 32 MiB ring, 8 MiB frames.
            let opts = opts.clone().slots(8192).slot_size(4064).max_groups(4);
            let q = Queue::create("mixed", &opts).unwrap_or_else(|e| fail(e));
            q.create_group("g", shmq::Start::Earliest)
                .unwrap_or_else(|e| fail(e));
            let frame = |i: u64| i % 10 == 0;
            let producer = {
                let q = Queue::open_with("mixed", &opts).unwrap_or_else(|e| fail(e));
                std::thread::spawn(move || {
                    let mut p = q.producer().unwrap_or_else(|e| fail(e));
                    for i in 0..count {
                        if frame(i) {
                            let mut r = p.reserve(8 << 20).unwrap_or_else(|e| fail(e));
                            shmq_tests::fill_large(&mut r, i);
                            r.commit().unwrap_or_else(|e| fail(e));
                        } else {
                            p.publish(&encode(7, i, 16)).unwrap_or_else(|e| fail(e));
                        }
                    }
                })
            };
            let mut c = q
                .consumer("g", ConsumerOptions::new())
                .unwrap_or_else(|e| fail(e));
            let (mut frames, mut events) = (0, 0);
            for i in 0..count {
                let m = c
                    .receive_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|e| fail(e));
                let whole = if frame(i) {
                    frames += 1;
                    m.payload().len() == 8 << 20 && shmq_tests::large_index(m.payload()) == Some(i)
                } else {
                    events += 1;
                    m.payload().len() == 16 && decode(m.payload()) == Some((7, i))
                };
                if !whole {
                    eprintln!("shmq-worker: message {i} (seq {}) is not whole", m.seq());
                    std::process::exit(1)
                }
            }
            producer.join().unwrap();
            let allocated = std::fs::metadata(q.path()).map_or(0, |m| {
                use std::os::unix::fs::MetadataExt;
                m.blocks() * 512
            });
            println!("ok {frames} {events} {} {allocated}", q.file_size());
        }
        "hold-large" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().ack(Ack::Manual).create(true))
                .unwrap_or_else(|e| fail(e));
            let m = c.receive().unwrap_or_else(|e| fail(e));
            if shmq_tests::large_index(m.payload()).is_none() {
                eprintln!("shmq-worker: message {} is torn", m.seq());
                std::process::exit(1)
            }
            println!("holding {}", m.seq());
            std::thread::sleep(Duration::from_secs(600));
            drop(m);
        }
        "produce-keyed" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let id: u32 = a(3).parse().unwrap();
            let count: u64 = a(4).parse().unwrap();
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for i in 0..count {
                let meta = shmq::Meta::new().key(format!("{id}-{i}"));
                loop {
                    match p.publish_with_timeout(&encode(id, i, 16), &meta, Duration::from_secs(60))
                    {
                        Ok(_) => break,
                        Err(Error::Aborted) => continue,
                        Err(e) => fail(e),
                    }
                }
                let _ = writeln!(out, "sent {i}");
                let _ = out.flush();
            }
        }
        mode @ ("work" | "work-ids") => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().ack(Ack::Manual).create(true))
                .unwrap_or_else(|e| fail(e));
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            loop {
                let m = match c.receive_timeout(Duration::from_secs(3)) {
                    Ok(m) => m,
                    Err(Error::Timeout) => break,
                    Err(e) => fail(e),
                };
                // Recorded before the ack: a kill in between leaves a
                // recorded delivery that is delivered again.
                if mode == "work-ids" {
                    let (id, idx) = decode(m.payload()).unwrap_or((u32::MAX, u64::MAX));
                    let _ = writeln!(out, "got {} {} {id} {idx}", m.seq(), m.attempt());
                } else {
                    let _ = writeln!(out, "got {} {}", m.seq(), m.attempt());
                }
                let _ = out.flush();
                if m.payload().starts_with(b"poison") {
                    match m.nack(shmq::Nack::Requeue) {
                        Ok(()) | Err(Error::LeaseExpired) => continue,
                        Err(e) => fail(e),
                    }
                }
                match m.ack() {
                    Ok(()) | Err(Error::LeaseExpired) => {}
                    Err(e) => fail(e),
                }
            }
        }
        "arm" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().create(true))
                .unwrap_or_else(|e| fail(e));
            match c.arm().unwrap_or_else(|e| fail(e)) {
                shmq::Arm::Waiting { .. } => println!("armed"),
                shmq::Arm::Ready => fail(Error::Busy("arm: the queue was not empty".into())),
            }
            std::thread::sleep(Duration::from_secs(600));
        }
        "churn" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
            // The runtime's own fds (epoll, eventfd) are made first.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let before = fds();
            {
                let mut c = q
                    .consumer(a(3), ConsumerOptions::new().create(true))
                    .unwrap_or_else(|e| fail(e));
                for _ in 0..10_000 {
                    c.arm().unwrap_or_else(|e| fail(e));
                    c.disarm();
                }
                // 10,000 async waits cancelled: by a timeout, and by
                // losing a select!.
                rt.block_on(async {
                    for i in 0..10_000u32 {
                        if i % 2 == 0 {
                            let w = tokio::time::timeout(Duration::ZERO, c.receive_async());
                            assert!(w.await.is_err(), "nothing was published");
                        } else {
                            tokio::select! {
                                biased;
                                _ = std::future::ready(()) => {}
                                _ = c.receive_async() => panic!("nothing was published"),
                            }
                        }
                    }
                });
                // None of them left the handle armed: a publish rings
                // nobody.
                q.producer()
                    .unwrap_or_else(|e| fail(e))
                    .publish(b"x")
                    .unwrap_or_else(|e| fail(e));
                let fd = std::os::fd::AsRawFd::as_raw_fd(c.readiness().unwrap_or_else(|e| fail(e)));
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                let rung = unsafe { libc::poll(&mut p, 1, 50) };
                println!("rung {rung}");
            }
            for _ in 0..1_000 {
                let mut c = q
                    .consumer(a(3), ConsumerOptions::new().create(true))
                    .unwrap_or_else(|e| fail(e));
                c.readiness().unwrap_or_else(|e| fail(e));
            }
            println!("fds {before} {}", fds());
        }
        "ordered" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().ack(Ack::Manual).create(true))
                .unwrap_or_else(|e| fail(e));
            let mut rng: u64 = a(4).parse::<u64>().unwrap() | 1;
            let mut next = || {
                // xorshift: random handling times and nacks, seeded.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let now = || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            };
            println!("started");
            let mut idle = Instant::now();
            while idle.elapsed() < Duration::from_secs(3) {
                let Some(m) = c
                    .poll(Duration::from_millis(50))
                    .unwrap_or_else(|e| fail(e))
                else {
                    continue;
                };
                idle = Instant::now();
                let key = String::from_utf8_lossy(m.ordering_key().unwrap_or(b"-")).into_owned();
                let (seq, start) = (m.seq(), now());
                std::thread::sleep(Duration::from_micros(next() % 2000));
                if next() % 8 == 0 {
                    let _ = m.nack(shmq::Nack::Requeue);
                    continue;
                }
                let end = now();
                if m.ack().is_ok() {
                    let _ = writeln!(out, "acked {key} {seq} {start} {end}");
                    let _ = out.flush();
                }
            }
        }
        "hold" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().ack(Ack::Manual).create(true))
                .unwrap_or_else(|e| fail(e));
            let m = c.receive().unwrap_or_else(|e| fail(e));
            println!("holding {}", m.seq());
            std::thread::sleep(Duration::from_secs(600));
            drop(m);
        }
        "await-one" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().create(true))
                .unwrap_or_else(|e| fail(e));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                println!("waiting");
                let got = c.receive_async_timeout(Duration::from_secs(10)).await;
                match got.unwrap_or_else(|e| fail(e)) {
                    Some(m) => println!("got {}", m.seq()),
                    None => println!("nothing"),
                }
            });
        }
        "await-room" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                println!("waiting");
                let r =
                    tokio::time::timeout(Duration::from_secs(10), p.publish_async(b"room")).await;
                match r {
                    Ok(Ok(seq)) => println!("published {seq}"),
                    Ok(Err(e)) => fail(e),
                    Err(_) => println!("nothing"),
                }
            });
        }
        "hold-ack" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().ack(Ack::Manual).create(true))
                .unwrap_or_else(|e| fail(e));
            let m = c.receive().unwrap_or_else(|e| fail(e));
            println!("holding {}", m.seq());
            let flag = std::path::Path::new(a(4));
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            m.ack().unwrap_or_else(|e| fail(e));
            println!("acked");
        }
        "envelope-produce" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut p = q.producer().unwrap_or_else(|e| fail(e));
            let tag = a(3);
            let count: u64 = a(4).parse().unwrap();
            let trace = format!("t-{tag}");
            for i in 0..count {
                let key = format!("key-{tag}-{i}");
                let meta = shmq::Meta::new()
                    .ordering_key(&key)
                    .header("lang", tag)
                    .header("lang", "again")
                    .header("trace", &trace);
                p.publish_with_timeout(
                    format!("{tag}-{i}").as_bytes(),
                    &meta,
                    Duration::from_secs(20),
                )
                .unwrap_or_else(|e| fail(e));
            }
        }
        "envelope-dump" => {
            let q = Queue::open_with(a(2), &opts).unwrap_or_else(|e| fail(e));
            let mut c = q
                .consumer(a(3), ConsumerOptions::new().create(true))
                .unwrap_or_else(|e| fail(e));
            let count: u64 = a(4).parse().unwrap();
            if a(5) != "-" {
                c.seek(shmq::Seek::Seq(a(5).parse().unwrap()))
                    .unwrap_or_else(|e| fail(e));
            }
            let mut out = std::io::stdout().lock();
            for _ in 0..count {
                let m = c
                    .receive_timeout(Duration::from_secs(20))
                    .unwrap_or_else(|e| fail(e));
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let key = m.ordering_key().map(text).unwrap_or_default();
                write!(out, "{}\t{key}\t{}", m.seq(), text(m.payload())).unwrap();
                for (name, value) in m.headers() {
                    write!(out, "\t{name}={}", text(value)).unwrap();
                }
                writeln!(out).unwrap();
            }
        }
        "open" => match Queue::open_with(a(2), &opts) {
            Ok(q) => println!("{:?}", q.stats()),
            Err(e) => fail(e),
        },
        _ => usage(),
    }
}

fn fail(e: Error) -> ! {
    eprintln!("shmq-worker: {e}");
    std::process::exit(1)
}

fn usage() -> ! {
    eprintln!("usage: see the doc comment of tests/src/bin/shmq-worker.rs");
    std::process::exit(64)
}
