//! `shmq.Error` and its subclasses, one per variant of `shmq::Error`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(_shmq, Error, PyException, "Base class of every shmq error.");
create_exception!(
    _shmq,
    Full,
    Error,
    "The ring is full and the queue's overflow policy is reject: nothing was published."
);
create_exception!(
    _shmq,
    Timeout,
    Error,
    "A blocking call waited as long as it was allowed to."
);
create_exception!(
    _shmq,
    TooLarge,
    Error,
    "The payload does not fit in a slot (larger than slot_size)."
);
create_exception!(
    _shmq,
    Corrupt,
    Error,
    "A file is not a usable shmq file; nothing in it was trusted."
);
create_exception!(
    _shmq,
    Incompatible,
    Error,
    "A queue file written by a different layout version of shmq."
);
create_exception!(_shmq, NotFound, Error, "No such queue or group.");
create_exception!(_shmq, Exists, Error, "The queue or group already exists.");
create_exception!(
    _shmq,
    InvalidName,
    Error,
    "A queue or group name that is not allowed."
);
create_exception!(
    _shmq,
    InvalidOption,
    Error,
    "An option or argument value that is not allowed."
);
create_exception!(
    _shmq,
    LeaseExpired,
    Error,
    "The lease on a delivery was taken away before it was acknowledged."
);
create_exception!(
    _shmq,
    Aborted,
    Error,
    "This producer's claim was aborted: the message was not published."
);
create_exception!(
    _shmq,
    DlqFull,
    Error,
    "The dead-letter queue is full: the message was not dead-lettered."
);
create_exception!(
    _shmq,
    SpillFull,
    Error,
    "The spill is full (its budget or its disk) and spill_fallback is reject: nothing was published."
);
create_exception!(
    _shmq,
    Busy,
    Error,
    "A resource is held by someone else (a group's consumer, a table, an open delivery)."
);
create_exception!(_shmq, Io, Error, "An operating-system call failed.");
create_exception!(
    _shmq,
    Closed,
    Error,
    "A closed handle, a finished message, or a handle made before fork() used in the child."
);

/// The Python exception for a core error, with the core's message.
pub(crate) fn to_py(e: shmq::Error) -> PyErr {
    use shmq::Error as E;
    let msg = e.to_string();
    match e {
        E::Full => Full::new_err(msg),
        E::Timeout => Timeout::new_err(msg),
        E::TooLarge { .. } => TooLarge::new_err(msg),
        E::Corrupt { .. } => Corrupt::new_err(msg),
        E::Incompatible { .. } => Incompatible::new_err(msg),
        E::NotFound(_) => NotFound::new_err(msg),
        E::Exists(_) => Exists::new_err(msg),
        E::InvalidName { .. } => InvalidName::new_err(msg),
        E::InvalidOption(_) => InvalidOption::new_err(msg),
        E::LeaseExpired => LeaseExpired::new_err(msg),
        E::Aborted => Aborted::new_err(msg),
        E::DlqFull(_) => DlqFull::new_err(msg),
        E::SpillFull(_) => SpillFull::new_err(msg),
        E::Busy(_) => Busy::new_err(msg),
        E::Io { .. } => Io::new_err(msg),
        _ => Error::new_err(msg),
    }
}

/// `Result` of the core, as a Python result.
pub(crate) trait IntoPy<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for shmq::Result<T> {
    #[inline]
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("Full", py.get_type::<Full>())?;
    m.add("Timeout", py.get_type::<Timeout>())?;
    m.add("TooLarge", py.get_type::<TooLarge>())?;
    m.add("Corrupt", py.get_type::<Corrupt>())?;
    m.add("Incompatible", py.get_type::<Incompatible>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Exists", py.get_type::<Exists>())?;
    m.add("InvalidName", py.get_type::<InvalidName>())?;
    m.add("InvalidOption", py.get_type::<InvalidOption>())?;
    m.add("LeaseExpired", py.get_type::<LeaseExpired>())?;
    m.add("Aborted", py.get_type::<Aborted>())?;
    m.add("DlqFull", py.get_type::<DlqFull>())?;
    m.add("SpillFull", py.get_type::<SpillFull>())?;
    m.add("Busy", py.get_type::<Busy>())?;
    m.add("Io", py.get_type::<Io>())?;
    m.add("Closed", py.get_type::<Closed>())?;
    Ok(())
}
