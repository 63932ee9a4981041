//! Waiting without the GIL, in slices, so Ctrl-C gets through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt};

use crate::lock::GilLock;

use crate::error::{Busy, Closed, InvalidOption, to_py};

/// Longest wait without looking at signals: a KeyboardInterrupt is raised
/// within this (plus the interpreter's own latency).
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// Bumped in a child after `fork()` (see `shmq/__init__.py`): handles made
/// under an older generation belong to the parent.
pub(crate) static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) fn generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Called by `os.register_at_fork(after_in_child=...)`.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Refuses a handle made before a `fork()` (it is the parent's).
#[inline]
pub(crate) fn check_fork(made_in: u64) -> PyResult<()> {
    if made_in != generation() {
        return Err(Closed::new_err(
            "this handle was made before fork() and belongs to the parent; open the queue again in the child",
        ));
    }
    Ok(())
}

/// An error made without the GIL (a core error, or a handle closed or
/// busy in another thread), raised as a Python exception once it is back.
#[derive(Debug)]
pub(crate) enum NoGilError {
    Core(shmq::Error),
    Closed(&'static str),
    Busy(String),
}

impl From<shmq::Error> for NoGilError {
    fn from(e: shmq::Error) -> NoGilError {
        NoGilError::Core(e)
    }
}

impl From<NoGilError> for PyErr {
    fn from(f: NoGilError) -> PyErr {
        match f {
            NoGilError::Core(e) => to_py(e),
            NoGilError::Closed(what) => Closed::new_err(format!("{what} is closed")),
            NoGilError::Busy(why) => Busy::new_err(why),
        }
    }
}

/// Seconds (a finite, non-negative float) as a duration.
pub(crate) fn seconds(name: &str, secs: f64) -> PyResult<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(InvalidOption::new_err(format!(
            "invalid option: {name} must be a finite number of seconds >= 0, got {secs}"
        )));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| InvalidOption::new_err(format!("invalid option: {name} is too large: {secs}")))
}

/// The deadline of a `timeout` argument: None waits for ever.
pub(crate) fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) => {
            let d = seconds("timeout", t)?;
            Ok(Some(
                Instant::now().checked_add(d).unwrap_or_else(far_future),
            ))
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 86_400)
}

/// Calls `attempt(state, slice)` without the GIL, holding `lock`, in
/// slices of at most [`SLICE`], checking for signals between them (with
/// the lock given back), until it gives something or `deadline` passes
/// (`Ok(None)`).
pub(crate) fn in_slices<S: Send, T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    lock: &GilLock<S>,
    mut attempt: impl FnMut(&mut S, Duration) -> Result<Option<T>, NoGilError> + Send,
) -> PyResult<Option<T>> {
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                left.min(SLICE)
            }
        };
        let mut state = lock.lock(py);
        if let Some(v) = py.detach(|| attempt(&mut state, slice))? {
            return Ok(Some(v));
        }
        drop(state);
        lock.yield_to_waiters(py);
        py.check_signals()?;
    }
}

/// A `timeout` argument in seconds: an exact float or int without the
/// float object that a general conversion of an int makes (this is on
/// the busy-polling path, `receive(timeout=0)`); anything else real
/// (a numpy scalar, a `Fraction`) as `float()` would take it. Its range is
/// checked by the waits (`seconds`).
pub(crate) fn timeout_seconds(t: &Bound<'_, PyAny>) -> PyResult<f64> {
    if let Ok(f) = t.cast_exact::<PyFloat>() {
        return Ok(f.value());
    }
    if let Ok(i) = t.cast_exact::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(v as f64);
        }
    }
    if t.is_instance_of::<pyo3::types::PyBool>() {
        // A bool is an int to Python, but `timeout=True` is a mistake, not
        // one second.
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "timeout must be a number of seconds or None, not a bool",
        ));
    }
    t.extract::<f64>().map_err(|e| {
        // Only "not a number" is ours to word; anything else (an
        // OverflowError, an exception from `__float__`) goes through.
        if !e.is_instance_of::<pyo3::exceptions::PyTypeError>(t.py()) {
            return e;
        }
        pyo3::exceptions::PyTypeError::new_err(format!(
            "timeout must be a number of seconds or None, not {}",
            t.get_type()
                .name()
                .map_or_else(|_| "?".to_string(), |n| n.to_string())
        ))
    })
}

