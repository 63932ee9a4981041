//! Producers and write-in-place reservations.
//!
//! A core `Reservation<'p>` borrows its `Producer` mutably; as with
//! consumers (see `consumer.rs`), the producer lives behind a raw pointer
//! in [`State`] and the one open reservation beside it, and a
//! `&mut Producer` is made only while no reservation is open.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::lock::GilLock;
use std::time::Duration;

use pyo3::prelude::*;

use crate::wait::Seconds;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::buffer::{Gate, Input, Tokens, gated_view};
use crate::error::{Closed, InvalidOption, Timeout};
use crate::readiness::{Waiter, aio, readiness_methods};
use crate::wait::{NoGilError, SLICE, check_fork, deadline, generation, in_slices, seconds};

struct State {
    /// The open reservation and its token; declared before `producer`
    /// and always ended first.
    reservation: Option<(u64, shmq::Reservation<'static>)>,
    /// `Box::into_raw` of the producer; `None` once closed.
    producer: Option<NonNull<shmq::Producer>>,
    made_in: u64,
    /// Names of this handle's deliveries (reservations).
    tokens: Tokens,
    /// Free slots known to be there (a lower bound as far as consumers
    /// go): `publish_many` claims that many without risking a wait that
    /// holds the GIL or ignores Ctrl-C.
    room: u64,
}

// SAFETY: the core `Producer` is `Send`; a reservation is a borrow of it
// plus a raw pointer into its mapping (kept alive by the producer's
// `Arc`). The mutex around the state gives exclusive access.
unsafe impl Send for State {}

impl State {
    fn producer(&mut self) -> Result<&'static mut shmq::Producer, NoGilError> {
        if self.reservation.is_some() {
            return Err(NoGilError::Busy(
                "a reservation of this producer is open: commit or abort it first".into(),
            ));
        }
        let Some(p) = self.producer else {
            return Err(NoGilError::Closed("this producer"));
        };
        // SAFETY: `p` is live (freed only when taken, under the mutex we
        // hold) and unborrowed (no reservation is open); the `'static`
        // borrow ends before the producer is freed.
        Ok(unsafe { &mut *p.as_ptr() })
    }

    fn reserve(
        &mut self,
        gate: &Gate,
        len: usize,
        meta: shmq::Meta,
        wait: Option<Duration>,
    ) -> Result<Option<Reserved>, NoGilError> {
        let p = self.producer()?;
        let r = match wait {
            None => p.reserve(len),
            Some(t) => p.reserve_timeout(len, t),
        };
        let mut r = match r {
            Ok(r) => r,
            Err(shmq::Error::Timeout) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        r.set_meta(meta);
        let token = self.tokens.next();
        let got = Reserved {
            token,
            seq: r.seq(),
            ptr: r.as_mut_ptr() as usize,
            len,
        };
        gate.open(token);
        self.reservation = Some((token, r));
        Ok(Some(got))
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if self.made_in != generation() {
            // In a child after fork the producer is the parent's.
            std::mem::forget(self.reservation.take());
            return;
        }
        self.reservation = None;
        if let Some(p) = self.producer.take() {
            // SAFETY: from `Box::into_raw`, freed once, unborrowed.
            drop(unsafe { Box::from_raw(p.as_ptr()) });
        }
    }
}

#[derive(Clone, Copy)]
struct Reserved {
    token: u64,
    seq: u64,
    ptr: usize,
    len: usize,
}

/// A producer shared by its Python objects: the `Producer`, and the
/// `Reservation` it handed out, which ends through it.
pub(crate) struct SharedProducer {
    /// Which reservation is open, and the buffers alive over its slot.
    gate: Gate,
    state: GilLock<State>,
    queue: shmq::Queue,
    /// Whether a publish may wait for room: overflow=block, or spill
    /// (whose fallback may be block). Reject never waits.
    blocks: bool,
    /// overflow=spill: a full ring spills, so a batch need not wait for
    /// room in the ring.
    spills: bool,
    made_in: u64,
}

impl SharedProducer {
    fn with_state<R>(&self, py: Python<'_>, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock(py))
    }

