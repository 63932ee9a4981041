//! `shmq publish`: one message per line of stdin, or synthetic ones.

use std::io::BufRead;
use std::time::{Duration, Instant};

use shmq::{Error, Meta, Options, Queue};

use crate::progress::Progress;
use crate::{CliError, CliResult, secs};

/// `shmq publish` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name.
    name: String,
    /// Publish this many synthetic messages instead of reading stdin.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    count: Option<u64>,
    /// Size of each synthetic message.
    #[arg(long, default_value_t = 64, requires = "count", allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
    size: usize,
    /// Type tag put on every message.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = crate::whole::<u32>)]
    type_id: u32,
    /// Correlation id put on every message.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    correlation_id: u64,
    /// Idempotency key: a message whose key the queue remembers (its
    /// dedup window and ttl) is not enqueued again. With stdin, the key of
    /// each line is this text followed by the line's number (1, 2, ...), so
    /// that publishing the same input twice enqueues it once.
    #[arg(long)]
    key: Option<String>,
    /// Give up if the queue stays full this many seconds.
    #[arg(long, allow_negative_numbers = true)]
    timeout: Option<f64>,
}

/// How often a publisher blocked on a full ring says why on stderr.
const SAY_WHY_AFTER: Duration = Duration::from_secs(1);

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args {
        name,
        count,
        size,
        type_id,
        correlation_id,
        key,
        timeout,
    } = args;
    let q = Queue::open_with(&name, &opts)?;
    let mut p = q.producer()?;
    let meta = Meta::new().type_id(type_id).correlation_id(correlation_id);
    let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
    // Stdin that is a file has a known length: the bar counts its bytes.
    let stdin_len = match count {
        Some(_) => None,
        None => stdin_file_len(),
    };
    let progress = match (count, stdin_len) {
        (Some(n), _) => Progress::new(&format!("publishing to {name}"), Some(n), "messages", true),
        (None, Some(len)) => {
            Progress::new(&format!("publishing to {name}"), Some(len), "bytes", true)
        }
        (None, None) => Progress::new(&format!("publishing to {name}"), None, "messages", true),
    };
    let mut said = false;
    let mut publish = |payload: &[u8], i: u64| -> Result<u64, Error> {
        let meta = match &key {
            Some(k) => meta.key(format!("{k}{i}")),
            None => meta,
        };
        // Without --timeout, wait as long as it takes, but in slices, so
        // that a publisher held by a full ring says once why.
        let start = Instant::now();
        loop {
            let slice = match timeout {
                Some(t) => t.saturating_sub(start.elapsed()).min(SAY_WHY_AFTER),
                None => SAY_WHY_AFTER,
            };
            match p.publish_with_timeout(payload, &meta, slice) {
                Err(Error::Timeout) if timeout.is_none_or(|t| start.elapsed() < t) => {
                    if !said {
                        progress.say(&format!(
                            "shmq: waiting for room in {name}: {}",
                            super::why_full(&q.groups(), q.slots())
                        ));
                        said = true;
                    }
                }
                r => return r,
            }
        }
    };
    let mut n = 0u64;
    let result = (|| -> CliResult {
        if let Some(count) = count {
            let mut payload = vec![0u8; size];
            for i in 0..count {
                let k = payload.len().min(8);
                payload[..k].copy_from_slice(&i.to_le_bytes()[..k]);
                publish(&payload, i + 1)?;
                n += 1;
                progress.at(n);
            }
        } else {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut line = Vec::new();
            let mut read = 0u64;
            loop {
                line.clear();
                let got = input.read_until(b'\n', &mut line)?;
                if got == 0 {
                    break;
                }
                read += got as u64;
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                publish(&line, n + 1)?;
                n += 1;
                match stdin_len {
                    Some(_) if n % 256 == 0 => progress.set(read),
                    Some(_) => {}
                    None => progress.at(n),
                }
            }
        }
        Ok(())
    })();
    drop(progress);
    match result {
        Ok(()) => {
            eprintln!("published {n} messages to {name}");
            Ok(())
        }
        // Say exactly what went in: a retry of everything would duplicate.
        Err(CliError::Queue(Error::Timeout)) => Err(CliError::Other(format!(
            "published {n} messages to {name}, then timed out: message {} and the rest were \
             not published ({})",
            n + 1,
            super::why_full(&q.groups(), q.slots())
        ))),
        Err(CliError::Queue(Error::Full)) => Err(CliError::Other(format!(
            "published {n} messages to {name}; message {} and the rest were not: the queue is \
             full and its overflow is reject ({})",
            n + 1,
            super::why_full(&q.groups(), q.slots())
        ))),
        Err(e) => Err(CliError::Other(format!(
            "published {n} messages to {name}; message {} and the rest were not: {e}",
            n + 1
        ))),
    }
}

/// Stdin's length when it is a regular file (`< file`), else `None`.
fn stdin_file_len() -> Option<u64> {
    let meta = rustix::fs::fstat(std::io::stdin()).ok()?;
    let is_file =
        rustix::fs::FileType::from_raw_mode(meta.st_mode) == rustix::fs::FileType::RegularFile;
    is_file.then_some(meta.st_size as u64)
}
