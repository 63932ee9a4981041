//! `shmq scheduled`: list the messages scheduled for later (`publish
//! --delay`, `--deliver-at`, a queue's `--delivery-delay`), or cancel one
//! by its schedule id or its idempotency key.

use clap::Subcommand;
use shmq::{Options, Queue};

use crate::time::{now_ns, rfc3339, until};
use crate::{CliError, CliResult};

/// `shmq scheduled` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    #[command(subcommand)]
    action: ScheduledAction,
}

#[derive(Subcommand, Debug)]
enum ScheduledAction {
    /// One line per scheduled message, earliest due first: its schedule
    /// id, when it is due (UTC) and in how long, its size, whether it has
    /// an idempotency key, and its payload, ordering key and headers
    /// (`--json`: one object per line).
    List {
        /// At most this many (the schedule is read whole up to them,
        /// payloads included).
        #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
        limit: usize,
        /// JSON lines: "id", "due_ns", "due" (RFC 3339, UTC),
        /// "published_ns", "type_id", "correlation_id", "keyed", the
        /// payload ("payload", or "payload_base64" for bytes that are not
        /// UTF-8), "ordering_key" and "headers" as `shmq peek --json` writes
        /// them.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a scheduled message, by its schedule id (what `publish`
    /// said, or `list` shows) or by the idempotency key it was published
    /// with (`publish --key`; the earliest due if several are). Exits 1 if
    /// there is no such message (it came due and went into the ring, or
    /// was cancelled).
    Cancel {
        /// Its schedule id.
        #[arg(required_unless_present = "key", allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
        id: Option<u64>,
        /// Its idempotency key instead (as given to `publish --key`; with
        /// stdin, that text and the line's number).
        #[arg(long, conflicts_with = "id")]
        key: Option<String>,
    },
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args { name, action } = args;
    let q = Queue::open_with(&name, &opts)?;
    match action {
        ScheduledAction::List { limit, json } => list(&q, limit, json),
        ScheduledAction::Cancel { id, key } => {
            let (cancelled, what) = match (id, key) {
                (_, Some(k)) => (q.cancel_scheduled_key(&k)?, format!("with key {k:?}")),
                (Some(id), None) => (q.cancel_scheduled(id)?, id.to_string()),
                (None, None) => unreachable!("clap requires an id or --key"),
            };
            if !cancelled {
                let hint = if what.starts_with("with key") {
                    "; a key given to `publish --key` with lines from stdin has the line's \
                     number after it (the first line's: the key and 1)"
                } else {
                    ""
                };
                return Err(CliError::Other(format!(
                    "no scheduled message {what} in {name}: it came due and went into the \
                     ring, or was cancelled (shmq scheduled {name} list){hint}"
                )));
            }
            eprintln!("cancelled scheduled message {what} of {name}");
            Ok(())
        }
    }
}

fn list(q: &Queue, limit: usize, json: bool) -> CliResult {
    let listed = q.scheduled(limit)?;
    let total = q.stats().scheduled;
    let now = now_ns();
    if json {
        for s in &listed {
            println!("{}", scheduled_json(s));
        }
    } else if listed.is_empty() {
        eprintln!("nothing scheduled in {}", q.name());
    } else {
        let rows: Vec<[String; 5]> = listed
            .iter()
            .map(|s| {
                [
                    s.id.to_string(),
                    rfc3339(s.due_ns, false),
                    until(s.due_ns, now),
                    s.payload.len().to_string(),
                    if s.keyed { "yes" } else { "no" }.to_string(),
                ]
            })
            .collect();
        let header = ["id", "due", "in", "bytes", "keyed"];
        let mut w = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in w.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |c: [&str; 5]| {
            format!(
                "{:>w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:<w4$}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4],
            )
        };
        println!("{}  payload", line(header));
        for (s, row) in listed.iter().zip(&rows) {
            println!(
                "{}  {}{}",
                line(row.each_ref().map(String::as_str)),
                super::dlq::preview(&s.payload),
                super::describe_envelope(s.ordering_key.as_deref(), headers(s))
            );
        }
    }
    if (listed.len() as u64) < total && listed.len() == limit {
        eprintln!(
            "the first {} of {total} scheduled (--limit N for more)",
            listed.len()
        );
    }
    Ok(())
}

/// A scheduled message's headers, as a received message gives them.
fn headers(s: &shmq::Scheduled) -> impl Iterator<Item = (&str, &[u8])> {
    s.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
}

fn scheduled_json(s: &shmq::Scheduled) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": s.id,
        "due_ns": s.due_ns,
        "due": rfc3339(s.due_ns, true),
        "published_ns": s.published_ns,
        "type_id": s.type_id,
        "correlation_id": s.correlation_id,
        "keyed": s.keyed,
    });
    if let Some(at) = s.expires_ns {
        v["expires_ns"] = at.into();
    }
    super::put_payload(&mut v, &s.payload);
    super::put_envelope(&mut v, s.ordering_key.as_deref(), headers(s));
    v
}
