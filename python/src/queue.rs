//! `Queue` and its dead-letter queue.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::consumer::{Consumer, parse_seek, parse_start};
use crate::error::{Closed, IntoPy, InvalidOption};
use crate::producer::Producer;
use crate::wait::{check_fork, generation, seconds};

/// Options as keyword arguments, with the core's defaults.
#[allow(clippy::too_many_arguments)]
fn options(
    dir: Option<PathBuf>,
    slots: Option<u64>,
    slot_size: usize,
    max_groups: u32,
    overflow: &str,
    lease: f64,
    max_deliveries: u32,
    dlq_slots: Option<u32>,
    dedup_window: u64,
    dedup_ttl: f64,
    unblock_timeout: f64,
    mode: u32,
    spill: Spill,
) -> PyResult<shmq::Options> {
    let mut o = shmq::Options::new()
        .slot_size(slot_size)
        .max_groups(max_groups)
        .overflow(overflow.parse::<shmq::Overflow>().py_err()?)
        .lease(seconds("lease", lease)?)
        .max_deliveries(max_deliveries)
        .dedup_window(dedup_window)
        .dedup_ttl(seconds("dedup_ttl", dedup_ttl)?)
        .unblock_timeout(seconds("unblock_timeout", unblock_timeout)?)
        .mode(mode)
        .spill_max_bytes(spill.max_bytes)
        .spill_segment_size(spill.segment_size)
        .spill_fallback(match spill.fallback.as_str() {
            "block" => shmq::Overflow::Block,
            "reject" => shmq::Overflow::Reject,
            other => {
                return Err(InvalidOption::new_err(format!(
                    "invalid option: spill_fallback must be \"block\" or \"reject\", got {other:?}"
                )));
            }
        })
        .sync(spill.sync.parse::<shmq::SyncMode>().py_err()?);
    if let Some(d) = dir {
        o = o.dir(d);
    }
    if let Some(n) = slots {
        o = o.slots(n);
    }
    if let Some(n) = dlq_slots {
        o = o.dlq_slots(n);
    }
    if let Some(d) = spill.dir {
        o = o.spill_dir(d);
    }
    if let Some(age) = spill.journal_max_age {
        o = o.journal(shmq::Retention::new(
            seconds("journal_max_age", age)?,
            spill.journal_max_bytes,
        ));
    }
    Ok(o)
}

/// The spill and journal options (overflow="spill", journal_max_age=...).
struct Spill {
    dir: Option<PathBuf>,
    max_bytes: u64,
    segment_size: u64,
    fallback: String,
    sync: String,
    journal_max_age: Option<f64>,
    journal_max_bytes: u64,
}

fn dir_only(dir: Option<PathBuf>) -> shmq::Options {
    match dir {
        Some(d) => shmq::Options::new().dir(d),
        None => shmq::Options::new(),
    }
}

/// `o` trusting these owner and group too (files another user made).
fn trusting(mut o: shmq::Options, owner: Option<u32>, group: Option<u32>) -> shmq::Options {
    if let Some(uid) = owner {
        o = o.trust_owner(uid);
    }
    if let Some(gid) = group {
        o = o.trust_group(gid);
    }
    o
}

/// A queue: a ring file in shared memory (see the stubs).
#[pyclass(frozen, module = "shmq._shmq")]
pub struct Queue {
    inner: Mutex<Option<shmq::Queue>>,
    made_in: u64,
}

impl Queue {
    fn new(q: shmq::Queue) -> Queue {
        Queue {
            inner: Mutex::new(Some(q)),
            made_in: generation(),
        }
    }

    pub(crate) fn get(&self) -> PyResult<shmq::Queue> {
        check_fork(self.made_in)?;
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Closed::new_err("this queue is closed"))
    }
}

