//! Consumers, messages and batches.
//!
//! Ownership: a core `Delivery<'c>` (and `Batch<'c>`) borrows its
//! `Consumer` mutably. Here the consumer lives on the heap behind a raw
//! pointer inside [`State`], and the one open delivery or batch is kept
//! beside it as a `Delivery<'static>`. The invariant that makes this sound:
//! a `&mut Consumer` is made from the pointer only while no delivery or
//! batch is open (`current` is `None`), and `current` is always ended (or
//! dropped) before the consumer is freed — both under the state mutex. A
//! Python `Message` only names the delivery by its token; its payload is
//! reached through the [`Gate`], which keeps the delivery open while a
//! buffer over it is alive.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::lock::GilLock;
use std::time::Duration;

use pyo3::exceptions::{PyIndexError, PyStopIteration};
use pyo3::prelude::*;

use crate::wait::Seconds;
use pyo3::types::PyBytes;

use crate::buffer::{Gate, Tokens, gated_view};
use crate::error::{Closed, IntoPy, InvalidOption};
use crate::wait::{Fail, check_fork, deadline, generation, in_slices, seconds, timeout_seconds};

/// Polls a blocking receive makes holding the GIL before it waits
/// without it (each ~20 ns when nothing is there).
const SPIN_POLLS: u32 = 128;

/// What a delivery says about its message (copied out of the slot header).
#[derive(Clone, Debug)]
pub(crate) struct Info {
    seq: u64,
    timestamp_ns: u64,
    type_id: u32,
    correlation_id: u64,
    attempt: u32,
    /// Payload in the mapping: valid while its delivery is open.
    ptr: usize,
    len: usize,
    /// Its ordering key and headers, copied out at receive (so that they
    /// stay readable once it is finished, as the rest of `Info` does);
    /// `None`, and nothing allocated, for a message without them.
    extra: Option<Arc<Extra>>,
}

/// A message's ordering key and headers, copied out of its slot.
#[derive(Debug)]
pub(crate) struct Extra {
    ordering_key: Option<Box<[u8]>>,
    headers: Box<[Header]>,
}

/// One header, copied: name and value.
type Header = (Box<str>, Box<[u8]>);

impl Info {
    fn of(m: &shmq::Message<'_>) -> Info {
        let p = m.payload();
        let key = m.ordering_key();
        let mut headers = m.headers().peekable();
        let extra = (key.is_some() || headers.peek().is_some()).then(|| {
            Arc::new(Extra {
                ordering_key: key.map(Box::from),
                headers: headers.map(|(n, v)| (Box::from(n), Box::from(v))).collect(),
            })
        });
        Info {
            seq: m.seq(),
            timestamp_ns: m.timestamp_ns(),
            type_id: m.type_id(),
            correlation_id: m.correlation_id(),
            attempt: m.attempt(),
            ptr: p.as_ptr() as usize,
            len: p.len(),
            extra,
        }
    }
}

