//! The readiness fd of consumers and producers, as the asyncio loop of
//! `shmq._aio` drives it (`loop.add_reader` on the fd: no runtime here).
//! `Consumer` and `Producer` get the same methods (`fileno`, `_arm`,
//! `_drain`, `_disarm`) from [`readiness_methods!`]; they differ only in
//! how their shared state hands out the core handle (`with_waiter`).

use std::os::fd::AsRawFd;

use pyo3::prelude::*;

use crate::wait::NoGilError;

/// The core handle a readiness call goes to.
pub(crate) enum Waiter<'a> {
    /// Waits for a message.
    Consumer(&'a mut shmq::Consumer),
    /// Waits for room for one message.
    Producer(&'a mut shmq::Producer),
}

impl<'a> Waiter<'a> {
    /// The readiness handle (made by the first call).
    fn readiness(self) -> shmq::Result<&'a shmq::Readiness> {
        match self {
            Waiter::Consumer(c) => c.readiness(),
            Waiter::Producer(p) => p.readiness(),
        }
    }

    /// The readiness handle's fd (made by the first call): the same fd for
    /// the handle's life, closed with it.
    pub(crate) fn fd(self) -> Result<i32, NoGilError> {
        Ok(self.readiness()?.as_raw_fd())
    }

    /// Arms the fd, as the asyncio helpers take it: `(False, None)`, a
    /// message (room) may be there now; `(True, recheck)`, wait for the
    /// fd, at most `recheck` seconds if not None.
    pub(crate) fn arm(self) -> Result<(bool, Option<f64>), NoGilError> {
        let arm = match self {
            Waiter::Consumer(c) => c.arm(),
            Waiter::Producer(p) => p.arm(1),
        };
        Ok(match arm? {
            shmq::Arm::Ready => (false, None),
            shmq::Arm::Waiting { recheck_after } => (true, recheck_after.map(|d| d.as_secs_f64())),
        })
    }

    /// Reads the wake-ups waiting on the fd.
    pub(crate) fn drain(self) -> Result<(), NoGilError> {
        self.readiness()?.drain();
        Ok(())
    }

    /// Takes back an arm that will not be waited for.
    pub(crate) fn disarm(self) -> Result<(), NoGilError> {
        match self {
            Waiter::Consumer(c) => c.disarm(),
            Waiter::Producer(p) => p.disarm(),
        }
        Ok(())
    }
}

/// The readiness methods of a pyclass whose `shared` has
/// `with_waiter(py, f)`, with the docstrings of its `fileno` and `_arm`
/// (what the fd waits for).
macro_rules! readiness_methods {
    (
        $handle:ty,
        fileno: $(#[doc = $fileno_doc:literal])*
        _arm: $(#[doc = $arm_doc:literal])*
    ) => {
        #[pyo3::pymethods]
        impl $handle {
            $(#[doc = $fileno_doc])*
            fn fileno(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<i32> {
                self.shared.with_waiter(py, |w| w.fd())
            }

            $(#[doc = $arm_doc])*
            fn _arm(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<(bool, Option<f64>)> {
                self.shared.with_waiter(py, |w| w.arm())
            }

            /// Internal: reads the wake-ups waiting on the fd.
            fn _drain(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
                self.shared.with_waiter(py, |w| w.drain())
            }

            /// Internal: takes back an arm that will not be waited for.
            fn _disarm(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
                self.shared.with_waiter(py, |w| w.disarm())
            }
        }
    };
}
pub(crate) use readiness_methods;

/// A function of `shmq._aio`, the asyncio side of the async API (the
/// waiting is `loop.add_reader` on the readiness fd: no runtime here).
pub(crate) fn aio<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("shmq._aio")?.getattr(name)
}
