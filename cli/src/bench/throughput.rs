//! `shmq bench throughput`: messages per second from producer processes
//! to each group, against a bare single-producer ring; with `--spill`,
//! through an overflow=spill queue's segment files, against copying the
//! same bytes into mapped files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Meta, Options, Overflow, Queue, Start};

use super::baseline::Region;
use super::{AckMode, BenchArgs, Scratch, WORKER_TIMEOUT, WorkerArgs, join, parse_json, spawn};
use crate::{CliError, CliResult};

/// Ring size for the throughput runs (shmq and the bare ring alike).
const TP_SLOTS: u64 = 4096;

pub(super) fn run(args: &BenchArgs, cores: &[usize]) -> CliResult {
    if args.spill {
        return spill_throughput(args, cores);
    }
    let count = args.count.unwrap_or(5_000_000);
    if args.keys > 0 && args.batch > 1 {
        return Err(CliError::Other(
            "--keys takes no --batch: a batch carries no ordering keys".into(),
        ));
    }
    let core = |i: usize| cores[i % cores.len()];
    let scratch = Scratch::new()?;
    let (mut shmq_rates, mut base_rates) = (Vec::new(), Vec::new());
    let mut hints = None;
    let progress = super::rounds_progress(args);
    for round in 0..args.rounds {
        progress.set(round as u64);
        // Baseline: bare single-producer ring of plain stores.
        let region = scratch.dir.join(format!("ring-{round}"));
        Region::create(&region, TP_SLOTS as usize, args.size)?;
        let cons = spawn("base-consume", &region, count, args.size, core(1), &[])?;
        let prod = spawn("base-produce", &region, count, args.size, core(0), &[])?;
        let out = join(vec![cons, prod])?;
        let elapsed = parse_json(&out[0])?["elapsed_ns"].as_u64().unwrap_or(0);
        base_rates.push(count as f64 / (elapsed.max(1) as f64 / 1e9));
        // shmq: P producers, G groups with one consumer each.
        let dir = scratch.dir.join(format!("shmq-{round}"));
        std::fs::create_dir(&dir)?;
        let opts = Options::new()
            .dir(&dir)
            .slots(TP_SLOTS)
            // With --keys, room for the envelope too (16 bytes and a key
            // of up to 16: `key-N`).
            .slot_size(args.size + if args.keys > 0 { 32 } else { 0 })
            .overflow(Overflow::Block);
        let q = Queue::create("tp", &opts)?;
        // The workers' producers choose the same (same queue, CPU and
        // environment).
        hints.get_or_insert(q.producer()?.cache_hints());
        for g in 0..args.groups {
            q.create_group(&format!("g{g}"), Start::Earliest)?;
        }
        let batch = vec!["--batch".to_string(), args.batch.to_string()];
        let mut children = Vec::new();
        let consumers = args.groups * args.consumers;
        for i in 0..consumers {
            let g = i / args.consumers;
            let mut extra = batch.clone();
            extra.extend(["--group".to_string(), format!("g{g}")]);
            let role = match args.ack {
                AckMode::Auto => "consume",
                AckMode::Manual => "consume-manual",
            };
            children.push(spawn(
                role,
                &dir,
                count,
                args.size,
                core(1 + i as usize),
                &extra,
            )?);
        }
        let mut produce_extra = batch.clone();
        produce_extra.extend(["--keys".to_string(), args.keys.to_string()]);
        let per = count / args.producers as u64;
        for p in 0..args.producers {
            let n = if p == 0 {
                count - per * (args.producers as u64 - 1)
            } else {
                per
            };
            children.push(spawn(
                "produce",
                &dir,
                n,
                args.size,
                core(p as usize),
                &produce_extra,
            )?);
        }
        let out = join(children)?;
        let mut slowest = 0;
        for group in out[..consumers as usize].chunks(args.consumers as usize) {
            // A group's time runs from its first delivery to its last ack,
            // over all its consumers (CLOCK_REALTIME, comparable across
            // processes).
            let (mut first, mut last) = (u64::MAX, 0);
            for o in group {
                let v = parse_json(o)?;
                first = first.min(v["first_ns"].as_u64().unwrap_or(u64::MAX));
                last = last.max(v["last_ns"].as_u64().unwrap_or(0));
            }
            slowest = slowest.max(last.saturating_sub(first));
        }
        shmq_rates.push(count as f64 / (slowest.max(1) as f64 / 1e9));
    }
    drop(progress);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let spread = |v: &[f64]| (v[0], v[v.len() - 1]);
    let (s, b) = (median(&mut shmq_rates), median(&mut base_rates));
    let mb = |r: f64| r * args.size as f64 / 1e6;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "throughput",
                "size": args.size,
                "count": count,
                "rounds": args.rounds,
                "producers": args.producers,
                "groups": args.groups,
                "consumers": args.consumers,
                "ack": format!("{:?}", args.ack).to_lowercase(),
                "batch": args.batch,
                "keys": args.keys,
                "msgs_per_s": s,
                "mb_per_s": mb(s),
                "baseline_msgs_per_s": b,
                "baseline_mb_per_s": mb(b),
                "ratio": s / b,
                "msgs_per_s_min": spread(&shmq_rates).0,
                "msgs_per_s_max": spread(&shmq_rates).1,
                "cache_hints": hints.map(super::hints_json),
            })
        );
    } else {
        println!(
            "shmq bench throughput: {} B payload, {} messages x {} rounds, {} producer(s), {} group(s) x {} consumer(s), ack={}, batch {}, keys {}, cores {:?}",
            args.size,
            count,
            args.rounds,
            args.producers,
            args.groups,
            args.consumers,
            format!("{:?}", args.ack).to_lowercase(),
            args.batch,
            args.keys,
            cores
        );
        println!(
            "{:<34} {:>14} {:>10}   (min .. max over rounds)",
            "", "msgs/s", "MB/s"
        );
        let (bl, bh) = spread(&base_rates);
        let (sl, sh) = spread(&shmq_rates);
        println!(
            "{:<34} {:>14.0} {:>10.1}   ({bl:.0} .. {bh:.0})",
            "baseline (bare SPSC ring)",
            b,
            mb(b)
        );
        println!(
            "{:<34} {:>14.0} {:>10.1}   ({sl:.0} .. {sh:.0})",
            "shmq (per group)",
            s,
            mb(s)
        );
        println!("{:<34} {:>13.2}x", "shmq / baseline", s / b);
        if let Some(h) = hints {
            println!("cache hints: {h}");
        }
    }
    drop(scratch);
    Ok(())
}