    /// Publishes one message: a non-blocking attempt holding the GIL, then
    /// (overflow=block, ring full) waits without it, in slices.
    fn publish_one(
        &self,
        py: Python<'_>,
        data: &[u8],
        meta: &shmq::Meta,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let blocks = self.blocks;
        let first = self.with_state(py, |s| {
            let p = s.producer()?;
            let r = if blocks {
                p.try_publish_with(data, meta)
            } else {
                p.publish_with(data, meta)
            };
            match r {
                Ok(seq) => Ok(Some(seq)),
                Err(shmq::Error::Timeout) => Ok(None),
                Err(e) => Err(NoGilError::Core(e)),
            }
        })?;
        if let Some(seq) = first {
            return Ok(seq);
        }
        if timeout == Some(0.0) {
            return Err(Timeout::new_err("timed out: the queue is full"));
        }
        let deadline = deadline(timeout)?;
        let got = in_slices(py, deadline, &self.state, |s, slice| {
            match s.producer()?.publish_with_timeout(data, meta, slice) {
                Ok(seq) => Ok(Some(seq)),
                Err(shmq::Error::Timeout) => Ok(None),
                Err(e) => Err(NoGilError::Core(e)),
            }
        })?;
        got.ok_or_else(|| self.timed_out())
    }

    /// Runs `f` on the producer for a readiness call (refused while a
    /// reservation is open).
    fn with_waiter<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(Waiter<'_>) -> Result<R, NoGilError>,
    ) -> PyResult<R> {
        check_fork(self.made_in)?;
        Ok(self.with_state(py, |s| s.producer().and_then(|p| f(Waiter::Producer(p))))?)
    }

    /// The `Timeout` of a publish that waited: with what holds the ring.
    fn timed_out(&self) -> PyErr {
        Timeout::new_err(format!(
            "timed out: the queue stayed full: {}",
            self.queue.why_full()
        ))
    }

    fn end_dropped(&self, token: u64) {
        if self.made_in != generation() || !self.gate.close_unused(token) {
            return;
        }
        // Called from a reservation's drop, so with the GIL held.
        Python::attach(|py| {
            let mut g = self.state.lock(py);
            if matches!(g.reservation, Some((t, _)) if t == token) {
                g.reservation = None; // drop = abort
            }
        });
    }
}

fn meta<'a>(
    type_id: u32,
    correlation_id: u64,
    key: Option<&Bound<'_, PyAny>>,
    envelope: &'a Envelope,
) -> PyResult<shmq::Meta<'a>> {
    let mut m = shmq::Meta::new()
        .type_id(type_id)
        .correlation_id(correlation_id);
    if let Some(key) = key {
        if let Ok(s) = key.extract::<String>() {
            m = m.key(s.as_bytes());
        } else if let Ok(b) = key.extract::<&[u8]>() {
            m = m.key(b);
        } else {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "key must be str or bytes, not {}",
                key.get_type().name()?
            )));
        }
    }
    m.ordering_key = envelope.key.as_deref();
    for (name, value) in &envelope.headers {
        m = m.header(name, value);
    }
    Ok(m)
}

/// `meta` with a publish's `delay` (seconds) or `deliver_at` (see
/// [`crate::wait::deliver_at`]): not both.
fn schedule<'a>(
    meta: shmq::Meta<'a>,
    delay: Option<f64>,
    deliver_at: Option<&Bound<'_, PyAny>>,
) -> PyResult<shmq::Meta<'a>> {
    match (delay, deliver_at) {
        (Some(_), Some(_)) => Err(InvalidOption::new_err(
            "invalid option: give delay or deliver_at, not both",
        )),
        (Some(d), None) => Ok(meta.delay(seconds("delay", d)?)),
        (None, Some(at)) => Ok(meta.deliver_at(crate::wait::deliver_at(at)?)),
        (None, None) => Ok(meta),
    }
}