/// The open delivery or batch; borrows the consumer in [`State`].
enum Held {
    One(shmq::Delivery<'static>),
    Batch(shmq::Batch<'static>),
}

/// The consumer and what is open on it.
struct State {
    /// The open delivery or batch and its token. Declared before
    /// `consumer` and always ended first.
    current: Option<(u64, Held)>,
    /// `Box::into_raw` of the consumer; `None` once closed.
    consumer: Option<NonNull<shmq::Consumer>>,
    /// Fork generation the consumer was made in.
    made_in: u64,
    /// Names of this handle's deliveries (reservations).
    tokens: Tokens,
}

// SAFETY: the core `Consumer` is `Send`; a delivery or batch is a borrow of
// it plus raw pointers into its mapping (kept alive by the consumer's
// `Arc`), so the whole state may move between threads. The mutex around
// it gives exclusive access.
unsafe impl Send for State {}

/// What a poll found.
enum Poll {
    Got(u64, Info),
    GotBatch(u64, Vec<Info>),
    Empty,
    /// Another delivery is open (another thread's): end it first.
    Occupied,
}

impl State {
    /// Ends the open delivery or batch if its window was closed (an
    /// ack=auto message finished by the next receive: see `prepare`).
    #[inline]
    fn reap(&mut self, gate: &Gate) {
        if let Some((t, _)) = self.current {
            if !gate.is_open(t) {
                self.current = None;
            }
        }
    }

    /// The consumer, if no delivery or batch borrows it.
    fn consumer(&mut self, gate: &Gate) -> Result<&'static mut shmq::Consumer, Fail> {
        self.reap(gate);
        if self.current.is_some() {
            return Err(Fail::Busy(
                "a message or batch of this consumer is still open".into(),
            ));
        }
        let Some(p) = self.consumer else {
            return Err(Fail::Closed("this consumer"));
        };
        // SAFETY: `p` is the live consumer (freed only when `consumer` is
        // taken, under the mutex we hold), and nothing borrows it:
        // `current` is `None`. The `'static` borrow is ended before the
        // consumer is freed (see `end` and `Drop`).
        Ok(unsafe { &mut *p.as_ptr() })
    }

    fn poll(&mut self, gate: &Gate, wait: Option<Duration>) -> Result<Poll, Fail> {
        self.reap(gate);
        if self.current.is_some() {
            return Ok(Poll::Occupied);
        }
        let c = self.consumer(gate)?;
        let d = match wait {
            None => c.try_receive()?,
            Some(t) => match c.receive_timeout(t) {
                Ok(d) => Some(d),
                Err(shmq::Error::Timeout) => None,
                Err(e) => return Err(e.into()),
            },
        };
        let Some(d) = d else {
            return Ok(Poll::Empty);
        };
        let info = Info::of(&d);
        let token = self.tokens.next();
        gate.open(token);
        self.current = Some((token, Held::One(d)));
        Ok(Poll::Got(token, info))
    }

    fn poll_batch(&mut self, gate: &Gate, max: usize, wait: Duration) -> Result<Poll, Fail> {
        self.reap(gate);
        if self.current.is_some() {
            return Ok(Poll::Occupied);
        }
        let c = self.consumer(gate)?;
        let b = c.receive_batch(max, wait)?;
        if b.is_empty() {
            return Ok(Poll::Empty);
        }
        let infos: Vec<Info> = b.iter().map(|m| Info::of(&m)).collect();
        let token = self.tokens.next();
        gate.open(token);
        self.current = Some((token, Held::Batch(b)));
        Ok(Poll::GotBatch(token, infos))
    }

    /// Takes the open delivery if it is `token`'s.
    fn take(&mut self, token: u64) -> Option<Held> {
        match self.current {
            Some((t, _)) if t == token => self.current.take().map(|(_, h)| h),
            _ => None,
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if self.made_in != generation() {
            // A child after fork: the consumer and its deliveries are the
            // parent's; ending them here would end them for the parent.
            std::mem::forget(self.current.take());
            return;
        }
        self.current = None;
        if let Some(p) = self.consumer.take() {
            // SAFETY: from `Box::into_raw`, freed once; nothing borrows it
            // (`current` was dropped just above).
            drop(unsafe { Box::from_raw(p.as_ptr()) });
        }
    }
}

/// A consumer shared by its Python objects.
pub(crate) struct Cell {
    gate: Gate,
    state: GilLock<State>,
    group: String,
    manual: bool,
    made_in: u64,
}

impl Cell {
    /// Runs `f` on the state, holding the GIL: at once if the lock is free,
    /// else after waiting for it without the GIL (its holder may be a
    /// receive in a slice).
    fn with_state<R>(&self, py: Python<'_>, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock(py))
    }

    /// Ends delivery `token` with `f`, once no buffer over it is alive.
    /// `None` if it was not open.
    fn end<R: Send>(
        &self,
        py: Python<'_>,
        token: u64,
        what: &str,
        f: impl FnOnce(Held) -> R + Send,
    ) -> PyResult<Option<R>> {
        if !self.gate.close(py, token, what)? {
            return Ok(None);
        }
        // `f` runs under the mutex: the consumer stays unborrowed by
        // anyone else until the delivery is gone.
        Ok(self.with_state(py, |s| s.take(token).map(f)))
    }

    /// Ends the open delivery or batch, whoever's it is (ack=auto: the next
    /// receive finishes the previous message).
    fn end_open(&self, py: Python<'_>) -> PyResult<()> {
        let token = self.gate.current();
        if token != 0 {
            self.end(py, token, "the previous message or batch", drop)?;
        }
        Ok(())
    }

    /// Ends `token` from a drop: nothing can be exported (each buffer keeps
    /// its owner alive), so no Python is needed.
    fn end_dropped(&self, token: u64) {
        if self.made_in != generation() || !self.gate.close_unused(token) {
            return;
        }
        // Called from a message's drop, so with the GIL held.
        Python::attach(|py| drop(self.state.lock(py).take(token)));
    }

    /// Polls with `poll(state, gate, wait)` until it finds something or
    /// `timeout` passes: first without waiting (`wait` zero), holding the
    /// GIL, then in slices without it. `None` on timeout.
    fn wait_for(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        poll: impl Fn(&mut State, &Gate, Duration) -> Result<Poll, Fail> + Sync,
    ) -> PyResult<Option<Poll>> {
        if let Some(t) = timeout {
            seconds("timeout", t)?;
        }
        // Read the clock only once a wait is needed: a busy poll with
        // timeout=0 never does.
        let mut deadline_at = None;
        loop {
            self.prepare(py)?;
            match self.with_state(py, |s| poll(s, &self.gate, Duration::ZERO))? {
                Poll::Empty if timeout == Some(0.0) => return Ok(None),
                Poll::Empty => {}
                Poll::Occupied => continue,
                got => return Ok(Some(got)),
            }
            // A few more polls holding the GIL (a few microseconds): a
            // message about to come costs them instead of a GIL release
            // and a sleep.
            let mut spun = None;
            for _ in 0..SPIN_POLLS {
                std::hint::spin_loop();
                match self.with_state(py, |s| poll(s, &self.gate, Duration::ZERO))? {
                    Poll::Empty => {}
                    got => {
                        spun = Some(got);
                        break;
                    }
                }
            }
            match spun {
                None => {}
                Some(Poll::Occupied) => continue,
                got => return Ok(got),
            }
            let deadline = match deadline_at {
                Some(d) => d,
                None => *deadline_at.insert(deadline(timeout)?),
            };
            let got = in_slices(py, deadline, &self.state, |s, slice| {
                match poll(s, &self.gate, slice)? {
                    Poll::Empty => Ok(None),
                    got => Ok(Some(got)),
                }
            })?;
            match got {
                Some(Poll::Occupied) => continue,
                got => return Ok(got),
            }
        }
    }

    /// Before a receive: ack=auto ends the previous message; ack=manual
    /// refuses while one is open.
    fn prepare(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.made_in)?;
        if self.gate.current() == 0 {
            return Ok(());
        }
        if self.manual {
            let exports = self.gate.exports();
            return Err(crate::error::Busy::new_err(if exports > 0 {
                format!(
                    "the previous message of this ack=manual consumer is still open: {exports} \
                     buffer(s) made from its data (a numpy array, a slice or memoryview of \
                     .data) are alive and keep it open even after `del message`; ack or nack \
                     it, or delete those buffers (copy first if the data must stay: \
                     bytes(message), array.copy()), and a dropped message goes back to its \
                     group to be delivered again"
                )
            } else {
                "the previous message of this ack=manual consumer is not acked or nacked yet; \
                 a consumer holds one delivery at a time (ack/nack it, or use another consumer)"
                    .to_string()
            }));
        }
        // The fast way: nothing looked at its data, so closing its window
        // is enough; the poll about to run ends it under the lock it takes
        // anyway.
        let open = self.gate.current();
        if self.gate.close_idle(py, open) {
            return Ok(());
        }
        self.end_open(py)
    }
}

/// Where a group starts: "earliest", "latest" or a seq.
pub(crate) fn parse_start(start: &Bound<'_, PyAny>) -> PyResult<shmq::Start> {
    if let Ok(seq) = start.extract::<u64>() {
        return Ok(shmq::Start::Seq(seq));
    }
    match start.extract::<String>().ok().as_deref() {
        Some("earliest") => Ok(shmq::Start::Earliest),
        Some("latest") => Ok(shmq::Start::Latest),
        _ => Err(InvalidOption::new_err(format!(
            "invalid option: start must be \"earliest\", \"latest\" or a seq (int >= 0), got {}",
            start.repr()?
        ))),
    }
}

/// Where a seek goes: "earliest", "latest", a seq, or `time_ns`.
pub(crate) fn parse_seek(
    to: Option<&Bound<'_, PyAny>>,
    time_ns: Option<u64>,
) -> PyResult<shmq::Seek> {
    match (to, time_ns) {
        (None, Some(t)) => Ok(shmq::Seek::Time(t)),
        (Some(to), None) => match parse_start(to) {
            Ok(shmq::Start::Earliest) => Ok(shmq::Seek::Earliest),
            Ok(shmq::Start::Latest) => Ok(shmq::Seek::Latest),
            Ok(shmq::Start::Seq(s)) => Ok(shmq::Seek::Seq(s)),
            Err(_) => Err(InvalidOption::new_err(format!(
                "invalid option: seek to \"earliest\", \"latest\" or a seq (int >= 0), got {}",
                to.repr()?
            ))),
        },
        _ => Err(InvalidOption::new_err(
            "invalid option: seek takes either a position (\"earliest\", \"latest\", a seq) or time_ns=",
        )),
    }
}

/// The consumer of one group (see the stubs for the full story).
#[pyclass(frozen, module = "shmq._shmq")]
pub struct Consumer {
    cell: Arc<Cell>,
}

impl Consumer {
    pub(crate) fn new(c: shmq::Consumer) -> Consumer {
        let manual = c.ack_mode() == shmq::Ack::Manual;
        let group = c.group().to_string();
        let made_in = generation();
        let ptr = NonNull::from(Box::leak(Box::new(c)));
        Consumer {
            cell: Arc::new(Cell {
                gate: Gate::new(),
                state: GilLock::new(State {
                    current: None,
                    consumer: Some(ptr),
                    made_in,
                    tokens: Tokens::default(),
                }),
                group,
                manual,
                made_in,
            }),
        }
    }