/// `bench throughput --spill`: publish with no consumer (into the spill),
/// then drain with a consumer started afterwards; against copying the same
/// bytes into a mapped file in the same directory.
fn spill_throughput(args: &BenchArgs, cores: &[usize]) -> CliResult {
    let count = args.count.unwrap_or(1_000_000);
    let sync: shmq::SyncMode = args.sync.parse()?;
    let core = |i: usize| cores[i % cores.len()];
    let scratch = Scratch::new()?;
    let spill_base = match &args.spill_dir {
        Some(d) => d.join(format!("shmq-bench-spill-{}", std::process::id())),
        None => PathBuf::from(format!("/var/tmp/shmq-bench-spill-{}", std::process::id())),
    };
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    std::fs::create_dir_all(&spill_base)?;
    let _cleanup = Cleanup(spill_base.clone());
    let bytes = count * args.size as u64;
    let (mut into, mut out_of, mut base, mut written) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let progress = super::rounds_progress(args);
    for round in 0..args.rounds {
        progress.set(round as u64);
        let file = spill_base.join(format!("baseline-{round}"));
        let t0 = Instant::now();
        join(vec![spawn(
            "base-map",
            &file,
            count,
            args.size,
            core(0),
            &[],
        )?])?;
        base.push(bytes as f64 / t0.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&file);
        let t0 = Instant::now();
        join(vec![spawn(
            "base-write",
            &file,
            count,
            args.size,
            core(0),
            &[],
        )?])?;
        written.push(bytes as f64 / t0.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&file);

        let dir = scratch.dir.join(format!("spill-{round}"));
        std::fs::create_dir(&dir)?;
        let segment = 64u64 << 20;
        let need = count * (args.size as u64 + 48);
        let opts = Options::new()
            .dir(&dir)
            .slots(1024)
            .slot_size(args.size)
            .overflow(Overflow::Spill)
            .spill_dir(spill_base.join(format!("spill-{round}")))
            .spill_segment_size(segment)
            .spill_max_bytes((need / segment + 2) * segment)
            .sync(sync);
        let q = Queue::create("tp", &opts)?;
        q.create_group("g0", Start::Earliest)?;
        let t0 = Instant::now();
        join(vec![spawn(
            "produce",
            &dir,
            count,
            args.size,
            core(0),
            &[],
        )?])?;
        into.push(bytes as f64 / t0.elapsed().as_secs_f64());
        let spilled = q.stats().spilled;
        let t0 = Instant::now();
        let extra = ["--group".to_string(), "g0".to_string()];
        join(vec![spawn(
            "consume",
            &dir,
            count,
            args.size,
            core(1),
            &extra,
        )?])?;
        out_of.push(bytes as f64 / t0.elapsed().as_secs_f64());
        if spilled < count / 2 {
            return Err(CliError::Other(format!(
                "only {spilled} of {count} messages were spilled"
            )));
        }
        drop(q);
        Queue::remove("tp", &opts)?;
    }
    drop(progress);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (i, o, b) = (median(&mut into), median(&mut out_of), median(&mut base));
    let w = median(&mut written);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "kind": "throughput-spill",
                "size": args.size,
                "count": count,
                "rounds": args.rounds,
                "sync": sync.to_string(),
                "spill_mb_per_s": i / 1e6,
                "drain_mb_per_s": o / 1e6,
                "msgs_per_s": i / args.size as f64,
                "mb_per_s": i / 1e6,
                "drain_msgs_per_s": o / args.size as f64,
                "baseline_mb_per_s": b / 1e6,
                "write_mb_per_s": w / 1e6,
                "ratio": i / b,
                "drain_ratio": o / b,
            })
        );
    } else {
        println!(
            "shmq bench throughput --spill: {} B payload, {} messages ({:.0} MB) x {} rounds, sync {}, spill under {}",
            args.size,
            count,
            bytes as f64 / 1e6,
            args.rounds,
            sync,
            spill_base.display()
        );
        println!("{:<50} {:>10} {:>14}", "", "MB/s", "msgs/s");
        let row = |name: &str, r: f64| {
            println!(
                "{name:<50} {:>10.0} {:>14.0}",
                r / 1e6,
                r / args.size as f64
            )
        };
        row(
            "baseline (memcpy into mapped, preallocated 64 MiB files)",
            b,
        );
        row("write(2) of the same bytes, 1 MiB calls", w);
        row("shmq publish into the spill", i);
        row("shmq consumer draining the spill", o);
        println!("{:<50} {:>9.2}x", "publish / baseline", i / b);
        println!("{:<50} {:>9.2}x", "drain / baseline", o / b);
    }
    Ok(())
}

