//! `shmq publish`: one message per line of stdin, a file as one message,
//! or synthetic ones.

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
    /// Publish the whole file as one message (any size up to the queue's
    /// max_message_size: `shmq stat` says it), instead of reading stdin.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["count", "ordering_key_separator"])]
    file: Option<std::path::PathBuf>,
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
    /// dedup window and ttl) is not enqueued again. With --file, the
    /// message's key is this text; with stdin, the key of each line is
    /// this text followed by the line's number (1, 2, ...), so that
    /// publishing the same input twice enqueues it once.
    #[arg(long)]
    key: Option<String>,
    /// Give up if the queue stays full this many seconds.
    #[arg(long, allow_negative_numbers = true)]
    timeout: Option<f64>,
    /// A header NAME=VALUE put on every message (repeat for more, at most
    /// 16; names may repeat and keep their order). Split at the first `=`.
    #[arg(long = "header", value_name = "NAME=VALUE", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Time to live of every message (30s, 5m, 100ms, 1h): a group that
    /// has not finished a message by then is not given it (the queue's
    /// on-expiry says what becomes of it).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration)]
    ttl: Option<Duration>,
    /// Deliver every message this long after its publish (30s, 5m, 1h):
    /// until then it waits in the queue's schedule (`shmq scheduled NAME
    /// list`, `cancel`) and reaches no group; its --ttl counts from then.
    /// 0 publishes at once, even on a queue with a --delivery-delay.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration)]
    delay: Option<Duration>,
    /// Deliver every message at this time, as --delay does: RFC 3339
    /// (2026-12-07T18:00:00Z, 2026-12-07T19:00:00+01:00) or @ and Unix
    /// seconds (@1796666400). A time already past publishes at once.
    #[arg(long, value_name = "TIME", value_parser = crate::time::instant, conflicts_with = "delay")]
    deliver_at: Option<std::time::SystemTime>,
    /// Each line of stdin is ORDERING-KEY, SEP, PAYLOAD: the text before
    /// the first SEP is the message's ordering key (1 to 1024 bytes), the
    /// rest its payload. A line without SEP, or with nothing before it,
    /// has no ordering key (and is published whole, or without the SEP).
    /// Not the idempotency --key.
    #[arg(long, visible_alias = "key-separator", value_name = "SEP", conflicts_with = "count", value_parser = separator)]
    ordering_key_separator: Option<String>,
}

/// `--header NAME=VALUE`.
fn header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("{s:?} is not NAME=VALUE with a name")),
    }
}

/// `--ordering-key-separator SEP`: not empty.
fn separator(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the separator must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

/// Splits `line` at the first `sep`: (ordering key, payload).
fn split_key<'a>(line: &'a [u8], sep: &[u8]) -> (Option<&'a [u8]>, &'a [u8]) {
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(0) => (None, &line[sep.len()..]),
        Some(at) => (Some(&line[..at]), &line[at + sep.len()..]),
        None => (None, line),
    }
}

/// How often a publisher blocked on a full ring says why on stderr.
pub(crate) const SAY_WHY_AFTER: Duration = Duration::from_secs(1);

