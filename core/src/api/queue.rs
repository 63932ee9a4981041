//! A queue: its file, its mapping, and the operations that are not on a
//! producer's or consumer's path (groups, stats, remove).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32 as StdAtomicU32;
use std::time::Duration;

use crate::api::consumer::Consumer;
use crate::api::dlq::DeadLetters;
use crate::api::producer::Producer;
use crate::error::{Error, Result};
use crate::layout::Geometry;
use crate::layout::{
    Config, HEADER_SIZE, Header, MAGIC, MAX_CONSUMERS, MAX_PRODUCERS, MAX_SPILL_PATH, READY,
    SpillPath, VERSION, config_crc,
};
use crate::mapped::Shared;
use crate::mapped::seek::resolve_seek;
use crate::options::SyncMode;
use crate::options::{ConsumerOptions, Options, Overflow, Seek, Start, check_group_name};
use crate::os;
use crate::protocol::group::{GroupInfo, owner_pid};
use crate::protocol::lock::Me;
use crate::protocol::registry::Registry;
use crate::protocol::ring::Peek;
use crate::record::envelope;
use crate::store::segment::{MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, RECORD_HEADER_SIZE, Segments};
use crate::store::{access, owner};
use crate::sync::Ordering;
use std::os::unix::ffi::OsStrExt;
use zerocopy::FromZeros;

/// How long an opener waits for a creator to finish initializing a file.
const READY_WAIT: Duration = Duration::from_secs(2);

fn me() -> Me {
    let pid = os::process::pid();
    Me {
        pid,
        key: os::liveness::my_key(),
    }
}

/// Refuses to create a queue whose spill directory belongs to another
/// queue that still exists (two queues of one name in two directories
/// share the default one, `/var/tmp/shmq-UID/NAME`): the new queue would
/// delete the other's segments.
fn refuse_another_queues_dir(dir: &Path, path: &Path) -> Result<()> {
    let Some(o) = owner::read(dir) else {
        return Ok(());
    };
    let theirs = o.queue != path
        && spill_of(&o.queue).is_some_and(|(c, d)| c.creation_id == o.creation_id && d == dir);
    if theirs {
        return Err(Error::Exists(format!(
            "spill directory {} belongs to queue {}: give this queue another \
             (Options::spill_dir, shmq create --spill-dir)",
            dir.display(),
            o.queue.display()
        )));
    }
    Ok(())
}

/// Where the async waiters of the queue whose file is `path` bind their
/// doorbells: the queue's directory (`os/doorbell.rs`).
fn bell_place(path: &Path) -> Result<std::sync::Arc<os::doorbell::Place>> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    os::doorbell::Place::open(dir)
        .map(std::sync::Arc::new)
        .map_err(|e| Error::io(format!("opening {} for doorbells", dir.display()), e))
}

/// Takes this process's liveness lock on the queue file it opened
/// (`os/liveness.rs`): how other processes, in any PID namespace, tell
/// that it lives.
fn hold_liveness(file: &std::fs::File, path: &std::path::Path) -> Result<()> {
    os::liveness::hold(file).map_err(|e| {
        Error::io(
            format!(
                "taking a record lock on {} (shmq tells live processes from dead \
                 ones by them; put the queue on a filesystem with record locks: \
                 /dev/shm, a tmpfs or a local disk)",
                path.display()
            ),
            e,
        )
    })
}

/// A copy of one retained message ([`Queue::peek`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peeked {
    /// Its seq.
    pub seq: u64,
    /// Publish time, CLOCK_REALTIME nanoseconds.
    pub timestamp_ns: u64,
    /// The producer's type tag.
    pub type_id: u32,
    /// The producer's correlation id.
    pub correlation_id: u64,
    /// The payload.
    pub payload: Vec<u8>,
    /// The ordering key it was published with.
    pub ordering_key: Option<Vec<u8>>,
    /// The headers it was published with, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Read from the journal (it was older than the ring holds).
    pub from_journal: bool,
}

/// A counters-and-cursors snapshot of a queue.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Queue name.
    pub name: String,
    /// Path of the queue file.
    pub path: PathBuf,
    /// Ring capacity in messages.
    pub slots: u64,
    /// Largest payload in bytes.
    pub slot_size: u64,
    /// Bytes of the queue file (all of it preallocated at create):
    /// `slots × (slot_size + 32)` and `dlq_slots × (slot_size + 96)`, each
    /// rounded up to cache lines, plus the header and tables.
    pub file_size: u64,
    /// Overflow policy.
    pub overflow: Overflow,
    /// Seq the next message will get.
    pub next_seq: u64,
    /// Oldest seq still retained.
    pub oldest_seq: u64,
    /// Messages not yet finished by the slowest group (with no group: every
    /// message retained).
    pub depth: u64,
    /// Messages published (positions claimed and not aborted).
    pub published: u64,
    /// Publishes refused with `Full`.
    pub rejected: u64,
    /// Keyed publishes not enqueued again (their key was remembered).
    pub deduplicated: u64,
    /// Positions aborted (stuck or dead producers, dropped reservations).
    pub aborted: u64,
    /// Live producer handles.
    pub producers: u64,
    /// Live consumers, all groups together.
    pub consumers: u64,
    /// Dead letters waiting in the dead-letter queue.
    pub dlq_depth: u64,
    /// Messages spilled to disk so far (overflow=spill).
    pub spilled: u64,
    /// Payload bytes spilled to disk so far.
    pub spilled_bytes: u64,
    /// Messages on disk now, waiting to come back into the ring.
    pub spill_depth: u64,
    /// Segment files on disk now.
    pub spill_segments: u64,
    /// Bytes of segment files on disk now.
    pub spill_bytes_on_disk: u64,
    /// Publishes that found the spill full (its budget or its disk).
    pub spill_full: u64,
    /// Spilled messages found damaged or missing when read back (their
    /// positions were skipped).
    pub spill_lost: u64,
    /// The spill directory (overflow=spill).
    pub spill_dir: Option<PathBuf>,
    /// The journal (with `Options::journal`).
    pub journal: Option<JournalStats>,
    /// Every group.
    pub groups: Vec<GroupInfo>,
    /// While the ring is full or the queue spills: what holds it full (the
    /// group furthest behind, the spill's budget or disk), as
    /// [`Queue::why_full`] says it.
    pub why_full: Option<String>,
}