    fn message(slf: &Bound<'_, Self>, token: u64, info: Info) -> PyResult<Py<Message>> {
        Py::new(
            slf.py(),
            Message {
                consumer: slf.clone().unbind(),
                token,
                info,
                member: false,
            },
        )
    }
}

#[pymethods]
impl Consumer {
    /// The group's name.
    #[getter]
    fn group(&self) -> &str {
        &self.cell.group
    }

    /// The seq this consumer will look at next: its cursor (also with a
    /// message or batch open; a redelivery of an older one does not move
    /// it).
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        check_fork(self.cell.made_in)?;
        Ok(self.cell.with_state(py, |s| {
            s.reap(&self.cell.gate);
            match &s.current {
                Some((_, Held::One(d))) => Ok(d.consumer_position()),
                Some((_, Held::Batch(b))) => Ok(b.consumer_position()),
                None => s.consumer(&self.cell.gate).map(|c| c.position()),
            }
        })?)
    }

    /// "auto" or "manual".
    #[getter]
    fn ack(&self) -> &'static str {
        if self.cell.manual { "manual" } else { "auto" }
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        // In a child after fork the handle is the parent's: closed here.
        self.cell.made_in != generation() || self.cell.with_state(py, |s| s.consumer.is_none())
    }

    /// The next message, or None when `timeout` seconds pass first.
    #[pyo3(signature = (timeout=None))]
    fn receive(
        slf: &Bound<'_, Self>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<Message>>> {
        let timeout = timeout.map(timeout_seconds).transpose()?;
        if timeout == Some(0.0) {
            // The busy-polling call: exactly what `try_receive` does.
            return Consumer::try_receive(slf);
        }
        let got = slf
            .get()
            .cell
            .wait_for(slf.py(), timeout, |s, gate, wait| {
                s.poll(gate, (!wait.is_zero()).then_some(wait))
            })?;
        match got {
            Some(Poll::Got(token, info)) => Consumer::message(slf, token, info).map(Some),
            _ => Ok(None),
        }
    }

    /// The next message if one is ready, else None, without waiting: the
    /// busy-polling call (`receive(timeout=0)` without parsing a timeout).
    fn try_receive(slf: &Bound<'_, Self>) -> PyResult<Option<Py<Message>>> {
        let py = slf.py();
        let cell = &*slf.get().cell;
        loop {
            cell.prepare(py)?;
            match cell.with_state(py, |s| s.poll(&cell.gate, None))? {
                Poll::Got(token, info) => return Consumer::message(slf, token, info).map(Some),
                Poll::Occupied => continue,
                _ => return Ok(None),
            }
        }
    }

    /// Up to `max` messages (ack=auto), waiting at most `timeout` seconds
    /// for the first; an empty batch if none came.
    #[pyo3(signature = (max, timeout=None))]
    fn receive_many(slf: &Bound<'_, Self>, max: i64, timeout: Option<Seconds>) -> PyResult<Batch> {
        let timeout = timeout.map(|s| s.0);
        let max: usize = crate::wait::whole("max", max)?;
        if max == 0 {
            return Err(crate::error::InvalidOption::new_err(
                "invalid option: receive_many of 0 messages: max must be 1 or more",
            ));
        }
        let got = slf
            .get()
            .cell
            .wait_for(slf.py(), timeout, |s, gate, wait| {
                s.poll_batch(gate, max, wait)
            })?;
        let (token, infos) = match got {
            Some(Poll::GotBatch(token, infos)) => (token, infos),
            _ => (0, Vec::new()),
        };
        Ok(Batch {
            consumer: slf.clone().unbind(),
            token,
            infos,
        })
    }

    /// Moves the group; returns the seq it will receive next.
    #[pyo3(signature = (to=None, *, time_ns=None))]
    fn seek(
        &self,
        py: Python<'_>,
        to: Option<&Bound<'_, PyAny>>,
        time_ns: Option<u64>,
    ) -> PyResult<u64> {
        let how = parse_seek(to, time_ns)?;
        self.cell.prepare(py)?;
        Ok(self.cell.with_state(py, |s| {
            s.consumer(&self.cell.gate)
                .and_then(|c| c.seek(how).map_err(Fail::from))
        })?)
    }

    /// Ends the open message (ack=manual: gives it back) and detaches the
    /// consumer from its group. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.cell.made_in)?;
        self.cell.end_open(py)?;
        self.cell.with_state(py, |s| {
            s.current = None;
            if let Some(p) = s.consumer.take() {
                // SAFETY: from `Box::into_raw`, freed once, unborrowed
                // (`current` is `None`).
                drop(unsafe { Box::from_raw(p.as_ptr()) });
            }
        });
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// The readiness fd for an event loop (see the stubs): the same fd for
    /// the consumer's life, closed with it.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        self.cell.prepare(py)?;
        Ok(self.cell.with_state(py, |s| {
            s.consumer(&self.cell.gate).and_then(|c| {
                c.readiness()
                    .map(std::os::fd::AsRawFd::as_raw_fd)
                    .map_err(Fail::from)
            })
        })?)
    }

    /// Internal (the asyncio loop of `shmq._aio`): arms the fd after an
    /// empty `try_receive`. `(False, None)`: a message may be there now;
    /// `(True, recheck)`: wait for the fd, at most `recheck` seconds if
    /// not None.
    fn _arm(&self, py: Python<'_>) -> PyResult<(bool, Option<f64>)> {
        self.cell.prepare(py)?;
        let arm = self.cell.with_state(py, |s| {
            s.consumer(&self.cell.gate)
                .and_then(|c| c.arm().map_err(Fail::from))
        })?;
        Ok(arm_tuple(arm))
    }

    /// Internal: reads the wake-ups waiting on the fd.
    fn _drain(&self, py: Python<'_>) -> PyResult<()> {
        self.cell.prepare(py)?;
        Ok(self.cell.with_state(py, |s| {
            s.consumer(&self.cell.gate).and_then(|c| {
                c.readiness()
                    .map(|r| {
                        r.drain();
                    })
                    .map_err(Fail::from)
            })
        })?)
    }

    /// Internal: takes back an arm that will not be waited for.
    fn _disarm(&self, py: Python<'_>) -> PyResult<()> {
        self.cell.prepare(py)?;
        Ok(self
            .cell
            .with_state(py, |s| s.consumer(&self.cell.gate).map(|c| c.disarm()))?)
    }

    /// `await consumer.receive_async(timeout=None)`: the next message, or
    /// None after `timeout` seconds, without blocking the event loop.
    #[pyo3(signature = (timeout=None))]
    fn receive_async<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(t) = timeout {
            timeout_seconds(t)?;
        }
        aio(slf.py(), "receive_async")?.call1((slf, timeout))
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        aio(slf.py(), "receive_async")?.call1((slf, slf.py().None()))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<Message>> {
        match Consumer::receive(slf, None)? {
            Some(m) => Ok(m),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmq.Consumer group={:?} ack={}>",
            self.cell.group,
            self.ack()
        )
    }
}

