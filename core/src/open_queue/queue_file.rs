//! The queue file: creating it (the config written, the spill directory
//! claimed), opening it (every field checked before it is trusted),
//! removing it with its segments, and the one place a [`OpenQueue`] handle
//! is assembled.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32 as StdAtomicU32;
use std::time::Duration;

use zerocopy::FromZeros;

use crate::error::{Error, Result};
use crate::layout::{
    Config, Geometry, HEADER_SIZE, Header, MAGIC, MAX_CONSUMERS, MAX_DLQ_SLOTS, MAX_PRODUCERS,
    MAX_SPILL_PATH, READY, SLOT_HEADER_SIZE, SpillPath, VERSION, config_crc,
};
use crate::loom::Ordering;
use crate::open_queue::OpenQueue;
use crate::options::{Options, Overflow, SyncMode};
use crate::os;
use crate::protocol::lock::ThisProcess;
use crate::store::segment::{MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, RECORD_HEADER_SIZE, Segments};
use crate::store::{access, owner};

/// How long an opener waits for a creator to finish initializing a file.
const READY_WAIT: Duration = Duration::from_secs(2);
/// Dead-letter entries of a queue whose options leave `dlq_slots` unset,
/// unless two messages of `max_message_size` need more.
const DEFAULT_DLQ_SLOTS: u64 = 1024;