/// What a queue's journal holds.
#[derive(Clone, Debug)]
pub struct JournalStats {
    /// Oldest retained seq (seek and replay from here on).
    pub first_seq: u64,
    /// CLOCK_REALTIME ns of the oldest retained message, if any.
    pub first_ns: Option<u64>,
    /// Seq of the next message to be journaled: everything retained below
    /// it is in the journal.
    pub next_seq: u64,
    /// Messages journaled so far.
    pub journaled: u64,
    /// Payload bytes journaled so far.
    pub journaled_bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Bytes of segment files on disk.
    pub bytes_on_disk: u64,
    /// Seqs whose retention ran out (their segment was deleted).
    pub expired: u64,
}

/// A queue. Cheap to clone; every clone, producer and consumer shares one
/// mapping of the queue file.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use shmq::{ConsumerOptions, Options, Queue};
/// let opts = Options::new().dir(dir.path()).slots(64).slot_size(128);
/// let q = Queue::create("doc-queue", &opts)?;
/// let mut consumer = q.consumer("readers", ConsumerOptions::new())?;
/// let mut producer = q.producer()?;
/// let seq = producer.publish(b"hello")?;
/// let msg = consumer.receive()?;
/// assert_eq!((msg.seq(), msg.payload()), (seq, &b"hello"[..]));
/// # drop(msg);
/// # Queue::remove("doc-queue", &opts)?;
/// # Ok::<(), shmq::Error>(())
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.shared.name)
            .field("path", &self.shared.path)
            .finish()
    }
}

fn queue_path(name: &str, opts: &Options) -> Result<PathBuf> {
    crate::options::check_queue_name(name)?;
    Ok(opts.get_dir().join(format!("{name}.shmq")))
}