/// One received message; its payload stays in shared memory.
#[pyclass(frozen, module = "shmq._shmq")]
pub struct Message {
    /// Its consumer (a reference count, cheaper than an `Arc` clone).
    consumer: Py<Consumer>,
    token: u64,
    info: Info,
    /// Part of a batch (ended with the batch).
    member: bool,
}

impl Message {
    #[inline]
    fn cell(&self) -> &Cell {
        &self.consumer.get().cell
    }

    fn what(&self) -> String {
        format!("message seq {}", self.info.seq)
    }

    fn finished_err(&self) -> PyErr {
        Closed::new_err(format!(
            "{} is finished (acked, nacked, released by the next receive, or its consumer closed)",
            self.what()
        ))
    }
}

#[pymethods]
impl Message {
    /// The payload: a read-only memoryview over shared memory, valid until
    /// the message is finished.
    #[getter]
    fn data<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let me = slf.get();
        if !me.cell().gate.is_open(me.token) {
            return Err(me.finished_err());
        }
        // SAFETY: the payload stays valid while `token` is open in the
        // gate (the delivery is open), and the gate lives in the cell that
        // the message (the view's owner) keeps alive.
        unsafe {
            gated_view(
                slf.as_any(),
                &me.cell().gate,
                me.token,
                me.info.ptr as *mut u8,
                me.info.len,
                false,
            )
        }
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        if !self.cell().gate.pin(self.token) {
            return Err(self.finished_err());
        }
        // SAFETY: pinned: the delivery stays open while we copy.
        let b = PyBytes::new(py, unsafe {
            std::slice::from_raw_parts(self.info.ptr as *const u8, self.info.len)
        });
        self.cell().gate.unpin();
        Ok(b)
    }

    fn __len__(&self) -> usize {
        self.info.len
    }

    /// Position in the queue.
    #[getter]
    fn seq(&self) -> u64 {
        self.info.seq
    }
    /// Publish time, CLOCK_REALTIME nanoseconds.
    #[getter]
    fn timestamp_ns(&self) -> u64 {
        self.info.timestamp_ns
    }
    /// The producer's type tag.
    #[getter]
    fn type_id(&self) -> u32 {
        self.info.type_id
    }
    /// The producer's correlation id.
    #[getter]
    fn correlation_id(&self) -> u64 {
        self.info.correlation_id
    }
    /// Delivery attempt, 1 for the first delivery.
    #[getter]
    fn attempt(&self) -> u32 {
        self.info.attempt
    }
    /// The ordering key it was published with, or None.
    #[getter]
    fn ordering_key<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let k = self.info.extra.as_ref()?.ordering_key.as_deref()?;
        Some(PyBytes::new(py, k))
    }
    /// Its headers, in the order they were published: (name, value) pairs.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> Vec<(&str, Bound<'py, PyBytes>)> {
        self.info.extra.as_ref().map_or_else(Vec::new, |e| {
            e.headers
                .iter()
                .map(|(n, v)| (&**n, PyBytes::new(py, v)))
                .collect()
        })
    }
    /// The value of its first header called `name`, or None.
    fn header<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyBytes>> {
        let e = self.info.extra.as_ref()?;
        let (_, v) = e.headers.iter().find(|(n, _)| &**n == name)?;
        Some(PyBytes::new(py, v))
    }
    /// The group it was delivered to.
    #[getter]
    fn group(&self) -> &str {
        &self.cell().group
    }
    /// Whether it is finished (its data can no longer be read).
    #[getter]
    fn finished(&self) -> bool {
        !self.cell().gate.is_open(self.token)
    }

    /// Finishes the message for the group (ack=manual), or releases its
    /// slot (ack=auto, where a second ack is a no-op).
    fn ack(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.cell().made_in)?;
        if self.member {
            return Ok(());
        }
        let what = self.what();
        let r = self.cell().end(py, self.token, &what, |h| match h {
            Held::One(d) => d.ack(),
            Held::Batch(_) => Ok(()),
        })?;
        match r {
            Some(r) => r.py_err(),
            None if !self.cell().manual => Ok(()),
            None => Err(self.finished_err()),
        }
    }

    /// Gives the message back (ack=manual): redeliver now, after `delay`
    /// seconds, or move it to the dead-letter queue.
    #[pyo3(signature = (delay=None, dead_letter=false))]
    fn nack(&self, py: Python<'_>, delay: Option<f64>, dead_letter: bool) -> PyResult<()> {
        check_fork(self.cell().made_in)?;
        let how = match (delay, dead_letter) {
            (None, false) => shmq::Nack::Requeue,
            (Some(d), false) => shmq::Nack::RequeueAfter(seconds("delay", d)?),
            (None, true) => shmq::Nack::DeadLetter,
            (Some(_), true) => {
                return Err(InvalidOption::new_err(
                    "invalid option: nack takes delay= or dead_letter=True, not both",
                ));
            }
        };
        if !self.cell().manual {
            return Err(InvalidOption::new_err(
                "invalid option: nack needs a consumer with ack=manual (ack=auto finished the message on receipt)",
            ));
        }
        let what = self.what();
        match self.cell().end(py, self.token, &what, |h| match h {
            Held::One(d) => d.nack(how),
            Held::Batch(_) => Ok(()),
        })? {
            Some(r) => r.py_err(),
            None => Err(self.finished_err()),
        }
    }

    /// Extends the lease (ack=manual) to `seconds` from now.
    fn extend_lease(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        check_fork(self.cell().made_in)?;
        let d = crate::wait::seconds("seconds", seconds)?;
        let token = self.token;
        let r = self.cell().with_state(py, |s| match &mut s.current {
            Some((t, Held::One(del))) if *t == token => Some(del.extend_lease(d)),
            _ => None,
        });
        match r {
            Some(r) => r.py_err(),
            None => Err(self.finished_err()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Acks on a clean exit; on an exception, gives the message back
    /// (ack=manual) and lets the exception through.
    #[pyo3(signature = (exc_type, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let clean = exc_type.is_none_or(|t| t.is_none());
        if clean || !self.cell().manual {
            self.ack(py)?;
        } else if !self.finished() {
            self.nack(py, None, false)?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmq.Message seq={} len={} type_id={} attempt={}{}>",
            self.info.seq,
            self.info.len,
            self.info.type_id,
            self.info.attempt,
            if self.finished() { " finished" } else { "" }
        )
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        // Dropped without ack or nack: ack=manual gives the message back at
        // once (as a dropped core delivery does), so another consumer can
        // have it. ack=auto finished it on receipt; its slot is released by
        // the next receive (or close), which saves the hot path a lock.
        if !self.member && self.cell().manual {
            self.cell().end_dropped(self.token);
        }
    }
}

/// Messages received together (ack=auto), released together.
#[pyclass(frozen, module = "shmq._shmq", sequence)]
pub struct Batch {
    /// Its consumer (a reference count, cheaper than an `Arc` clone).
    consumer: Py<Consumer>,
    /// 0 for an empty batch.
    token: u64,
    infos: Vec<Info>,
}

impl Batch {
    #[inline]
    fn cell(&self) -> &Cell {
        &self.consumer.get().cell
    }
}

#[pymethods]
impl Batch {
    fn __len__(&self) -> usize {
        self.infos.len()
    }

    fn __getitem__(&self, py: Python<'_>, index: isize) -> PyResult<Py<Message>> {
        let n = self.infos.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if i < 0 || i >= n {
            return Err(PyIndexError::new_err("batch index out of range"));
        }
        Py::new(
            py,
            Message {
                consumer: self.consumer.clone_ref(py),
                token: self.token,
                info: self.infos[i as usize].clone(),
                member: true,
            },
        )
    }

    fn __iter__(slf: Py<Self>) -> BatchIter {
        BatchIter {
            batch: slf,
            next: 0,
        }
    }

    /// Seq of the first message (None if empty).
    #[getter]
    fn first_seq(&self) -> Option<u64> {
        self.infos.first().map(|i| i.seq)
    }

    /// Seq of the last message (None if empty).
    #[getter]
    fn last_seq(&self) -> Option<u64> {
        self.infos.last().map(|i| i.seq)
    }

    /// Total payload bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.infos.iter().map(|i| i.len).sum()
    }

    /// Copies of the payloads.
    fn payloads<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        if self.infos.is_empty() {
            return Ok(Vec::new());
        }
        if !self.cell().gate.pin(self.token) {
            return Err(Closed::new_err("this batch is released"));
        }
        let out = self
            .infos
            .iter()
            .map(|i| {
                // SAFETY: pinned: the batch stays open while we copy.
                let payload = unsafe { std::slice::from_raw_parts(i.ptr as *const u8, i.len) };
                PyBytes::new(py, payload)
            })
            .collect();
        self.cell().gate.unpin();
        Ok(out)
    }

    /// Whether it is released.
    #[getter]
    fn released(&self) -> bool {
        self.token == 0 || !self.cell().gate.is_open(self.token)
    }

    /// Releases the batch's slots (also done by the next receive and by
    /// closing the consumer).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.cell().made_in)?;
        if self.token != 0 {
            self.cell().end(py, self.token, "this batch", drop)?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmq.Batch len={} first_seq={:?}>",
            self.infos.len(),
            self.first_seq()
        )
    }
}

/// Iterator over a batch's messages.
#[pyclass(module = "shmq._shmq")]
pub struct BatchIter {
    batch: Py<Batch>,
    next: usize,
}

#[pymethods]
impl BatchIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<Message>>> {
        let b = self.batch.get();
        if self.next >= b.infos.len() {
            return Ok(None);
        }
        let m = b.__getitem__(py, self.next as isize)?;
        self.next += 1;
        Ok(Some(m))
    }
}

/// An arm as the asyncio helpers take it: `(armed, recheck seconds)`.
pub(crate) fn arm_tuple(arm: shmq::Arm) -> (bool, Option<f64>) {
    match arm {
        shmq::Arm::Ready => (false, None),
        shmq::Arm::Waiting { recheck_after } => (true, recheck_after.map(|d| d.as_secs_f64())),
    }
}

/// A function of `shmq._aio`, the asyncio side of the async API (the
/// waiting is `loop.add_reader` on the readiness fd: no runtime here).
pub(crate) fn aio<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("shmq._aio")?.getattr(name)
}
