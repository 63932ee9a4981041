//! Buffers between Python and shared memory.
//!
//! Out (a message's payload, a reservation's slot): a `memoryview` over a
//! tiny exporter object whose buffer is *gated*. A [`Gate`] says which
//! delivery (or reservation) is open and how many buffers over it are
//! live; a delivery ends (ack, nack, the next receive, close) only when no
//! buffer is live, after the memoryviews handed out by `.data` were
//! released. So a buffer never outlives the slot it shows: touching a
//! released memoryview raises `ValueError`, and ending a delivery while a
//! slice or a numpy array still holds its memory raises `BufferError`
//! (as `mmap.close()` does) instead of letting it read a reused slot.
//!
//! In (publish): anything with the buffer protocol, as one C-contiguous
//! run of bytes, without a copy before the one into the slot.
//!
//! pyo3 offers the buffer protocol under abi3 only from Python 3.11; the
//! few C-API items it needs are declared here (the `Py_buffer` layout and
//! the functions are part of CPython's stable ABI in practice since 3.0,
//! and `PyType_FromSpec` takes buffer slots since 3.9).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use pyo3::exceptions::{PyBufferError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyWeakrefReference};

use crate::error::Closed;

/// CPython's `Py_buffer`.
#[repr(C)]
pub(crate) struct RawBuffer {
    buf: *mut c_void,
    obj: *mut ffi::PyObject,
    len: ffi::Py_ssize_t,
    itemsize: ffi::Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut ffi::Py_ssize_t,
    strides: *mut ffi::Py_ssize_t,
    suboffsets: *mut ffi::Py_ssize_t,
    internal: *mut c_void,
}

unsafe extern "C" {
    fn PyObject_GetBuffer(obj: *mut ffi::PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
    fn PyBuffer_FillInfo(
        view: *mut RawBuffer,
        obj: *mut ffi::PyObject,
        buf: *mut c_void,
        len: ffi::Py_ssize_t,
        readonly: c_int,
        flags: c_int,
    ) -> c_int;
}

const PYBUF_SIMPLE: c_int = 0;
const PYBUF_WRITABLE: c_int = 1;
/// `Py_bf_getbuffer` and `Py_bf_releasebuffer` of `typeslots.h`.
const PY_BF_GETBUFFER: c_int = 1;
const PY_BF_RELEASEBUFFER: c_int = 2;

/// Bits of [`Gate::word`] that count live buffers.
const EXPORT_BITS: u32 = 24;
const EXPORTS: u64 = (1 << EXPORT_BITS) - 1;

/// Names deliveries and reservations in one gate: never 0, never the
/// same twice in a row (40 bits: a wrap takes 10^12 of them, and a token
/// only has to differ from the ones whose objects are still alive).
#[derive(Debug, Default)]
pub(crate) struct Tokens(u64);

impl Tokens {
    #[inline]
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = (self.0 + 1) & ((1 << (64 - EXPORT_BITS)) - 1);
        if self.0 == 0 {
            self.0 = 1;
        }
        self.0
    }
}

