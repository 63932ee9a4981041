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
        print!("{}", crate::metrics::prometheus_text(&[&s], None));
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
        "max_message_size": s.max_message_size,
        "capacity": s.capacity,
        "overflow": s.overflow.to_string(),
        "next_seq": s.next_seq,
        "oldest_seq": s.oldest_seq,
        "depth": s.depth,
        "depth_bytes": s.depth_bytes,
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
        "messages_expired": s.groups.iter().map(|g| g.messages_expired).sum::<u64>(),
        "spilled": s.spilled,
        "spilled_bytes": s.spilled_bytes,
        "spill_depth": s.spill_depth,
        "spill_segments": s.spill_segments,
        "spill_bytes_on_disk": s.spill_bytes_on_disk,
        "spill_full": s.spill_full,
        "spill_lost": s.spill_lost,
        "dlq_lost": s.dlq_lost,
        "scheduled": s.scheduled,
        "next_due_ns": s.next_due_ns,
        "scheduled_cancelled": s.scheduled_cancelled,
        "scheduled_lost": s.scheduled_lost,
        "spill_dir": s.spill_dir,
        "why_full": s.why_full,
        "journal": s.journal.as_ref().map(|j| serde_json::json!({
            "first_seq": j.first_seq,
            "first_ns": j.first_ns,
            "next_seq": j.next_seq,
            "journaled": j.journaled,
            "journaled_bytes": j.journaled_bytes,
            "segments": j.segments,
            "bytes_on_disk": j.bytes_on_disk,
            "expired": j.expired,
            "skipped": j.skipped,
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
            "messages_expired": g.messages_expired,
            "in_flight": g.in_flight,
            "oldest_unacked_age_ns": g.oldest_unacked_age_ns,
            "oldest_unacked_key": g.oldest_unacked_key.as_deref().map(String::from_utf8_lossy),
            "busy_lanes": g.busy_lanes,
            "consumers": g.consumers,
            "consumer_attached": g.consumer_attached,
            "created_ns": g.created_ns,
        })).collect::<Vec<_>>(),
    })
}

fn stats_table(s: &shmq::Stats) -> String {
    let mut out = format!(
        "queue      {} ({}, {})\nslots      {} x {} bytes, messages of up to {}, overflow={}\nseq        next {}, oldest retained {}\ndepth      {} slots ({} in flight of {})\npublished  {}\nrejected   {}\ndedup      {} publishes not enqueued again (key remembered)\naborted    {}\nproducers  {}\nconsumers  {}\ndlq        {}\n",
        s.name,
        s.path.display(),
        crate::human::bytes(s.file_size),
        s.slots,
        s.slot_size,
        crate::human::bytes(s.max_message_size),
        s.overflow,
        s.next_seq,
        s.oldest_seq,
        s.depth,
        crate::human::bytes(s.depth_bytes),
        crate::human::bytes(s.capacity),
        s.published,
        s.rejected,
        s.deduplicated,
        s.aborted,
        s.producers,
        s.consumers,
        s.dlq_depth
    );
    if let Some(why) = s
        .why_full
        .as_ref()
        .filter(|_| s.overflow != shmq::Overflow::Spill)
    {
        out += &format!("           the ring is full: {why}\n");
    }
    out += &format!(
        "scheduled  {}{}, {} cancelled, {} lost (damaged on disk)\n",
        s.scheduled,
        s.next_due_ns
            .map(|due| format!(
                ", next due {} ({})",
                crate::time::rfc3339(due, false),
                crate::time::until(due, crate::time::now_ns())
            ))
            .unwrap_or_default(),
        s.scheduled_cancelled,
        s.scheduled_lost
    );
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
        // While it spills: what holds it (the spill's budget or disk once
        // they are what publishers wait for).
        if let Some(why) = &s.why_full {
            out += &format!("           {why}\n");
        }
    }
    if let Some(j) = &s.journal {
        out += &format!(
            "journal    seqs {} .. {} retained ({} segments, {} bytes){}; {} expired, {} skipped (disk full)\n",
            j.first_seq,
            j.next_seq,
            j.segments,
            j.bytes_on_disk,
            j.first_ns
                .map(|t| format!(", oldest from {:.3} (Unix s)", t as f64 / 1e9))
                .unwrap_or_default(),
            j.expired,
            j.skipped
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
                    g.messages_expired.to_string(),
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
                "ttl-out",
                "inflight",
                "oldest",
                "consumers",
            ],
            &rows,
        );
        // Per-key order (ack=manual groups with ordering keys).
        for g in &s.groups {
            if g.busy_lanes > 0 || g.oldest_unacked_key.is_some() {
                out += &format!("group {}: {} ordering lane(s) busy", g.name, g.busy_lanes);
                if let Some(k) = &g.oldest_unacked_key {
                    out += &format!(
                        "; its oldest unfinished message ({:.1}s) has key {:?}",
                        g.oldest_unacked_age_ns as f64 / 1e9,
                        String::from_utf8_lossy(k)
                    );
                }
                out += "\n";
            }
        }
    }
    out
}
