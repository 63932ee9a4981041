//! `shmq stat`: depth, groups, lag and counters, as a table, one JSON
//! object or Prometheus text.

use shmq::{Options, Queue};

use crate::CliResult;

/// `shmq stat` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    /// One JSON object.
    #[arg(long, conflicts_with = "prometheus")]
    json: bool,
    /// Prometheus text exposition format.
    #[arg(long)]
    prometheus: bool,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args {
        name,
        json,
        prometheus,
    } = args;
    let q = Queue::open_with(&name, &opts)?;
    let s = q.stats();
    if json {
        println!("{}", stats_json(&s));
    } else if prometheus {
        print!("{}", stats_prometheus(&s));
    } else {
        print!("{}", stats_table(&s));
    }
    Ok(())
}

fn stats_json(s: &shmq::Stats) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "path": s.path,
        "slots": s.slots,
        "slot_size": s.slot_size,
        "overflow": s.overflow.to_string(),
        "next_seq": s.next_seq,
        "oldest_seq": s.oldest_seq,
        "depth": s.depth,
        "published": s.published,
        "delivered": s.groups.iter().map(|g| g.delivered).sum::<u64>(),
        "rejected": s.rejected,
        "deduplicated": s.deduplicated,
        "aborted": s.aborted,
        "producers": s.producers,
        "consumers": s.consumers,
        "dlq_depth": s.dlq_depth,
        "acked": s.groups.iter().map(|g| g.acked).sum::<u64>(),
        "nacked": s.groups.iter().map(|g| g.nacked).sum::<u64>(),
        "redelivered": s.groups.iter().map(|g| g.redelivered).sum::<u64>(),
        "dead_lettered": s.groups.iter().map(|g| g.dead_lettered).sum::<u64>(),
        "expired": s.groups.iter().map(|g| g.expired).sum::<u64>(),
        "spilled": s.spilled,
        "spilled_bytes": s.spilled_bytes,
        "spill_depth": s.spill_depth,
        "spill_segments": s.spill_segments,
        "spill_bytes_on_disk": s.spill_bytes_on_disk,
        "spill_full": s.spill_full,
        "spill_lost": s.spill_lost,
        "spill_dir": s.spill_dir,
        "journal": s.journal.as_ref().map(|j| serde_json::json!({
            "first_seq": j.first_seq,
            "first_ns": j.first_ns,
            "next_seq": j.next_seq,
            "journaled": j.journaled,
            "journaled_bytes": j.journaled_bytes,
            "segments": j.segments,
            "bytes_on_disk": j.bytes_on_disk,
            "expired": j.expired,
        })),
        "groups": s.groups.iter().map(|g| serde_json::json!({
            "name": g.name,
            "next": g.next,
            "committed": g.committed,
            "lag": g.lag,
            "delivered": g.delivered,
            "redelivered": g.redelivered,
            "acked": g.acked,
            "nacked": g.nacked,
            "expired": g.expired,
            "dead_lettered": g.dead_lettered,
            "in_flight": g.in_flight,
            "oldest_unacked_age_ns": g.oldest_unacked_age_ns,
            "consumers": g.consumers,
            "consumer_attached": g.consumer_attached,
            "created_ns": g.created_ns,
        })).collect::<Vec<_>>(),
    })
}

