//! Status codes: what every fallible call returns ([`shmq_status`]), the
//! error a call fails with before it becomes one ([`CallError`]), and the
//! message that goes with it, kept per thread for [`shmq_last_error`].
//! The boundary that turns a call's result or panic into a status is
//! `boundary.rs`.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};

/// What a call did. `SHMQ_OK` is 0; every other code comes with a message
/// from `shmq_last_error()`. Codes up to `SHMQ_SPILL_FULL` mirror the variants of
/// the Rust `shmq::Error`; the others are the C boundary's own.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum shmq_status {
    /// Success; out-parameters were written.
    SHMQ_OK = 0,
    /// The queue is full and its overflow policy is reject: nothing was
    /// published. Retry later, or consume faster.
    SHMQ_FULL = 1,
    /// A call waited as long as it was allowed to (for a receive with
    /// timeout 0: no message was ready).
    SHMQ_TIMEOUT = 2,
    /// The payload is larger than the queue's slot_size.
    SHMQ_TOO_LARGE = 3,
    /// The file is not a usable shmq queue file (foreign, truncated,
    /// garbled); nothing in it was trusted.
    SHMQ_CORRUPT = 4,
    /// The file was written by a different layout version of shmq.
    SHMQ_INCOMPATIBLE = 5,
    /// No such queue or group.
    SHMQ_NOT_FOUND = 6,
    /// The queue or group already exists.
    SHMQ_EXISTS = 7,
    /// A queue name (`[A-Za-z0-9._-]{1,200}`) or group name
    /// (`[A-Za-z0-9._-]{1,48}`) that is not allowed.
    SHMQ_INVALID_NAME = 8,
    /// An option value that is not allowed (or not available yet).
    SHMQ_INVALID_OPTION = 9,
    /// The lease on a delivery was taken away before it was acknowledged.
    SHMQ_LEASE_EXPIRED = 10,
    /// The producer's claim was aborted (it stalled longer than
    /// unblock_timeout): the message was not published.
    SHMQ_ABORTED = 11,
    /// Held by someone else: the group already has a live consumer, a table
    /// in the queue file is full, or this handle has a reservation pending.
    SHMQ_BUSY = 12,
    /// An operating-system call failed.
    SHMQ_IO = 13,
    /// The dead-letter queue has no room: the message was not
    /// dead-lettered (it stays leased to the consumer until its lease runs
    /// out). Redrive or purge dead letters.
    SHMQ_DLQ_FULL = 14,
    /// The ring is full and so is the spill (its `spill_max_bytes` budget,
    /// or its disk), and the queue's `spill_fallback` is
    /// `SHMQ_OVERFLOW_REJECT`: nothing was published. Consume faster,
    /// raise the budget or free the disk.
    SHMQ_SPILL_FULL = 15,
    /// A required pointer argument was NULL (for a handle: closed, freed or
    /// never opened).
    SHMQ_NULL_ARGUMENT = 100,
    /// An argument is out of range or does not belong to this handle.
    SHMQ_INVALID_ARGUMENT = 101,
    /// A bug in shmq: a Rust panic was caught at the boundary. The handle it
    /// happened on should be freed.
    SHMQ_PANIC = 102,
    /// An error this version of the C API has no code for yet; see
    /// `shmq_last_error()`.
    SHMQ_OTHER = 103,
}

use shmq_status::*;

