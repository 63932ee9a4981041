//! What a consumer hands out: a `Message` (one delivery, or one message
//! of a batch) and a `Batch` (messages received together), and the `Info`
//! each is made from, copied out of the slot at receive.
//!
//! Neither owns its delivery: it names it by a token in its consumer's
//! [`SharedConsumer`], whose gate keeps the payload readable while the
//! delivery is open (see `consumer.rs` for the ownership, `buffer.rs` for
//! the gate).

use std::sync::Arc;

use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::buffer::gated_view;
use crate::consumer::{Consumer, OpenDelivery, SharedConsumer};
use crate::error::{Closed, IntoPy, InvalidOption};
use crate::wait::{check_fork, seconds};

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
    /// Copies what `m` says about its message.
    pub(crate) fn of(m: &shmq::Message<'_>) -> Info {
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
    /// The message of delivery `token` (not part of a batch).
    pub(crate) fn new(consumer: Py<Consumer>, token: u64, info: Info) -> Message {
        Message {
            consumer,
            token,
            info,
            member: false,
        }
    }

    #[inline]
    fn shared(&self) -> &SharedConsumer {
        &self.consumer.get().shared
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
        if !me.shared().gate.is_open(me.token) {
            return Err(me.finished_err());
        }
        // SAFETY: the payload stays valid while `token` is open in the
        // gate (the delivery is open), and the gate lives in the shared
        // consumer that the message (the view's owner) keeps alive.
        unsafe {
            gated_view(
                slf.as_any(),
                &me.shared().gate,
                me.token,
                me.info.ptr as *mut u8,
                me.info.len,
                false,
            )
        }
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        if !self.shared().gate.pin(self.token) {
            return Err(self.finished_err());
        }
        // SAFETY: pinned: the delivery stays open while we copy.
        let b = PyBytes::new(py, unsafe {
            std::slice::from_raw_parts(self.info.ptr as *const u8, self.info.len)
        });
        self.shared().gate.unpin();
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
        &self.shared().group
    }
    /// Whether it is finished (its data can no longer be read).
    #[getter]
    fn finished(&self) -> bool {
        !self.shared().gate.is_open(self.token)
    }

    /// Finishes the message for the group (ack=manual), or releases its
    /// slot (ack=auto, where a second ack is a no-op).
    fn ack(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.shared().made_in)?;
        if self.member {
            return Ok(());
        }
        let what = self.what();
        let r = self.shared().end(py, self.token, &what, |h| match h {
            OpenDelivery::One(d) => d.ack(),
            OpenDelivery::Batch(_) => Ok(()),
        })?;
        match r {
            Some(r) => r.py_err(),
            None if !self.shared().manual => Ok(()),
            None => Err(self.finished_err()),
        }
    }

    /// Gives the message back (ack=manual): redeliver now, after `delay`
    /// seconds, or move it to the dead-letter queue.
    #[pyo3(signature = (delay=None, dead_letter=false))]
    fn nack(&self, py: Python<'_>, delay: Option<f64>, dead_letter: bool) -> PyResult<()> {
        check_fork(self.shared().made_in)?;
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
        if !self.shared().manual {
            return Err(InvalidOption::new_err(
                "invalid option: nack needs a consumer with ack=manual (ack=auto finished the message on receipt)",
            ));
        }
        let what = self.what();
        match self.shared().end(py, self.token, &what, |h| match h {
            OpenDelivery::One(d) => d.nack(how),
            OpenDelivery::Batch(_) => Ok(()),
        })? {
            Some(r) => r.py_err(),
            None => Err(self.finished_err()),
        }
    }

    /// Extends the lease (ack=manual) to `seconds` from now.
    fn extend_lease(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        check_fork(self.shared().made_in)?;
        let d = crate::wait::seconds("seconds", seconds)?;
        let token = self.token;
        let r = self.shared().with_state(py, |s| s.extend_lease(token, d));
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
        if clean || !self.shared().manual {
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
        if !self.member && self.shared().manual {
            self.shared().end_dropped(self.token);
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
    /// The batch of `token` (0 and no `infos` for an empty one).
    pub(crate) fn new(consumer: Py<Consumer>, token: u64, infos: Vec<Info>) -> Batch {
        Batch {
            consumer,
            token,
            infos,
        }
    }

    #[inline]
    fn shared(&self) -> &SharedConsumer {
        &self.consumer.get().shared
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
        if !self.shared().gate.pin(self.token) {
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
        self.shared().gate.unpin();
        Ok(out)
    }

    /// Whether it is released.
    #[getter]
    fn released(&self) -> bool {
        self.token == 0 || !self.shared().gate.is_open(self.token)
    }

    /// Releases the batch's slots (also done by the next receive and by
    /// closing the consumer).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        check_fork(self.shared().made_in)?;
        if self.token != 0 {
            self.shared().end(py, self.token, "this batch", drop)?;
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
