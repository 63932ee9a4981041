//! The queue's numbers in the Prometheus text exposition format: the one
//! place that names, types and explains them, used by `shmq stat
//! --prometheus` (one queue) and `shmq exporter` (every queue in a
//! directory, per scrape).
//!
//! Every family is written once with a sample per queue (and per group),
//! as the format requires; label values are escaped by the `prometheus`
//! crate's encoder.

use prometheus::{CounterVec, Encoder, GaugeVec, Opts, Registry, TextEncoder};
use shmq::{GroupInfo, Stats};

/// Counter or gauge, as `# TYPE` says.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// What a metric is read from: one sample per queue, per group, per
/// queue with a journal, or per queue that has a value for it.
#[derive(Clone, Copy)]
enum Source {
    Queue(fn(&Stats) -> u64),
    QueueIf(fn(&Stats) -> Option<f64>),
    Journal(fn(&Stats, &shmq::JournalStats) -> u64),
    Group(fn(&Stats, &GroupInfo) -> f64),
}

struct Metric {
    /// Without the `shmq_` prefix.
    name: &'static str,
    kind: Kind,
    help: &'static str,
    source: Source,
}

use Kind::{Counter, Gauge};
use Source::{Group, Journal, Queue, QueueIf};

const fn m(name: &'static str, kind: Kind, help: &'static str, source: Source) -> Metric {
    Metric {
        name,
        kind,
        help,
        source,
    }
}

