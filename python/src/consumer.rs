//! Consumers: the `Consumer` class and the [`SharedConsumer`] its
//! messages and batches (`message.rs`) end their deliveries through.
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

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;

use crate::wait::Seconds;

use crate::buffer::{Gate, Tokens};
use crate::error::InvalidOption;
use crate::message::{Batch, Info, Message};
use crate::readiness::{Waiter, aio, readiness_methods};
use crate::wait::{
    NoGilError, check_fork, deadline, generation, in_slices, seconds, timeout_seconds,
};

/// Polls a blocking receive makes holding the GIL before it waits
/// without it (each ~20 ns when nothing is there).
const SPIN_POLLS: u32 = 128;

/// The open delivery or batch; borrows the consumer in [`State`].
pub(crate) enum OpenDelivery {
    /// A message (`receive`).
    One(shmq::Delivery<'static>),
    /// Messages received together (`receive_many`).
    Batch(shmq::Batch<'static>),
}

/// The consumer and what is open on it.
pub(crate) struct State {
    /// The open delivery or batch and its token. Declared before
    /// `consumer` and always ended first.
    current: Option<(u64, OpenDelivery)>,
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
    fn consumer(&mut self, gate: &Gate) -> Result<&'static mut shmq::Consumer, NoGilError> {
        self.reap(gate);
        if self.current.is_some() {
            return Err(NoGilError::Busy(
                "a message or batch of this consumer is still open".into(),
            ));
        }
        let Some(p) = self.consumer else {
            return Err(NoGilError::Closed("this consumer"));
        };
        // SAFETY: `p` is the live consumer (freed only when `consumer` is
        // taken, under the mutex we hold), and nothing borrows it:
        // `current` is `None`. The `'static` borrow is ended before the
        // consumer is freed (see `end` and `Drop`).
        Ok(unsafe { &mut *p.as_ptr() })
    }

    fn poll(&mut self, gate: &Gate, wait: Option<Duration>) -> Result<Poll, NoGilError> {
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
        self.current = Some((token, OpenDelivery::One(d)));
        Ok(Poll::Got(token, info))
    }

    fn poll_batch(&mut self, gate: &Gate, max: usize, wait: Duration) -> Result<Poll, NoGilError> {
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
        self.current = Some((token, OpenDelivery::Batch(b)));
        Ok(Poll::GotBatch(token, infos))
    }

    /// Takes the open delivery if it is `token`'s.
    fn take(&mut self, token: u64) -> Option<OpenDelivery> {
        match self.current {
            Some((t, _)) if t == token => self.current.take().map(|(_, h)| h),
            _ => None,
        }
    }

    /// Extends the lease of the open delivery to `d` from now if it is
    /// `token`'s (`None` if it is not open).
    pub(crate) fn extend_lease(&mut self, token: u64, d: Duration) -> Option<shmq::Result<()>> {
        match &mut self.current {
            Some((t, OpenDelivery::One(del))) if *t == token => Some(del.extend_lease(d)),
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

/// A consumer shared by its Python objects: the `Consumer`, and the
/// `Message`s and `Batch`es it handed out, which end their deliveries
/// through it.
pub(crate) struct SharedConsumer {
    /// Which delivery is open, and the buffers alive over its payload.
    pub(crate) gate: Gate,
    state: GilLock<State>,
    /// The group's name.
    pub(crate) group: String,
    /// ack=manual.
    pub(crate) manual: bool,
    /// Fork generation the consumer was made in.
    pub(crate) made_in: u64,
}

impl SharedConsumer {
    /// Runs `f` on the state, holding the GIL: at once if the lock is free,
    /// else after waiting for it without the GIL (its holder may be a
    /// receive in a slice).
    pub(crate) fn with_state<R>(&self, py: Python<'_>, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock(py))
    }

    /// Ends delivery `token` with `f`, once no buffer over it is alive.
    /// `None` if it was not open.
    pub(crate) fn end<R: Send>(
        &self,
        py: Python<'_>,
        token: u64,
        what: &str,
        f: impl FnOnce(OpenDelivery) -> R + Send,
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
    pub(crate) fn end_dropped(&self, token: u64) {
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
        poll: impl Fn(&mut State, &Gate, Duration) -> Result<Poll, NoGilError> + Sync,
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

    /// Runs `f` on the consumer for a readiness call, which ends the
    /// previous message as a receive does (`prepare`).
    pub(crate) fn with_waiter<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(Waiter<'_>) -> Result<R, NoGilError>,
    ) -> PyResult<R> {
        self.prepare(py)?;
        Ok(self.with_state(py, |s| {
            s.consumer(&self.gate).and_then(|c| f(Waiter::Consumer(c)))
        })?)
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
    pub(crate) shared: Arc<SharedConsumer>,
}

impl Consumer {
    pub(crate) fn new(c: shmq::Consumer) -> Consumer {
        let manual = c.ack_mode() == shmq::Ack::Manual;
        let group = c.group().to_string();
        let made_in = generation();
        let ptr = NonNull::from(Box::leak(Box::new(c)));
        Consumer {
            shared: Arc::new(SharedConsumer {
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
        Py::new(slf.py(), Message::new(slf.clone().unbind(), token, info))
    }
}

#[pymethods]
impl Consumer {
    /// The group's name.
    #[getter]
    fn group(&self) -> &str {
        &self.shared.group
    }

    /// The seq this consumer will look at next: its cursor (also with a
    /// message or batch open; a redelivery of an older one does not move
    /// it).
    #[getter]
    fn position(&self, py: Python<'_>) -> PyResult<u64> {
        check_fork(self.shared.made_in)?;
        Ok(self.shared.with_state(py, |s| {
            s.reap(&self.shared.gate);
            match &s.current {
                Some((_, OpenDelivery::One(d))) => Ok(d.consumer_position()),
                Some((_, OpenDelivery::Batch(b))) => Ok(b.consumer_position()),
                None => s.consumer(&self.shared.gate).map(|c| c.position()),
            }
        })?)
    }

    /// "auto" or "manual".
    #[getter]
    fn ack(&self) -> &'static str {
        if self.shared.manual { "manual" } else { "auto" }
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        // In a child after fork the handle is the parent's: closed here.
        self.shared.made_in != generation() || self.shared.with_state(py, |s| s.consumer.is_none())
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
            .shared
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
        let shared = &*slf.get().shared;
        loop {
            shared.prepare(py)?;
            match shared.with_state(py, |s| s.poll(&shared.gate, None))? {
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
            .shared
            .wait_for(slf.py(), timeout, |s, gate, wait| {
                s.poll_batch(gate, max, wait)
            })?;
        let (token, infos) = match got {
            Some(Poll::GotBatch(token, infos)) => (token, infos),
            _ => (0, Vec::new()),
        };
        Ok(Batch::new(slf.clone().unbind(), token, infos))
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
        self.shared.prepare(py)?;
        Ok(self.shared.with_state(py, |s| {
            s.consumer(&self.shared.gate)
                .and_then(|c| c.seek(how).map_err(NoGilError::from))
        })?)
    }

    /// Ends the open message (ack=manual: gives it back) and detaches the
    /// consumer from its group. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.shared.made_in)?;
        self.shared.end_open(py)?;
        self.shared.with_state(py, |s| {
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
            self.shared.group,
            self.ack()
        )
    }
}

readiness_methods!(
    Consumer,
    fileno:
    /// The readiness fd for an event loop (see the stubs): the same fd for
    /// the consumer's life, closed with it.
    _arm:
    /// Internal (the asyncio loop of `shmq._aio`): arms the fd after an
    /// empty `try_receive`. `(False, None)`: a message may be there now;
    /// `(True, recheck)`: wait for the fd, at most `recheck` seconds if
    /// not None.
);