/// `str` (as UTF-8) or `bytes`, copied; a `TypeError` naming `what`
/// otherwise.
pub(crate) fn str_or_bytes(what: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = v.extract::<String>() {
        Ok(s.into_bytes())
    } else if let Ok(b) = v.extract::<&[u8]>() {
        Ok(b.to_vec())
    } else {
        Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{what} must be str or bytes, not {}",
            v.get_type().name()?
        )))
    }
}

/// The ordering key and headers of one publish, copied out of their
/// Python objects (nothing is allocated for a publish without them). The
/// limits are the core's: it refuses what breaks them (`InvalidOption`,
/// naming the limit).
#[derive(Default)]
struct Envelope {
    key: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Envelope {
    fn new(
        ordering_key: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Envelope> {
        let mut e = Envelope::default();
        if let Some(k) = ordering_key {
            e.key = Some(str_or_bytes("ordering_key", k)?);
        }
        let Some(headers) = headers else {
            return Ok(e);
        };
        let pair = |name: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>| -> PyResult<_> {
            let name = name.extract::<String>().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(format!(
                    "a header name must be str, not {}",
                    name.get_type()
                        .name()
                        .map_or_else(|_| "?".into(), |n| n.to_string())
                ))
            })?;
            let value = str_or_bytes(&format!("header {name:?}'s value"), value)?;
            Ok((name, value))
        };
        if let Ok(d) = headers.cast::<PyDict>() {
            for (name, value) in d.iter() {
                e.headers.push(pair(&name, &value)?);
            }
        } else if headers.is_instance_of::<PyString>() || headers.is_instance_of::<PyBytes>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "headers must be a dict or a list of (name, value) pairs",
            ));
        } else {
            for item in headers.try_iter().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err(
                    "headers must be a dict or a list of (name, value) pairs",
                )
            })? {
                let item = item?;
                let (name, value) = item
                    .extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()
                    .map_err(|_| {
                        pyo3::exceptions::PyTypeError::new_err(
                            "each header must be a (name, value) pair",
                        )
                    })?;
                e.headers.push(pair(&name, &value)?);
            }
        }
        Ok(e)
    }
}

/// Publishes messages (see the stubs).
#[pyclass(frozen, module = "shmq._shmq")]
pub struct Producer {
    shared: Arc<SharedProducer>,
}

impl Producer {
    pub(crate) fn new(queue: shmq::Queue, p: shmq::Producer) -> Producer {
        let made_in = generation();
        Producer {
            shared: Arc::new(SharedProducer {
                gate: Gate::new(),
                state: GilLock::new(State {
                    reservation: None,
                    producer: Some(NonNull::from(Box::leak(Box::new(p)))),
                    made_in,
                    tokens: Tokens::default(),
                    room: 0,
                }),
                blocks: queue.overflow() != shmq::Overflow::Reject,
                spills: queue.overflow() == shmq::Overflow::Spill,
                queue,
                made_in,
            }),
        }
    }
}