impl shmq_status {
    /// A static description.
    fn describe(self) -> &'static CStr {
        match self {
            SHMQ_OK => c"ok",
            SHMQ_FULL => c"queue is full",
            SHMQ_TIMEOUT => c"timed out",
            SHMQ_TOO_LARGE => c"payload larger than the queue's slot_size",
            SHMQ_CORRUPT => c"corrupt queue file",
            SHMQ_INCOMPATIBLE => c"queue file of an incompatible layout version",
            SHMQ_NOT_FOUND => c"not found",
            SHMQ_EXISTS => c"already exists",
            SHMQ_INVALID_NAME => c"invalid name",
            SHMQ_INVALID_OPTION => c"invalid option",
            SHMQ_LEASE_EXPIRED => c"lease expired",
            SHMQ_ABORTED => c"claim aborted",
            SHMQ_BUSY => c"busy",
            SHMQ_IO => c"operating-system error",
            SHMQ_DLQ_FULL => c"dead-letter queue is full",
            SHMQ_SPILL_FULL => c"queue and its spill are full",
            SHMQ_NULL_ARGUMENT => c"NULL argument",
            SHMQ_INVALID_ARGUMENT => c"invalid argument",
            SHMQ_PANIC => c"internal error (panic) in shmq",
            SHMQ_OTHER => c"error",
        }
    }

    fn from_code(code: c_int) -> Option<shmq_status> {
        Some(match code {
            0 => SHMQ_OK,
            1 => SHMQ_FULL,
            2 => SHMQ_TIMEOUT,
            3 => SHMQ_TOO_LARGE,
            4 => SHMQ_CORRUPT,
            5 => SHMQ_INCOMPATIBLE,
            6 => SHMQ_NOT_FOUND,
            7 => SHMQ_EXISTS,
            8 => SHMQ_INVALID_NAME,
            9 => SHMQ_INVALID_OPTION,
            10 => SHMQ_LEASE_EXPIRED,
            11 => SHMQ_ABORTED,
            12 => SHMQ_BUSY,
            13 => SHMQ_IO,
            14 => SHMQ_DLQ_FULL,
            15 => SHMQ_SPILL_FULL,
            100 => SHMQ_NULL_ARGUMENT,
            101 => SHMQ_INVALID_ARGUMENT,
            102 => SHMQ_PANIC,
            103 => SHMQ_OTHER,
            _ => return None,
        })
    }
}