fn stats_prometheus(s: &shmq::Stats) -> String {
    let q = &s.name;
    let mut out = String::new();
    fn metric<V: std::fmt::Display>(
        out: &mut String,
        name: &str,
        kind: &str,
        help: &str,
        rows: Vec<(String, V)>,
    ) {
        out.push_str(&format!(
            "# HELP shmq_{name} {help}\n# TYPE shmq_{name} {kind}\n"
        ));
        for (labels, v) in rows {
            out.push_str(&format!("shmq_{name}{{{labels}}} {v}\n"));
        }
    }
    let ql = format!("queue=\"{q}\"");
    metric(
        &mut out,
        "depth",
        "gauge",
        "Messages not yet finished by the slowest group.",
        vec![(ql.clone(), s.depth)],
    );
    metric(
        &mut out,
        "capacity",
        "gauge",
        "Ring capacity in messages.",
        vec![(ql.clone(), s.slots)],
    );
    metric(
        &mut out,
        "published_total",
        "counter",
        "Messages published.",
        vec![(ql.clone(), s.published)],
    );
    metric(
        &mut out,
        "rejected_total",
        "counter",
        "Publishes refused because the queue was full.",
        vec![(ql.clone(), s.rejected)],
    );
    metric(
        &mut out,
        "aborted_total",
        "counter",
        "Positions aborted (stuck or dead producers).",
        vec![(ql.clone(), s.aborted)],
    );
    metric(
        &mut out,
        "producers",
        "gauge",
        "Live producers.",
        vec![(ql.clone(), s.producers)],
    );
    metric(
        &mut out,
        "consumers",
        "gauge",
        "Live consumers.",
        vec![(ql.clone(), s.consumers)],
    );
    let per_group = |f: fn(&shmq::GroupInfo) -> u64| {
        s.groups
            .iter()
            .map(|g| (format!("{ql},group=\"{}\"", g.name), f(g)))
            .collect::<Vec<_>>()
    };
    metric(
        &mut out,
        "group_lag",
        "gauge",
        "Messages published that the group has not finished.",
        per_group(|g| g.lag),
    );
    metric(
        &mut out,
        "group_delivered_total",
        "counter",
        "Messages delivered to the group.",
        per_group(|g| g.delivered),
    );
    metric(
        &mut out,
        "group_next_seq",
        "gauge",
        "Next seq the group will receive.",
        per_group(|g| g.next),
    );
    metric(
        &mut out,
        "group_acked_total",
        "counter",
        "Messages acked by the group's consumers (ack=manual).",
        per_group(|g| g.acked),
    );
    metric(
        &mut out,
        "group_nacked_total",
        "counter",
        "Messages nacked by the group's consumers.",
        per_group(|g| g.nacked),
    );
    metric(
        &mut out,
        "group_redelivered_total",
        "counter",
        "Deliveries after the first.",
        per_group(|g| g.redelivered),
    );
    metric(
        &mut out,
        "group_expired_total",
        "counter",
        "Leases that ran out or whose consumer died.",
        per_group(|g| g.expired),
    );
    metric(
        &mut out,
        "group_dead_lettered_total",
        "counter",
        "Messages the group moved to the dead-letter queue.",
        per_group(|g| g.dead_lettered),
    );
    metric(
        &mut out,
        "group_in_flight",
        "gauge",
        "Messages leased to the group's consumers right now.",
        per_group(|g| g.in_flight),
    );
    metric(
        &mut out,
        "group_oldest_unacked_age_seconds",
        "gauge",
        "Age of the group's oldest unfinished message.",
        s.groups
            .iter()
            .map(|g| {
                (
                    format!("{ql},group=\"{}\"", g.name),
                    g.oldest_unacked_age_ns as f64 / 1e9,
                )
            })
            .collect(),
    );
    metric(
        &mut out,
        "dlq_depth",
        "gauge",
        "Dead letters waiting.",
        vec![(ql.clone(), s.dlq_depth)],
    );
    for (name, kind, help, v) in [
        (
            "spilled_total",
            "counter",
            "Messages spilled to disk.",
            s.spilled,
        ),
        (
            "spilled_bytes_total",
            "counter",
            "Payload bytes spilled to disk.",
            s.spilled_bytes,
        ),
        (
            "spill_depth",
            "gauge",
            "Messages on disk waiting to come back into the ring.",
            s.spill_depth,
        ),
        (
            "spill_segments",
            "gauge",
            "Segment files on disk.",
            s.spill_segments,
        ),
        (
            "spill_bytes_on_disk",
            "gauge",
            "Bytes of segment files on disk.",
            s.spill_bytes_on_disk,
        ),
        (
            "spill_full_total",
            "counter",
            "Publishes that found the spill full.",
            s.spill_full,
        ),
        (
            "spill_lost_total",
            "counter",
            "Spilled messages found damaged when read back.",
            s.spill_lost,
        ),
    ] {
        metric(&mut out, name, kind, help, vec![(ql.clone(), v)]);
    }
    metric(
        &mut out,
        "deduplicated_total",
        "counter",
        "Keyed publishes not enqueued again (their key was remembered).",
        vec![(ql.clone(), s.deduplicated)],
    );
    if let Some(j) = &s.journal {
        let replaying = s.groups.iter().filter(|g| g.next < s.oldest_seq).count() as u64;
        for (name, kind, help, v) in [
            (
                "journal_first_seq",
                "gauge",
                "Oldest seq the journal retains.",
                j.first_seq,
            ),
            (
                "journal_next_seq",
                "gauge",
                "Next seq to be journaled.",
                j.next_seq,
            ),
            (
                "journaled_total",
                "counter",
                "Messages written to the journal.",
                j.journaled,
            ),
            (
                "journaled_bytes_total",
                "counter",
                "Payload bytes written to the journal.",
                j.journaled_bytes,
            ),
            (
                "journal_segments",
                "gauge",
                "Journal segment files on disk.",
                j.segments,
            ),
            (
                "journal_bytes_on_disk",
                "gauge",
                "Bytes of journal segment files on disk.",
                j.bytes_on_disk,
            ),
            (
                "journal_expired_total",
                "counter",
                "Seqs whose retention ran out (their segment was deleted).",
                j.expired,
            ),
            (
                "journal_replaying_groups",
                "gauge",
                "Groups reading from the journal (behind the ring).",
                replaying,
            ),
        ] {
            metric(&mut out, name, kind, help, vec![(ql.clone(), v)]);
        }
    }
    out
}

