//! `from-nats`'s [`Source`]: a durable pull consumer with explicit acks,
//! each message acked once shmq accepted it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::ConsumerErrorKind;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures_util::{FutureExt, StreamExt};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::dead_letters::DeadLetters;
use super::headers::{headers_in, id_of};
use super::{Conn, runtime, set_up};
use crate::engine::{Fatal, GivenUp, Incoming, Source};

/// `from-nats`'s source: a durable pull consumer with explicit acks. A
/// message is acked only once shmq accepted it; unacked, JetStream
/// delivers it again after `ack_wait` (shmq's dedup window absorbs it).
pub struct NatsSource {
    rt: Runtime,
    stream: String,
    consumer: PullConsumer,
    messages: jetstream::consumer::pull::Stream,
    /// Delivered and not yet accepted by shmq, by stream sequence.
    unacked: HashMap<u64, jetstream::Message>,
    /// Messages that came while paused, for `poll`.
    held: VecDeque<Incoming>,
    last_progress: Instant,
    ack_wait: Duration,
    /// Messages shmq accepted, for the task that acks them.
    ack_tx: mpsc::UnboundedSender<jetstream::Message>,
    /// If the durable has a `max_deliver` (then JetStream gives messages
    /// up, and says so in advisories we subscribe to): what it gave up.
    dead_letters: Option<DeadLetters>,
}

impl NatsSource {
    /// Connects and binds durable consumer `durable` of `stream` (made if
    /// missing: explicit acks, from the start of the stream).
    pub fn new(
        conn: Conn,
        stream: &str,
        durable: &str,
        ack_wait: Duration,
    ) -> Result<NatsSource, Fatal> {
        let rt = runtime()?;
        let (consumer, messages, dead_letters, ack_wait) = rt.block_on(async {
            let (js, deadline) = set_up(&conn).await?;
            let s = setup_retry!(
                deadline,
                format!("no JetStream stream {stream:?}"),
                js.get_stream(stream),
                |e: &jetstream::context::GetStreamError| matches!(
                    e.kind(),
                    GetStreamErrorKind::Request
                )
            )?;
            let config = jetstream::consumer::pull::Config {
                durable_name: Some(durable.to_string()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                max_ack_pending: 20_000,
                ..Default::default()
            };
            let consumer: PullConsumer = setup_retry!(
                deadline,
                format!("durable consumer {durable:?} of {stream:?}"),
                s.get_or_create_consumer(durable, config.clone()),
                |e: &jetstream::stream::ConsumerError| matches!(
                    e.kind(),
                    ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request
                )
            )?;
            let max_deliver = Some(consumer.cached_info().config.max_deliver).filter(|&m| m > 0);
            // A durable made before keeps its own ack_wait: progress is
            // sent within it.
            let ack_wait = consumer.cached_info().config.ack_wait;
            // Messages delivered to a bridge that died before shmq took
            // them are delivered again only once their ack_wait runs
            // out; pulling at once would put newer messages of their
            // keys into the queue ahead of them. Waiting out ack_wait
            // first lets JetStream hand them over before anything new
            // (its redeliveries go first), so per-key order holds.
            let left = consumer.cached_info().num_ack_pending;
            if left > 0 {
                eprintln!(
                    "from-nats: {left} message(s) of durable {durable:?} were delivered and not \
                     acked (a bridge stopped or killed, or one sharing the durable): waiting \
                     out its ack_wait ({ack_wait:?}) so that they come back before newer ones"
                );
                // (A tenth more: the server moves them to its
                // redelivery queue on a timer of its own.)
                tokio::time::sleep(ack_wait + ack_wait / 10).await;
            }
            let dead_letters = match max_deliver {
                Some(m) => Some(DeadLetters::subscribe(&js, s, stream, durable, m).await?),
                None => None,
            };
            let messages = consumer
                .stream()
                .max_messages_per_batch(1000)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .map_err(|e| Fatal(format!("pulling from {durable:?}: {e}")))?;
            Ok::<_, Fatal>((consumer, messages, dead_letters, ack_wait))
        })?;
        let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<jetstream::Message>();
        rt.spawn(async move {
            while let Some(m) = ack_rx.recv().await {
                if let Err(e) = m.ack().await {
                    let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                    eprintln!("nats: acking stream seq {seq}: {e}");
                }
            }
        });
        Ok(NatsSource {
            ack_tx,
            dead_letters,
            rt,
            stream: stream.to_string(),
            consumer,
            messages,
            unacked: HashMap::new(),
            held: Default::default(),
            last_progress: Instant::now(),
            ack_wait,
        })
    }

    fn incoming(&self, m: &jetstream::Message) -> Result<Incoming, Fatal> {
        let info = m
            .info()
            .map_err(|e| Fatal(format!("a JetStream message without its metadata: {e}")))?;
        let seq = info.stream_sequence;
        let (key, headers) = headers_in(m.headers.as_ref());
        Ok(Incoming {
            key,
            payload: m.payload.to_vec(),
            headers,
            id: id_of(&self.stream, seq),
            partition: 0,
            offset: seq as i64,
        })
    }

    /// The next message within `timeout`, kept for its ack.
    fn next(&mut self, timeout: Duration) -> Result<Option<Incoming>, Fatal> {
        let messages = &mut self.messages;
        // One already here is taken without a timer; else wait for one.
        let ready = {
            let _in_runtime = self.rt.enter();
            messages.next().now_or_never()
        };
        let next = match ready {
            Some(m) => Ok(m),
            None => self
                .rt
                .block_on(async { tokio::time::timeout(timeout, messages.next()).await }),
        };
        match next {
            Err(_) | Ok(None) => Ok(None),
            Ok(Some(Ok(m))) => {
                let rec = self.incoming(&m)?;
                let seq = rec.offset as u64;
                if self.dead_letters.as_ref().is_some_and(|d| d.gave_up(seq)) {
                    // A copy that waited in the client while JetStream gave
                    // it up: it is in the DLQ already.
                    return Ok(None);
                }
                self.unacked.insert(seq, m);
                Ok(Some(rec))
            }
            // A missed heartbeat, a server away: the client reconnects
            // and the stream goes on by itself.
            Ok(Some(Err(e))) => {
                eprintln!("nats: {e}");
                Ok(None)
            }
        }
    }
}

impl Source for NatsSource {
    fn poll(&mut self, timeout: Duration) -> Result<Option<Incoming>, Fatal> {
        if let Some(r) = self.held.pop_front() {
            return Ok(Some(r));
        }
        self.next(timeout)
    }

