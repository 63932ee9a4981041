//! The Kafka engine, on librdkafka (`rdkafka`, built from its bundled
//! source): an idempotent producer as the [`Sink`] and a consumer-group
//! member as the [`Source`].

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::engine::{Confirm, Fatal, Incoming, Outgoing, Sent, Sink, Source};

/// Where and how to reach Kafka.
#[derive(Clone, Debug)]
pub struct Conn {
    pub brokers: String,
    pub topic: String,
    /// `-X name=value`: librdkafka properties, set last (they win).
    pub props: Vec<(String, String)>,
    /// How long the first look at the cluster may take before the bridge
    /// says it cannot reach it.
    pub connect_timeout: Duration,
}

impl Conn {
    fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            cfg.set(*k, *v);
        }
        for (k, v) in &self.props {
            cfg.set(k, v);
        }
        cfg
    }
}

/// Parses `-X name=value`.
pub fn property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!(
            "expected NAME=VALUE (a librdkafka property), got {s:?}"
        )),
    }
}

fn create_error(what: &str, e: KafkaError) -> Fatal {
    // librdkafka names an unknown property in its message
    // ("No such configuration property: ...").
    Fatal(format!("cannot create the Kafka {what}: {e}"))
}

/// Looks at the cluster once: the brokers answer and the topic exists.
/// An unreachable cluster, bad credentials and a missing topic are told
/// apart here, before anything moves.
fn check_topic<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    conn: &Conn,
) -> Result<(), Fatal> {
    let md = client
        .fetch_metadata(Some(&conn.topic), conn.connect_timeout)
        .map_err(|e| {
            Fatal(format!(
                "cannot reach the Kafka brokers {} within {}s: {e} (are they up, and are the address and any security settings (-X security.protocol=..., sasl.*) right?)",
                conn.brokers,
                conn.connect_timeout.as_secs_f64()
            ))
        })?;
    match md.topics().iter().find(|t| t.name() == conn.topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
        Some(t) => Err(Fatal(format!(
            "Kafka topic {:?} is not usable: {} (create it first, e.g. kafka-topics --create --topic {})",
            conn.topic,
            t.error()
                .map(|e| RDKafkaErrorCode::from(e).to_string())
                .unwrap_or_else(|| "it has no partitions".into()),
            conn.topic
        ))),
        None => Err(Fatal(format!(
            "Kafka topic {:?} does not exist",
            conn.topic
        ))),
    }
}

/// The producer's context: confirmations gathered during `poll`, and the
/// last error librdkafka reported (for the stall message).
#[derive(Default)]
struct ProducerCtx {
    done: Mutex<Vec<Confirm>>,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for ProducerCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("kafka: {error}: {reason}");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, token: Box<u64>) {
        let result = match result {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e.to_string()),
        };
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Confirm {
                token: *token,
                result,
            });
    }
}

/// `to-kafka`'s sink: librdkafka's idempotent producer (`acks=all`,
/// `enable.idempotence=true`) with the Java client's partitioner
/// (`murmur2_random`), so a key lands on the partition a Java producer
/// would choose.
pub struct KafkaSink {
    conn: Conn,
    producer: BaseProducer<ProducerCtx>,
    /// Tokens sent and not confirmed.
    pending: HashSet<u64>,
    /// Times the producer was rebuilt after a fatal error.
    pub rebuilt: u64,
}

const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("partitioner", "murmur2_random"),
    ("linger.ms", "5"),
    // Retried by librdkafka for this long, then failed back to us (we
    // send it again): a broker outage of minutes loses nothing.
    ("message.timeout.ms", "120000"),
];

impl KafkaSink {
    pub fn new(conn: Conn) -> Result<KafkaSink, Fatal> {
        let producer = Self::producer(&conn)?;
        check_topic(producer.client(), &conn)?;
        Ok(KafkaSink {
            conn,
            producer,
            pending: HashSet::new(),
            rebuilt: 0,
        })
    }