impl Queue {
    /// Creates queue `name` (file `<dir>/<name>.shmq`, created exclusively
    /// with `opts.mode`, never through a symlink).
    pub fn create(name: &str, opts: &Options) -> Result<Queue> {
        let path = queue_path(name, opts)?;
        let geo = Geometry::compute(
            opts.slots,
            opts.slot_size,
            opts.max_groups as u64,
            MAX_PRODUCERS as u64,
            MAX_CONSUMERS as u64,
            opts.dlq_slots as u64,
            opts.dedup_window,
            opts.ordering_lanes,
        )?;
        if opts.mode & !0o777 != 0 || opts.mode & 0o600 != 0o600 {
            return Err(Error::InvalidOption(format!(
                "mode must be permission bits including owner read/write (0o600), got {:o}",
                opts.mode
            )));
        }
        if !(1..=254).contains(&opts.max_deliveries) {
            return Err(Error::InvalidOption(format!(
                "max_deliveries must be from 1 to 254, got {}",
                opts.max_deliveries
            )));
        }
        if opts.lease.is_zero() {
            return Err(Error::InvalidOption("lease must be more than 0".into()));
        }
        if opts.unblock_timeout.is_zero() {
            return Err(Error::InvalidOption(
                "unblock_timeout must be more than 0".into(),
            ));
        }
        let spill_dir = opts.get_spill_dir(name);
        if opts.overflow == Overflow::Spill || opts.journal.is_some() {
            check_spill_options(opts, &spill_dir)?;
        }
        if let Some(dir) = path.parent().filter(|d| d.exists()) {
            access::check_queue_dir(dir, opts.trust)?;
        }

        if let Some(r) = opts.journal {
            if r.max_age.is_zero() {
                return Err(Error::InvalidOption(
                    "journal retention max_age must be more than 0".into(),
                ));
            }
            if r.max_bytes < 2 * opts.spill_segment_size {
                return Err(Error::InvalidOption(format!(
                    "journal retention max_bytes ({}) must be at least two segments ({} bytes each)",
                    r.max_bytes, opts.spill_segment_size
                )));
            }
        }
        // The spill directory is made now (this user's, mode 0700), or
        // checked if it is there: never one that someone else made. Made
        // here, after every option was checked, and taken back if the file
        // cannot be made.
        let spill_made = if opts.overflow == Overflow::Spill || opts.journal.is_some() {
            let made = access::private_dir(&spill_dir, opts.trust)?;
            refuse_another_queues_dir(&spill_dir, &path)?;
            made
        } else {
            false
        };
        let file = os::file::create(&path, opts.mode, geo.total_size).map_err(|e| {
            if spill_made {
                let _ = std::fs::remove_dir(&spill_dir);
            }
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists(format!("queue {name:?} ({})", path.display()))
            } else if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                let dir = path.parent().unwrap_or(Path::new("."));
                let free = os::file::free_space(dir)
                    .map(|b| format!("{b} bytes are free"))
                    .unwrap_or_else(|_| "the free space is unknown".into());
                Error::io(
                    format!(
                        "creating {}: the queue file needs {} bytes ({} slots of {} bytes, {} \
                         dead-letter slots of {} bytes, {} bytes of tables) and {free} in {}; \
                         make fewer or smaller slots, or give the queue a larger directory \
                         (Docker: --shm-size)",
                        path.display(),
                        geo.total_size,
                        geo.slots,
                        geo.slot_stride,
                        geo.dlq_slots,
                        geo.dlq_stride,
                        geo.total_size
                            - geo.slots * geo.slot_stride
                            - geo.dlq_slots * geo.dlq_stride,
                        dir.display()
                    ),
                    e,
                )
            } else {
                Error::io(format!("creating {}", path.display()), e)
            }
        })?;
        let map = os::map::Mapping::new(&file, geo.total_size)
            .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        let now = os::clock::realtime_ns();
        let config = Config {
            magic: MAGIC,
            version: VERSION,
            header_size: HEADER_SIZE as u32,
            slots: geo.slots,
            slot_size: geo.slot_size as u32,
            slot_stride: geo.slot_stride as u32,
            max_groups: geo.max_groups as u32,
            max_producers: geo.max_producers as u32,
            overflow: opts.overflow.to_raw(),
            max_deliveries: opts.max_deliveries,
            lease_ns: opts.lease.as_nanos() as u64,
            unblock_timeout_ns: opts.unblock_timeout.as_nanos() as u64,
            dedup_window: opts.dedup_window,
            dlq_slots: opts.dlq_slots,
            mode: opts.mode,
            slots_offset: geo.slots_offset,
            groups_offset: geo.groups_offset,
            producers_offset: geo.producers_offset,
            total_size: geo.total_size,
            creation_id: now
                ^ os::clock::monotonic_ns().rotate_left(29)
                ^ ((os::process::pid() as u64) << 40),
            created_ns: now,
            consumers_offset: geo.consumers_offset,
            leases_offset: geo.leases_offset,
            dlq_offset: geo.dlq_offset,
            max_consumers: geo.max_consumers as u32,
            dlq_stride: geo.dlq_stride as u32,
            dedup_offset: geo.dedup_offset,
            dedup_ttl_ns: opts.dedup_ttl.as_nanos().min(u64::MAX as u128) as u64,
            spill_max_bytes: opts.spill_max_bytes,
            spill_segment_size: opts.spill_segment_size,
            spill_fallback: opts.spill_fallback.to_raw(),
            sync_mode: opts.sync.to_raw().0,
            sync_every: opts.sync.to_raw().1,
            journal_max_age_ns: opts
                .journal
                .map_or(0, |r| r.max_age.as_nanos().min(u64::MAX as u128) as u64),
            journal_max_bytes: opts.journal.map_or(0, |r| r.max_bytes),
            ordering_lanes: geo.ordering_lanes,
            lanes_offset: geo.lanes_offset,
            ..Config::new_zeroed()
        };
        let base = map.base();
        // SAFETY: the file is ours alone (just created with O_EXCL) and at
        // least HEADER_SIZE long; nobody reads the config before `ready`.
        unsafe {
            std::ptr::write(base as *mut Config, config);
            std::ptr::write(
                base.add(std::mem::offset_of!(Header, config_crc)) as *mut u32,
                config_crc(&config),
            );
        }
        if opts.overflow == Overflow::Spill || opts.journal.is_some() {
            // The directory is ours from now on (`store/owner.rs`): what
            // is in it belonged to a queue that is gone.
            if let Err(e) = owner::write(&spill_dir, config.creation_id, &path) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        let journal = opts
            .journal
            .map(|_| std::sync::Mutex::new(journal_for(&config, &spill_dir)));
        if let Some(j) = &journal {
            clear_segments(&j.lock().unwrap_or_else(|p| p.into_inner()));
        }
        let spill = if opts.overflow == Overflow::Spill || opts.journal.is_some() {
            let bytes = spill_dir.as_os_str().as_encoded_bytes();
            let mut sp = SpillPath::new_zeroed();
            sp.len = bytes.len() as u32;
            sp.bytes[..bytes.len()].copy_from_slice(bytes);
            sp.crc = crc32c::crc32c(&sp.bytes[..bytes.len()]);
            // SAFETY: as above: the file is ours alone until `ready`.
            unsafe {
                std::ptr::write(
                    base.add(std::mem::offset_of!(Header, spill_path)) as *mut SpillPath,
                    sp,
                )
            };
            // Segments of an earlier queue of this name (removed without
            // its spill) would never be read: clear them out.
            let segs = segments_for(&config, spill_dir.clone());
            clear_segments(&segs);
            clear_segments(&dlq_for(&config, &spill_dir));
            (opts.overflow == Overflow::Spill).then(|| std::sync::Mutex::new(segs))
        } else {
            None
        };
        hold_liveness(&file, &path)?;
        let bells = bell_place(&path)?;
        let shared = Shared {
            map,
            _file: file,
            path,
            name: name.to_string(),
            config,
            geo,
            me: me(),
            dlq_spill: spill
                .as_ref()
                .map(|_| std::sync::Mutex::new(dlq_for(&config, &spill_dir))),
            spill,
            journal,
            dedup_index: Default::default(),
            stores_refused: None,
            bells,
        };
        shared.register_bells();
        // Release pairs with the opener's Acquire load in `validate`: it
        // sees the config written above. Everything else is zero, which is
        // the initial state of every region.
        shared.header().ready.store(READY, Ordering::Release);
        Ok(Queue {
            shared: Arc::new(shared),
        })
    }

    /// Opens queue `name` in `$SHMQ_DIR` or `/dev/shm`.
    pub fn open(name: &str) -> Result<Queue> {
        Queue::open_with(name, &Options::new())
    }

    /// Opens queue `name` in `opts.dir` (the other options are read from
    /// the file).
    pub fn open_with(name: &str, opts: &Options) -> Result<Queue> {
        let path = queue_path(name, opts)?;
        let file = os::file::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::NotFound(format!("queue {name:?} ({})", path.display()))
            }
            _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                Error::corrupt(
                    &path,
                    "is a symbolic link; queue files are never opened through one",
                )
            }
            _ => Error::io(format!("opening {}", path.display()), e),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::corrupt(&path, "not a regular file"));
        }
        access::check_queue_file(&path, opts.trust)?;
        let len = meta.len();
        if len < HEADER_SIZE {
            return Err(Error::corrupt(
                &path,
                format!("file is {len} bytes, shorter than a queue header ({HEADER_SIZE})"),
            ));
        }
        if len > crate::layout::MAX_TOTAL_SIZE {
            return Err(Error::corrupt(
                &path,
                format!("file is {len} bytes, too large"),
            ));
        }
        let map = os::map::Mapping::new(&file, len)
            .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        let (config, geo, spill_dir) = validate(&map, &path)?;
        let mut stores_refused = None;
        if let Some(d) = &spill_dir {
            access::private_dir(d, opts.trust)?;
            for sub in ["journal", "dlq"] {
                let sub = d.join(sub);
                if sub.exists() {
                    access::check_dir(&sub, opts.trust)?;
                }
            }
            stores_refused = owner::refusal(d, config.creation_id, &path);
        }
        let journal = match (&spill_dir, config.journal_max_bytes) {
            (Some(d), b) if b > 0 => Some(std::sync::Mutex::new(journal_for(&config, d))),
            _ => None,
        };
        let spill = spill_dir
            .filter(|_| config.overflow == Overflow::Spill.to_raw())
            .map(|d| std::sync::Mutex::new(segments_for(&config, d)));
        let dlq_spill = spill.as_ref().map(|m| {
            let dir = m.lock().unwrap_or_else(|p| p.into_inner()).dir.clone();
            std::sync::Mutex::new(dlq_for(&config, &dir))
        });
        hold_liveness(&file, &path)?;
        let bells = bell_place(&path)?;
        let shared = Shared {
            map,
            _file: file,
            path,
            name: name.to_string(),
            config,
            geo,
            me: me(),
            spill,
            journal,
            dlq_spill,
            dedup_index: Default::default(),
            stores_refused,
            bells,
        };
        shared.register_bells();
        let ring = &shared.header().ring;
        let (head, tail) = (
            ring.head.load(Ordering::Acquire),
            crate::protocol::spill::ring_tail(ring.tail.load(Ordering::Acquire)),
        );
        let spilling = crate::protocol::spill::spilling(ring.tail.load(Ordering::Acquire));
        if shared.spill.is_none() && spilling {
            return Err(Error::corrupt(
                &shared.path,
                "spill flag set on a queue without overflow=spill",
            ));
        }
        if (head > tail && !spilling) || tail.saturating_sub(head) > geo.slots {
            return Err(Error::corrupt(
                &shared.path,
                format!(
                    "cursors out of range (head {head}, tail {tail}, slots {})",
                    geo.slots
                ),
            ));
        }
        if shared.spill.is_some() {
            shared.recover_spill()?;
        }
        Ok(Queue {
            shared: Arc::new(shared),
        })
    }

    /// Opens queue `name`, creating it with `opts` if it does not exist. An
    /// existing queue keeps the options it was created with.
    pub fn open_or_create(name: &str, opts: &Options) -> Result<Queue> {
        match Queue::create(name, opts) {
            Err(Error::Exists(_)) => Queue::open_with(name, opts),
            other => other,
        }
    }

    /// Removes queue `name` of the default directory (as [`open`](Self::open)
    /// finds it): [`remove`](Self::remove) with default options.
    pub fn remove_default(name: &str) -> Result<()> {
        Queue::remove(name, &Options::default())
    }

    /// Removes queue `name`'s file; new opens fail with `NotFound`. Fails
    /// with `Busy`, naming their pids and groups, while consumers of other
    /// processes are attached: they would go on reading the removed file
    /// and never see the messages of a queue made again under its name (as
    /// [`delete_group`](Self::delete_group) and
    /// [`seek_group`](Self::seek_group) refuse a live consumer). This
    /// process's own consumers do not count (it has them in hand: they keep
    /// their mapping). [`remove_forced`](Self::remove_forced) removes it
    /// anyway.
    ///
    pub fn remove(name: &str, opts: &Options) -> Result<()> {
        match Queue::open_with(name, opts) {
            Ok(q) => {
                let live = q.shared.others_live_consumers();
                if !live.is_empty() {
                    let who: Vec<String> = live
                        .iter()
                        .map(|(pid, group)| format!("pid {pid} (group {group:?})"))
                        .collect();
                    return Err(Error::Busy(format!(
                        "queue {name:?} has {} live consumer(s): {}; they would go on reading \
                         the removed file and never see a queue made again under its name: \
                         stop them first, or remove it anyway (shmq rm --force, \
                         Queue::remove_forced)",
                        live.len(),
                        who.join(", ")
                    )));
                }
            }
            Err(e @ Error::NotFound(_)) => return Err(e),
            // A file nobody can open is nobody's queue any more (a
            // garbled or foreign file, another layout version): remove
            // it without asking.
            Err(_) => {}
        }
        Queue::remove_forced(name, opts)
    }

    /// Removes queue `name`'s file even while consumers are attached:
    /// processes that have it open keep using their mapping, and never see
    /// a queue made again under the name. New opens fail with `NotFound`.
    pub fn remove_forced(name: &str, opts: &Options) -> Result<()> {
        let path = queue_path(name, opts)?;
        // The spill's segments go with it (a garbled file keeps them: its
        // spill directory cannot be trusted).
        // Only segments of a directory that is this queue's: another
        // queue (of the same name elsewhere, say) may spill there now.
        if let Some((config, dir)) = spill_of(&path).filter(|(c, d)| owner::is_of(d, c.creation_id))
        {
            let _ = std::fs::remove_file(dir.join(owner::FILE));
            clear_segments(&dlq_for(&config, &dir));
            let _ = std::fs::remove_dir(dir.join("dlq"));
            clear_segments(&journal_for(&config, &dir));
            let _ = std::fs::remove_dir(dir.join("journal"));
            clear_segments(&segments_for(&config, dir.clone()));
            let _ = std::fs::remove_dir(&dir);
        }
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::NotFound(format!("queue {name:?} ({})", path.display()))
            }
            _ => Error::io(format!("removing {}", path.display()), e),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Path of the queue file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The spill directory (overflow=spill), where its segment files go.
    pub fn spill_dir(&self) -> Option<PathBuf> {
        self.shared.spill_dir()
    }

    /// Ring capacity in messages.
    pub fn slots(&self) -> u64 {
        self.shared.geo.slots
    }

    /// Largest payload in bytes.
    pub fn slot_size(&self) -> usize {
        self.shared.geo.slot_size as usize
    }

    /// Bytes of the queue file, all of them taken at create (the file is
    /// preallocated, so a directory without room fails there, not later).
    pub fn file_size(&self) -> u64 {
        self.shared.geo.total_size
    }

    /// Writes the mapping back to its file and waits for it: for a queue
    /// whose `dir` is on a disk, so its contents survive a reboot.
    pub fn flush(&self) -> Result<()> {
        self.shared
            .map
            .flush()
            .map_err(|e| Error::io(format!("flushing {}", self.shared.path.display()), e))
    }

    /// The queue's overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.shared.overflow()
    }

    /// A new producer. Producers are cheap; use one per thread.
    pub fn producer(&self) -> Result<Producer> {
        Producer::new(self.shared.clone())
    }

    /// A consumer of group `group`, which is created (at `opts.start`) if it
    /// does not exist. A group has at most one live consumer at a time.
    pub fn consumer(&self, group: &str, opts: ConsumerOptions) -> Result<Consumer> {
        Consumer::new(self.shared.clone(), group, opts)
    }

    /// Creates group `group` starting at `start`, so it retains everything
    /// from there before any consumer runs.
    pub fn create_group(&self, group: &str, start: Start) -> Result<()> {
        check_group_name(group)?;
        let g = self.shared.lock();
        self.shared
            .create_group_locked(&g, group, start)
            .map(|_| ())
    }

    /// Deletes group `group`: it stops retaining messages. Fails with
    /// `Busy` while a live consumer is attached.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        check_group_name(group)?;
        let g = self.shared.lock();
        self.shared
            .groups()
            .delete(&g, group, |p, k| self.shared.alive(p, k))?;
        drop(g);
        // Space may have been freed.
        self.shared.ring().notify_space();
        Ok(())
    }

    /// Every group, in table order.
    pub fn groups(&self) -> Vec<GroupInfo> {
        self.shared.group_infos()
    }

    /// Why a publish finds (or would find) no room: the group that holds
    /// the ring (or that there is none), and for a spilling queue what
    /// holds the spill full — its `spill_max_bytes` budget, its disk —
    /// with the option that helps. What the CLI prints while a publisher
    /// waits, and what the Python and C faces add to a publish's
    /// `Timeout`, `Full` and `SpillFull`.
    pub fn why_full(&self) -> String {
        crate::api::room::why_full(&self.shared)
    }

    /// The dead-letter queue.
    pub fn dlq(&self) -> DeadLetters {
        DeadLetters {
            shared: self.shared.clone(),
        }
    }

    /// Copies up to `count` retained messages from seq `from` on (from the
    /// oldest retained, if `from` is older), out of the journal where it
    /// has them and then the ring, without a group: no cursor, lease or
    /// counter moves, and no consumer notices. For operators (`shmq
    /// peek`): it holds the admin lock while it copies, so producers that
    /// need room wait for it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use shmq::{Options, Queue, Start};
    /// let q = Queue::create("doc-peek", &Options::new().dir(dir.path()).slots(8))?;
    /// q.create_group("g", Start::Earliest)?;
    /// q.producer()?.publish_batch(&[b"a", b"b", b"c"])?;
    /// let seen = q.peek(1, 10)?;
    /// assert_eq!(seen.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(seen[0].payload, b"b");
    /// assert_eq!(q.groups()[0].lag, 3); // nobody's cursor moved
    /// # Ok::<(), shmq::Error>(())
    /// ```
    pub fn peek(&self, from: u64, count: usize) -> Result<Vec<Peeked>> {
        let shared = &*self.shared;
        let mut out = Vec::new();
        // Under the admin lock `head` cannot move, so no slot at or past it
        // is written again while we copy it (as in `resolve_seek`).
        let g = shared.lock();
        let ring = shared.ring();
        let head = ring.ctl.head.load(Ordering::Acquire);
        let tail = crate::protocol::spill::ring_tail(ring.ctl.tail.load(Ordering::Acquire));
        let mut pos = from;
        if pos < head {
            if let Some(mut r) = crate::mapped::journal::JournalReader::new(shared) {
                while out.len() < count && pos < head {
                    match r.find(pos, &shared.header().journal)? {
                        Some(rec) if rec.seq < head => {
                            // SAFETY: the reader `r` holds the record's
                            // segment until its next read.
                            let body = unsafe { rec.stored() };
                            let o = envelope::owned(body, rec.enveloped);
                            out.push(Peeked {
                                seq: rec.seq,
                                timestamp_ns: rec.timestamp_ns,
                                type_id: rec.type_id,
                                correlation_id: rec.correlation_id,
                                payload: o.payload,
                                ordering_key: o.ordering_key,
                                headers: o.headers,
                                from_journal: true,
                            });
                            pos = rec.seq + 1;
                        }
                        _ => break,
                    }
                }
            }
            pos = pos.max(head);
        }
        while out.len() < count && pos < tail {
            match ring.peek(pos) {
                Peek::Ready => {
                    // SAFETY: committed, and `head <= pos` holds while we
                    // hold the admin lock, so nobody rewrites the slot.
                    let Some(rec) = (unsafe { shared.committed_record(pos) }) else {
                        return Err(Error::corrupt(
                            &shared.path,
                            format!("slot of seq {pos} claims more bytes than slot_size"),
                        ));
                    };
                    let o = envelope::owned(rec.payload, rec.enveloped);
                    out.push(Peeked {
                        seq: pos,
                        timestamp_ns: rec.timestamp_ns,
                        type_id: rec.type_id,
                        correlation_id: rec.correlation_id,
                        payload: o.payload,
                        ordering_key: o.ordering_key,
                        headers: o.headers,
                        from_journal: false,
                    });
                }
                Peek::Skip => {}
                // Not committed yet: later ones are not readable in order.
                Peek::NotYet(_) => break,
            }
            pos += 1;
        }
        drop(g);
        Ok(out)
    }

    /// Moves group `group` to `to` (replay or skip) while no consumer is
    /// attached; returns the seq it will receive next. Seeks are clamped
    /// to what the queue retains ([`Seek`] says what that is): compare the
    /// seq returned with the one asked for.
    pub fn seek_group(&self, group: &str, to: Seek) -> Result<u64> {
        check_group_name(group)?;
        let g = self.shared.lock();
        let groups = self.shared.groups();
        let idx = groups
            .find(&g, group)
            .ok_or_else(|| Error::NotFound(format!("group {group:?}")))?;
        let sharers = Registry {
            records: self.shared.consumer_records(),
        }
        .count(idx, |p, k| self.shared.alive(p, k));
        if sharers > 0 {
            return Err(Error::Busy(format!(
                "group {group:?} has {sharers} live ack=manual consumer(s); stop them first"
            )));
        }
        let start = resolve_seek(&self.shared, &g, to)?;
        let pos = groups.seek(&g, idx, group, start, 0, |p, k| self.shared.alive(p, k))?;
        self.shared.leases(idx).reset();
        drop(g);
        self.shared.ring().notify_space();
        Ok(pos)
    }

    /// A snapshot of counters and cursors.
    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        let hdr = shared.header();
        let groups = self.groups();
        let head = hdr.ring.head.load(Ordering::Acquire);
        let tail = crate::protocol::spill::end_seq(&hdr.ring, &hdr.spill);
        let sp = &hdr.spill;
        let spilling = crate::protocol::spill::spilling(hdr.ring.tail.load(Ordering::Acquire));
        let lost = sp.lost.load(Ordering::Relaxed);
        let aborted = hdr.counters.aborted.load(Ordering::Relaxed);
        let min_committed = groups.iter().map(|g| g.committed).min();
        let producers = shared
            .producer_records()
            .iter()
            .filter(|r| {
                let owner = r.owner.load(Ordering::Acquire);
                owner != 0
                    && self
                        .shared
                        .alive(owner_pid(owner), r.owner_key.load(Ordering::Acquire))
            })
            .count() as u64;
        Stats {
            name: shared.name.clone(),
            path: shared.path.clone(),
            slots: shared.geo.slots,
            slot_size: shared.geo.slot_size,
            file_size: shared.geo.total_size,
            overflow: shared.overflow(),
            next_seq: tail,
            oldest_seq: head,
            depth: tail.saturating_sub(min_committed.unwrap_or(head)),
            published: tail.saturating_sub(aborted + lost),
            spilled: sp.spilled.load(Ordering::Relaxed),
            spilled_bytes: sp.spilled_bytes.load(Ordering::Relaxed),
            spill_depth: if spilling {
                tail.saturating_sub(sp.read_seq.load(Ordering::Relaxed))
            } else {
                0
            },
            spill_segments: sp.segments.load(Ordering::Relaxed),
            spill_bytes_on_disk: sp.bytes_on_disk.load(Ordering::Relaxed),
            spill_full: sp.full.load(Ordering::Relaxed),
            spill_lost: lost,
            spill_dir: self.spill_dir(),
            journal: shared.journal.as_ref().and_then(|_| {
                let g = shared.lock();
                let (first_seq, first_ns, next_seq) = shared.journal_range(&g)?;
                let j = &hdr.journal;
                Some(JournalStats {
                    first_seq,
                    first_ns,
                    next_seq,
                    journaled: j.spilled.load(Ordering::Relaxed),
                    journaled_bytes: j.spilled_bytes.load(Ordering::Relaxed),
                    segments: j.segments.load(Ordering::Relaxed),
                    bytes_on_disk: j.bytes_on_disk.load(Ordering::Relaxed),
                    expired: j.lost.load(Ordering::Relaxed),
                })
            }),
            rejected: hdr.counters.rejected.load(Ordering::Relaxed),
            deduplicated: hdr.counters.deduplicated.load(Ordering::Relaxed),
            aborted,
            producers,
            consumers: groups.iter().map(|g| g.consumers).sum(),
            dlq_depth: self.dlq().len(),
            why_full: (spilling
                || crate::protocol::spill::ring_tail(hdr.ring.tail.load(Ordering::Acquire))
                    .saturating_sub(head)
                    >= shared.geo.slots)
                .then(|| crate::api::room::why_full_with(shared, &groups)),
            groups,
        }
    }
}

