//! `to-*`: a group of a shmq queue into an engine's [`Sink`],
//! at-least-once. The group is read with ack=manual, so bridge instances
//! on one group share the work instead of each sending everything; each
//! message is acked in shmq only after the engine confirmed it, and its
//! lease is kept alive meanwhile. A full engine queue is back-pressure (we
//! stop pulling), an engine outage leaves messages leased or back in the
//! group (sent again when it returns), never dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shmq::{Ack, ConsumerOptions, Error, Nack, Queue, Receipt};

use crate::engine::{Confirm, Fatal, Outgoing, Sent, Sink};
use crate::record;
use crate::stats::Stats;

/// How `to-*` runs.
pub struct Options {
    pub group: String,
    /// Most messages sent and not yet confirmed.
    pub max_in_flight: usize,
    /// The lease of an in-flight message is kept this far ahead.
    pub lease: Duration,
    /// Exit after this long with nothing to send and nothing in flight.
    pub exit_idle: Option<Duration>,
    pub stats: Stats,
}

/// A record the engine had no room for yet, or one it failed to store,
/// waiting to be sent again. It stays leased meanwhile: an engine failure
/// is not a failed delivery (a nack would count an attempt, and an outage
/// longer than `max_deliveries` retries would dead-letter what the engine
/// never refused).
struct Stalled {
    receipt: Receipt,
    rec: Outgoing,
    token: u64,
}

/// A record sent and not confirmed yet.
struct Flying {
    receipt: Receipt,
    rec: Outgoing,
}

/// How long a record the engine failed to store waits before it is sent
/// again.
const RETRY_AFTER: Duration = Duration::from_millis(500);

fn shmq_err(what: &str, e: Error) -> Fatal {
    Fatal(format!("shmq: {what}: {e}"))
}