    fn producer(conn: &Conn) -> Result<BaseProducer<ProducerCtx>, Fatal> {
        conn.config(PRODUCER_DEFAULTS)
            .create_with_context(ProducerCtx::default())
            .map_err(|e| create_error("producer", e))
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, rec: &Outgoing, token: u64) -> Result<Sent, Fatal> {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (name, value) in &rec.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_slice()),
            });
        }
        let mut record =
            BaseRecord::<[u8], [u8], Box<u64>>::with_opaque_to(&self.conn.topic, Box::new(token))
                .payload(&rec.payload[..])
                .headers(headers)
                .timestamp(rec.timestamp_ms);
        if let Some(k) = &rec.key {
            record = record.key(&k[..]);
        }
        match self.producer.send(record) {
            Ok(()) => {
                self.pending.insert(token);
                Ok(Sent::Queued)
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(Sent::Full),
            Err((e, _)) => Err(Fatal(format!("Kafka refused a record: {e}"))),
        }
    }

    fn poll(&mut self, timeout: Duration, done: &mut Vec<Confirm>) -> Result<(), Fatal> {
        self.producer.poll(timeout);
        let ctx = self.producer.context();
        let mut got = std::mem::take(&mut *ctx.done.lock().unwrap_or_else(|p| p.into_inner()));
        for c in &got {
            self.pending.remove(&c.token);
        }
        done.append(&mut got);
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            // The idempotent producer cannot go on (e.g. its sequence was
            // lost): a new one, and everything unconfirmed is sent again.
            eprintln!("kafka: fatal producer error {code}: {reason}; rebuilding the producer");
            self.producer = Self::producer(&self.conn)?;
            self.rebuilt += 1;
            for token in self.pending.drain() {
                done.push(Confirm {
                    token,
                    result: Err(format!(
                        "the producer was rebuilt after a fatal error: {reason}"
                    )),
                });
            }
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

/// The consumer's context: on a revocation, what was accepted is
/// committed before the partitions go (so the next owner starts after
/// it, and nothing is committed twice or past what shmq has). It keeps
/// the lag from librdkafka's statistics (`statistics.interval.ms`): the
/// records of our topic past what we have read, summed over the
/// partitions assigned to us (-1 until the first statistics with one).
struct ConsumerCtx {
    topic: String,
    lag: AtomicI64,
}

/// The records of `topic` not read yet, summed over its partitions in one
/// librdkafka statistics object (JSON), or `None` if no partition says.
/// A partition's `consumer_lag` is -1 until something was read from it or
/// committed; then its lag counts from the log start (`lo_offset`), where
/// `auto.offset.reset=earliest` starts it.
fn consumer_lag(stats: &[u8], topic: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(stats).ok()?;
    let parts = v
        .get("topics")?
        .get(topic)?
        .get("partitions")?
        .as_object()?;
    let field = |p: &serde_json::Value, name: &str| {
        p.get(name)
            .and_then(serde_json::Value::as_i64)
            .filter(|&o| o >= 0)
    };
    let mut known = false;
    let mut total = 0u64;
    for (id, p) in parts {
        // "-1" is librdkafka's internal unassigned-partition queue.
        if id == "-1" {
            continue;
        }
        let lag = field(p, "consumer_lag").or_else(|| {
            let hi = field(p, "hi_offset")?;
            let from = field(p, "app_offset")
                .or_else(|| field(p, "committed_offset"))
                .or_else(|| field(p, "lo_offset"))?;
            Some((hi - from).max(0))
        });
        if let Some(lag) = lag {
            known = true;
            total += lag as u64;
        }
    }
    known.then_some(total)
}

impl ClientContext for ConsumerCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("kafka: {error}: {reason}");
    }

    fn stats_raw(&self, statistics: &[u8]) {
        let lag = consumer_lag(statistics, &self.topic).map_or(-1, |l| l as i64);
        self.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
                Err(e) => eprintln!("kafka: commit before a rebalance: {e}"),
            }
        }
    }
}

/// `from-kafka`'s source: a member of consumer group `group.id`. Offsets
/// are stored only for records shmq accepted (`enable.auto.offset.store`
/// off) and committed from the store every `auto.commit.interval.ms`, at
/// a revocation and at exit.
pub struct KafkaSource {
    conn: Conn,
    consumer: BaseConsumer<ConsumerCtx>,
    paused: bool,
    /// Records that came while the bridge was paused (`serve`), for
    /// `poll` before anything new.
    held: VecDeque<Incoming>,
}

impl KafkaSource {
    pub fn new(conn: Conn, group: &str) -> Result<KafkaSource, Fatal> {
        let consumer: BaseConsumer<ConsumerCtx> = conn
            .config(&[
                ("group.id", group),
                ("enable.auto.commit", "true"),
                ("enable.auto.offset.store", "false"),
                ("auto.commit.interval.ms", "1000"),
                ("auto.offset.reset", "earliest"),
                ("isolation.level", "read_committed"),
                // The lag in the progress lines comes from these.
                ("statistics.interval.ms", "1000"),
            ])
            .create_with_context(ConsumerCtx {
                topic: conn.topic.clone(),
                lag: AtomicI64::new(-1),
            })
            .map_err(|e| create_error("consumer", e))?;
        check_topic(consumer.client(), &conn)?;
        consumer
            .subscribe(&[&conn.topic])
            .map_err(|e| Fatal(format!("cannot subscribe to {:?}: {e}", conn.topic)))?;
        Ok(KafkaSource {
            conn,
            consumer,
            paused: false,
            held: VecDeque::new(),
        })
    }

    fn incoming(&self, m: &BorrowedMessage<'_>) -> Incoming {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Incoming {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().unwrap_or_default().to_vec(),
            headers,
            id: format!("kafka:{}:{}:{}", m.topic(), m.partition(), m.offset()),
            partition: m.partition(),
            offset: m.offset(),
        }
    }

    fn assignment(&self) -> Result<TopicPartitionList, Fatal> {
        self.consumer
            .assignment()
            .map_err(|e| Fatal(format!("kafka: the assignment: {e}")))
    }
}

