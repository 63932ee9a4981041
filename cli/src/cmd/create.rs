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
    /// Slots in the ring (a power of two): its capacity in messages of up
    /// to --slot-size bytes [default: 4096, or what --capacity makes].
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    slots: Option<u64>,
    /// The ring's size in bytes instead of --slots (64M, 1G, 65536...):
    /// the most slots of --slot-size that fit, a power of two, which
    /// messages of any length share (with --slot-size 32, 64M holds a
    /// million 16-byte events, or one frame of up to 32 MiB).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::byte_size)]
    capacity: Option<u64>,
    /// Bytes of payload a slot holds; a longer message takes consecutive
    /// slots (and its seq is its first slot's).
    #[arg(long, default_value_t = 1024, allow_negative_numbers = true, value_parser = crate::whole::<usize>)]
    slot_size: usize,
    /// The largest message in bytes (or 4M, 1G...) [default: as much as
    /// half the ring holds, and one spill segment].
    #[arg(long, allow_negative_numbers = true, value_parser = crate::byte_size)]
    max_message_size: Option<u64>,
    /// What a publish does when the ring is full: block, reject, or
    /// spill (to segment files on disk, read back in order).
    #[arg(long, default_value = "block")]
    overflow: String,
    /// overflow=spill: directory of the segment files [default:
    /// /var/tmp/shmq-UID/NAME, or NAME-HASH of the queue's directory
    /// outside /dev/shm; in containers, put it on a shared volume].
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// overflow=spill: most bytes of segment files on disk.
    #[arg(long, default_value_t = 1 << 30, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    spill_max_bytes: u64,
    /// overflow=spill: bytes of one segment file.
    #[arg(long, default_value_t = 64 << 20, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
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
    #[arg(long, allow_negative_numbers = true)]
    journal_age: Option<f64>,
    /// Most bytes of journal segment files.
    #[arg(long, default_value_t = 1 << 30, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    journal_bytes: u64,
    /// How many consumer groups the queue can hold.
    #[arg(long, default_value_t = 16, allow_negative_numbers = true, value_parser = crate::whole::<u32>)]
    max_groups: u32,
    /// File mode, in octal.
    #[arg(long, default_value = "600")]
    mode: String,
    /// Seconds before consumers abort a claimed but uncommitted message.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    unblock_timeout: f64,
    /// Seconds an ack=manual consumer holds a message before it is
    /// delivered again (the visibility timeout).
    #[arg(long, default_value_t = 30.0, allow_negative_numbers = true)]
    lease: f64,
    /// Deliveries of a message before it goes to the dead-letter queue.
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = crate::whole::<u32>)]
    max_deliveries: u32,
    /// How many idempotency keys (publish --key) the queue remembers.
    #[arg(long, default_value_t = 1024, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    dedup_window: u64,
    /// Seconds an idempotency key is remembered.
    #[arg(long, default_value_t = 300.0, allow_negative_numbers = true)]
    dedup_ttl: f64,
    /// Entries of the dead-letter queue, of --slot-size bytes each (a dead
    /// letter takes as many in a row as it needs) [default: 1024, or enough
    /// for two messages of --max-message-size]; allocated as they are used.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u32>)]
    dlq_slots: Option<u32>,
    /// Ordering lanes per ack=manual group (a power of two): a key's
    /// messages wait for its earlier ones, and keys that share a lane (by
    /// hash) wait for each other.
    #[arg(long, default_value_t = 1024, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    ordering_lanes: u64,
    /// How far an ack=manual group's dispatch may run ahead of its oldest
    /// unfinished message, in slots [default: 65536, or the ring's slots if
    /// fewer]: when that many are out, receives wait for the oldest to
    /// finish. A leasing group's table takes 48 bytes per slot of it.
    #[arg(long, allow_negative_numbers = true, value_parser = crate::whole::<u64>)]
    max_in_flight: Option<u64>,
    /// Every message's time to live (30s, 5m, 1h; at most about 49 days):
    /// a group that has not finished a message by then is not given it.
    #[arg(long, value_name = "DURATION", value_parser = crate::duration)]
    message_ttl: Option<std::time::Duration>,
    /// What becomes of an expired message: dead-letter (to the group's
    /// dead-letter queue, reason "expired") or discard (dropped); counted
    /// either way.
    #[arg(long, default_value = "dead-letter")]
    on_expiry: String,
    /// The delay every message is published with (30s, 5m, 1h; at most 10
    /// years): a message reaches no group before it has passed, unless it
    /// says otherwise (publish --delay, --deliver-at). Scheduled messages
    /// wait in the queue's store directory (--spill-dir).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration)]
    delivery_delay: Option<std::time::Duration>,
}

pub(crate) fn run(args: Args, opts: Options) -> CliResult {
    let Args {
        name,
        slots,
        capacity,
        slot_size,
        max_message_size,
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
        dedup_window,
        dedup_ttl,
        ordering_lanes,
        max_in_flight,
        message_ttl,
        on_expiry,
        delivery_delay,
    } = args;
    let overflow: Overflow = overflow.parse()?;
    let spill_fallback: Overflow = spill_fallback.parse()?;
    let sync: SyncMode = sync.parse()?;
    let mut opts = opts
        .spill_max_bytes(spill_max_bytes)
        .spill_segment_size(spill_segment_size)
        .spill_fallback(spill_fallback)
        .sync(sync)
        .ordering_lanes(ordering_lanes);
    if let Some(d) = spill_dir {
        opts = opts.spill_dir(d);
    }
    if let Some(m) = max_message_size {
        opts = opts.max_message_size(m);
    }
    if let Some(n) = max_in_flight {
        opts = opts.max_in_flight(n);
    }
    if let Some(t) = message_ttl {
        opts = opts.message_ttl(t);
    }
    opts = opts.on_expiry(on_expiry.parse()?);
    if let Some(d) = delivery_delay {
        opts = opts.delivery_delay(d);
    }
    if let Some(n) = slots {
        opts = opts.slots(n);
    }
    if let Some(c) = capacity {
        opts = opts.capacity(c);
    }
    if let Some(n) = dlq_slots {
        opts = opts.dlq_slots(n);
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
            .slot_size(slot_size)
            .overflow(overflow)
            .max_groups(max_groups)
            .mode(mode)
            .unblock_timeout(secs(unblock_timeout, "--unblock-timeout")?)
            .lease(secs(lease, "--lease")?)
            .max_deliveries(max_deliveries)
            .dedup_window(dedup_window)
            .dedup_ttl(secs(dedup_ttl, "--dedup-ttl")?),
    )?;
    // The lease tables (by a group's first ack=manual consumer) and the
    // dead-letter entries are allocated as they are used.
    let now = std::fs::metadata(q.path()).map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.blocks() * 512
    });
    eprintln!(
        "created {} ({} slots of {} bytes, messages of up to {}, overflow={}; the file takes \
         {}, {} of it now)",
        q.path().display(),
        q.slots(),
        q.slot_size(),
        crate::human::bytes(q.max_message_size() as u64),
        q.overflow(),
        crate::human::bytes(q.file_size()),
        crate::human::bytes(now.min(q.file_size()))
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