/// Checks everything an opener reads before trusting it.
fn validate(map: &os::map::Mapping, path: &Path) -> Result<(Config, Geometry, Option<PathBuf>)> {
    let base = map.base();
    // SAFETY: the mapping is at least HEADER_SIZE bytes (checked by the
    // caller) and page-aligned. Volatile: another process may be writing.
    let (magic, version) = unsafe {
        (
            std::ptr::read_volatile(base as *const u64),
            std::ptr::read_volatile(base.add(8) as *const u32),
        )
    };
    if magic != MAGIC {
        return Err(Error::corrupt(path, "not a shmq queue file (bad magic)"));
    }
    if version != VERSION {
        return Err(Error::Incompatible {
            path: path.to_path_buf(),
            found: version,
            expected: VERSION,
        });
    }
    // SAFETY: in bounds and 4-aligned (offset 256 of a page); the ready
    // word is only ever accessed atomically.
    let ready = unsafe { &*(base.add(std::mem::offset_of!(Header, ready)) as *const StdAtomicU32) };
    // Acquire pairs with the creator's Release store of READY.
    let ready_word = || ready.load(std::sync::atomic::Ordering::Acquire);
    let waited = std::time::Instant::now();
    while ready_word() != READY {
        if waited.elapsed() > READY_WAIT {
            return Err(Error::corrupt(
                path,
                "incomplete: its creator did not finish initializing it (crashed?); remove it",
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SAFETY: in bounds as above; the config is immutable once ready.
    let (config, crc) = unsafe {
        (
            std::ptr::read_volatile(base as *const Config),
            std::ptr::read_volatile(
                base.add(std::mem::offset_of!(Header, config_crc)) as *const u32
            ),
        )
    };
    if config_crc(&config) != crc {
        return Err(Error::corrupt(
            path,
            "header checksum mismatch (garbled file)",
        ));
    }
    let geo = Geometry::compute(
        config.slots,
        config.slot_size as u64,
        config.max_groups as u64,
        config.max_producers as u64,
        config.max_consumers as u64,
        config.dlq_slots as u64,
        config.dedup_window,
        config.ordering_lanes,
    )
    .map_err(|e| Error::corrupt(path, format!("bad geometry: {e}")))?;
    let expect = |what: &str, found: u64, want: u64| {
        if found == want {
            Ok(())
        } else {
            Err(Error::corrupt(
                path,
                format!("{what} is {found}, expected {want}"),
            ))
        }
    };
    expect("header_size", config.header_size as u64, HEADER_SIZE)?;
    expect("slot_stride", config.slot_stride as u64, geo.slot_stride)?;
    expect("groups_offset", config.groups_offset, geo.groups_offset)?;
    expect(
        "producers_offset",
        config.producers_offset,
        geo.producers_offset,
    )?;
    expect(
        "consumers_offset",
        config.consumers_offset,
        geo.consumers_offset,
    )?;
    expect("leases_offset", config.leases_offset, geo.leases_offset)?;
    expect("dlq_offset", config.dlq_offset, geo.dlq_offset)?;
    expect("dlq_stride", config.dlq_stride as u64, geo.dlq_stride)?;
    expect("dedup_offset", config.dedup_offset, geo.dedup_offset)?;
    expect("lanes_offset", config.lanes_offset, geo.lanes_offset)?;
    expect("slots_offset", config.slots_offset, geo.slots_offset)?;
    expect("total_size", config.total_size, geo.total_size)?;
    expect("file size", map.len() as u64, geo.total_size)?;
    if Overflow::from_raw(config.overflow).is_none() {
        return Err(Error::corrupt(
            path,
            format!("unknown overflow policy {}", config.overflow),
        ));
    }
    if config.unblock_timeout_ns == 0 {
        return Err(Error::corrupt(path, "unblock_timeout is 0"));
    }
    let spill_dir = if config.overflow == Overflow::Spill.to_raw() || config.journal_max_bytes > 0 {
        // SAFETY: in bounds (the header is mapped whole) and immutable
        // once ready.
        let sp = unsafe {
            std::ptr::read_volatile(
                base.add(std::mem::offset_of!(Header, spill_path)) as *const SpillPath
            )
        };
        let len = sp.len as usize;
        if len == 0 || len > sp.bytes.len() || crc32c::crc32c(&sp.bytes[..len]) != sp.crc {
            return Err(Error::corrupt(path, "spill directory garbled"));
        }
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&config.spill_segment_size)
            || config.spill_segment_size < min_segment_for(config.slot_size as u64)
            || config.spill_max_bytes < config.spill_segment_size
            || Overflow::from_raw(config.spill_fallback).is_none_or(|f| f == Overflow::Spill)
            || crate::options::SyncMode::from_raw(config.sync_mode, config.sync_every).is_none()
        {
            return Err(Error::corrupt(path, "spill options out of range"));
        }
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(&sp.bytes[..len])))
    } else {
        None
    };
    Ok((config, geo, spill_dir))
}

/// The config and spill directory of the queue file at `path`, if it is a
/// valid overflow=spill queue file.
fn spill_of(path: &Path) -> Option<(Config, PathBuf)> {
    let file = os::file::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if !(HEADER_SIZE..=crate::layout::MAX_TOTAL_SIZE).contains(&len) {
        return None;
    }
    let map = os::map::Mapping::new(&file, len).ok()?;
    let (config, _, dir) = validate(&map, path).ok()?;
    Some((config, dir?))
}

/// The smallest segment that holds a largest record and an END record.
fn min_segment_for(slot_size: u64) -> u64 {
    crate::store::segment::SEGMENT_HEADER_SIZE
        + crate::store::segment::record_size(
            slot_size + crate::mapped::dead_letters::OVERFLOW_META as u64,
        )
        + RECORD_HEADER_SIZE
}

fn check_spill_options(opts: &Options, dir: &Path) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidOption(m));
    let seg = opts.spill_segment_size;
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&seg) {
        return bad(format!(
            "spill_segment_size must be from {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE} bytes, got {seg}"
        ));
    }
    if seg < min_segment_for(opts.slot_size) {
        return bad(format!(
            "spill_segment_size of {seg} bytes cannot hold a message of slot_size {} bytes",
            opts.slot_size
        ));
    }
    if opts.spill_max_bytes < seg {
        return bad(format!(
            "spill_max_bytes ({}) must be at least one segment ({seg} bytes)",
            opts.spill_max_bytes
        ));
    }
    if opts.spill_fallback == Overflow::Spill {
        return bad("spill_fallback must be block or reject".into());
    }
    if let SyncMode::EveryN(0) = opts.sync {
        return bad("sync every 0 records".into());
    }
    let len = dir.as_os_str().len();
    if len == 0 || len > MAX_SPILL_PATH {
        return bad(format!(
            "spill_dir must be 1 to {MAX_SPILL_PATH} bytes, got {len}"
        ));
    }
    Ok(())
}