fn group_dict<'py>(py: Python<'py>, g: &shmq::GroupInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &g.name)?;
    d.set_item("next", g.next)?;
    d.set_item("committed", g.committed)?;
    d.set_item("lag", g.lag)?;
    d.set_item("delivered", g.delivered)?;
    d.set_item("redelivered", g.redelivered)?;
    d.set_item("acked", g.acked)?;
    d.set_item("nacked", g.nacked)?;
    d.set_item("expired", g.expired)?;
    d.set_item("dead_lettered", g.dead_lettered)?;
    d.set_item("messages_expired", g.messages_expired)?;
    d.set_item("in_flight", g.in_flight)?;
    d.set_item("oldest_unacked_age_ns", g.oldest_unacked_age_ns)?;
    d.set_item(
        "oldest_unacked_key",
        g.oldest_unacked_key
            .as_deref()
            .map(|k| pyo3::types::PyBytes::new(d.py(), k)),
    )?;
    d.set_item("busy_lanes", g.busy_lanes)?;
    d.set_item("consumers", g.consumers)?;
    d.set_item("consumer_attached", g.consumer_attached)?;
    d.set_item("created_ns", g.created_ns)?;
    Ok(d)
}

/// `Queue.create` and `Queue.open_or_create` take the same keywords, with
/// the same defaults: they are written once, here, and stamped out for
/// each (`#[pymethods]` sees the expanded functions). The stubs
/// (`shmq/_shmq.pyi`) must say the same; CI's stubtest checks that they do,
/// names and defaults.
macro_rules! queue_methods {
    ($( $(#[doc = $doc:literal])* fn $method:ident => $core:path; )*) => {
        #[pymethods]
        impl Queue {
            $(
            $(#[doc = $doc])*
            #[staticmethod]
            #[allow(clippy::too_many_arguments)]
            #[pyo3(signature = (name, *, slots=None, slot_size=1024, max_groups=16,
                overflow="block", lease=30.0, max_deliveries=5, dlq_slots=None,
                dedup_window=1024, dedup_ttl=300.0, unblock_timeout=5.0, mode=0o600, dir=None,
                spill_dir=None, spill_max_bytes=1 << 30, spill_segment_size=64 << 20,
                spill_fallback="block", sync="never", journal_max_age=None,
                journal_max_bytes=1 << 30, trust_owner=None, trust_group=None,
                ordering_lanes=1024, max_message_size=None, capacity=None,
                max_in_flight=None, message_ttl=None, on_expiry="dead-letter",
                delivery_delay=None))]
            fn $method(
                py: Python<'_>,
                name: &str,
                slots: Option<i64>,
                slot_size: i64,
                max_groups: i64,
                overflow: &str,
                lease: f64,
                max_deliveries: i64,
                dlq_slots: Option<i64>,
                dedup_window: i64,
                dedup_ttl: f64,
                unblock_timeout: f64,
                mode: i64,
                dir: Option<PathBuf>,
                spill_dir: Option<PathBuf>,
                spill_max_bytes: i64,
                spill_segment_size: i64,
                spill_fallback: &str,
                sync: &str,
                journal_max_age: Option<f64>,
                journal_max_bytes: i64,
                trust_owner: Option<u32>,
                trust_group: Option<u32>,
                ordering_lanes: i64,
                max_message_size: Option<i64>,
                capacity: Option<i64>,
                max_in_flight: Option<i64>,
                message_ttl: Option<crate::wait::Seconds>,
                on_expiry: &str,
                delivery_delay: Option<crate::wait::Seconds>,
            ) -> PyResult<Queue> {
                // Counts and sizes: a negative one is an InvalidOption that
                // names it (the plain conversion raised OverflowError).
                use crate::wait::whole;
                let slots = slots.map(|n| whole("slots", n)).transpose()?;
                let slot_size = whole("slot_size", slot_size)?;
                let max_groups = whole("max_groups", max_groups)?;
                let max_deliveries = whole("max_deliveries", max_deliveries)?;
                let dlq_slots = dlq_slots.map(|n| whole("dlq_slots", n)).transpose()?;
                let dedup_window = whole("dedup_window", dedup_window)?;
                let mode = whole("mode", mode)?;
                let spill_max_bytes = whole("spill_max_bytes", spill_max_bytes)?;
                let spill_segment_size = whole("spill_segment_size", spill_segment_size)?;
                let journal_max_bytes = whole("journal_max_bytes", journal_max_bytes)?;
                let ordering_lanes = whole("ordering_lanes", ordering_lanes)?;
                let spill = Spill {
                    dir: spill_dir,
                    max_bytes: spill_max_bytes,
                    segment_size: spill_segment_size,
                    fallback: spill_fallback.to_string(),
                    sync: sync.to_string(),
                    journal_max_age,
                    journal_max_bytes,
                };
                let o = options(
                    dir,
                    slots,
                    slot_size,
                    max_groups,
                    overflow,
                    lease,
                    max_deliveries,
                    dlq_slots,
                    dedup_window,
                    dedup_ttl,
                    unblock_timeout,
                    mode,
                    spill,
                )?;
                let name = name.to_string();
                let mut o = trusting(o, trust_owner, trust_group).ordering_lanes(ordering_lanes);
                if let Some(m) = max_message_size {
                    o = o.max_message_size(whole("max_message_size", m)?);
                }
                if let Some(c) = capacity {
                    o = o.capacity(whole("capacity", c)?);
                }
                if let Some(n) = max_in_flight {
                    o = o.max_in_flight(whole("max_in_flight", n)?);
                }
                if let Some(t) = message_ttl {
                    o = o.message_ttl(crate::wait::seconds("message_ttl", t.0)?);
                }
                o = o.on_expiry(on_expiry.parse().py_err()?);
                if let Some(d) = delivery_delay {
                    o = o.delivery_delay(crate::wait::seconds("delivery_delay", d.0)?);
                }
                let q = py.detach(|| $core(&name, &o)).py_err()?;
                Ok(Queue::new(q))
            }
            )*
        }
    };
}