fn me() -> ThisProcess {
    let pid = os::process::pid();
    ThisProcess {
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
    if o.queue != path && still_owns(&o, dir) {
        return Err(Error::Exists(format!(
            "spill directory {} belongs to queue {}: give this queue another \
             (Options::spill_dir, shmq create --spill-dir)",
            dir.display(),
            o.queue.display()
        )));
    }
    Ok(())
}

/// Whether the queue `o` names still exists and keeps its spill, journal
/// or schedule in `dir`.
pub(crate) fn still_owns(o: &owner::Owner, dir: &Path) -> bool {
    store_of(&o.queue).is_some_and(|(c, d)| c.creation_id == o.creation_id && d == dir)
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

/// What `create` and `open` made of the file before the handle.
struct Opened {
    file: std::fs::File,
    map: os::map::Mapping,
    path: PathBuf,
    config: Config,
    geo: Geometry,
    /// The queue's store directory (spill, journal, schedule), as its
    /// creator recorded it.
    store_dir: Option<PathBuf>,
    /// Whose files this process was told to trust.
    trust: crate::options::Trust,
}

/// This process's handles on the queue's segment files.
struct Stores {
    spill: Option<std::sync::Mutex<Segments>>,
    journal: Option<std::sync::Mutex<Segments>>,
    dlq_spill: Option<std::sync::Mutex<Segments>>,
    /// Why this process must not write them (`OpenQueue::stores_refused`).
    refused: Option<String>,
}

/// The handle on a created or opened queue file: takes this process's
/// liveness lock on it and registers its doorbells.
fn assemble(name: &str, f: Opened, stores: Stores) -> Result<OpenQueue> {
    hold_liveness(&f.file, &f.path)?;
    let bells = bell_place(&f.path)?;
    let shared = OpenQueue {
        map: f.map,
        file: f.file,
        path: f.path,
        name: name.to_string(),
        config: f.config,
        geo: f.geo,
        me: me(),
        spill: stores.spill,
        journal: stores.journal,
        dlq_spill: stores.dlq_spill,
        dedup_index: Default::default(),
        held_by_commit: Default::default(),
        expiry_looked: Default::default(),
        stores_refused: stores.refused,
        store_dir: f.store_dir,
        trust: f.trust,
        schedule: Default::default(),
        bells,
    };
    shared.register_bells();
    Ok(shared)
}

/// Creates the file of queue `name` at `path` (exclusively, with
/// `opts.mode`, never through a symlink), its spill directory if it
/// spills or journals, and the handle on it. `opts` were checked
/// (`Options::check`).
pub(crate) fn create(name: &str, path: PathBuf, opts: &Options) -> Result<OpenQueue> {
    let slots = opts.ring_slots()?;
    let geometry = |dlq_slots: u64| {
        Geometry::compute(
            slots,
            opts.slot_size,
            opts.max_groups as u64,
            MAX_PRODUCERS as u64,
            MAX_CONSUMERS as u64,
            dlq_slots,
            opts.dedup_window,
            opts.ordering_lanes,
            opts.get_max_in_flight(),
        )
    };
    let mut geo = geometry(opts.dlq_slots.map_or(DEFAULT_DLQ_SLOTS, u64::from))?;
    let stores = opts.overflow == Overflow::Spill || opts.journal.is_some();
    let max_message_size = max_message_size(opts, &geo, stores)?;
    if opts.dlq_slots.is_none() {
        // By default the region holds two of the largest messages (its
        // entries cost nothing until used: `os::file::create`).
        let two = geo.dlq_span_of(max_message_size as usize) * 2;
        if two > geo.dlq_slots {
            geo = geometry(two.min(MAX_DLQ_SLOTS))?;
        }
    }
    let spill_dir = opts.get_spill_dir(name);
    if stores {
        check_spill_options(opts, &spill_dir)?;
    }
    if let Some(dir) = path.parent().filter(|d| d.exists()) {
        access::check_queue_dir(dir, opts.trust)?;
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
    // Allocated as they are first used: the groups' lease tables (by a
    // group's first ack=manual consumer) and the dead-letter entries.
    let lease_tables = geo.leases_offset..geo.leases_offset + geo.lease_tables_size();
    let dlq_entries =
        geo.dlq_entries_offset..geo.dlq_entries_offset + geo.dlq_slots * geo.dlq_stride;
    let lazy = [lease_tables, dlq_entries];
    let file = os::file::create(&path, opts.mode, geo.total_size, &lazy).map_err(|e| {
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
                     bytes of tables; its lease tables, {} bytes a group, are allocated by \
                     a group's first ack=manual consumer, and its {} dead-letter entries of \
                     {} bytes as they are used) and {free} in {}; make fewer or smaller \
                     slots, or give the queue a larger directory (Docker: --shm-size)",
                    path.display(),
                    geo.allocated_at_create(),
                    geo.slots,
                    geo.slot_stride,
                    geo.allocated_at_create() - geo.slots * geo.slot_stride,
                    geo.lease_table_size(),
                    geo.dlq_slots,
                    geo.dlq_stride,
                    dir.display()
                ),
                e,
            )
        } else {
            Error::io(format!("creating {}", path.display()), e)
        }
    })?;
    let map =
        map_queue(&file, &geo).map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
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
        dlq_slots: geo.dlq_slots as u32,
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
        max_message_size,
        max_in_flight: geo.max_in_flight,
        message_ttl_ns: opts
            .message_ttl
            .map_or(0, |t| t.as_nanos().min(u64::MAX as u128) as u64),
        on_expiry: opts.on_expiry.to_raw(),
        delivery_delay_ns: opts.delivery_delay.map_or(0, |d| d.as_nanos() as u64),
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
    // Recorded for every queue, spilling or not: the schedule lives there
    // too (made on first use), and every sharer must agree where.
    {
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
    }
    let spill = if opts.overflow == Overflow::Spill || opts.journal.is_some() {
        // Segments of an earlier queue of this name (removed without
        // its spill) would never be read: clear them out.
        let segs = spill_for(&config, &geo, spill_dir.clone());
        clear_segments(&segs);
        clear_segments(&dlq_for(&config, &spill_dir));
        (opts.overflow == Overflow::Spill).then(|| std::sync::Mutex::new(segs))
    } else {
        None
    };
    let shared = assemble(
        name,
        Opened {
            file,
            map,
            path,
            config,
            geo,
            store_dir: Some(spill_dir.clone()),
            trust: opts.trust,
        },
        Stores {
            dlq_spill: spill
                .as_ref()
                .map(|_| std::sync::Mutex::new(dlq_for(&config, &spill_dir))),
            spill,
            journal,
            refused: None,
        },
    )?;
    // Release pairs with the opener's Acquire load in `validate`: it
    // sees the config written above. Everything else is zero, which is
    // the initial state of every region.
    shared.header().ready.store(READY, Ordering::Release);
    Ok(shared)
}