/// Deletes every segment file `segs` lists (of a queue removed or made
/// anew).
fn clear_segments(segs: &Segments) {
    for id in segs.list().unwrap_or_default() {
        let _ = std::fs::remove_file(crate::store::segment::segment_path(&segs.dir, id));
    }
}

/// The dead-letter queue's overflow segments: `<spill dir>/dlq`; a record
/// holds a dead letter's metadata and payload.
fn dlq_for(config: &Config, spill_dir: &Path) -> Segments {
    let mut s = segments_for(config, spill_dir.join("dlq"));
    s.max_len = config.slot_size as u64 + crate::mapped::dead_letters::OVERFLOW_META as u64;
    s
}

/// The journal's segments: `<spill dir>/journal`, with its byte budget.
fn journal_for(config: &Config, spill_dir: &Path) -> Segments {
    let mut s = segments_for(config, spill_dir.join("journal"));
    s.max_bytes = config.journal_max_bytes;
    s
}

fn segments_for(config: &Config, dir: PathBuf) -> Segments {
    Segments::new(
        dir,
        config.creation_id,
        config.spill_segment_size,
        config.slot_size as u64,
        config.spill_max_bytes,
        crate::options::SyncMode::from_raw(config.sync_mode, config.sync_every).unwrap_or_default(),
    )
}