queue_methods! {
    /// Creates a queue; fails with Exists if it is there already.
    fn create => shmq::Queue::create;
    /// Opens the queue, creating it with these options if it is not there.
    fn open_or_create => shmq::Queue::open_or_create;
}

#[pymethods]
impl Queue {
    /// Opens an existing queue (NotFound if there is none).
    #[staticmethod]
    #[pyo3(signature = (name, *, dir=None, trust_owner=None, trust_group=None))]
    fn open(
        py: Python<'_>,
        name: &str,
        dir: Option<PathBuf>,
        trust_owner: Option<u32>,
        trust_group: Option<u32>,
    ) -> PyResult<Queue> {
        let o = trusting(dir_only(dir), trust_owner, trust_group);
        let name = name.to_string();
        let q = py.detach(|| shmq::Queue::open_with(&name, &o)).py_err()?;
        Ok(Queue::new(q))
    }

    /// Deletes the queue file (NotFound if there is none); Busy, naming
    /// their pids, while consumers are attached, unless `force`.
    #[staticmethod]
    #[pyo3(signature = (name, *, dir=None, force=false))]
    fn remove(name: &str, dir: Option<PathBuf>, force: bool) -> PyResult<()> {
        if force {
            shmq::Queue::remove_forced(name, &dir_only(dir)).py_err()
        } else {
            shmq::Queue::remove(name, &dir_only(dir)).py_err()
        }
    }

