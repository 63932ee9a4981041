//! `shmq.Error` and its subclasses, one per variant of `shmq::Error`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(shmq, Error, PyException, "Base class of every shmq error.");
create_exception!(
    shmq,
    Full,
    Error,
    "The ring is full and the queue's overflow policy is reject: nothing was published."
);
create_exception!(
    shmq,
    Timeout,
    Error,
    "A blocking call waited as long as it was allowed to."
);
create_exception!(
    shmq,
    TooLarge,
    Error,
    "The message is larger than the queue's max_message_size."
);
create_exception!(
    shmq,
    Corrupt,
    Error,
    "A file is not a usable shmq file; nothing in it was trusted."
);
create_exception!(
    shmq,
    Incompatible,
    Error,
    "A queue file written by a different layout version of shmq."
);
create_exception!(shmq, NotFound, Error, "No such queue or group.");
create_exception!(shmq, Exists, Error, "The queue or group already exists.");
create_exception!(
    shmq,
    InvalidName,
    Error,
    "A queue or group name that is not allowed."
);
create_exception!(
    shmq,
    InvalidOption,
    Error,
    "An option or argument value that is not allowed."
);
create_exception!(
    shmq,
    LeaseExpired,
    Error,
    "The lease on a delivery was taken away before it was acknowledged."
);
create_exception!(
    shmq,
    Aborted,
    Error,
    "This producer's claim was aborted: the message was not published."
);
create_exception!(
    shmq,
    DlqFull,
    Error,
    "The dead-letter queue is full: the message was not dead-lettered."
);
create_exception!(
    shmq,
    SpillFull,
    Error,
    "The spill is full (its budget or its disk) and spill_fallback is reject: nothing was published."
);
create_exception!(
    shmq,
    Busy,
    Error,
    "A resource is held by someone else (a group's consumer, a table, an open delivery)."
);
create_exception!(shmq, Io, Error, "An operating-system call failed.");
create_exception!(
    shmq,
    Closed,
    Error,
    "A closed handle, a finished message, or a handle made before fork() used in the child."
);

/// The Python exception for a core error, with the core's message.
pub(crate) fn to_py(e: shmq::Error) -> PyErr {
    use shmq::Error as E;
    let msg = e.to_string();
    if let E::PartlyRedriven {
        redriven,
        left,
        cause,
        ..
    } = e
    {
        // The class of why the rest stayed (Timeout, Full, SpillFull),
        // with the whole message and the counts on it.
        let err = to_py(*cause);
        Python::attach(|py| {
            let v = err.value(py);
            let _ = v.setattr("args", (msg,));
            let _ = v.setattr("redriven", redriven);
            let _ = v.setattr("left", left);
        });
        return err;
    }
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
        E::DlqFull(_) | E::DlqTooLarge { .. } => DlqFull::new_err(msg),
        E::SpillFull(_) => SpillFull::new_err(msg),
        E::Busy(_) => Busy::new_err(msg),
        E::Io { .. } => Io::new_err(msg),
        _ => Error::new_err(msg),
    }
}

/// The exception of a `publish_many` that stopped part-way (or before the
/// first message): `published` (how many of its first messages went in)
/// and `first_seq` (the first one's seq, None if none did) on it, and,
/// where some went in, a message that says so, so that a caller retries
/// only the rest.
pub(crate) fn partly_published(
    py: Python<'_>,
    e: PyErr,
    first_seq: Option<u64>,
    published: usize,
    total: usize,
) -> PyErr {
    let v = e.value(py);
    if published > 0 {
        let why = if e.is_instance_of::<Full>(py) {
            "the queue is full (overflow=reject)".to_string()
        } else if e.is_instance_of::<Timeout>(py) {
            "the queue stayed full until the timeout".to_string()
        } else {
            v.str().map(|s| s.to_string()).unwrap_or_default()
        };
        let msg = format!(
            "only {published} of the {total} messages were published (from seq {}); the other \
             {} were not, because {why}: retry only those",
            first_seq.unwrap_or_default(),
            total - published
        );
        let _ = v.setattr("args", (msg,));
    }
    let _ = v.setattr("published", published);
    let _ = v.setattr("first_seq", first_seq);
    e
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
    let base = py.get_type::<Error>();
    // Set on the exception of a publish_many that stopped (see
    // `partly_published`); None on every other error.
    base.setattr("published", py.None())?;
    base.setattr("first_seq", py.None())?;
    // Set on the exception of a redrive that left keyed dead letters
    // behind (`to_py`); None on every other error.
    base.setattr("redriven", py.None())?;
    base.setattr("left", py.None())?;
    m.add("Error", base)?;
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
