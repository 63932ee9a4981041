//! `from-*`: an engine's [`Source`] into a shmq queue. Every record is
//! published with an idempotency key (`record::inbound`), and the engine
//! is told it may forget a record only after shmq accepted it, so a
//! bridge killed anywhere replays at most what the engine had not
//! committed, and the queue's dedup window absorbs the replay. A full
//! queue pauses the source (back-pressure) without leaving its group.

use std::time::{Duration, Instant};

use shmq::{Error, Meta, Queue};

use crate::engine::{Fatal, Incoming, Source};
use crate::record;
use crate::stats::Stats;

/// How `from-*` runs.
pub struct Options {
    /// Exit after this long with no record.
    pub exit_idle: Option<Duration>,
    pub stats: Stats,
}

/// Moves records until stopped (SIGINT/SIGTERM) or idle for `exit_idle`;
/// commits what shmq accepted on the way out.
pub fn run(q: &Queue, source: &mut dyn Source, mut o: Options) -> Result<(), Fatal> {
    let mut producer = q
        .producer()
        .map_err(|e| Fatal(format!("shmq: a producer: {e}")))?;
    let mut pending: Option<Incoming> = None;
    let mut busy = Instant::now();
    let dedup_before = q.stats().deduplicated;
    while !crate::stop_requested() {
        if o.stats.due() {
            let s = q.stats();
            o.stats.shmq_lag = Some(s.depth);
            o.stats.duplicates = s.deduplicated - dedup_before;
            o.stats.engine_lag = source.lag();
            o.stats.report(false);
        }
        let rec = match pending.take() {
            Some(r) => r,
            None => match source.poll(Duration::from_millis(100))? {
                Some(r) => r,
                None => {
                    if o.exit_idle.is_some_and(|d| busy.elapsed() >= d) {
                        break;
                    }
                    continue;
                }
            },
        };
        busy = Instant::now();
        let ib = record::inbound(&rec);
        let mut meta = Meta::new()
            .key(&ib.idempotency_key)
            .type_id(ib.type_id)
            .correlation_id(ib.correlation_id);
        meta.ordering_key = ib.ordering_key;
        for (n, v) in &ib.headers {
            meta.headers.push(n, v);
        }
        match producer.publish_with_timeout(&rec.payload, &meta, Duration::from_millis(100)) {
            Ok(_) => {
                source.accepted(&rec)?;
                source.resume()?;
                o.stats.moved += 1;
            }
            // No room: hold the record, pause the engine, try again.
            Err(Error::Timeout | Error::Full | Error::SpillFull(_)) => {
                source.pause()?;
                source.serve()?;
                o.stats.paused += 1;
                pending = Some(rec);
            }
            Err(Error::Aborted) => pending = Some(rec),
            Err(e) => {
                source.close()?;
                return Err(Fatal(format!(
                    "record {} cannot be published into the queue: {e}; the bridge stops here so that nothing is skipped (its offset is not committed)",
                    rec.id
                )));
            }
        }
    }
    source.close()?;
    let s = q.stats();
    o.stats.shmq_lag = Some(s.depth);
    o.stats.duplicates = s.deduplicated - dedup_before;
    o.stats.engine_lag = source.lag();
    o.stats.report(true);
    Ok(())
}