    /// The queue's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.get()?.name().to_string())
    }
    /// Path of the queue file.
    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        Ok(self.get()?.path().to_path_buf())
    }
    /// The spill directory (overflow="spill"), else None.
    #[getter]
    fn spill_dir(&self) -> PyResult<Option<PathBuf>> {
        Ok(self.get()?.spill_dir())
    }
    /// Ring capacity in messages.
    #[getter]
    fn slots(&self) -> PyResult<u64> {
        Ok(self.get()?.slots())
    }
    /// Largest payload in bytes.
    #[getter]
    fn slot_size(&self) -> PyResult<usize> {
        Ok(self.get()?.slot_size())
    }
    /// The overflow policy ("block", "reject" or "spill").
    #[getter]
    fn overflow(&self) -> PyResult<String> {
        Ok(self.get()?.overflow().to_string())
    }
    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.made_in != generation()
            || self
                .inner
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_none()
    }

    /// A new producer.
    fn producer(&self) -> PyResult<Producer> {
        let q = self.get()?;
        let p = q.producer().py_err()?;
        Ok(Producer::new(q, p))
    }

    /// The consumer of `group` (created if it does not exist, from `start`).
    #[pyo3(signature = (group, *, ack="auto", start=None, wait="spin-futex", create=None))]
    fn consumer(
        &self,
        py: Python<'_>,
        group: &str,
        ack: &str,
        start: Option<&Bound<'_, PyAny>>,
        wait: &str,
        create: Option<bool>,
    ) -> PyResult<Consumer> {
        let wait = match wait {
            "spin-futex" => shmq::Wait::SpinFutex,
            "spin-yield" => shmq::Wait::SpinYield,
            "busy-spin" => shmq::Wait::BusySpin,
            other => {
                return Err(InvalidOption::new_err(format!(
                    "invalid option: wait must be \"spin-futex\", \"spin-yield\" or \"busy-spin\", got {other:?}"
                )));
            }
        };
        let ack = match ack {
            "auto" => shmq::Ack::Auto,
            "manual" => shmq::Ack::Manual,
            other => {
                return Err(InvalidOption::new_err(format!(
                    "invalid option: ack must be \"auto\" or \"manual\", got {other:?}"
                )));
            }
        };
        let start = match start {
            None => shmq::Start::Earliest,
            Some(s) => parse_start(s)?,
        };
        let opts = shmq::ConsumerOptions::new()
            .ack(ack)
            .start(start)
            .wait(wait);
        let q = self.get()?;
        let c = match create {
            Some(create) => q.consumer(group, opts.create(create)).py_err()?,
            // Unsaid: a missing group is still created (deprecated), with a
            // FutureWarning (shown by default) naming it, not core's line
            // on stderr.
            None => match q.consumer(group, opts.create(false)) {
                Err(shmq::Error::NotFound(_)) => {
                    let c = q.consumer(group, opts.create(true)).py_err()?;
                    let msg = std::ffi::CString::new(format!(
                        "consumer({group:?}) created group {group:?} of queue {:?} ({start:?}): \
                         it keeps every message from there until it reads it. Creating a \
                         missing group unasked is deprecated and a later version will refuse \
                         it: pass create=True to create it on purpose (or create it with \
                         create_group), or create=False to refuse a missing group",
                        q.name()
                    ))
                    .unwrap_or_default();
                    PyErr::warn(
                        py,
                        &py.get_type::<pyo3::exceptions::PyFutureWarning>(),
                        &msg,
                        1,
                    )?;
                    c
                }
                r => r.py_err()?,
            },
        };
        Ok(Consumer::new(c))
    }

    /// Creates a group (Exists if it is there).
    #[pyo3(signature = (group, start=None))]
    fn create_group(&self, group: &str, start: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let start = match start {
            None => shmq::Start::Earliest,
            Some(s) => parse_start(s)?,
        };
        self.get()?.create_group(group, start).py_err()
    }

    /// Deletes a group and its cursor.
    fn delete_group(&self, group: &str) -> PyResult<()> {
        self.get()?.delete_group(group).py_err()
    }

    /// Every group, as dicts.
    fn groups<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.get()?
            .groups()
            .iter()
            .map(|g| group_dict(py, g))
            .collect()
    }

    /// Moves a group (with no live consumer); returns the seq it will
    /// receive next.
    #[pyo3(signature = (group, to=None, *, time_ns=None))]
    fn seek(
        &self,
        group: &str,
        to: Option<&Bound<'_, PyAny>>,
        time_ns: Option<u64>,
    ) -> PyResult<u64> {
        let how = parse_seek(to, time_ns)?;
        self.get()?.seek_group(group, how).py_err()
    }

    /// A snapshot of counters and cursors, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.get()?.stats();
        let d = PyDict::new(py);
        d.set_item("name", &s.name)?;
        d.set_item("path", &s.path)?;
        d.set_item("slots", s.slots)?;
        d.set_item("slot_size", s.slot_size)?;
        d.set_item("file_size", s.file_size)?;
        d.set_item("overflow", s.overflow.to_string())?;
        d.set_item("next_seq", s.next_seq)?;
        d.set_item("oldest_seq", s.oldest_seq)?;
        d.set_item("depth", s.depth)?;
        d.set_item("depth_bytes", s.depth_bytes)?;
        d.set_item("max_message_size", s.max_message_size)?;
        d.set_item("capacity", s.capacity)?;
        d.set_item("published", s.published)?;
        d.set_item("rejected", s.rejected)?;
        d.set_item("deduplicated", s.deduplicated)?;
        d.set_item("aborted", s.aborted)?;
        d.set_item("producers", s.producers)?;
        d.set_item("consumers", s.consumers)?;
        d.set_item("dlq_depth", s.dlq_depth)?;
        d.set_item("spilled", s.spilled)?;
        d.set_item("spilled_bytes", s.spilled_bytes)?;
        d.set_item("spill_depth", s.spill_depth)?;
        d.set_item("spill_segments", s.spill_segments)?;
        d.set_item("spill_bytes_on_disk", s.spill_bytes_on_disk)?;
        d.set_item("spill_full", s.spill_full)?;
        d.set_item("spill_lost", s.spill_lost)?;
        d.set_item("dlq_lost", s.dlq_lost)?;
        d.set_item("scheduled", s.scheduled)?;
        d.set_item("next_due_ns", s.next_due_ns)?;
        d.set_item("scheduled_cancelled", s.scheduled_cancelled)?;
        d.set_item("scheduled_lost", s.scheduled_lost)?;
        d.set_item("spill_dir", &s.spill_dir)?;
        d.set_item("why_full", &s.why_full)?;
        let journal = match &s.journal {
            None => None,
            Some(j) => {
                let jd = PyDict::new(py);
                jd.set_item("first_seq", j.first_seq)?;
                jd.set_item("first_ns", j.first_ns)?;
                jd.set_item("next_seq", j.next_seq)?;
                jd.set_item("journaled", j.journaled)?;
                jd.set_item("journaled_bytes", j.journaled_bytes)?;
                jd.set_item("segments", j.segments)?;
                jd.set_item("bytes_on_disk", j.bytes_on_disk)?;
                jd.set_item("expired", j.expired)?;
                jd.set_item("skipped", j.skipped)?;
                Some(jd)
            }
        };
        d.set_item("journal", journal)?;
        let groups = s
            .groups
            .iter()
            .map(|g| group_dict(py, g))
            .collect::<PyResult<Vec<_>>>()?;
        d.set_item("groups", groups)?;
        Ok(d)
    }

    /// Why a publish finds (or would find) no room: the group that holds
    /// the ring, or the spill's full budget or disk.
    fn why_full(&self) -> PyResult<String> {
        Ok(self.get()?.why_full())
    }

    /// Flushes the mapping to its file (for a queue on a disk path).
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let q = self.get()?;
        py.detach(|| q.flush()).py_err()
    }

    /// The first `limit` messages scheduled for later, earliest due
    /// first, as dicts.
    #[pyo3(signature = (limit=100))]
    fn scheduled<'py>(&self, py: Python<'py>, limit: i64) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let limit: usize = crate::wait::whole("limit", limit)?;
        let q = self.get()?;
        let listed = py.detach(|| q.scheduled(limit)).py_err()?;
        listed
            .iter()
            .map(|s| {
                let d = PyDict::new(py);
                d.set_item("id", s.id)?;
                d.set_item("due_ns", s.due_ns)?;
                d.set_item("published_ns", s.published_ns)?;
                d.set_item("type_id", s.type_id)?;
                d.set_item("correlation_id", s.correlation_id)?;
                d.set_item("keyed", s.keyed)?;
                set_body(&d, &s.payload, s.ordering_key.as_deref(), &s.headers)?;
                Ok(d)
            })
            .collect()
    }

    /// Cancels scheduled message `id` (its publish's return); False if
    /// none of that id is scheduled.
    fn cancel_scheduled(&self, py: Python<'_>, id: u64) -> PyResult<bool> {
        let q = self.get()?;
        py.detach(|| q.cancel_scheduled(id)).py_err()
    }

    /// Cancels the scheduled message published with idempotency key
    /// `key`; False if there is none.
    fn cancel_scheduled_key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let key = crate::producer::str_or_bytes("key", key)?;
        let q = self.get()?;
        py.detach(|| q.cancel_scheduled_key(&key)).py_err()
    }

    /// The dead-letter queue.
    #[getter]
    fn dlq(slf: Py<Self>) -> DeadLetters {
        DeadLetters { queue: slf }
    }

    /// Drops this handle's mapping (producers and consumers made from it
    /// keep their own). Idempotent.
    fn close(&self) {
        let q = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        if self.made_in != generation() {
            std::mem::forget(q);
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        match self.get() {
            Ok(q) => format!("<shmq.Queue name={:?} path={:?}>", q.name(), q.path()),
            Err(_) => "<shmq.Queue closed>".into(),
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.close();
    }
}

/// The dead-letter queue of a queue.
#[pyclass(frozen, module = "shmq._shmq")]
pub struct DeadLetters {
    queue: Py<Queue>,
}

#[pymethods]
impl DeadLetters {
    /// Copies of every dead letter, oldest first, as dicts.
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let q = self.queue.get().get()?;
        let letters = q.dlq().list().py_err()?;
        letters
            .iter()
            .map(|l| {
                let d = PyDict::new(py);
                d.set_item("seq", l.seq)?;
                d.set_item("group", &l.group)?;
                d.set_item("attempts", l.attempts)?;
                d.set_item("redrives", l.redrives)?;
                d.set_item("reason", l.reason.as_str())?;
                d.set_item("first_delivery_ns", l.first_delivery_ns)?;
                d.set_item("last_delivery_ns", l.last_delivery_ns)?;
                d.set_item("dead_lettered_ns", l.dead_lettered_ns)?;
                d.set_item("timestamp_ns", l.timestamp_ns)?;
                d.set_item("type_id", l.type_id)?;
                d.set_item("correlation_id", l.correlation_id)?;
                d.set_item("redriven", l.redriven)?;
                set_body(&d, &l.payload, l.ordering_key.as_deref(), &l.headers)?;
                Ok(d)
            })
            .collect()
    }

    /// Delivers dead letters again to the group that dead-lettered them
    /// (all, or the one with this seq); returns how many. Keyed ones wait
    /// up to `timeout` seconds for ring room; those left raise (see the
    /// stubs).
    #[pyo3(signature = (seq=None, timeout=0.0))]
    fn redrive(&self, py: Python<'_>, seq: Option<u64>, timeout: f64) -> PyResult<u64> {
        let timeout = crate::wait::seconds("timeout", timeout)?;
        let q = self.queue.get().get()?;
        let dlq = q.dlq();
        py.detach(|| dlq.redrive_timeout(seq, timeout)).py_err()
    }

    /// Deletes every dead letter; returns how many.
    fn purge(&self) -> PyResult<u64> {
        self.queue.get().get()?.dlq().purge().py_err()
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.queue.get().get()?.dlq().len() as usize)
    }
}

/// The directory queues live in when no `dir` is given: `$SHMQ_DIR`, else
/// `/dev/shm` (read at each call).
#[pyfunction]
pub(crate) fn default_dir() -> PathBuf {
    shmq::default_dir()
}

/// A listed message's payload, ordering key and headers, as the listings'
/// dicts hold them (`payload`, `ordering_key`, `headers`).
fn set_body(
    d: &Bound<'_, PyDict>,
    payload: &[u8],
    ordering_key: Option<&[u8]>,
    headers: &[(String, Vec<u8>)],
) -> PyResult<()> {
    let py = d.py();
    d.set_item("payload", PyBytes::new(py, payload))?;
    d.set_item("ordering_key", ordering_key.map(|k| PyBytes::new(py, k)))?;
    let headers: Vec<_> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), PyBytes::new(py, v)))
        .collect();
    d.set_item("headers", headers)
}
