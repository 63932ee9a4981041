//! `shmq create`: a new queue file, with its ring, overflow, spill,
//! journal, groups and dead-letter settings.

use std::path::PathBuf;

use shmq::{Options, Overflow, Queue, SyncMode};

use crate::{CliError, CliResult, secs};

/// `shmq create` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Queue name: [A-Za-z0-9._-]{1,200}.
    name: String,
    /// Ring capacity in messages (a power of two).
    #[arg(long, default_value_t = 4096)]
    slots: u64,
    /// Largest payload in bytes.
    #[arg(long, default_value_t = 1024)]
    slot_size: usize,
    /// What a publish does when the ring is full: block, reject, or
    /// spill (to segment files on disk, read back in order).
    #[arg(long, default_value = "block")]
    overflow: String,
    /// overflow=spill: directory of the segment files [default:
    /// /var/tmp/shmq/NAME].
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// overflow=spill: most bytes of segment files on disk.
    #[arg(long, default_value_t = 1 << 30)]
    spill_max_bytes: u64,
    /// overflow=spill: bytes of one segment file.
    #[arg(long, default_value_t = 64 << 20)]
    spill_segment_size: u64,
    /// overflow=spill: what a publish does when the spill is full too:
    /// block or reject.
    #[arg(long, default_value = "block")]
    spill_fallback: String,
    /// overflow=spill: when spilled records are flushed to disk: never,
    /// always or every-N.
    #[arg(long, default_value = "never")]
    sync: String,
    /// Keep a journal of every message (in SPILL_DIR/journal), this many
    /// seconds (with --journal-bytes, whichever comes first), so that
    /// groups can seek back to any retained seq or time.
    #[arg(long)]
    journal_age: Option<f64>,
    /// Most bytes of journal segment files.
    #[arg(long, default_value_t = 1 << 30)]
    journal_bytes: u64,
    /// How many consumer groups the queue can hold.
    #[arg(long, default_value_t = 16)]
    max_groups: u32,
    /// File mode, in octal.
    #[arg(long, default_value = "600")]
    mode: String,
    /// Seconds before consumers abort a claimed but uncommitted message.
    #[arg(long, default_value_t = 5.0)]
    unblock_timeout: f64,
    /// Seconds an ack=manual consumer holds a message before it is
    /// delivered again (the visibility timeout).
    #[arg(long, default_value_t = 30.0)]
    lease: f64,
    /// Deliveries of a message before it goes to the dead-letter queue.
    #[arg(long, default_value_t = 5)]
    max_deliveries: u32,
    /// Entries of the dead-letter queue.
    #[arg(long, default_value_t = 1024)]
    dlq_slots: u32,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args {
        name,
        slots,
        slot_size,
        overflow,
        max_groups,
        mode,
        unblock_timeout,
        lease,
        max_deliveries,
        dlq_slots,
        spill_dir,
        spill_max_bytes,
        spill_segment_size,
        spill_fallback,
        sync,
        journal_age,
        journal_bytes,
    } = args;
    let overflow: Overflow = overflow.parse()?;
    let spill_fallback: Overflow = spill_fallback.parse()?;
    let sync: SyncMode = sync.parse()?;
    let mut opts = opts
        .spill_max_bytes(spill_max_bytes)
        .spill_segment_size(spill_segment_size)
        .spill_fallback(spill_fallback)
        .sync(sync);
    if let Some(d) = spill_dir {
        opts = opts.spill_dir(d);
    }
    if let Some(age) = journal_age {
        opts = opts.journal(shmq::Retention::new(
            secs(age, "--journal-age")?,
            journal_bytes,
        ));
    }
    let mode = u32::from_str_radix(&mode, 8)
        .map_err(|_| CliError::Other(format!("bad --mode {mode:?}: give octal bits like 600")))?;
    let q = Queue::create(
        &name,
        &opts
            .slots(slots)
            .slot_size(slot_size)
            .overflow(overflow)
            .max_groups(max_groups)
            .mode(mode)
            .unblock_timeout(secs(unblock_timeout, "--unblock-timeout")?)
            .lease(secs(lease, "--lease")?)
            .max_deliveries(max_deliveries)
            .dlq_slots(dlq_slots),
    )?;
    eprintln!(
        "created {} ({} slots of {} bytes, overflow={})",
        q.path().display(),
        q.slots(),
        q.slot_size(),
        q.overflow()
    );
    let st = q.stats();
    if let Some(d) = st.spill_dir {
        eprintln!("spill directory {}", d.display());
    }
    if let (Some(_), Some(age)) = (st.journal, journal_age) {
        eprintln!("journal keeps {age} s, at most {journal_bytes} bytes");
    }
    Ok(())
}