/// Worker role `base-write`: the `write(2)` figure of `--spill`.
pub(super) fn base_write(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    // `--dir` is the file to write: `count` records of `size` bytes
    // in 1 MiB writes.
    use std::io::Write;
    let mut f = std::fs::File::create(&a.dir)?;
    let chunk = vec![7u8; (1 << 20) / a.size.max(1) * a.size.max(1)];
    let mut left = a.count * a.size as u64;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(serde_json::json!({}))
}

/// Worker role `base-map`: the baseline of `--spill`, records copied into
/// preallocated, mapped files.
pub(super) fn base_map(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    // `--dir` names the files: 64 MiB ones (as the spill's
    // segments), preallocated and mapped, `count` records of
    // `size` bytes copied in.
    const FILE: u64 = 64 << 20;
    let payload = vec![7u8; a.size.max(1)];
    let mut left = a.count;
    let mut n = 0;
    while left > 0 {
        let path = a.dir.with_extension(format!("{n}"));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, FILE)
            .map_err(std::io::Error::from)?;
        // SAFETY: the file is ours (just created, private to this
        // run) and FILE bytes long; nothing else maps it.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&f)? };
        for rec in map.chunks_exact_mut(payload.len()) {
            if left == 0 {
                break;
            }
            rec.copy_from_slice(&payload);
            left -= 1;
        }
        drop(map);
        let _ = std::fs::remove_file(&path);
        n += 1;
    }
    Ok(serde_json::json!({}))
}

/// Worker role `base-produce`: the bare ring's producer.
pub(super) fn base_produce(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let r = Region::open(&a.dir, TP_SLOTS as usize, a.size)?;
    base_ring_produce(&r, a.count, &vec![7u8; a.size]);
    Ok(serde_json::json!({}))
}

/// Worker role `base-consume`: the bare ring's consumer.
pub(super) fn base_consume(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let r = Region::open(&a.dir, TP_SLOTS as usize, a.size)?;
    let (elapsed, sum) = base_ring_consume(&r, a.count, a.size);
    Ok(serde_json::json!({"elapsed_ns": elapsed, "sum": sum}))
}

/// Producer of the bare SPSC ring: writes each payload with plain stores
/// and publishes it (`Region::publish`), reading `head` only when its
/// cached copy says the ring is full.
fn base_ring_produce(r: &Region, count: u64, payload: &[u8]) {
    let mut cached_head = 0;
    for i in 0..count {
        r.wait_for_room(i, &mut cached_head);
        // SAFETY: position i is ours: its wait for room returned and it is
        // published below; `payload` is the region's slot size.
        unsafe { r.write(i, payload) };
        r.publish(i);
    }
}