/// Opens the file of queue `name` at `path`, checks everything in it
/// before trusting it, recovers its spill, and makes the handle on it.
pub(crate) fn open(name: &str, path: PathBuf, opts: &Options) -> Result<OpenQueue> {
    let file = os::file::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::NotFound(format!("queue {name:?} ({})", path.display()))
        }
        _ if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => Error::corrupt(
            &path,
            "is a symbolic link; queue files are never opened through one",
        ),
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
    let (config, geo, spill_dir, store_dir) = validate(&map, &path)?;
    // Checked whole: now the ring twice in a row where it is whole pages.
    let map = if geo.mirrored {
        drop(map);
        map_queue(&file, &geo).map_err(|e| Error::io(format!("mapping {}", path.display()), e))?
    } else {
        map
    };
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
        .map(|d| std::sync::Mutex::new(spill_for(&config, &geo, d)));
    let dlq_spill = spill.as_ref().map(|m| {
        let dir = m.lock().unwrap_or_else(|p| p.into_inner()).dir.clone();
        std::sync::Mutex::new(dlq_for(&config, &dir))
    });
    let shared = assemble(
        name,
        Opened {
            file,
            map,
            path,
            config,
            geo,
            store_dir,
            trust: opts.trust,
        },
        Stores {
            spill,
            journal,
            dlq_spill,
            refused: stores_refused,
        },
    )?;
    let ring = &shared.header().ring;
    let spilling = crate::protocol::spill::spilling(ring.tail.load(Ordering::Acquire));
    if shared.spill.is_none() && spilling {
        return Err(Error::corrupt(
            &shared.path,
            "spill flag set on a queue without overflow=spill",
        ));
    }
    shared.check_control_words()?;
    if shared.spill.is_some() {
        shared.recover_spill()?;
    }
    Ok(shared)
}

/// Removes the file of queue `name` at `path`, and its segments
/// (spilled, journaled, scheduled) if its store directory is its own.
pub(crate) fn remove(name: &str, path: PathBuf) -> Result<()> {
    // The spill's segments go with it (a garbled file keeps them: its
    // spill directory cannot be trusted).
    // Only segments of a directory that is this queue's: another
    // queue (of the same name elsewhere, say) may spill there now.
    if let Some((config, dir)) = store_of(&path).filter(|(c, d)| owner::is_of(d, c.creation_id)) {
        let _ = std::fs::remove_file(dir.join(owner::FILE));
        // Its scheduled messages go with it.
        let _ = std::fs::remove_dir_all(dir.join("schedule"));
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

/// Checks everything an opener reads before trusting it.
/// The header's config and its checksum, as the file holds them now.
///
/// # Safety
/// `base` is the start of a mapping that holds a whole header. The reads
/// are volatile: a writer (a scribbler, a creator not yet done) may be
/// changing the bytes.
pub(super) unsafe fn read_config(base: *const u8) -> (Config, u32) {
    // SAFETY: per the contract; `Config` is plain bytes, any value is one.
    unsafe {
        (
            std::ptr::read_volatile(base as *const Config),
            std::ptr::read_volatile(
                base.add(std::mem::offset_of!(Header, config_crc)) as *const u32
            ),
        )
    }
}

/// The record of the store directory in the header at `base` (spill,
/// journal, schedule), copied out.
///
/// # Safety
/// `base` is the start of a mapping of at least `HEADER_SIZE` bytes.
pub(super) unsafe fn read_spill_path(base: *const u8) -> SpillPath {
    // SAFETY: in bounds (the header is mapped whole, per the contract)
    // and immutable once ready; volatile, as another process may scribble.
    unsafe {
        std::ptr::read_volatile(
            base.add(std::mem::offset_of!(Header, spill_path)) as *const SpillPath
        )
    }
}

/// The store directory's bytes in its record (`None` in a file made
/// before it was recorded for every queue, which cannot schedule),
/// `Corrupt` if the record is garbled. Allocates nothing: producers check
/// it on their fast path's periodic look at the control words.
pub(super) fn store_dir_bytes<'a>(sp: &'a SpillPath, path: &Path) -> Result<Option<&'a [u8]>> {
    let len = sp.len as usize;
    match len {
        0 => Ok(None),
        _ if len > sp.bytes.len() || crc32c::crc32c(&sp.bytes[..len]) != sp.crc => {
            Err(Error::corrupt(path, "spill directory garbled"))
        }
        _ => Ok(Some(&sp.bytes[..len])),
    }
}