/// Which window over shared memory is open, and how many buffers over it
/// are live.
pub(crate) struct Gate {
    /// `token << 24 | live buffers`; token 0: nothing open. A buffer is
    /// pinned only while its token is the open one, and the window closes
    /// only from "open, no buffer" (one CAS each way), so no buffer is
    /// ever live over a closed window.
    word: AtomicU64,
    /// Weak references to the memoryviews handed out over the open
    /// window, released when it closes.
    views: Mutex<Vec<Py<PyWeakrefReference>>>,
    /// Whether `views` may hold anything (a load instead of a lock on the
    /// hot path).
    has_views: AtomicBool,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            word: AtomicU64::new(0),
            views: Mutex::new(Vec::new()),
            has_views: AtomicBool::new(false),
        }
    }

    /// Opens the window `token` (the gate must be closed).
    pub(crate) fn open(&self, token: u64) {
        debug_assert_eq!(self.word.load(Ordering::Relaxed) >> EXPORT_BITS, 0);
        self.word.store(token << EXPORT_BITS, Ordering::Release);
    }

    /// Whether `token` is the open window.
    #[inline]
    pub(crate) fn is_open(&self, token: u64) -> bool {
        self.word.load(Ordering::Acquire) >> EXPORT_BITS == token
    }

    /// How many buffers (numpy arrays, slices of `.data`, ...) are live
    /// over the open window.
    pub(crate) fn exports(&self) -> u64 {
        self.word.load(Ordering::Acquire) & EXPORTS
    }

    /// Whatever window is open (0: none).
    pub(crate) fn current(&self) -> u64 {
        self.word.load(Ordering::Acquire) >> EXPORT_BITS
    }

    /// Counts one more live buffer over `token`, if it is still open.
    pub(crate) fn pin(&self, token: u64) -> bool {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            if cur >> EXPORT_BITS != token || cur & EXPORTS == EXPORTS {
                return false;
            }
            match self
                .word
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// One buffer fewer (pairs with a successful [`pin`](Self::pin)).
    pub(crate) fn unpin(&self) {
        let prev = self.word.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(prev & EXPORTS > 0);
    }

    fn track(&self, view: &Bound<'_, PyAny>) -> PyResult<()> {
        let weak = PyWeakrefReference::new(view)?;
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views.retain(|w| w.bind(view.py()).upgrade().is_some());
        views.push(weak.unbind());
        self.has_views.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Closes window `token` if no buffer is live and no memoryview was
    /// handed out over it (the next receive finishing an ack=auto message
    /// whose data nobody looked at); `false` otherwise, or if it is not
    /// open. Called with the GIL held, as `track` is.
    ///
    /// A load and a store, no CAS: every pin and unpin happens with the GIL
    /// held (in the buffer protocol, or around a copy), as this does, so
    /// nothing can pin between the two; and while `token` is open nothing
    /// else stores to the word (a window is opened only when none is).
    #[inline]
    pub(crate) fn close_idle(&self, _py: Python<'_>, token: u64) -> bool {
        if self.has_views.load(Ordering::Relaxed)
            || self.word.load(Ordering::Acquire) != token << EXPORT_BITS
        {
            return false;
        }
        self.word.store(0, Ordering::Release);
        true
    }

    /// Closes window `token`: releases the memoryviews handed out over it,
    /// then closes if no buffer is live. `Ok(false)`: it was not open
    /// (already closed, or another window is). `BufferError` if buffers
    /// derived from the data (slices, numpy arrays) are still alive: the
    /// window stays open.
    pub(crate) fn close(&self, py: Python<'_>, token: u64, what: &str) -> PyResult<bool> {
        if !self.is_open(token) {
            return Ok(false);
        }
        let views = std::mem::take(&mut *self.views.lock().unwrap_or_else(|e| e.into_inner()));
        let mut kept = Vec::new();
        for w in views {
            if let Some(view) = w.bind(py).upgrade() {
                // Fails only if the memoryview itself is exported (e.g.
                // numpy.frombuffer(view)): then the count below says so.
                if view.call_method0("release").is_err() {
                    kept.push(w);
                }
            }
        }
        if kept.is_empty() {
            self.has_views.store(false, Ordering::Relaxed);
        }
        let res = self.word.compare_exchange(
            token << EXPORT_BITS,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        match res {
            Ok(_) => Ok(true),
            Err(cur) if cur >> EXPORT_BITS == token => {
                if !kept.is_empty() {
                    self.has_views.store(true, Ordering::Relaxed);
                }
                self.views
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(kept);
                Err(PyBufferError::new_err(format!(
                    "{what}: {} buffer(s) over its data are still alive (slices of .data, numpy arrays, ...); delete or release them first",
                    cur & EXPORTS
                )))
            }
            Err(_) => Ok(false),
        }
    }

    /// Closes window `token` if no buffer is live over it: for drops,
    /// where none can be (each one keeps its owner alive).
    pub(crate) fn close_unused(&self, token: u64) -> bool {
        self.word
            .compare_exchange(token << EXPORT_BITS, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The exporter object behind a gated memoryview.
#[repr(C)]
struct Exporter {
    ob_base: ffi::PyObject,
    /// Strong reference to the Python object that owns `gate` and keeps
    /// the mapping alive (a Message, Batch or Reservation).
    owner: *mut ffi::PyObject,
    gate: *const Gate,
    token: u64,
    buf: *mut u8,
    len: ffi::Py_ssize_t,
    readonly: c_int,
}

static EXPORTER_TYPE: AtomicPtr<ffi::PyTypeObject> = AtomicPtr::new(ptr::null_mut());

/// Creates the exporter type (once, at module import).
pub(crate) fn init_type(m: &Bound<'_, PyModule>) -> PyResult<()> {
    if !EXPORTER_TYPE.load(Ordering::Acquire).is_null() {
        return Ok(());
    }
    let mut slots = [
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: exporter_dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_new,
            pfunc: exporter_new as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: PY_BF_GETBUFFER,
            pfunc: exporter_getbuffer as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: PY_BF_RELEASEBUFFER,
            pfunc: exporter_releasebuffer as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: c"Shared memory behind a message's or reservation's memoryview.".as_ptr()
                as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: c"shmq._shmq.SlotBuffer".as_ptr(),
        basicsize: std::mem::size_of::<Exporter>() as c_int,
        itemsize: 0,
        flags: ffi::Py_TPFLAGS_DEFAULT as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: a valid spec whose slots point at functions of the right
    // signatures; the interpreter copies what it keeps.
    let tp = unsafe { ffi::PyType_FromSpec(&mut spec) };
    if tp.is_null() {
        return Err(PyErr::fetch(m.py()));
    }
    EXPORTER_TYPE.store(tp as *mut ffi::PyTypeObject, Ordering::Release);
    Ok(())
}

unsafe extern "C" fn exporter_new(
    _tp: *mut ffi::PyTypeObject,
    _args: *mut ffi::PyObject,
    _kw: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: called by the interpreter with the GIL held.
    let py = unsafe { Python::assume_attached() };
    PyTypeError::new_err("SlotBuffer objects are made by shmq (Message.data, Producer.reserve)")
        .restore(py);
    ptr::null_mut()
}

unsafe extern "C" fn exporter_dealloc(obj: *mut ffi::PyObject) {
    // SAFETY: `obj` is an Exporter being deallocated (GIL held); `owner`
    // is the strong reference taken in `gated_view`. Heap-type instances
    // hold a reference to their type, given back here.
    unsafe {
        let exp = obj as *mut Exporter;
        ffi::Py_XDECREF((*exp).owner);
        let tp = ffi::Py_TYPE(obj);
        let free = ffi::PyType_GetSlot(tp, ffi::Py_tp_free);
        let free: ffi::freefunc = std::mem::transmute(free);
        free(obj as *mut c_void);
        ffi::Py_DECREF(tp as *mut ffi::PyObject);
    }
}

unsafe extern "C" fn exporter_getbuffer(
    obj: *mut ffi::PyObject,
    view: *mut RawBuffer,
    flags: c_int,
) -> c_int {
    // SAFETY: `obj` is an Exporter made by `gated_view` (the type cannot be
    // instantiated otherwise): its gate lives in `owner`, which it keeps
    // alive. The GIL is held.
    unsafe {
        let exp = &*(obj as *const Exporter);
        let py = Python::assume_attached();
        if exp.readonly != 0 && flags & PYBUF_WRITABLE != 0 {
            PyBufferError::new_err("message data is read-only").restore(py);
            return -1;
        }
        let gate = &*exp.gate;
        if !gate.pin(exp.token) {
            Closed::new_err(
                "the message or reservation behind this buffer is finished (acked, nacked, released, committed or closed)",
            )
            .restore(py);
            return -1;
        }
        let r = PyBuffer_FillInfo(
            view,
            obj,
            exp.buf as *mut c_void,
            exp.len,
            exp.readonly,
            flags,
        );
        if r != 0 {
            gate.unpin();
        }
        r
    }
}

unsafe extern "C" fn exporter_releasebuffer(obj: *mut ffi::PyObject, _view: *mut RawBuffer) {
    // SAFETY: as in `exporter_getbuffer`; this pairs with its pin.
    unsafe { (*(*(obj as *const Exporter)).gate).unpin() }
}

/// A memoryview over `len` bytes at `buf`, gated by `gate` under `token`,
/// keeping `owner` (which owns the gate and the mapping) alive.
///
/// # Safety
/// `buf .. buf + len` must stay valid memory for as long as `token` is open
/// in `gate`, and `gate` must live as long as `owner`.
pub(crate) unsafe fn gated_view<'py>(
    owner: &Bound<'py, PyAny>,
    gate: &Gate,
    token: u64,
    buf: *mut u8,
    len: usize,
    writable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let py = owner.py();
    let tp = EXPORTER_TYPE.load(Ordering::Acquire);
    if tp.is_null() {
        return Err(PyTypeError::new_err("shmq._shmq was not initialised"));
    }
    // SAFETY: `tp` is our exporter type; a fresh zeroed instance is filled
    // before anything can see it. The memoryview takes a buffer from it
    // (our getbuffer: pins the gate) and holds the exporter; we give back
    // our own reference.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(tp, 0);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        let exp = obj as *mut Exporter;
        ffi::Py_INCREF(owner.as_ptr());
        (*exp).owner = owner.as_ptr();
        (*exp).gate = gate;
        (*exp).token = token;
        (*exp).buf = buf;
        (*exp).len = len as ffi::Py_ssize_t;
        (*exp).readonly = if writable { 0 } else { 1 };
        let view = ffi::PyMemoryView_FromObject(obj);
        ffi::Py_DECREF(obj);
        let view = Bound::from_owned_ptr_or_err(py, view)?;
        gate.track(&view)?;
        Ok(view)
    }
}

/// Payload bytes taken from a Python object: `bytes` borrowed directly,
/// anything else through the buffer protocol (one C-contiguous run).
pub(crate) enum Input<'a> {
    Bytes(&'a [u8]),
    Buffer(Box<RawBuffer>),
}

impl<'a> Input<'a> {
    pub(crate) fn new(obj: &'a Bound<'_, PyAny>) -> PyResult<Input<'a>> {
        if let Ok(b) = obj.cast::<PyBytes>() {
            return Ok(Input::Bytes(b.as_bytes()));
        }
        let mut view = Box::new(RawBuffer {
            buf: ptr::null_mut(),
            obj: ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: ptr::null_mut(),
            shape: ptr::null_mut(),
            strides: ptr::null_mut(),
            suboffsets: ptr::null_mut(),
            internal: ptr::null_mut(),
        });
        // SAFETY: GIL held; `view` is a valid Py_buffer to fill. PyBUF_SIMPLE
        // asks for one contiguous run of bytes (exporters that cannot give
        // one raise BufferError).
        let r = unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, PYBUF_SIMPLE) };
        if r != 0 {
            let err = PyErr::fetch(obj.py());
            if !err.is_instance_of::<PyTypeError>(obj.py()) {
                // The exporter's own reason (e.g. not C-contiguous).
                return Err(err);
            }
            return Err(PyTypeError::new_err(format!(
                "a message must be bytes or support the buffer protocol (bytearray, memoryview, numpy array, ...), not {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )));
        }
        Ok(Input::Buffer(view))
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Input::Bytes(b) => b,
            Input::Buffer(v) if v.len == 0 => &[],
            // SAFETY: a buffer obtained with PyBUF_SIMPLE is `len`
            // contiguous bytes at `buf`, valid until released (in drop).
            Input::Buffer(v) => unsafe {
                std::slice::from_raw_parts(v.buf as *const u8, v.len as usize)
            },
        }
    }
}

impl Drop for Input<'_> {
    fn drop(&mut self) {
        if let Input::Buffer(v) = self {
            // SAFETY: obtained by PyObject_GetBuffer, released once. Inputs
            // are dropped with the GIL held (they live in GIL-holding code).
            unsafe { PyBuffer_Release(&mut **v) }
        }
    }
}