/// Consumer of the bare ring: reads every payload whole. Returns the
/// nanoseconds from the first message to the last, and a checksum so
/// the reads are not optimized away.
fn base_ring_consume(r: &Region, count: u64, size: usize) -> (u64, u64) {
    let mut buf = vec![0u8; size];
    let mut sum = 0u64;
    let mut cached_tail = 0;
    let mut start = None;
    for i in 0..count {
        r.wait_for_data(i, &mut cached_tail);
        start.get_or_insert_with(Instant::now);
        // SAFETY: position i is published (its wait returned) and freed
        // only below; `buf` is the region's slot size.
        unsafe { r.read(i, &mut buf) };
        // black_box: the whole copy counts (the compiler may not drop the
        // bytes that nothing reads).
        sum = sum.wrapping_add(std::hint::black_box(&mut buf)[0] as u64);
        r.free_to(i + 1);
    }
    let elapsed = start.map(|s| s.elapsed().as_nanos() as u64).unwrap_or(0);
    (elapsed, sum)
}

/// Worker role `produce`: publishes `--count` messages to queue `tp`,
/// singly or in batches of `--batch`.
pub(super) fn produce(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let q = Queue::open_with("tp", &Options::new().dir(&a.dir))?;
    let mut p = q.producer()?;
    let payload = vec![7u8; a.size];
    if a.keys > 0 {
        // Keys made up front: the loop measures the publish, not format!.
        let keys: Vec<String> = (0..a.keys).map(|k| format!("key-{k}")).collect();
        for i in 0..a.count {
            let key = &keys[(i % a.keys) as usize];
            p.publish_with(&payload, &Meta::new().ordering_key(key))?;
        }
    } else if a.batch <= 1 {
        for _ in 0..a.count {
            p.publish(&payload)?;
        }
    } else {
        let msgs: Vec<&[u8]> = vec![&payload[..]; a.batch];
        let mut left = a.count;
        while left > 0 {
            let n = left.min(a.batch as u64) as usize;
            p.publish_batch(&msgs[..n])?;
            left -= n as u64;
        }
    }
    Ok(serde_json::json!({}))
}

/// Worker role `consume`: an ack=auto consumer of `--group` on queue `tp`
/// that copies out every payload.
pub(super) fn consume(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    let q = Queue::open_with("tp", &Options::new().dir(&a.dir))?;
    let mut c = q.consumer(&a.group, ConsumerOptions::new().create(true))?;
    let mut buf = vec![0u8; a.size];
    let mut sum = 0u64;
    let mut got = 0;
    let mut start = None;
    while got < a.count {
        if a.batch <= 1 {
            if let Some(m) = c.try_receive()? {
                start.get_or_insert_with(Instant::now);
                buf.copy_from_slice(m.payload());
                // black_box: the whole copy counts (the compiler may not drop the
                // bytes that nothing reads).
                sum = sum.wrapping_add(std::hint::black_box(&mut buf)[0] as u64);
                got += 1;
            } else {
                std::hint::spin_loop();
            }
        } else {
            let b = c.receive_batch(a.batch, Duration::ZERO)?;
            for m in b.iter() {
                start.get_or_insert_with(Instant::now);
                buf.copy_from_slice(m.payload());
                // black_box: the whole copy counts (the compiler may not drop the
                // bytes that nothing reads).
                sum = sum.wrapping_add(std::hint::black_box(&mut buf)[0] as u64);
                got += 1;
            }
        }
    }
    let elapsed = start.map(|s| s.elapsed().as_nanos() as u64).unwrap_or(0);
    let last_ns = realtime_ns();
    Ok(serde_json::json!({
        "elapsed_ns": elapsed,
        "sum": sum,
        "first_ns": last_ns - elapsed,
        "last_ns": last_ns,
    }))
}

/// Worker role `consume-manual`: one of a group's competing ack=manual
/// consumers on queue `tp`.
pub(super) fn consume_manual(a: &WorkerArgs) -> CliResult<serde_json::Value> {
    // Competing consumers: each leases, copies and acks until the
    // group has nothing more for a while (the idle tail is not
    // counted).
    let q = Queue::open_with("tp", &Options::new().dir(&a.dir))?;
    let mut c = q.consumer(&a.group, AckMode::Manual.consumer_options())?;
    let mut buf = vec![0u8; a.size];
    let (mut first, mut last, mut got) = (None, 0u64, 0u64);
    let mut idle_since = Instant::now();
    loop {
        match c.try_receive()? {
            Some(m) => {
                first.get_or_insert_with(realtime_ns);
                buf.copy_from_slice(m.payload());
                m.ack()?;
                last = realtime_ns();
                got += 1;
                idle_since = Instant::now();
            }
            None => {
                let idle = idle_since.elapsed();
                if (first.is_some() && idle > Duration::from_millis(200)) || idle > WORKER_TIMEOUT {
                    break;
                }
                std::hint::spin_loop();
            }
        }
    }
    Ok(serde_json::json!({"first_ns": first.unwrap_or(u64::MAX), "last_ns": last, "got": got}))
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