#[pymethods]
impl Producer {
    /// `await producer.publish_async(data, ...)`: `publish`, waiting for
    /// room without blocking the event loop (same keywords; `timeout`
    /// bounds the wait, then `Timeout`).
    #[pyo3(signature = (data, type_id=0, correlation_id=0, key=None, timeout=None, ordering_key=None, headers=None, ttl=None, delay=None, deliver_at=None))]
    #[allow(clippy::too_many_arguments)]
    fn publish_async<'py>(
        slf: &Bound<'py, Self>,
        data: &Bound<'py, PyAny>,
        type_id: u32,
        correlation_id: u64,
        key: Option<&Bound<'py, PyAny>>,
        timeout: Option<Seconds>,
        ordering_key: Option<&Bound<'py, PyAny>>,
        headers: Option<&Bound<'py, PyAny>>,
        ttl: Option<Seconds>,
        delay: Option<Seconds>,
        deliver_at: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = timeout.map(|s| s.0);
        if let Some(t) = timeout {
            crate::wait::seconds("timeout", t)?;
        }
        let ttl = ttl.map(|s| s.0);
        if let Some(t) = ttl {
            crate::wait::seconds("ttl", t)?;
        }
        let delay = delay.map(|s| s.0);
        schedule(shmq::Meta::new(), delay, deliver_at)?;
        aio(slf.py(), "publish_async")?.call1((
            slf,
            data,
            type_id,
            correlation_id,
            key,
            timeout,
            ordering_key,
            headers,
            ttl,
            delay,
            deliver_at,
        ))
    }

    /// Publishes one message; returns its seq (or, scheduled for later,
    /// its schedule id).
    #[pyo3(signature = (data, type_id=0, correlation_id=0, key=None, timeout=None, ordering_key=None, headers=None, ttl=None, delay=None, deliver_at=None))]
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        type_id: u32,
        correlation_id: u64,
        key: Option<&Bound<'_, PyAny>>,
        timeout: Option<Seconds>,
        ordering_key: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        ttl: Option<Seconds>,
        delay: Option<Seconds>,
        deliver_at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let timeout = timeout.map(|s| s.0);
        check_fork(self.shared.made_in)?;
        let input = Input::new(data)?;
        let envelope = if ordering_key.is_none() && headers.is_none() {
            Envelope::default()
        } else {
            Envelope::new(ordering_key, headers)?
        };
        let mut meta = meta(type_id, correlation_id, key, &envelope)?;
        if let Some(t) = ttl {
            meta = meta.ttl(crate::wait::seconds("ttl", t.0)?);
        }
        if delay.is_some() || deliver_at.is_some() {
            meta = schedule(meta, delay.map(|s| s.0), deliver_at)?;
        }
        if let Some(t) = timeout {
            crate::wait::seconds("timeout", t)?;
        }
        self.shared
            .publish_one(py, input.as_slice(), &meta, timeout)
    }

    /// Publishes every message of `items` with as few claims as possible;
    /// returns the seq of the first (the others follow in order).
    #[pyo3(signature = (items, timeout=None))]
    fn publish_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        timeout: Option<Seconds>,
    ) -> PyResult<u64> {
        let timeout = timeout.map(|s| s.0);
        check_fork(self.shared.made_in)?;
        let objs: Vec<Bound<'_, PyAny>> = if let Ok(l) = items.cast::<PyList>() {
            l.iter().collect()
        } else if let Ok(t) = items.cast::<PyTuple>() {
            t.iter().collect()
        } else {
            items.try_iter()?.collect::<PyResult<_>>()?
        };
        if objs.is_empty() {
            return Err(InvalidOption::new_err(
                "invalid option: publish_many of no messages",
            ));
        }
        let inputs = objs.iter().map(Input::new).collect::<PyResult<Vec<_>>>()?;
        let slices: Vec<&[u8]> = inputs.iter().map(Input::as_slice).collect();
        let shared = &*self.shared;
        let meta = shmq::Meta::new();
        // How long one batch attempt may wait without the GIL (and without
        // looking at signals): a slice at most, no longer than `timeout`.
        let batch_wait = match timeout {
            Some(t) => seconds("timeout", t)?.min(SLICE),
            None => SLICE,
        };
        let slots = shared.queue.slots() as usize;
        let mut first = None;
        let mut i = 0;
        let result = (|| -> PyResult<()> {
            while i < slices.len() {
                let rest = &slices[i..];
                // Without the GIL, other threads running meanwhile. An attempt
                // gives up after `batch_wait` (`room` counts only what consumers
                // have freed: a producer elsewhere may have filled the ring
                // first), saying how many went in, and the next message then
                // goes the waiting way, in slices that look at Ctrl-C.
                let mut s = shared.state.lock(py);
                let step = py.detach(|| -> Result<Option<(u64, usize)>, NoGilError> {
                    let queue = &shared.queue;
                    let p = s.producer()?;
                    if !shared.blocks {
                        // overflow=reject never waits.
                        return Ok(Some((p.publish_batch(rest)?, rest.len())));
                    }
                    let k = if shared.spills {
                        // A full ring spills; only a full spill may wait.
                        rest.len().min(slots)
                    } else {
                        if s.room == 0 {
                            let st = queue.stats();
                            s.room = st.slots.saturating_sub(st.depth);
                        }
                        if s.room == 0 {
                            return Ok(None);
                        }
                        rest.len().min(s.room as usize)
                    };
                    match p.publish_batch_timeout(&rest[..k], batch_wait) {
                        Ok((seq, n)) => {
                            // Fewer than `k` (a position given up by a stalled
                            // producer moved the rest on, past the room): the
                            // count of free slots is stale.
                            s.room = if n < k {
                                0
                            } else {
                                s.room.saturating_sub(n as u64)
                            };
                            Ok(Some((seq, n)))
                        }
                        Err(shmq::Error::Timeout) => {
                            s.room = 0;
                            Ok(None)
                        }
                        Err(e) => Err(e.into()),
                    }
                });
                drop(s); // publish_one below takes it again
                shared.state.yield_to_waiters(py);
                let step = match step {
                    Ok(step) => step,
                    // Part of `rest` went in (overflow=reject, a batch larger
                    // than the ring): count it, and fail with why the rest did not.
                    Err(NoGilError::Core(shmq::Error::PartlyPublished {
                        first_seq,
                        published,
                        cause,
                        ..
                    })) => {
                        first.get_or_insert(first_seq);
                        i += published;
                        return Err(crate::error::to_py(*cause));
                    }
                    Err(e) => return Err(e.into()),
                };
                match step {
                    Some((seq, k)) => {
                        first.get_or_insert(seq);
                        i += k;
                    }
                    None => {
                        // No room in time: one message the waiting way.
                        let seq = shared.publish_one(py, rest[0], &meta, timeout)?;
                        first.get_or_insert(seq);
                        i += 1;
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(first.unwrap_or_default()),
            Err(e) => Err(crate::error::partly_published(
                py,
                e,
                first,
                i,
                slices.len(),
            )),
        }
    }

    /// Claims a slot of `size` bytes to write in place.
    #[pyo3(signature = (size, type_id=0, correlation_id=0, timeout=None))]
    fn reserve(
        &self,
        py: Python<'_>,
        size: i64,
        type_id: u32,
        correlation_id: u64,
        timeout: Option<Seconds>,
    ) -> PyResult<Reservation> {
        let timeout = timeout.map(|s| s.0);
        let size: usize = crate::wait::whole("size", size)?;
        check_fork(self.shared.made_in)?;
        let shared = &*self.shared;
        let none = Envelope::default();
        let meta = meta(type_id, correlation_id, None, &none)?;
        let blocks = shared.blocks;
        let first = shared.with_state(py, |s| {
            s.reserve(&shared.gate, size, meta, blocks.then_some(Duration::ZERO))
        })?;
        let got = match first {
            Some(r) => Some(r),
            None if timeout == Some(0.0) => None,
            None => in_slices(py, deadline(timeout)?, &shared.state, |s, slice| {
                s.reserve(&shared.gate, size, meta, Some(slice))
            })?,
        };
        let r = match got {
            Some(r) => r,
            None if timeout == Some(0.0) => {
                return Err(Timeout::new_err("timed out: the queue is full"));
            }
            None => return Err(shared.timed_out()),
        };
        Ok(Reservation {
            shared: self.shared.clone(),
            r,
        })
    }

    /// How many of this producer's keyed publishes found their key already
    /// published (each returned the earlier seq; nothing went in).
    #[getter]
    fn deduplicated(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self
            .shared
            .with_state(py, |s| s.producer().map(|p| p.deduplicated()))?)
    }

    /// Why a publish finds (or would find) no room: the group that holds
    /// the ring, or the spill's full budget or disk.
    fn why_full(&self) -> String {
        self.shared.queue.why_full()
    }

    /// Largest payload this queue takes (its max_message_size; an
    /// ordering key and headers count against it too).
    #[getter]
    fn max_payload(&self) -> usize {
        self.shared.queue.max_message_size()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        // In a child after fork the handle is the parent's: closed here.
        self.shared.made_in != generation() || self.shared.with_state(py, |s| s.producer.is_none())
    }

    /// Aborts an open reservation and gives the producer's record back.
    /// Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.shared.made_in)?;
        let token = self.shared.gate.current();
        if token != 0 {
            self.shared.gate.close(py, token, "the open reservation")?;
        }
        self.shared.with_state(py, |s| {
            s.reservation = None;
            if let Some(p) = s.producer.take() {
                // SAFETY: from `Box::into_raw`, freed once, unborrowed.
                drop(unsafe { Box::from_raw(p.as_ptr()) });
            }
        });
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<shmq.Producer queue={:?}>", self.shared.queue.name())
    }
}