/// The config, geometry, spill directory (if the queue spills or
/// journals) and store directory of a queue file, checked.
type Validated = (Config, Geometry, Option<PathBuf>, Option<PathBuf>);

fn validate(map: &os::map::Mapping, path: &Path) -> Result<Validated> {
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
    // SAFETY: in bounds and 4-aligned (offset 272 of a page); the ready
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
    let (config, crc) = unsafe { read_config(base) };
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
        config.max_in_flight,
    )
    .map_err(|e| Error::corrupt(path, format!("bad geometry: {e}")))?;
    if crate::options::OnExpiry::from_raw(config.on_expiry).is_none() {
        return Err(Error::corrupt(path, "on_expiry out of range"));
    }
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
    if config.max_message_size == 0 || config.max_message_size > geo.max_body() {
        return Err(Error::corrupt(
            path,
            format!(
                "max_message_size is {}, the ring holds at most {}",
                config.max_message_size,
                geo.max_body()
            ),
        ));
    }
    // SAFETY: the header is mapped whole (checked by the caller).
    let sp = unsafe { read_spill_path(base) };
    let store_dir =
        store_dir_bytes(&sp, path)?.map(|b| PathBuf::from(std::ffi::OsStr::from_bytes(b)));
    let spill_dir = if config.overflow == Overflow::Spill.to_raw() || config.journal_max_bytes > 0 {
        if store_dir.is_none() {
            return Err(Error::corrupt(path, "spill directory garbled"));
        }
        if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&config.spill_segment_size)
            || config.spill_segment_size < min_segment_for(config.max_message_size)
            || config.spill_max_bytes < config.spill_segment_size
            || Overflow::from_raw(config.spill_fallback).is_none_or(|f| f == Overflow::Spill)
            || crate::options::SyncMode::from_raw(config.sync_mode, config.sync_every).is_none()
        {
            return Err(Error::corrupt(path, "spill options out of range"));
        }
        store_dir.clone()
    } else {
        None
    };
    Ok((config, geo, spill_dir, store_dir))
}

/// The config and store directory (spill, journal, schedule) of the queue
/// file at `path`, if it is a valid queue file.
fn store_of(path: &Path) -> Option<(Config, PathBuf)> {
    let file = os::file::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if !(HEADER_SIZE..=crate::layout::MAX_TOTAL_SIZE).contains(&len) {
        return None;
    }
    let map = os::map::Mapping::new(&file, len).ok()?;
    let (config, _, _, dir) = validate(&map, path).ok()?;
    Some((config, dir?))
}

/// The smallest segment that holds a largest record and an END record.
fn min_segment_for(max_message: u64) -> u64 {
    crate::store::segment::SEGMENT_HEADER_SIZE
        + crate::store::segment::record_size(
            max_message + crate::open_queue::dead_letters::OVERFLOW_META as u64,
        )
        + RECORD_HEADER_SIZE
}

