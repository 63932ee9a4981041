//! Python bindings of shmq: `import shmq` (the `shmq._shmq` extension).
//!
//! Every `unsafe` has a `// SAFETY:` comment; the ownership scheme that
//! lets Python hold core deliveries and reservations is in `consumer.rs`
//! (with `message.rs`) and `producer.rs`, the gated buffers in `buffer.rs`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod buffer;
mod consumer;
mod error;
mod lock;
mod message;
mod producer;
mod queue;
mod readiness;
mod wait;

use pyo3::prelude::*;

// gil_used = true: the module needs the GIL (see `refuse_without_gil`);
// pyo3 (0.28 on) would otherwise declare that it can run without.
#[pymodule(gil_used = true)]
fn _shmq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    refuse_without_gil(m.py())?;
    buffer::init_type(m)?;
    error::register(m)?;
    m.add_class::<queue::Queue>()?;
    m.add_class::<queue::DeadLetters>()?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::Reservation>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<message::Message>()?;
    m.add_class::<message::Batch>()?;
    m.add_class::<message::BatchIter>()?;
    m.add_function(wrap_pyfunction!(wait::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(queue::default_dir, m)?)?;
    m.add("MAX_GROUP_NAME", shmq::MAX_GROUP_NAME)?;
    m.add("MAX_ORDERING_KEY", shmq::MAX_ORDERING_KEY)?;
    m.add("MAX_HEADERS", shmq::MAX_HEADERS)?;
    m.add("MAX_HEADER_NAME", shmq::MAX_HEADER_NAME)?;
    m.add("SLICE_SECONDS", wait::SLICE.as_secs_f64())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// The handles' locks rely on the GIL (`lock.rs`). A free-threaded CPython
/// turns the GIL back on when it imports this module (which declares that
/// it uses the GIL: `gil_used = true` above), unless it was forced off
/// (`PYTHON_GIL=0`, `-X gil=0`): then the import fails instead of running
/// unsound.
fn refuse_without_gil(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    if let Ok(enabled) = sys.getattr("_is_gil_enabled") {
        if !enabled.call0()?.is_truthy()? {
            return Err(pyo3::exceptions::PyImportError::new_err(
                "shmq needs the GIL, which this free-threaded Python runs without \
                 (PYTHON_GIL=0 or -X gil=0): run it with the GIL enabled",
            ));
        }
    }
    Ok(())
}