readiness_methods!(
    Producer,
    fileno:
    /// The readiness fd for an event loop waiting for room (see the stubs).
    _arm:
    /// Internal (`shmq._aio`): arms the fd until there is room for the
    /// message the last publish refused; as `Consumer._arm`.
);

/// A claimed slot being written in place.
#[pyclass(frozen, module = "shmq._shmq")]
pub struct Reservation {
    shared: Arc<SharedProducer>,
    r: Reserved,
}

impl Reservation {
    fn ended(&self) -> PyErr {
        Closed::new_err(format!(
            "the reservation of seq {} is committed or aborted",
            self.r.seq
        ))
    }
}

#[pymethods]
impl Reservation {
    /// A writable memoryview over the slot, valid until commit or abort.
    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let me = slf.get();
        if !me.shared.gate.is_open(me.r.token) {
            return Err(me.ended());
        }
        // SAFETY: the slot is ours, in the mapping, while the reservation
        // is open, which the gate keeps it while a buffer is alive; the
        // gate lives in the shared producer the reservation (the owner)
        // keeps alive.
        unsafe {
            gated_view(
                slf.as_any(),
                &me.shared.gate,
                me.r.token,
                me.r.ptr as *mut u8,
                me.r.len,
                true,
            )
        }
    }

    /// The seq the message will have.
    #[getter]
    fn seq(&self) -> u64 {
        self.r.seq
    }

    fn __len__(&self) -> usize {
        self.r.len
    }

    /// Publishes the message (its first `size` bytes, default all);
    /// returns its seq.
    #[pyo3(signature = (size=None))]
    fn commit(&self, py: Python<'_>, size: Option<usize>) -> PyResult<u64> {
        check_fork(self.shared.made_in)?;
        if size.is_some_and(|n| n > self.r.len) {
            return Err(InvalidOption::new_err(format!(
                "invalid option: commit size {} is larger than the reservation ({} bytes)",
                size.unwrap_or_default(),
                self.r.len
            )));
        }
        let token = self.r.token;
        if !self.shared.gate.close(py, token, "this reservation")? {
            return Err(self.ended());
        }
        let r = self.shared.with_state(py, |s| match s.reservation.take() {
            Some((t, mut r)) if t == token => {
                if let Some(n) = size {
                    r.truncate(n);
                }
                Some(r.commit())
            }
            other => {
                s.reservation = other;
                None
            }
        });
        match r {
            Some(r) => r.map_err(crate::error::to_py),
            None => Err(self.ended()),
        }
    }

    /// Gives the slot up: consumers skip its position.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.shared.made_in)?;
        let token = self.r.token;
        if self.shared.gate.close(py, token, "this reservation")? {
            self.shared.with_state(py, |s| {
                if matches!(s.reservation, Some((t, _)) if t == token) {
                    s.reservation = None;
                }
            });
        }
        Ok(())
    }

    /// The writable memoryview over the slot.
    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Reservation::data(slf)
    }

    /// Commits on a clean exit, aborts on an exception.
    #[pyo3(signature = (exc_type, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if exc_type.is_none_or(|t| t.is_none()) {
            self.commit(py, None)?;
        } else {
            self.abort(py)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<shmq.Reservation seq={} len={}>", self.r.seq, self.r.len)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.end_dropped(self.r.token);
    }
}