/// Every metric, in the order `stats()` knows them.
const METRICS: &[Metric] = &[
    m(
        "depth",
        Gauge,
        "Slots not yet finished by the slowest group (a message longer than a slot counts each of its slots).",
        Queue(|s| s.depth),
    ),
    m(
        "depth_bytes",
        Gauge,
        "Bytes of the ring not yet finished by the slowest group: the bytes in flight.",
        Queue(|s| s.depth_bytes),
    ),
    m(
        "max_message_size_bytes",
        Gauge,
        "The largest message the queue takes.",
        Queue(|s| s.max_message_size),
    ),
    m(
        "capacity",
        Gauge,
        "Ring capacity in messages.",
        Queue(|s| s.slots),
    ),
    m(
        "capacity_bytes",
        Gauge,
        "Bytes of the ring: what the messages in flight may take (depth_bytes of it are taken).",
        Queue(|s| s.capacity),
    ),
    m(
        "file_size_bytes",
        Gauge,
        "Size of the queue file (ring, dead-letter slots and tables).",
        Queue(|s| s.file_size),
    ),
    m(
        "next_seq",
        Gauge,
        "Seq the next published message will get.",
        Queue(|s| s.next_seq),
    ),
    m(
        "published_total",
        Counter,
        "Messages published.",
        Queue(|s| s.published),
    ),
    m(
        "rejected_total",
        Counter,
        "Publishes refused because the queue was full.",
        Queue(|s| s.rejected),
    ),
    m(
        "deduplicated_total",
        Counter,
        "Keyed publishes not enqueued again (their key was remembered).",
        Queue(|s| s.deduplicated),
    ),
    m(
        "aborted_total",
        Counter,
        "Positions aborted (stuck or dead producers).",
        Queue(|s| s.aborted),
    ),
    m(
        "producers",
        Gauge,
        "Live producers.",
        Queue(|s| s.producers),
    ),
    m(
        "consumers",
        Gauge,
        "Live consumers.",
        Queue(|s| s.consumers),
    ),
    m(
        "dlq_depth",
        Gauge,
        "Dead letters waiting.",
        Queue(|s| s.dlq_depth),
    ),
    m(
        "spilled_total",
        Counter,
        "Messages spilled to disk.",
        Queue(|s| s.spilled),
    ),
    m(
        "spilled_bytes_total",
        Counter,
        "Payload bytes spilled to disk.",
        Queue(|s| s.spilled_bytes),
    ),
    m(
        "spill_depth",
        Gauge,
        "Messages on disk waiting to come back into the ring.",
        Queue(|s| s.spill_depth),
    ),
    m(
        "spill_segments",
        Gauge,
        "Segment files on disk.",
        Queue(|s| s.spill_segments),
    ),
    m(
        "spill_bytes_on_disk",
        Gauge,
        "Bytes of segment files on disk.",
        Queue(|s| s.spill_bytes_on_disk),
    ),
    m(
        "spill_full_total",
        Counter,
        "Publishes that found the spill full.",
        Queue(|s| s.spill_full),
    ),
    m(
        "spill_lost_total",
        Counter,
        "Spilled messages found damaged when read back.",
        Queue(|s| s.spill_lost),
    ),
    m(
        "dlq_lost_total",
        Counter,
        "Dead letters found damaged or missing when read back from the DLQ's overflow.",
        Queue(|s| s.dlq_lost),
    ),
    m(
        "scheduled",
        Gauge,
        "Messages scheduled for later (a delay or a time) and not yet due and moved into the ring, nor cancelled.",
        Queue(|s| s.scheduled),
    ),
    m(
        "scheduled_cancelled_total",
        Counter,
        "Scheduled messages cancelled.",
        Queue(|s| s.scheduled_cancelled),
    ),
    m(
        "scheduled_lost_total",
        Counter,
        "Scheduled messages found damaged or missing on disk (never delivered as read).",
        Queue(|s| s.scheduled_lost),
    ),
    m(
        "scheduled_next_due_seconds",
        Gauge,
        "When the earliest scheduled message is due, in Unix seconds (no sample: nothing is scheduled).",
        QueueIf(|s| s.next_due_ns.map(|ns| ns as f64 / 1e9)),
    ),
    m(
        "journal_first_seq",
        Gauge,
        "Oldest seq the journal retains.",
        Journal(|_, j| j.first_seq),
    ),
    m(
        "journal_next_seq",
        Gauge,
        "Next seq to be journaled.",
        Journal(|_, j| j.next_seq),
    ),
    m(
        "journaled_total",
        Counter,
        "Messages written to the journal.",
        Journal(|_, j| j.journaled),
    ),
    m(
        "journaled_bytes_total",
        Counter,
        "Payload bytes written to the journal.",
        Journal(|_, j| j.journaled_bytes),
    ),
    m(
        "journal_segments",
        Gauge,
        "Journal segment files on disk.",
        Journal(|_, j| j.segments),
    ),
    m(
        "journal_bytes_on_disk",
        Gauge,
        "Bytes of journal segment files on disk.",
        Journal(|_, j| j.bytes_on_disk),
    ),
    m(
        "journal_expired_total",
        Counter,
        "Seqs whose retention ran out (their segment was deleted).",
        Journal(|_, j| j.expired),
    ),
    m(
        "journal_skipped_total",
        Counter,
        "Messages the journal skipped because the disk had no room (replay has a gap there).",
        Journal(|_, j| j.skipped),
    ),
    m(
        "journal_replaying_groups",
        Gauge,
        "Groups reading from the journal (behind the ring).",
        Journal(|s, _| s.groups.iter().filter(|g| g.next < s.oldest_seq).count() as u64),
    ),
    m(
        "group_lag",
        Gauge,
        "Messages published that the group has not finished.",
        Group(|_, g| g.lag as f64),
    ),
    m(
        "group_next_seq",
        Gauge,
        "Next seq the group will receive.",
        Group(|_, g| g.next as f64),
    ),
    m(
        "group_delivered_total",
        Counter,
        "Messages delivered to the group.",
        Group(|_, g| g.delivered as f64),
    ),
    m(
        "group_acked_total",
        Counter,
        "Messages acked by the group's consumers (ack=manual).",
        Group(|_, g| g.acked as f64),
    ),
    m(
        "group_nacked_total",
        Counter,
        "Messages nacked by the group's consumers.",
        Group(|_, g| g.nacked as f64),
    ),
    m(
        "group_redelivered_total",
        Counter,
        "Deliveries after the first.",
        Group(|_, g| g.redelivered as f64),
    ),
    m(
        "group_expired_total",
        Counter,
        "Leases that ran out or whose consumer died.",
        Group(|_, g| g.expired as f64),
    ),
    m(
        "group_dead_lettered_total",
        Counter,
        "Messages the group moved to the dead-letter queue.",
        Group(|_, g| g.dead_lettered as f64),
    ),
    m(
        "group_messages_expired_total",
        Counter,
        "Messages whose time to live ran out before the group finished them (dead-lettered with reason expired, or discarded).",
        Group(|_, g| g.messages_expired as f64),
    ),
    m(
        "group_in_flight",
        Gauge,
        "Messages leased to the group's consumers right now.",
        Group(|_, g| g.in_flight as f64),
    ),
    m(
        "group_consumers",
        Gauge,
        "Live consumers attached to the group.",
        Group(|_, g| g.consumers as f64),
    ),
    m(
        "group_oldest_unacked_age_seconds",
        Gauge,
        "Age of the group's oldest unfinished message.",
        Group(|_, g| g.oldest_unacked_age_ns as f64 / 1e9),
    ),
];