    fn accepted(&mut self, rec: &Incoming) -> Result<(), Fatal> {
        if let Some(d) = &mut self.dead_letters {
            d.accepted(rec.offset as u64);
        }
        if let Some(m) = self.unacked.remove(&(rec.offset as u64)) {
            // A lost ack is a redelivery after ack_wait, which shmq's dedup
            // window absorbs: no need to wait for the server's word.
            // The acking task sends it (not waited for here).
            if self.ack_tx.send(m).is_err() {
                return Err(Fatal("nats: the acking task ended".into()));
            }
        }
        Ok(())
    }

    fn serve(&mut self) -> Result<(), Fatal> {
        // Paused: tell JetStream we are still working on what we hold,
        // so it does not deliver it again meanwhile.
        if self.last_progress.elapsed() >= self.ack_wait / 3 {
            self.last_progress = Instant::now();
            for m in self.unacked.values() {
                let _ = self.rt.block_on(m.ack_with(AckKind::Progress));
            }
        }
        Ok(())
    }

    fn pause(&mut self) -> Result<(), Fatal> {
        // The pull stream holds at most a batch; not reading it is the
        // pause (its messages are kept alive by `serve`, or delivered
        // again after ack_wait and absorbed by the dedup window).
        Ok(())
    }

    fn resume(&mut self) -> Result<(), Fatal> {
        Ok(())
    }

    fn lag(&mut self) -> Option<u64> {
        let consumer = &self.consumer;
        let info = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(500), consumer.get_info()).await
        });
        match info {
            Ok(Ok(i)) => Some(i.num_pending),
            _ => None,
        }
    }

    fn close(&mut self) -> Result<(), Fatal> {
        Ok(())
    }

    fn gives_up(&self) -> Option<String> {
        self.dead_letters.as_ref().map(DeadLetters::policy)
    }

    fn given_up(&mut self) -> Result<Vec<GivenUp>, Fatal> {
        Ok(match &mut self.dead_letters {
            Some(d) => d.take(&self.rt, &self.unacked),
            None => Vec::new(),
        })
    }
}