/// The largest message a segment of `seg` bytes holds (the inverse of
/// [`min_segment_for`], rounded down).
fn max_message_for(seg: u64) -> u64 {
    let fixed = crate::store::segment::SEGMENT_HEADER_SIZE
        + 2 * RECORD_HEADER_SIZE
        + crate::open_queue::dead_letters::OVERFLOW_META as u64
        + 8;
    seg.saturating_sub(fixed)
}

/// The queue's largest message (`Options::max_message_size`): what the
/// options ask, checked against what the ring (and, for a queue that
/// spills or journals, one segment) holds; by default the most both hold.
fn max_message_size(opts: &Options, geo: &Geometry, stores: bool) -> Result<u64> {
    let ring = geo.max_body();
    let seg = if stores {
        max_message_for(opts.spill_segment_size)
    } else {
        u64::MAX
    };
    let Some(asked) = opts.max_message_size else {
        return Ok(ring.min(seg).max(geo.slot_size));
    };
    if asked == 0 {
        return Err(Error::InvalidOption(
            "max_message_size must be at least 1 byte".into(),
        ));
    }
    if asked > ring {
        let why = if geo.mirrored {
            format!(
                "half the ring ({} slots of {} bytes) less a {SLOT_HEADER_SIZE}-byte header",
                geo.slots, geo.slot_stride
            )
        } else {
            format!(
                "one slot: a message longer than a slot needs a ring of whole pages ({} slots \
                 of {} bytes is {} bytes, not a multiple of 4096; 64 slots or more always are)",
                geo.slots,
                geo.slot_stride,
                geo.slots * geo.slot_stride
            )
        };
        return Err(Error::InvalidOption(format!(
            "max_message_size of {asked} bytes is more than this ring holds: {ring} bytes, {why}; \
             make more or larger slots"
        )));
    }
    if asked > seg {
        return Err(Error::InvalidOption(format!(
            "max_message_size of {asked} bytes does not fit in a spill segment of {} bytes \
             (at most {seg}): raise spill_segment_size",
            opts.spill_segment_size
        )));
    }
    Ok(asked)
}

/// Maps a queue file of geometry `geo`: its ring twice in a row where it
/// is whole pages (`os/map.rs`).
fn map_queue(file: &std::fs::File, geo: &Geometry) -> std::io::Result<os::map::Mapping> {
    if geo.mirrored {
        os::map::Mapping::mirrored(file, geo.total_size, geo.slots_offset)
    } else {
        os::map::Mapping::new(file, geo.total_size)
    }
}

fn check_spill_options(opts: &Options, dir: &Path) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidOption(m));
    let seg = opts.spill_segment_size;
    if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&seg) {
        return bad(format!(
            "spill_segment_size must be from {MIN_SEGMENT_SIZE} to {MAX_SEGMENT_SIZE} bytes, got {seg}"
        ));
    }
    let largest = opts
        .max_message_size
        .unwrap_or(opts.slot_size)
        .max(opts.slot_size);
    if seg < min_segment_for(largest) {
        return bad(format!(
            "spill_segment_size of {seg} bytes cannot hold a message of {largest} bytes"
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
/// holds a dead letter's metadata and body (up to `max_message_size`).
fn dlq_for(config: &Config, spill_dir: &Path) -> Segments {
    let mut s = segments_for(config, spill_dir.join("dlq"));
    s.max_len = config.max_message_size.max(u64::from(config.slot_size))
        + crate::open_queue::dead_letters::OVERFLOW_META as u64;
    s
}

/// The spill's segments: its records' seqs are the ring positions they go
/// back to, as many as their slots (`Geometry::span_of`).
fn spill_for(config: &Config, geo: &Geometry, dir: PathBuf) -> Segments {
    let mut s = segments_for(config, dir);
    s.spans = Some(*geo);
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
        config.max_message_size,
        config.spill_max_bytes,
        crate::options::SyncMode::from_raw(config.sync_mode, config.sync_every).unwrap_or_default(),
    )
}
