//! `from-*`: an engine's [`Source`] into a shmq queue. Every record is
//! published with an idempotency key (`record::inbound`), and the engine
//! is told it may forget a record only after shmq accepted it, so a
//! bridge killed anywhere replays at most what the engine had not
//! committed, and the queue's dedup window absorbs the replay. A full
//! queue pauses the source (back-pressure) without leaving its group.

use std::time::{Duration, Instant};

use shmq::{Error, Queue, Reason};

use crate::engine::{Fatal, Incoming, Source};
use crate::record;
use crate::stats::Stats;

/// How `from-*` runs.
pub struct Options {
    /// Exit after this long with no record.
    pub exit_idle: Option<Duration>,
    pub stats: Stats,
    /// The group that owns the dead letters of records the engine gives
    /// up on (JetStream's `max_deliver`).
    pub dlq_group: Option<String>,
}

/// Puts the records the engine gave up on into the queue's DLQ, for
/// `group`: returns how many. One that cannot go (no group named, a full
/// DLQ, too large) is told on stderr with where it still is in the
/// engine: the engine has stopped delivering it.
fn dead_letters(q: &Queue, source: &mut dyn Source, group: Option<&str>) -> Result<u64, Fatal> {
    let mut n = 0;
    for g in source.given_up()? {
        let meta = record::inbound(&g.rec).meta();
        let added = match group {
            Some(group) => q.dlq().add(
                group,
                &g.rec.payload,
                &meta,
                Reason::MaxDeliveries,
                g.attempts,
            ),
            None => Err(Error::InvalidOption("no --dlq-group named".into())),
        };
        match added {
            Ok(()) => n += 1,
            Err(e) => eprintln!(
                "{}: the engine gave it up and it cannot go into the DLQ ({e}); it is still there until its retention ends",
                g.rec.id
            ),
        }
    }
    Ok(n)
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
    if let Some(what) = source.gives_up() {
        match &o.dlq_group {
            None => {
                return Err(Fatal(format!(
                    "{what}: name a group of the queue to own those dead letters (--dlq-group)"
                )));
            }
            Some(g) if !q.groups().iter().any(|x| &x.name == g) => {
                return Err(Fatal(format!(
                    "--dlq-group {g:?}: no such group of queue {:?}",
                    q.stats().name
                )));
            }
            Some(_) => {}
        }
    }
    while !crate::stop_requested() {
        o.stats.dead_lettered += dead_letters(q, source, o.dlq_group.as_deref())?;
        if o.stats.due() {
            report(q, source, &mut o.stats, dedup_before, false);
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
        let meta = ib.meta().key(&ib.idempotency_key);
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
    report(q, source, &mut o.stats, dedup_before, true);
    Ok(())
}

/// Reports the progress with the lags on both sides and the duplicates
/// the queue absorbed since the bridge started (`dedup_before` then).
fn report(q: &Queue, source: &mut dyn Source, stats: &mut Stats, dedup_before: u64, last: bool) {
    let s = q.stats();
    stats.shmq_lag = Some(s.depth);
    stats.duplicates = s.deduplicated - dedup_before;
    stats.engine_lag = source.lag();
    stats.report(last);
}
