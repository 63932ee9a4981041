//! `shmq dlq`: list the dead-letter queue, redrive dead letters to the
//! group that dead-lettered them, or purge them.

use std::time::{Duration, Instant};

use clap::Subcommand;
use shmq::{Error, Options, Queue};

use super::publish::SAY_WHY_AFTER;
use crate::{CliError, CliResult, secs};

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
    ///
    /// A keyed dead letter goes back through the ring (to the end of its
    /// key) and needs room there: without --timeout this waits for room as
    /// `publish` does, saying once what holds the ring; those still without
    /// room at the timeout stay in the DLQ, and the command says how many
    /// and why and exits 1.
    Redrive {
        /// Only the dead letter of this seq.
        #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
        seq: Option<u64>,
        /// Give up waiting for ring room for keyed dead letters after this
        /// many seconds (0: do not wait).
        #[arg(long, allow_negative_numbers = true)]
        timeout: Option<f64>,
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
                // Columns as wide as their widest cell: a long group name
                // or a redriven letter's "nacked (redriven)" moves nothing
                // out of line.
                let rows: Vec<[String; 6]> = list
                    .iter()
                    .map(|d| {
                        [
                            seq(d),
                            if d.group.is_empty() {
                                "(deleted)".to_string()
                            } else {
                                d.group.clone()
                            },
                            d.attempts.to_string(),
                            // Its reason stays through a redrive; a
                            // redriven one being delivered again is marked.
                            if d.redriven {
                                format!("{} (redriven)", d.reason.as_str())
                            } else {
                                d.reason.as_str().to_string()
                            },
                            d.redrives.to_string(),
                            d.payload.len().to_string(),
                        ]
                    })
                    .collect();
                let header = ["seq", "group", "attempts", "reason", "redrives", "bytes"];
                let mut w = header.map(|h| h.chars().count());
                for row in &rows {
                    for (w, cell) in w.iter_mut().zip(row) {
                        *w = (*w).max(cell.chars().count());
                    }
                }
                let line = |c: [&str; 6]| {
                    format!(
                        "{:>w0$}  {:<w1$}  {:>w2$}  {:<w3$}  {:>w4$}  {:>w5$}",
                        c[0],
                        c[1],
                        c[2],
                        c[3],
                        c[4],
                        c[5],
                        w0 = w[0],
                        w1 = w[1],
                        w2 = w[2],
                        w3 = w[3],
                        w4 = w[4],
                        w5 = w[5]
                    )
                };
                println!("{}  payload", line(header));
                for (d, row) in list.iter().zip(&rows) {
                    println!(
                        "{}  {}{}",
                        line(row.each_ref().map(String::as_str)),
                        preview(&d.payload),
                        super::describe_envelope(d.ordering_key.as_deref(), headers(d))
                    );
                }
            }
        }
        DlqAction::Redrive { seq, timeout } => {
            let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
            let n = redrive(&q, seq, timeout)?;
            eprintln!("redrove {n} dead letter(s) to their groups");
        }
        DlqAction::Purge => {
            let n = dlq.purge()?;
            eprintln!("purged {n} dead letter(s)");
        }
    }
    Ok(())
}

/// Redrives (all, or seq `seq`), waiting for ring room for keyed dead
/// letters up to `timeout` (for ever without one), in slices, saying once
/// what holds the ring. Returns how many went.
fn redrive(q: &Queue, seq: Option<u64>, timeout: Option<Duration>) -> Result<u64, CliError> {
    let start = Instant::now();
    let (mut total, mut said) = (0, false);
    loop {
        let slice = match timeout {
            Some(t) => t.saturating_sub(start.elapsed()).min(SAY_WHY_AFTER),
            None => SAY_WHY_AFTER,
        };
        match q.dlq().redrive_timeout(seq, slice) {
            Ok(n) => return Ok(total + n),
            Err(Error::PartlyRedriven {
                redriven, cause, ..
            }) if matches!(*cause, Error::Timeout)
                && timeout.is_none_or(|t| start.elapsed() < t) =>
            {
                total += redriven;
                if !said {
                    eprintln!(
                        "shmq: waiting for room in {} for keyed dead letters: {}",
                        q.name(),
                        q.why_full()
                    );
                    said = true;
                }
            }
            Err(Error::PartlyRedriven {
                redriven,
                left,
                why,
                cause,
            }) => {
                let because = match *cause {
                    Error::Timeout if timeout == Some(Duration::ZERO) => {
                        "the ring had no room (--timeout 0)".to_string()
                    }
                    Error::Timeout => "the ring had no room until the timeout".to_string(),
                    e => e.to_string(),
                };
                return Err(CliError::Other(format!(
                    "redrove {} dead letter(s) to their groups; {left} keyed one(s) stayed in \
                     the dead-letter queue, because {because} (a keyed dead letter goes back \
                     through the ring): {why}",
                    total + redriven
                )));
            }
            Err(e) if total > 0 => {
                return Err(CliError::Other(format!(
                    "redrove {total} dead letter(s) to their groups, then: {e}"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A payload as one printable line: UTF-8 text (control characters
/// escaped), cut at 60 characters.
pub(crate) fn preview(p: &[u8]) -> String {
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