/// "N messages to NAME", and how many of the keyed ones were there
/// already (their key was published before: nothing went in for them).
fn went_in(n: u64, deduplicated: u64, name: &str) -> String {
    let n = n - deduplicated;
    let word = if n == 1 { "message" } else { "messages" };
    match deduplicated {
        0 => format!("{n} {word} to {name}"),
        d => format!("{n} {word} to {name} ({d} already there)"),
    }
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args {
        name,
        count,
        file,
        size,
        type_id,
        correlation_id,
        key,
        timeout,
        headers,
        ttl,
        delay,
        deliver_at,
        ordering_key_separator,
    } = args;
    let q = Queue::open_with(&name, &opts)?;
    let mut p = q.producer()?;
    let mut meta = Meta::new().type_id(type_id).correlation_id(correlation_id);
    for (name, value) in &headers {
        meta = meta.header(name, value);
    }
    if let Some(t) = ttl {
        meta = meta.ttl(t);
    }
    if let Some(d) = delay {
        meta = meta.delay(d);
    }
    if let Some(at) = deliver_at {
        meta = meta.deliver_at(at);
    }
    // When the (first) message is due, if these options schedule it (a
    // publish then returns a schedule id, not a seq).
    let now = std::time::SystemTime::now();
    let scheduled = match (delay, deliver_at) {
        (Some(d), _) => now.checked_add(d).filter(|_| !d.is_zero()),
        (None, Some(at)) => (at > now).then_some(at),
        // The queue's own delay schedules it too.
        (None, None) => q.delivery_delay().and_then(|d| now.checked_add(d)),
    };
    let timeout = timeout.map(|t| secs(t, "--timeout")).transpose()?;
    // Stdin that is a file has a known length: the bar counts its bytes.
    let stdin_len = match (count, &file) {
        (None, None) => stdin_file_len(),
        _ => None,
    };
    let progress = match (count, stdin_len) {
        (Some(n), _) => Progress::new(&format!("publishing to {name}"), Some(n), "messages", true),
        (None, Some(len)) => {
            Progress::new(&format!("publishing to {name}"), Some(len), "bytes", true)
        }
        (None, None) => Progress::new(&format!("publishing to {name}"), None, "messages", true),
    };
    let mut said = false;
    let whole_file = file.is_some();
    let mut publish = |payload: &[u8], ordering_key: Option<&[u8]>, i: u64| -> Result<u64, Error> {
        let mut meta = match &key {
            // One message from a file: its key as given.
            Some(k) if whole_file => meta.key(k),
            Some(k) => meta.key(format!("{k}{i}")),
            None => meta,
        };
        meta.ordering_key = ordering_key;
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
                            q.why_full()
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
        if let Some(path) = &file {
            let bytes = std::fs::read(path)
                .map_err(|e| CliError::Other(format!("reading {}: {e}", path.display())))?;
            let seq = publish(&bytes, None, 1)?;
            n = 1;
            progress.at(n);
            match scheduled {
                Some(at) => progress.say(&format!(
                    "{} ({} bytes) is scheduled message {seq}, due {}",
                    path.display(),
                    bytes.len(),
                    crate::time::rfc3339(unix_ns(at), false)
                )),
                None => progress.say(&format!(
                    "{} ({} bytes) is message {seq}",
                    path.display(),
                    bytes.len()
                )),
            }
        } else if let Some(count) = count {
            let mut payload = vec![0u8; size];
            for i in 0..count {
                let k = payload.len().min(8);
                payload[..k].copy_from_slice(&i.to_le_bytes()[..k]);
                publish(&payload, None, i + 1)?;
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
                let (ordering_key, payload) = match &ordering_key_separator {
                    Some(sep) => split_key(&line, sep.as_bytes()),
                    None => (None, &line[..]),
                };
                publish(payload, ordering_key, n + 1)?;
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
    let went = went_in(n, p.deduplicated(), &name);
    match result {
        Ok(()) => {
            match scheduled {
                Some(at) => eprintln!(
                    "published {went}, due from {} (shmq scheduled {name} list)",
                    crate::time::rfc3339(unix_ns(at), false)
                ),
                None => eprintln!("published {went}"),
            }
            Ok(())
        }
        // Say exactly what went in: a retry of everything would duplicate.
        Err(CliError::Queue(Error::Timeout)) => Err(CliError::Other(format!(
            "published {went}, then timed out: message {} and the rest were not \
             published ({})",
            n + 1,
            q.why_full()
        ))),
        Err(CliError::Queue(Error::Full)) => Err(CliError::Other(format!(
            "published {went}; message {} and the rest were not: the queue is full \
             and its overflow is reject ({})",
            n + 1,
            q.why_full()
        ))),
        Err(e) => Err(CliError::Other(format!(
            "published {went}; message {} and the rest were not: {e}",
            n + 1
        ))),
    }
}

/// A time as CLOCK_REALTIME nanoseconds (0 before the epoch).
fn unix_ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// Stdin's length when it is a regular file (`< file`), else `None`.
fn stdin_file_len() -> Option<u64> {
    let meta = rustix::fs::fstat(std::io::stdin()).ok()?;
    let is_file =
        rustix::fs::FileType::from_raw_mode(meta.st_mode) == rustix::fs::FileType::RegularFile;
    is_file.then_some(meta.st_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let k = |l: &'static str| split_key(l.as_bytes(), b"::");
        assert_eq!(k("a::b::c"), (Some(&b"a"[..]), &b"b::c"[..]));
        assert_eq!(k("::b"), (None, &b"b"[..]));
        assert_eq!(k("a::"), (Some(&b"a"[..]), &b""[..]));
        assert_eq!(k("no separator"), (None, &b"no separator"[..]));
        assert_eq!(k(""), (None, &b""[..]));
        assert_eq!(header("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(header("a="), Ok(("a".into(), String::new())));
        assert!(header("=b").is_err() && header("ab").is_err());
    }
}
