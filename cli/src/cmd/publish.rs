//! `shmq publish`: one message per line of stdin, or synthetic ones.

use std::io::BufRead;

use shmq::{Meta, Options, Queue};

use crate::{CliResult, secs};

/// `shmq publish` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    /// Publish this many synthetic messages instead of reading stdin.
    #[arg(long)]
    count: Option<u64>,
    /// Size of each synthetic message.
    #[arg(long, default_value_t = 64, requires = "count")]
    size: usize,
    /// Type tag put on every message.
    #[arg(long, default_value_t = 0)]
    type_id: u32,
    /// Give up if the queue stays full this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args {
        name,
        count,
        size,
        type_id,
        timeout,
    } = args;
    let q = Queue::open_with(&name, &opts)?;
    let mut p = q.producer()?;
    let meta = Meta::new().type_id(type_id);
    let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
    let mut publish = |payload: &[u8]| -> CliResult<u64> {
        Ok(match timeout {
            Some(t) => p.publish_with_timeout(payload, &meta, t)?,
            None => p.publish_with(payload, &meta)?,
        })
    };
    let mut n = 0u64;
    if let Some(count) = count {
        let mut payload = vec![0u8; size];
        for i in 0..count {
            let k = payload.len().min(8);
            payload[..k].copy_from_slice(&i.to_le_bytes()[..k]);
            publish(&payload)?;
            n += 1;
        }
    } else {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            publish(&line)?;
            n += 1;
        }
    }
    eprintln!("published {n} messages to {name}");
    Ok(())
}
