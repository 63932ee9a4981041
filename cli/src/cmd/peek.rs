//! `shmq peek`: print retained messages (from the journal where it has
//! them, then the ring) with their metadata, without a group: no cursor,
//! lease or counter moves.

use std::io::Write;

use shmq::{Options, Queue};

use crate::{CliError, CliResult};

/// `shmq peek` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    /// From this seq (default: the oldest retained).
    #[arg(long, conflicts_with = "last", allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    from_seq: Option<u64>,
    /// The last N messages published.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    last: Option<u64>,
    /// At most this many messages.
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
    count: usize,
    /// Each payload after a line of its metadata (seq, time, type_id,
    /// correlation_id, length, whether it came from the journal, and its
    /// ordering key and headers: `key K header NAME=VALUE ...`).
    #[arg(long, conflicts_with = "json")]
    show_headers: bool,
    /// One JSON object per message (as `consume --json`, with
    /// "from_journal"; "ordering_key" and "headers" as there).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let q = Queue::open_with(&args.name, &opts)?;
    let st = q.stats();
    let oldest = st
        .journal
        .as_ref()
        .map_or(st.oldest_seq, |j| j.first_seq.min(st.oldest_seq));
    let from = match (args.from_seq, args.last) {
        (Some(s), _) => s,
        (None, Some(n)) => st.next_seq.saturating_sub(n),
        (None, None) => oldest,
    };
    if from < oldest {
        eprintln!("note: seq {from} is no longer retained; from the oldest, {oldest}");
    }
    let seen = q.peek(from, args.count)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for m in &seen {
        if args.json {
            let mut v = serde_json::json!({
                "seq": m.seq,
                "timestamp_ns": m.timestamp_ns,
                "type_id": m.type_id,
                "correlation_id": m.correlation_id,
                "from_journal": m.from_journal,
            });
            if let Some(at) = m.expires_ns {
                v["expires_ns"] = at.into();
            }
            super::put_payload(&mut v, &m.payload);
            super::put_envelope(&mut v, m.ordering_key.as_deref(), headers(m));
            writeln!(out, "{v}")?;
            continue;
        }
        if args.show_headers {
            writeln!(
                out,
                "# seq {} time {:.6} type_id {} correlation_id {} len {}{}{}{}",
                m.seq,
                m.timestamp_ns as f64 / 1e9,
                m.type_id,
                m.correlation_id,
                m.payload.len(),
                if m.from_journal { " (journal)" } else { "" },
                m.expires_ns
                    .map(|at| format!(" expires {}", crate::time::rfc3339(at, true)))
                    .unwrap_or_default(),
                super::describe_envelope(m.ordering_key.as_deref(), headers(m))
            )?;
        }
        out.write_all(&m.payload)?;
        out.write_all(b"\n")?;
    }
    if st.scheduled > 0 {
        // Not retained yet: they enter the ring (and get their seqs) when
        // due.
        eprintln!(
            "note: {} more scheduled for later (shmq scheduled {} list)",
            st.scheduled, args.name
        );
    }
    if seen.is_empty() && !args.json {
        return Err(CliError::Other(format!(
            "no retained message of {} from seq {from} (next seq {})",
            args.name, st.next_seq
        )));
    }
    Ok(())
}

/// A peeked message's headers, as a received message gives them.
fn headers(m: &shmq::Peeked) -> impl Iterator<Item = (&str, &[u8])> {
    m.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
}
