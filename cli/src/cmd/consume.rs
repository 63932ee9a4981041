//! `shmq consume`: write each payload and a newline to stdout, acked on
//! receive (`--ack auto`) or after it was written out (`--ack manual`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::ValueEnum;
use shmq::{Ack, Consumer, ConsumerOptions, Error, Options, Queue};

use super::StartArg;
use crate::progress::Progress;
use crate::{CliError, CliResult, secs};

/// `shmq consume` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    /// Consumer group. It must exist (shmq group-create), unless --create
    /// is given: a group retains every message until it reads it, so a
    /// group made by a typo would hold the ring full.
    #[arg(long)]
    group: String,
    /// Create the group if it does not exist, at --start.
    #[arg(long)]
    create: bool,
    /// One JSON object per message instead of the payload: seq,
    /// timestamp_ns, type_id, correlation_id, attempt, the payload as
    /// "payload" (UTF-8) or "payload_base64" (anything else), so that
    /// payloads with newlines or binary data stay apart, "ordering_key"
    /// (UTF-8, null for none, or "ordering_key_base64") and "headers" (a
    /// list of {"name", "value"} in order, "value_base64" for bytes that
    /// are not UTF-8).
    #[arg(long)]
    json: bool,
    /// Each payload after a line of its metadata, for people: `# seq S
    /// type_id T correlation_id C attempt A len L key K header NAME=VALUE
    /// ...` (non-printable bytes escaped; use --json for programs).
    #[arg(long, conflicts_with = "json")]
    show_headers: bool,
    /// Exit after this many messages.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    count: Option<u64>,
    /// Exit after this many seconds without a message.
    #[arg(long, allow_negative_numbers = true)]
    timeout: Option<f64>,
    /// Acknowledgement mode (auto: committed on receive).
    #[arg(long, value_enum, default_value_t = AckArg::Auto)]
    ack: AckArg,
    /// Where a group made by --create starts.
    #[arg(long, value_enum, default_value_t = StartArg::Earliest)]
    start: StartArg,
    /// How a receive waits while nothing is ready: spin, then sleep on a
    /// futex (the default: next to no CPU while idle); spin and yield the
    /// core; or busy-spin (a whole core, the lowest latency).
    #[arg(long, value_enum, default_value_t = WaitArg::SpinFutex)]
    wait: WaitArg,
}

/// `consume --wait` (`ConsumerOptions::wait`).
#[derive(Clone, Copy, Debug, ValueEnum)]
enum WaitArg {
    SpinFutex,
    SpinYield,
    BusySpin,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AckArg {
    /// At-most-once: committed on receive.
    Auto,
    /// At-least-once: each message is written and flushed to stdout (a
    /// pipe or a file: the kernel has it) before it is acked, so a line
    /// acked is never lost; killed between the two, the message is
    /// delivered again (a duplicate line).
    Manual,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args {
        name,
        group,
        count,
        timeout,
        ack,
        start,
        create,
        json,
        show_headers,
        wait,
    } = args;
    let q = Queue::open_with(&name, &opts)?;
    if !q.groups().iter().any(|g| g.name == group) {
        if !create {
            let names: Vec<String> = q.groups().into_iter().map(|g| g.name).collect();
            return Err(CliError::Other(format!(
                "queue {name} has no group {group:?} (its groups: {}); create it with \
                 `shmq group-create {name} {group}`, or pass --create",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        eprintln!(
            "shmq: creating group {group:?} of {name}: it keeps every message from here on until it reads it"
        );
    }
    let options = ConsumerOptions::new()
        .start(start.into())
        .create(create)
        .wait(match wait {
            WaitArg::SpinFutex => shmq::Wait::SpinFutex,
            WaitArg::SpinYield => shmq::Wait::SpinYield,
            WaitArg::BusySpin => shmq::Wait::BusySpin,
        });
    let c = match ack {
        AckArg::Manual => q.consumer(&group, options.ack(Ack::Manual))?,
        AckArg::Auto => q.consumer(&group, options)?,
    };
    let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
    let limit = count.unwrap_or(u64::MAX);
    // A bar for --count when the messages go somewhere else than the
    // terminal that would show the bar.
    let progress = Progress::new(
        &format!("consuming {name} as {group}"),
        count,
        "messages",
        count.is_some() && !std::io::stdout().is_terminal(),
    );
    let format = match (json, show_headers) {
        (true, _) => Format::Json,
        (false, true) => Format::Described,
        (false, false) => Format::Payload,
    };
    match ack {
        AckArg::Manual => manual(c, timeout, limit, format, &progress),
        AckArg::Auto => auto(c, timeout, limit, format, &progress),
    }
}

/// `--ack manual`: each message written and flushed, then acked.
fn manual(
    mut c: Consumer,
    timeout: Option<Duration>,
    limit: u64,
    format: Format,
    progress: &Progress,
) -> CliResult {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut n = 0u64;
    while n < limit {
        let m = match timeout {
            Some(t) => match c.receive_timeout(t) {
                Ok(m) => m,
                Err(Error::Timeout) => break,
                Err(e) => return Err(e.into()),
            },
            None => c.receive()?,
        };
        // Written and flushed before the ack: at-least-once.
        write(&mut out, &m, format)?;
        out.flush()?;
        match m.ack() {
            Ok(()) => {
                n += 1;
                progress.at(n);
            }
            // Another consumer has it now; it will be written again.
            Err(Error::LeaseExpired) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `--ack auto`: committed on receive; what is ready is written without
/// flushing, and the output is flushed before each wait.
fn auto(
    mut c: Consumer,
    timeout: Option<Duration>,
    limit: u64,
    format: Format,
    progress: &Progress,
) -> CliResult {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut n = 0u64;
    while n < limit {
        // Write what is ready without flushing; flush before waiting.
        let got = match c.try_receive()? {
            Some(m) => {
                write(&mut out, &m, format)?;
                true
            }
            None => false,
        };
        if got {
            n += 1;
            progress.at(n);
            continue;
        }
        out.flush()?;
        let m = match timeout {
            Some(t) => match c.receive_timeout(t) {
                Ok(m) => m,
                Err(Error::Timeout) => break,
                Err(e) => return Err(e.into()),
            },
            None => c.receive()?,
        };
        write(&mut out, &m, format)?;
        n += 1;
        progress.at(n);
    }
    out.flush()?;
    Ok(())
}

/// How `shmq consume` writes a message.
#[derive(Clone, Copy, Debug)]
enum Format {
    /// The payload and a newline.
    Payload,
    /// A `# seq ...` line of its metadata, then the payload and a newline.
    Described,
    /// A JSON object and a newline.
    Json,
}

/// One message on `out`, as `format` says.
fn write(out: &mut impl Write, m: &shmq::Delivery<'_>, format: Format) -> std::io::Result<()> {
    match format {
        Format::Payload => {}
        Format::Described => writeln!(
            out,
            "# seq {} type_id {} correlation_id {} attempt {} len {}{}",
            m.seq(),
            m.type_id(),
            m.correlation_id(),
            m.attempt(),
            m.payload().len(),
            super::describe_envelope(m.ordering_key(), m.headers())
        )?,
        Format::Json => {
            let mut v = serde_json::json!({
                "seq": m.seq(),
                "timestamp_ns": m.timestamp_ns(),
                "type_id": m.type_id(),
                "correlation_id": m.correlation_id(),
                "attempt": m.attempt(),
            });
            super::put_payload(&mut v, m.payload());
            super::put_envelope(&mut v, m.ordering_key(), m.headers());
            return writeln!(out, "{v}");
        }
    }
    out.write_all(m.payload())?;
    out.write_all(b"\n")
}