impl KafkaSource {
    /// One `poll` of the consumer: a record, or `None` (nothing within
    /// `timeout`, or a transient error librdkafka recovers from).
    fn poll_consumer(&mut self, timeout: Duration) -> Result<Option<Incoming>, Fatal> {
        match self.consumer.poll(timeout) {
            None => Ok(None),
            Some(Ok(m)) => Ok(Some(self.incoming(&m))),
            // Transient (a partition's end, a broker away): librdkafka
            // goes on by itself.
            Some(Err(KafkaError::PartitionEOF(_))) => Ok(None),
            Some(Err(e)) => {
                if let Some((code, reason)) = self.consumer.client().fatal_error() {
                    return Err(Fatal(format!(
                        "kafka consumer failed for good ({code}): {reason}"
                    )));
                }
                eprintln!("kafka: {e}");
                Ok(None)
            }
        }
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, timeout: Duration) -> Result<Option<Incoming>, Fatal> {
        if let Some(r) = self.held.pop_front() {
            return Ok(Some(r));
        }
        self.poll_consumer(timeout)
    }

    fn serve(&mut self) -> Result<(), Fatal> {
        // A consumer that is not polled for `max.poll.interval.ms` leaves
        // its group (and its partitions go elsewhere): while paused we
        // poll anyway. Paused partitions give nothing; a partition
        // assigned meanwhile might, and its records wait in `held`, in
        // order, behind the one the bridge holds.
        if let Some(r) = self.poll_consumer(Duration::ZERO)? {
            self.held.push_back(r);
        }
        Ok(())
    }

    fn accepted(&mut self, rec: &Incoming) -> Result<(), Fatal> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &self.conn.topic,
            rec.partition,
            Offset::Offset(rec.offset + 1),
        )
        .map_err(|e| Fatal(format!("kafka: {e}")))?;
        match self.consumer.store_offsets(&tpl) {
            Ok(()) => Ok(()),
            // The partition was taken from us meanwhile: its new owner
            // reads it again from the last commit (shmq's dedup window
            // absorbs the records it had).
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State))
            | Err(KafkaError::StoreOffset(RDKafkaErrorCode::UnknownPartition)) => Ok(()),
            Err(e) => Err(Fatal(format!("kafka: storing an offset: {e}"))),
        }
    }

    fn pause(&mut self) -> Result<(), Fatal> {
        // Every time, not only the first: a partition assigned while
        // paused (a rebalance) is paused too. Local, no broker round trip.
        let a = self.assignment()?;
        self.consumer
            .pause(&a)
            .map_err(|e| Fatal(format!("kafka: pausing: {e}")))?;
        self.paused = true;
        Ok(())
    }

    fn resume(&mut self) -> Result<(), Fatal> {
        if self.paused {
            let a = self.assignment()?;
            self.consumer
                .resume(&a)
                .map_err(|e| Fatal(format!("kafka: resuming: {e}")))?;
            self.paused = false;
        }
        Ok(())
    }

    fn lag(&mut self) -> Option<u64> {
        u64::try_from(self.consumer.context().lag.load(Ordering::Relaxed)).ok()
    }

    fn close(&mut self) -> Result<(), Fatal> {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(e) => Err(Fatal(format!("kafka: the last commit: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::consumer_lag;

    #[test]
    fn the_lag_sums_the_topics_known_partitions() {
        let stats = br#"{"topics": {
            "orders": {"partitions": {
                "0": {"consumer_lag": 5, "hi_offset": 500},
                "1": {"consumer_lag": 7},
                "2": {"consumer_lag": -1, "hi_offset": 800, "app_offset": -1001,
                      "committed_offset": -1001, "lo_offset": 100},
                "3": {"consumer_lag": -1, "hi_offset": 800, "app_offset": -1001,
                      "committed_offset": 790, "lo_offset": 100},
                "4": {"consumer_lag": -1, "hi_offset": -1001},
                "-1": {"consumer_lag": 1000}
            }},
            "other": {"partitions": {"0": {"consumer_lag": 99}}}
        }}"#;
        // 5 + 7, 800 - 100 from the log start, 800 - 790 from the commit.
        assert_eq!(consumer_lag(stats, "orders"), Some(5 + 7 + 700 + 10));
        assert_eq!(consumer_lag(stats, "other"), Some(99));
        assert_eq!(consumer_lag(stats, "missing"), None);
        let unknown = br#"{"topics": {"orders": {"partitions": {"0": {"consumer_lag": -1}}}}}"#;
        assert_eq!(consumer_lag(unknown, "orders"), None);
        assert_eq!(consumer_lag(b"not json", "orders"), None);
    }
}