/// Families that only `shmq exporter` writes: about the directory, not a
/// queue.
const UNUSABLE: (&str, &str) = (
    "unusable_files",
    "Files named *.shmq in the directory that could not be opened as queues.",
);

/// One family's sample sink: counters and gauges both take a value per
/// label set, from a fresh registry, so "inc by" sets it.
enum Family {
    Counter(CounterVec),
    Gauge(GaugeVec),
}

impl Family {
    fn set(&self, labels: &[&str], v: f64) {
        match self {
            Family::Counter(c) => c.with_label_values(labels).inc_by(v),
            Family::Gauge(g) => g.with_label_values(labels).set(v),
        }
    }
}

fn family(reg: &Registry, name: &str, kind: Kind, help: &str, labels: &[&str]) -> Family {
    let opts = Opts::new(format!("shmq_{name}"), help);
    // The names and label sets are this file's constants: a registration
    // error is a bug here, not an input error.
    let f = match kind {
        Kind::Counter => Family::Counter(CounterVec::new(opts, labels).expect("metric definition")),
        Kind::Gauge => Family::Gauge(GaugeVec::new(opts, labels).expect("metric definition")),
    };
    let collector: Box<dyn prometheus::core::Collector> = match &f {
        Family::Counter(c) => Box::new(c.clone()),
        Family::Gauge(g) => Box::new(g.clone()),
    };
    reg.register(collector).expect("metric names are unique");
    f
}

/// The text exposition of `queues` (a family with no sample, such as the
/// journal's where no queue has one, is left out). `unusable`, when given,
/// adds the exporter's count of files that are not usable queues.
pub(crate) fn prometheus_text(queues: &[&Stats], unusable: Option<usize>) -> String {
    let reg = Registry::new();
    for metric in METRICS {
        let labels: &[&str] = match metric.source {
            Source::Group(_) => &["queue", "group"],
            _ => &["queue"],
        };
        let f = family(&reg, metric.name, metric.kind, metric.help, labels);
        for s in queues {
            match metric.source {
                Source::Queue(get) => f.set(&[&s.name], get(s) as f64),
                Source::QueueIf(get) => {
                    if let Some(v) = get(s) {
                        f.set(&[&s.name], v);
                    }
                }
                Source::Journal(get) => {
                    if let Some(j) = &s.journal {
                        f.set(&[&s.name], get(s, j) as f64);
                    }
                }
                Source::Group(get) => {
                    for g in &s.groups {
                        f.set(&[&s.name, &g.name], get(s, g));
                    }
                }
            }
        }
    }
    if let Some(n) = unusable {
        let (name, help) = UNUSABLE;
        family(&reg, name, Kind::Gauge, help, &[]).set(&[], n as f64);
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&reg.gather(), &mut out)
        .expect("the text encoder writes to memory");
    String::from_utf8(out).expect("the text encoder writes UTF-8")
}

/// The content type of [`prometheus_text`]'s output.
pub(crate) fn content_type() -> String {
    TextEncoder::new().format_type().to_string()
}