/// A `deliver_at` argument: an aware `datetime.datetime` (a naive one is
/// refused: its zone is unknown), or Unix seconds, an int or a float (as
/// `time.time()` gives them). A time before the epoch is long past (it
/// publishes at once).
pub(crate) fn deliver_at(at: &Bound<'_, PyAny>) -> PyResult<std::time::SystemTime> {
    use std::time::UNIX_EPOCH;
    let py = at.py();
    let datetime = py.import("datetime")?;
    if at.is_instance(&datetime.getattr("datetime")?)? {
        if at.call_method0("utcoffset")?.is_none() {
            return Err(InvalidOption::new_err(
                "invalid option: deliver_at is a naive datetime, whose zone is unknown: give \
                 an aware one (datetime.now(timezone.utc) + timedelta(minutes=5), \
                 datetime(2026, 12, 7, 18, tzinfo=timezone.utc)) or Unix seconds",
            ));
        }
        let utc = datetime.getattr("timezone")?.getattr("utc")?;
        let epoch = datetime
            .getattr("datetime")?
            .call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
        // Exact, to the microsecond: days, seconds and microseconds.
        let since = at.sub(&epoch)?;
        let micros = since.getattr("days")?.extract::<i64>()? * 86_400_000_000
            + since.getattr("seconds")?.extract::<i64>()? * 1_000_000
            + since.getattr("microseconds")?.extract::<i64>()?;
        return Ok(UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64));
    }
    if at.is_instance_of::<pyo3::types::PyBool>() || at.is_instance(&datetime.getattr("date")?)? {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "deliver_at must be an aware datetime.datetime or Unix seconds, not {}",
            at.get_type().name()?
        )));
    }
    let secs: f64 = at.extract().map_err(|e: PyErr| {
        if !e.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
            return e;
        }
        pyo3::exceptions::PyTypeError::new_err(format!(
            "deliver_at must be an aware datetime.datetime or Unix seconds, not {}",
            at.get_type()
                .name()
                .map_or_else(|_| "?".to_string(), |n| n.to_string())
        ))
    })?;
    if !secs.is_finite() {
        return Err(InvalidOption::new_err(format!(
            "invalid option: deliver_at must be a finite number of Unix seconds, got {secs}"
        )));
    }
    let since = Duration::try_from_secs_f64(secs.max(0.0)).map_err(|_| {
        InvalidOption::new_err(format!(
            "invalid option: deliver_at is too far ahead: {secs}"
        ))
    })?;
    UNIX_EPOCH.checked_add(since).ok_or_else(|| {
        InvalidOption::new_err(format!(
            "invalid option: deliver_at is too far ahead: {secs}"
        ))
    })
}

/// A `timeout` argument, as [`timeout_seconds`] reads it.
pub(crate) struct Seconds(pub f64);

impl<'py> FromPyObject<'_, 'py> for Seconds {
    type Error = PyErr;

    fn extract(ob: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        timeout_seconds(&ob).map(Seconds)
    }
}

/// A count or size argument (`slots`, `max`, `size`, ...): a whole number,
/// not negative, refused with `InvalidOption` naming it otherwise (the
/// plain conversion raised OverflowError for a negative one).
pub(crate) fn whole<T: TryFrom<i64>>(name: &str, v: i64) -> PyResult<T> {
    T::try_from(v).map_err(|_| {
        InvalidOption::new_err(format!(
            "invalid option: {name} must be a whole number >= 0{}, got {v}",
            if v >= 0 { " and not so large" } else { "" }
        ))
    })
}
