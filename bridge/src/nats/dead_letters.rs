//! The messages JetStream gives up on. A durable with a `max_deliver`
//! stops delivering a message that many deliveries without an ack, and
//! says so in an advisory; `from-nats` subscribes to those, reads each
//! message given up back from the stream, and hands it over (a
//! [`GivenUp`]) for shmq's dead-letter queue, with where it was and why in
//! its headers ([`DEAD_SOURCE`]).

use std::collections::{HashMap, HashSet, VecDeque};

use async_nats::jetstream;
use futures_util::{FutureExt, StreamExt};
use tokio::runtime::Runtime;

use super::SETUP_REQUEST;
use super::headers::{headers_in, id_of};
use crate::engine::{Fatal, GivenUp, Incoming};

/// Headers of a dead letter JetStream gave up on: where it was
/// (`nats:<stream>:<stream sequence>`), why, and (if its content could
/// not be read back) the error.
pub const DEAD_SOURCE: &str = "shmq-dead-letter-source";
/// See [`DEAD_SOURCE`].
pub const DEAD_REASON: &str = "shmq-dead-letter-reason";
/// See [`DEAD_SOURCE`].
pub const DEAD_ERROR: &str = "shmq-dead-letter-error";

/// How many accepted stream sequences `from-nats` remembers.
const RECENT: usize = 100_000;

/// What JetStream gave up on for one durable that has a `max_deliver`,
/// and what `from-nats` must not hand over twice.
pub(super) struct DeadLetters {
    stream: String,
    durable: String,
    /// The durable's `max_deliver` (above 0).
    max_deliver: i64,
    /// The stream, to read a message given up back from.
    js_stream: jetstream::stream::Stream,
    /// The durable's `max_deliver` advisories.
    advisories: async_nats::Subscriber,
    /// Stream sequences given up: a copy still buffered is not delivered.
    given_up: HashSet<u64>,
    /// The last [`RECENT`] stream sequences shmq accepted (an advisory for
    /// one of them came after the ack was sent: no dead letter).
    recent: (HashSet<u64>, VecDeque<u64>),
}

/// JetStream's `max_deliver` advisory (the fields we use).
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

impl MaxDeliveries {
    fn parse(payload: &[u8]) -> Result<MaxDeliveries, String> {
        let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let field = |n: &str| v[n].as_u64().ok_or_else(|| format!("no {n:?} in {v}"));
        Ok(MaxDeliveries {
            stream_seq: field("stream_seq")?,
            deliveries: field("deliveries")?,
        })
    }
}

impl DeadLetters {
    /// Subscribes to the advisories of durable `durable` of `stream`, whose
    /// `max_deliver` is `max_deliver`.
    pub(super) async fn subscribe(
        js: &jetstream::Context,
        js_stream: jetstream::stream::Stream,
        stream: &str,
        durable: &str,
        max_deliver: i64,
    ) -> Result<DeadLetters, Fatal> {
        // One bridge of those sharing the durable takes each advisory.
        let advisories = js
            .client()
            .queue_subscribe(
                format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{durable}"),
                format!("shmq-bridge.{stream}.{durable}"),
            )
            .await
            .map_err(|e| Fatal(format!("nats: subscribing to advisories: {e}")))?;
        Ok(DeadLetters {
            stream: stream.to_string(),
            durable: durable.to_string(),
            max_deliver,
            js_stream,
            advisories,
            given_up: HashSet::new(),
            recent: Default::default(),
        })
    }

    /// What the durable gives up on, for `Source::gives_up`.
    pub(super) fn policy(&self) -> String {
        format!(
            "durable {:?} gives a message up after {} deliveries (max_deliver)",
            self.durable, self.max_deliver
        )
    }

    /// shmq accepted stream sequence `seq`.
    pub(super) fn accepted(&mut self, seq: u64) {
        let (set, order) = &mut self.recent;
        if set.insert(seq) {
            order.push_back(seq);
        }
        if order.len() > RECENT {
            let old = order.pop_front().expect("not empty");
            set.remove(&old);
        }
    }

    /// Whether stream sequence `seq` was given up (and handed over).
    pub(super) fn gave_up(&self, seq: u64) -> bool {
        self.given_up.contains(&seq)
    }

    /// The messages given up since last asked, read back from the stream
    /// on `rt`; not those shmq has (`recent`), nor those the bridge holds
    /// (`unacked`, by stream sequence).
    pub(super) fn take(
        &mut self,
        rt: &Runtime,
        unacked: &HashMap<u64, jetstream::Message>,
    ) -> Vec<GivenUp> {
        let mut out = Vec::new();
        loop {
            let next = {
                let _in_runtime = rt.enter();
                self.advisories.next().now_or_never()
            };
            let Some(Some(m)) = next else { break };
            let a = match MaxDeliveries::parse(&m.payload) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("nats: an advisory that makes no sense ({e}); ignored");
                    continue;
                }
            };
            if self.recent.0.contains(&a.stream_seq)
                || unacked.contains_key(&a.stream_seq)
                || !self.given_up.insert(a.stream_seq)
            {
                // shmq has it (the ack came too late), or the bridge holds
                // it and is placing it in the queue (a copy that comes
                // again is absorbed by the dedup window), or told twice.
                continue;
            }
            let source = id_of(&self.stream, a.stream_seq);
            let why = format!(
                "JetStream consumer {:?} gave it up after {} deliveries (max_deliver)",
                self.durable, a.deliveries
            );
            let js_stream = &self.js_stream;
            let got = rt.block_on(async {
                tokio::time::timeout(SETUP_REQUEST, js_stream.get_raw_message(a.stream_seq)).await
            });
            let (key, mut headers, payload) = match got {
                Ok(Ok(sm)) => {
                    let (key, headers) = headers_in(Some(&sm.headers));
                    (key, headers, sm.payload.to_vec())
                }
                // Gone from the stream (limits, a purge) or unreachable:
                // the dead letter says so, and what it was.
                Ok(Err(e)) => (
                    None,
                    vec![(DEAD_ERROR.into(), e.to_string().into_bytes())],
                    Vec::new(),
                ),
                Err(_) => (
                    None,
                    vec![(
                        DEAD_ERROR.into(),
                        b"the stream did not answer in time".to_vec(),
                    )],
                    Vec::new(),
                ),
            };
            headers.push((DEAD_SOURCE.into(), source.clone().into_bytes()));
            headers.push((DEAD_REASON.into(), why.into_bytes()));
            out.push(GivenUp {
                rec: Incoming {
                    key,
                    payload,
                    headers,
                    id: source,
                    partition: 0,
                    offset: a.stream_seq as i64,
                },
                attempts: u32::try_from(a.deliveries).unwrap_or(u32::MAX),
            });
        }
        out
    }
}