/// Moves messages until stopped (SIGINT/SIGTERM: what is in flight is
/// waited for, a little, then given back) or idle for `exit_idle`.
pub fn run(q: &Queue, sink: &mut dyn Sink, mut o: Options) -> Result<(), Fatal> {
    let mut consumer = q
        .consumer(
            &o.group,
            ConsumerOptions::new().ack(Ack::Manual).create(true),
        )
        .map_err(|e| shmq_err(&format!("joining group {:?}", o.group), e))?;
    let origin = record::origin(&q.stats().name, &o.group);
    let queue_ttl = q.message_ttl();
    let mut in_flight: HashMap<u64, Flying> = HashMap::new();
    let mut stalled: Option<Stalled> = None;
    let mut retry: std::collections::VecDeque<(Instant, Stalled)> = Default::default();
    let mut token = 0u64;
    let mut done: Vec<Confirm> = Vec::new();
    let mut extended = Instant::now();
    let mut busy = Instant::now();
    let mut stopping: Option<Instant> = None;
    loop {
        if stopping.is_none() && crate::stop_requested() {
            stopping = Some(Instant::now());
        }
        // The record that found no room goes first, then those due again.
        if stalled.is_none() && retry.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            let (_, mut s) = retry.pop_front().expect("checked");
            token += 1;
            s.token = token;
            stalled = Some(s);
        }
        if let Some(s) = stalled.take() {
            match sink.send(&s.rec, s.token)? {
                Sent::Queued => {
                    let f = Flying {
                        receipt: s.receipt,
                        rec: s.rec,
                    };
                    in_flight.insert(s.token, f);
                }
                Sent::Full => stalled = Some(s),
            }
        }
        let mut pulled = 0;
        while stopping.is_none() && stalled.is_none() && in_flight.len() < o.max_in_flight {
            // Asleep in shmq only when nothing else needs us.
            let wait = if in_flight.is_empty() && pulled == 0 {
                Duration::from_millis(50)
            } else {
                Duration::ZERO
            };
            let Some(d) = consumer.poll(wait).map_err(|e| shmq_err("receiving", e))? else {
                break;
            };
            let rec = record::outgoing(&d, &origin, queue_ttl);
            let receipt = d
                .into_receipt()
                .map_err(|e| shmq_err("keeping a lease", e))?;
            token += 1;
            pulled += 1;
            match sink.send(&rec, token)? {
                Sent::Queued => {
                    in_flight.insert(token, Flying { receipt, rec });
                }
                Sent::Full => {
                    o.stats.paused += 1;
                    stalled = Some(Stalled {
                        receipt,
                        rec,
                        token,
                    });
                }
            }
        }
        let wait = if pulled == 0 && !in_flight.is_empty() {
            Duration::from_millis(2)
        } else {
            Duration::ZERO
        };
        sink.poll(wait, &mut done)?;
        for c in done.drain(..) {
            let Some(Flying { receipt, rec }) = in_flight.remove(&c.token) else {
                continue;
            };
            match c.result {
                Ok(()) => match consumer.ack_receipt(&receipt) {
                    Ok(()) => o.stats.moved += 1,
                    // Its lease ran out before the engine confirmed it: it
                    // was (or will be) sent again — a duplicate downstream
                    // with the same origin seq, which `from-*` absorbs.
                    Err(Error::LeaseExpired) => o.stats.retried += 1,
                    Err(e) => return Err(shmq_err("acking", e)),
                },
                Err(why) => {
                    if o.stats.retried == 0 || o.stats.retried.is_power_of_two() {
                        eprintln!(
                            "the engine did not store seq {}: {why}; sending it again",
                            receipt.seq()
                        );
                    }
                    o.stats.retried += 1;
                    // Kept leased and sent again soon (not nacked: see
                    // `Stalled`).
                    let s = Stalled {
                        receipt,
                        rec,
                        token: 0,
                    };
                    retry.push_back((Instant::now() + RETRY_AFTER, s));
                }
            }
        }
        // Keep the leases of what is in flight.
        if extended.elapsed() >= o.lease / 3 {
            extended = Instant::now();
            let mut lost = Vec::new();
            for (t, f) in in_flight.iter_mut() {
                if consumer.extend_receipt(&mut f.receipt, o.lease).is_err() {
                    lost.push(*t);
                }
            }
            for s in stalled.iter_mut().chain(retry.iter_mut().map(|(_, s)| s)) {
                let _ = consumer.extend_receipt(&mut s.receipt, o.lease);
            }
            // Leases taken away are delivered again anyway: their
            // confirmations need no ack.
            let _ = lost;
        }
        o.stats.in_flight =
            in_flight.len() as u64 + u64::from(stalled.is_some()) + retry.len() as u64;
        if o.stats.due() {
            o.stats.shmq_lag = q.groups().iter().find(|g| g.name == o.group).map(|g| g.lag);
            o.stats.engine_lag = Some(sink.in_flight() as u64);
            o.stats.report(false);
        }
        if pulled > 0 || !in_flight.is_empty() || stalled.is_some() || !retry.is_empty() {
            busy = Instant::now();
        }
        let idle_out = o.exit_idle.is_some_and(|d| busy.elapsed() >= d);
        let stop_now = stopping.is_some_and(|s| {
            (in_flight.is_empty() && stalled.is_none() && retry.is_empty())
                || s.elapsed() > Duration::from_secs(10)
        });
        if idle_out || stop_now {
            // Whatever is still unconfirmed goes back to the group now.
            for f in in_flight.values() {
                let _ = consumer.nack_receipt(&f.receipt, Nack::Requeue);
            }
            for s in stalled.iter().chain(retry.iter().map(|(_, s)| s)) {
                let _ = consumer.nack_receipt(&s.receipt, Nack::Requeue);
            }
            o.stats.in_flight = 0;
            o.stats.shmq_lag = q.groups().iter().find(|g| g.name == o.group).map(|g| g.lag);
            o.stats.report(true);
            return Ok(());
        }
    }
}