/// Why a C call failed, before it becomes a status code and the message
/// of `shmq_last_error` ([`record`](CallError::record)).
#[derive(Debug)]
pub(crate) enum CallError {
    /// The queue said no.
    Shmq(shmq::Error),
    /// A required pointer argument, by name, was NULL.
    Null(&'static str),
    /// A handle argument, by name, was NULL (as it is once closed or freed).
    NullHandle(&'static str),
    /// An argument that cannot be used, and why.
    InvalidArgument(String),
    /// An option that cannot be used, and why.
    InvalidOption(String),
    /// The handle is in use for something else (a pending reservation).
    Busy(&'static str),
    /// Options made for another version of the C ABI, and what to do.
    AbiMismatch(String),
    /// A publish waited its whole timeout for room: what holds the ring.
    StayedFull(String),
}

impl From<shmq::Error> for CallError {
    fn from(e: shmq::Error) -> CallError {
        CallError::Shmq(e)
    }
}

/// The code of a `shmq::Error`.
pub(crate) fn code_of(e: &shmq::Error) -> shmq_status {
    use shmq::Error as E;
    match e {
        E::Full => SHMQ_FULL,
        E::Timeout => SHMQ_TIMEOUT,
        E::TooLarge { .. } => SHMQ_TOO_LARGE,
        E::Corrupt { .. } => SHMQ_CORRUPT,
        E::Incompatible { .. } => SHMQ_INCOMPATIBLE,
        E::NotFound(_) => SHMQ_NOT_FOUND,
        E::Exists(_) => SHMQ_EXISTS,
        E::InvalidName { .. } => SHMQ_INVALID_NAME,
        E::InvalidOption(_) => SHMQ_INVALID_OPTION,
        E::LeaseExpired => SHMQ_LEASE_EXPIRED,
        E::Aborted => SHMQ_ABORTED,
        E::Busy(_) => SHMQ_BUSY,
        E::Io { .. } => SHMQ_IO,
        E::DlqFull(_) | E::DlqTooLarge { .. } => SHMQ_DLQ_FULL,
        E::SpillFull(_) => SHMQ_SPILL_FULL,
        // A batch in part: the status of why the rest did not go in (the
        // message says how many did).
        E::PartlyPublished { cause, .. } => code_of(cause),
        // A redrive in part: likewise (the message says how many went,
        // how many stayed, and which group holds the ring).
        E::PartlyRedriven { cause, .. } => code_of(cause),
        // `shmq::Error` is non_exhaustive: a variant added in core before
        // this boundary learns it still reaches C, with its message.
        _ => SHMQ_OTHER,
    }
}

impl CallError {
    /// Records the message for `shmq_last_error` and returns the code.
    pub(crate) fn record(self) -> shmq_status {
        let (code, msg) = match self {
            // The busy-polling path: no allocation for an empty poll.
            CallError::Shmq(shmq::Error::Timeout) => {
                (SHMQ_TIMEOUT, LastError::Static(c"timed out"))
            }
            CallError::Shmq(e) => (code_of(&e), LastError::owned(e.to_string())),
            CallError::Null(name) => (
                SHMQ_NULL_ARGUMENT,
                LastError::owned(format!("argument `{name}` is NULL")),
            ),
            CallError::NullHandle(name) => (
                SHMQ_NULL_ARGUMENT,
                LastError::owned(format!(
                    "argument `{name}` is NULL (a handle is NULL once closed or freed)"
                )),
            ),
            CallError::InvalidArgument(why) => (SHMQ_INVALID_ARGUMENT, LastError::owned(why)),
            CallError::StayedFull(why) => (
                SHMQ_TIMEOUT,
                LastError::owned(format!("timed out: the queue stayed full: {why}")),
            ),
            CallError::InvalidOption(why) => (
                SHMQ_INVALID_OPTION,
                LastError::owned(format!("invalid option: {why}")),
            ),
            CallError::Busy(why) => (SHMQ_BUSY, LastError::owned(why.to_string())),
            CallError::AbiMismatch(why) => (SHMQ_INCOMPATIBLE, LastError::owned(why)),
        };
        set_last_error(msg);
        code
    }
}

/// The last failure's message on this thread.
enum LastError {
    None,
    Static(&'static CStr),
    Owned(CString),
}

impl LastError {
    fn owned(msg: String) -> LastError {
        // A NUL inside a message would cut it short in C; it cannot come
        // from our messages but may come from a name the user passed.
        let msg = msg.replace('\0', "\\0");
        LastError::Owned(CString::new(msg).unwrap_or_default())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = const { RefCell::new(LastError::None) };
}

fn set_last_error(msg: LastError) {
    // `try_with` fails only while the thread is being torn down.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = msg);
}

/// Records the message of a panic caught at the boundary (its payload's
/// text, `what`) and returns `SHMQ_PANIC`.
pub(crate) fn record_panic(what: &str) -> shmq_status {
    set_last_error(LastError::owned(format!(
        "internal error (panic) in shmq: {what}; please report it"
    )));
    SHMQ_PANIC
}

/// The static description of a status code (`"timed out"`, ...), or
/// `"unknown status code"`. Never NULL; never to be freed.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_status_str(code: c_int) -> *const c_char {
    match shmq_status::from_code(code) {
        Some(status) => status.describe().as_ptr(),
        None => c"unknown status code".as_ptr(),
    }
}

/// The message of the last failed call on this thread (what happened and
/// what to do), or `""` if none failed yet. The string belongs to shmq and
/// stays valid until the next shmq call on this thread; copy it to keep it.
/// Successful calls leave it as it was. It is a whole message that already
/// says what kind of failure it was (`busy: group "g" has a live consumer
/// ...`, `invalid option: ...`): print it alone, not after
/// `shmq_status_str` of the same call, which would say it twice.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| match &*slot.borrow() {
            LastError::None => c"".as_ptr(),
            LastError::Static(s) => s.as_ptr(),
            LastError::Owned(s) => s.as_ptr(),
        })
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
/// `shmq_last_error()` as a Rust string, for tests.
pub(crate) fn last_error() -> String {
    // SAFETY: `shmq_last_error` returns a NUL-terminated string valid
    // until the next call on this thread.
    unsafe { CStr::from_ptr(shmq_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::last_error as last;
    use super::*;
    use crate::boundary::{guard, invalid_argument};

    #[test]
    fn every_code_has_a_string() {
        for code in 0..200 {
            // SAFETY: static NUL-terminated strings.
            let s = unsafe { CStr::from_ptr(shmq_status_str(code)) };
            match shmq_status::from_code(code) {
                Some(st) => {
                    assert_eq!(st as c_int, code);
                    assert_ne!(s.to_bytes(), b"unknown status code");
                }
                None => assert_eq!(s.to_bytes(), b"unknown status code"),
            }
        }
    }

    #[test]
    fn spill_full_has_its_code() {
        let e = shmq::Error::SpillFull("spill_max_bytes of 65536 reached".into());
        assert_eq!(code_of(&e), SHMQ_SPILL_FULL);
        assert_eq!(guard(|| Err(e.into())), SHMQ_SPILL_FULL);
        assert!(last().contains("spill_max_bytes"), "{}", last());
    }

    #[test]
    fn messages_with_nul_survive() {
        assert_eq!(
            guard(|| Err(invalid_argument("a\0b"))),
            SHMQ_INVALID_ARGUMENT
        );
        assert_eq!(last(), "a\\0b");
    }
}