fn stats_table(s: &shmq::Stats) -> String {
    let mut out = format!(
        "queue      {} ({}, {})\nslots      {} x {} bytes, overflow={}\nseq        next {}, oldest retained {}\ndepth      {}\npublished  {}\nrejected   {}\ndedup      {} publishes not enqueued again (key remembered)\naborted    {}\nproducers  {}\nconsumers  {}\ndlq        {}\n",
        s.name,
        s.path.display(),
        bytes(s.file_size),
        s.slots,
        s.slot_size,
        s.overflow,
        s.next_seq,
        s.oldest_seq,
        s.depth,
        s.published,
        s.rejected,
        s.deduplicated,
        s.aborted,
        s.producers,
        s.consumers,
        s.dlq_depth
    );
    if s.depth >= s.slots && s.overflow != shmq::Overflow::Spill {
        out += &format!(
            "           the ring is full: {}\n",
            super::why_full(&s.groups, s.slots)
        );
    }
    if let Some(d) = &s.spill_dir {
        out += &format!(
            "spill      {} messages on disk ({} segments, {} bytes) in {}\n           spilled {} messages / {} bytes so far, full {} times, lost {}\n",
            s.spill_depth,
            s.spill_segments,
            s.spill_bytes_on_disk,
            d.display(),
            s.spilled,
            s.spilled_bytes,
            s.spill_full,
            s.spill_lost
        );
    }
    if let Some(j) = &s.journal {
        out += &format!(
            "journal    seqs {} .. {} retained ({} segments, {} bytes){}; {} expired\n",
            j.first_seq,
            j.next_seq,
            j.segments,
            j.bytes_on_disk,
            j.first_ns
                .map(|t| format!(", oldest from {:.3} (Unix s)", t as f64 / 1e9))
                .unwrap_or_default(),
            j.expired
        );
    }
    if s.groups.is_empty() {
        out += "groups     (none: every message is retained until a group consumes it)\n";
    } else {
        let rows: Vec<Vec<String>> = s
            .groups
            .iter()
            .map(|g| {
                vec![
                    g.name.clone(),
                    g.next.to_string(),
                    g.lag.to_string(),
                    g.delivered.to_string(),
                    g.acked.to_string(),
                    g.nacked.to_string(),
                    g.redelivered.to_string(),
                    g.expired.to_string(),
                    g.dead_lettered.to_string(),
                    g.in_flight.to_string(),
                    format!("{:.1}s", g.oldest_unacked_age_ns as f64 / 1e9),
                    g.consumers.to_string(),
                ]
            })
            .collect();
        out += "\n";
        out += &super::table(
            &[
                "group",
                "next",
                "lag",
                "delivered",
                "acked",
                "nacked",
                "redeliv",
                "expired",
                "dead",
                "inflight",
                "oldest",
                "consumers",
            ],
            &rows,
        );
    }
    out
}

/// A size for people: bytes, and KiB/MiB/GiB where it helps.
pub(crate) fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 10 => format!("{n} bytes, {}", human(n)),
        n => format!("{n} bytes"),
    }
}

/// A size in the largest of bytes, KiB, MiB, GiB that it reaches.
pub(crate) fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}
