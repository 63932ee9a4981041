//! `shmq dlq`: list the dead-letter queue, redrive dead letters to the
//! group that dead-lettered them, or purge them.

use clap::Subcommand;
use shmq::{Options, Queue};

use crate::CliResult;

/// `shmq dlq` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    #[command(subcommand)]
    action: DlqAction,
}

#[derive(Subcommand, Debug)]
enum DlqAction {
    /// One line per dead letter, oldest first, its ordering key and
    /// headers after the payload (`--json`: one object per line).
    List {
        /// JSON lines, payloads as strings (lossy UTF-8), "ordering_key"
        /// and "headers" as `shmq consume --json` writes them.
        #[arg(long)]
        json: bool,
    },
    /// Deliver dead letters again to the group that dead-lettered them, and
    /// only to it.
    Redrive {
        /// Only the dead letter of this seq.
        #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
        seq: Option<u64>,
    },
    /// Delete every dead letter that is not being redriven.
    Purge,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args { name, action } = args;
    let q = Queue::open_with(&name, &opts)?;
    let dlq = q.dlq();
    match action {
        DlqAction::List { json } => {
            let list = dlq.list()?;
            if json {
                for d in &list {
                    println!("{}", dead_letter_json(d));
                }
            } else if list.is_empty() {
                eprintln!("no dead letters in {name}");
            } else {
                println!(
                    "{:>12} {:<16} {:>8} {:<15} {:>8} {:>8}  payload",
                    "seq", "group", "attempts", "reason", "redrives", "bytes"
                );
                for d in &list {
                    println!(
                        "{:>12} {:<16} {:>8} {:<15} {:>8} {:>8}  {}{}",
                        seq(d),
                        if d.group.is_empty() {
                            "(deleted)"
                        } else {
                            &d.group
                        },
                        d.attempts,
                        // Its reason stays through a redrive; a redriven
                        // one being delivered again is marked.
                        if d.redriven {
                            format!("{} (redriven)", d.reason.as_str())
                        } else {
                            d.reason.as_str().to_string()
                        },
                        d.redrives,
                        d.payload.len(),
                        preview(&d.payload),
                        super::describe_envelope(d.ordering_key.as_deref(), headers(d))
                    );
                }
            }
        }
        DlqAction::Redrive { seq } => {
            let n = dlq.redrive(seq)?;
            eprintln!("redrove {n} dead letter(s) to their groups");
        }
        DlqAction::Purge => {
            let n = dlq.purge()?;
            eprintln!("purged {n} dead letter(s)");
        }
    }
    Ok(())
}

/// A payload as one printable line: UTF-8 text (control characters
/// escaped), cut at 60 characters.
fn preview(p: &[u8]) -> String {
    let text = String::from_utf8_lossy(p);
    let mut out: String = text.chars().take(60).flat_map(char::escape_debug).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// A dead letter's seq, or "-" for one added from outside the queue
/// (`DeadLetters::add`: it never had a seq here).
fn seq(d: &shmq::DeadLetter) -> String {
    if d.seq == shmq::DeadLetter::ADDED {
        "-".into()
    } else {
        d.seq.to_string()
    }
}

/// A dead letter's headers, as a received message gives them.
fn headers(d: &shmq::DeadLetter) -> impl Iterator<Item = (&str, &[u8])> {
    d.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
}

fn dead_letter_json(d: &shmq::DeadLetter) -> serde_json::Value {
    let mut v = serde_json::json!({
        // null: added from outside the queue (it never had a seq here).
        "seq": (d.seq != shmq::DeadLetter::ADDED).then_some(d.seq),
        "group": d.group,
        "attempts": d.attempts,
        "reason": d.reason.as_str(),
        "redriven": d.redriven,
        "redrives": d.redrives,
        "first_delivery_ns": d.first_delivery_ns,
        "last_delivery_ns": d.last_delivery_ns,
        "dead_lettered_ns": d.dead_lettered_ns,
        "timestamp_ns": d.timestamp_ns,
        "type_id": d.type_id,
        "correlation_id": d.correlation_id,
        "payload": String::from_utf8_lossy(&d.payload),
    });
    super::put_envelope(&mut v, d.ordering_key.as_deref(), headers(d));
    v
}
