//! `shmq consume`: write each payload and a newline to stdout, acked on
//! receive (`--ack auto`) or after it was written out (`--ack manual`).

use std::io::Write;
use std::time::Duration;

use clap::ValueEnum;
use shmq::{Ack, Consumer, ConsumerOptions, Error, Options, Queue};

use super::StartArg;
use crate::{CliResult, secs};

/// `shmq consume` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    /// Consumer group (created if it does not exist).
    #[arg(long)]
    group: String,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Exit after this many seconds without a message.
    #[arg(long)]
    timeout: Option<f64>,
    /// Acknowledgement mode (auto: committed on receive).
    #[arg(long, value_enum, default_value_t = AckArg::Auto)]
    ack: AckArg,
    /// Where a new group starts.
    #[arg(long, value_enum, default_value_t = StartArg::Earliest)]
    start: StartArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AckArg {
    /// At-most-once: committed on receive.
    Auto,
    /// At-least-once: each message is acked after it was written out.
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
    } = args;
    let q = Queue::open_with(&name, &opts)?;
    let options = ConsumerOptions::new().start(start.into());
    let c = match ack {
        AckArg::Manual => q.consumer(&group, options.ack(Ack::Manual))?,
        AckArg::Auto => q.consumer(&group, options)?,
    };
    let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
    let limit = count.unwrap_or(u64::MAX);
    match ack {
        AckArg::Manual => manual(c, timeout, limit),
        AckArg::Auto => auto(c, timeout, limit),
    }
}

/// `--ack manual`: each message written and flushed, then acked.
fn manual(mut c: Consumer, timeout: Option<Duration>, limit: u64) -> CliResult {
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
        out.write_all(m.payload())?;
        out.write_all(b"\n")?;
        out.flush()?;
        match m.ack() {
            Ok(()) => n += 1,
            // Another consumer has it now; it will be written again.
            Err(Error::LeaseExpired) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `--ack auto`: committed on receive; what is ready is written without
/// flushing, and the output is flushed before each wait.
fn auto(mut c: Consumer, timeout: Option<Duration>, limit: u64) -> CliResult {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut n = 0u64;
    while n < limit {
        // Write what is ready without flushing; flush before waiting.
        let got = match c.try_receive()? {
            Some(m) => {
                out.write_all(m.payload())?;
                out.write_all(b"\n")?;
                true
            }
            None => false,
        };
        if got {
            n += 1;
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
        out.write_all(m.payload())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(())
}
