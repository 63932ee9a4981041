//! Status codes, the thread-local last error, the panic boundary and the
//! checks every argument goes through.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

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

/// Why a call failed, before it becomes a code and a message.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The queue said no.
    Shmq(shmq::Error),
    /// A required pointer argument, by name, was NULL.
    Null(&'static str),
    /// A handle argument, by name, was NULL (as it is once closed or freed).
    NullHandle(&'static str),
    /// An argument that cannot be used, and why.
    Invalid(String),
    /// An option that cannot be used, and why.
    Option(String),
    /// The handle is in use for something else (a pending reservation).
    Busy(&'static str),
    /// Options made for another version of the C ABI, and what to do.
    Abi(String),
    /// A publish waited its whole timeout for room: what holds the ring.
    TimedOut(String),
}

impl From<shmq::Error> for Fail {
    fn from(e: shmq::Error) -> Fail {
        Fail::Shmq(e)
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
        E::DlqFull(_) => SHMQ_DLQ_FULL,
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

impl Fail {
    /// Records the message for `shmq_last_error` and returns the code.
    fn record(self) -> shmq_status {
        let (code, msg) = match self {
            // The busy-polling path: no allocation for an empty poll.
            Fail::Shmq(shmq::Error::Timeout) => (SHMQ_TIMEOUT, LastError::Static(c"timed out")),
            Fail::Shmq(e) => (code_of(&e), LastError::owned(e.to_string())),
            Fail::Null(name) => (
                SHMQ_NULL_ARGUMENT,
                LastError::owned(format!("argument `{name}` is NULL")),
            ),
            Fail::NullHandle(name) => (
                SHMQ_NULL_ARGUMENT,
                LastError::owned(format!(
                    "argument `{name}` is NULL (a handle is NULL once closed or freed)"
                )),
            ),
            Fail::Invalid(why) => (SHMQ_INVALID_ARGUMENT, LastError::owned(why)),
            Fail::TimedOut(why) => (
                SHMQ_TIMEOUT,
                LastError::owned(format!("timed out: the queue stayed full: {why}")),
            ),
            Fail::Option(why) => (
                SHMQ_INVALID_OPTION,
                LastError::owned(format!("invalid option: {why}")),
            ),
            Fail::Busy(why) => (SHMQ_BUSY, LastError::owned(why.to_string())),
            Fail::Abi(why) => (SHMQ_INCOMPATIBLE, LastError::owned(why)),
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

/// Runs the body of an exported function: an `Err` becomes its code and
/// message, a panic becomes `SHMQ_PANIC` and never unwinds into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Fail>) -> shmq_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SHMQ_OK,
        Ok(Err(fail)) => fail.record(),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-string payload".into());
            // Dropping a panic payload may itself panic; keep that inside.
            if catch_unwind(AssertUnwindSafe(move || drop(payload))).is_err() {
                // The second payload is leaked rather than dropped.
            }
            set_last_error(LastError::owned(format!(
                "internal error (panic) in shmq: {what}; please report it"
            )));
            SHMQ_PANIC
        }
    }
}

/// Runs a body that has no status to return (a free, a getter); a panic is
/// caught, recorded and replaced by `fallback`.
pub(crate) fn guard_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    let mut out = None;
    let status = guard(|| {
        out = Some(body());
        Ok(())
    });
    match (status, out) {
        (SHMQ_OK, Some(v)) => v,
        _ => fallback,
    }
}

/// Turns a bare `Result` into the boundary's error.
pub(crate) fn invalid(why: impl Into<String>) -> Fail {
    Fail::Invalid(why.into())
}

/// A handle argument: non-NULL and aligned, else an error naming it.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` that nothing else accesses
/// for `'a` (the C contract of a handle: not freed, one thread at a time).
pub(crate) unsafe fn handle<'a, T>(ptr: *mut T, name: &'static str) -> Result<&'a mut T, Fail> {
    if ptr.is_null() {
        return Err(Fail::NullHandle(name));
    }
    if !ptr.is_aligned() {
        return Err(invalid(format!("argument `{name}` is not a valid handle")));
    }
    // SAFETY: non-NULL and aligned; live and unshared per the contract.
    Ok(unsafe { &mut *ptr })
}

/// A shared handle argument (`shmq_queue` may be used by many threads).
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` for `'a`.
pub(crate) unsafe fn handle_ref<'a, T>(ptr: *const T, name: &'static str) -> Result<&'a T, Fail> {
    if ptr.is_null() {
        return Err(Fail::NullHandle(name));
    }
    if !ptr.is_aligned() {
        return Err(invalid(format!("argument `{name}` is not a valid handle")));
    }
    // SAFETY: non-NULL and aligned; live per the contract.
    Ok(unsafe { &*ptr })
}

/// An input struct by pointer; `None` for NULL where NULL means defaults.
///
/// # Safety
/// A non-NULL `ptr` must point to a readable `T`.
pub(crate) unsafe fn input<T: Copy>(ptr: *const T, name: &'static str) -> Result<Option<T>, Fail> {
    if ptr.is_null() {
        return Ok(None);
    }
    if !ptr.is_aligned() {
        return Err(invalid(format!("argument `{name}` is misaligned")));
    }
    // SAFETY: non-NULL, aligned and readable per the contract; `T` is a
    // plain `repr(C)` struct of integers and pointers, valid for any bits.
    Ok(Some(unsafe { ptr.read() }))
}

/// An out-parameter, checked before the call does anything.
pub(crate) fn out<T>(ptr: *mut T, name: &'static str) -> Result<Out<T>, Fail> {
    if ptr.is_null() {
        return Err(Fail::Null(name));
    }
    if !ptr.is_aligned() {
        return Err(invalid(format!("argument `{name}` is misaligned")));
    }
    Ok(Out(ptr))
}

/// The "fill a caller's array" convention of the listing functions
/// (`shmq_groups`, `shmq_dlq_list`): checks `count_out`, `array` (which may
/// be NULL when `capacity` is 0) and `capacity`, then takes a snapshot with
/// `snapshot`, writes its first `min(capacity, n)` items to `array`,
/// converted, and its total length `n` to `count_out`.
///
/// # Safety
/// `array` is NULL or writable for `capacity` elements; `count_out` is
/// NULL or writable.
pub(crate) unsafe fn fill_array<T, C>(
    array: *mut C,
    array_name: &'static str,
    capacity: usize,
    count_out: *mut usize,
    snapshot: impl FnOnce() -> Result<Vec<T>, Fail>,
) -> Result<(), Fail>
where
    for<'a> &'a T: Into<C>,
{
    let count_out = out(count_out, "count_out")?;
    if capacity > 0 {
        out(array, array_name)?;
    }
    if capacity > isize::MAX as usize / std::mem::size_of::<C>().max(1) {
        return Err(invalid(format!("capacity {capacity} is not a size")));
    }
    let items = snapshot()?;
    for (i, item) in items.iter().take(capacity).enumerate() {
        // SAFETY: `i < capacity`; `array` is non-NULL (checked above when
        // capacity > 0), aligned and writable for `capacity` elements per
        // the contract.
        unsafe { array.add(i).write(item.into()) };
    }
    // SAFETY: checked writable out-parameter.
    unsafe { count_out.write(items.len()) };
    Ok(())
}

/// A caller's buffer of `capacity` bytes and the `len_out` that gets the
/// full length: the "copy out" convention of `shmq_dlq_payload` (bytes)
/// and of the name and path getters (`shmq_queue_name`,
/// `shmq_consumer_group`, `shmq_default_dir`, ...: a C string). `buf` may
/// be NULL when `capacity` is 0 (the caller asks for the length only).
/// Made before anything is looked up, so a bad argument is reported as
/// such and nothing is written on failure.
pub(crate) struct OutBuf {
    buf: *mut u8,
    capacity: usize,
    len_out: Out<usize>,
}

impl OutBuf {
    /// Checks `len_out`, `buf` (when `capacity > 0`) and `capacity`.
    pub(crate) fn new(buf: *mut u8, capacity: usize, len_out: *mut usize) -> Result<OutBuf, Fail> {
        let len_out = out(len_out, "len_out")?;
        if capacity > 0 {
            out(buf, "buf")?;
        }
        if capacity > isize::MAX as usize {
            return Err(invalid(format!("capacity {capacity} is not a size")));
        }
        Ok(OutBuf {
            buf,
            capacity,
            len_out,
        })
    }

    /// Writes the first `min(len, capacity)` bytes of `data`, and `len` to
    /// `len_out` (`*len_out > capacity`: `buf` was too small).
    ///
    /// # Safety
    /// `buf` is writable for `capacity` bytes, `len_out` for a `usize`.
    pub(crate) unsafe fn write_bytes(self, data: &[u8]) {
        let n = data.len().min(self.capacity);
        if n > 0 {
            // SAFETY: `buf` is non-NULL (checked since `capacity > 0`) and
            // writable for `capacity >= n` bytes per the contract; `data`
            // is ours, so they do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.buf, n) };
        }
        // SAFETY: checked writable out-parameter.
        unsafe { self.len_out.write(data.len()) };
    }

    /// Writes the first `min(len, capacity - 1)` bytes of `text` and a NUL
    /// (nothing when `capacity` is 0), and `len` (without the NUL) to
    /// `len_out` (`*len_out >= capacity`: `buf` was too small).
    ///
    /// # Safety
    /// As for [`write_bytes`](Self::write_bytes).
    pub(crate) unsafe fn write_text(self, text: &[u8]) {
        if self.capacity > 0 {
            let n = text.len().min(self.capacity - 1);
            // SAFETY: `buf` is non-NULL (checked since `capacity > 0`) and
            // writable for `capacity > n` bytes per the contract; `text` is
            // ours, so they do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), self.buf, n);
                self.buf.add(n).write(0);
            }
        }
        // SAFETY: checked writable out-parameter.
        unsafe { self.len_out.write(text.len()) };
    }
}

/// An optional out-parameter (NULL: the caller does not want it).
pub(crate) fn out_opt<T>(ptr: *mut T, name: &'static str) -> Result<Option<Out<T>>, Fail> {
    if ptr.is_null() {
        Ok(None)
    } else {
        out(ptr, name).map(Some)
    }
}

/// A checked, non-NULL, aligned out-parameter.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Writes the result (the last thing a successful call does).
    ///
    /// # Safety
    /// The pointer must be writable for a `T`, per the C contract.
    pub(crate) unsafe fn write(self, value: T) {
        // SAFETY: non-NULL and aligned (checked in `out`), writable per the
        // contract; `write` does not drop the old bits, which C owns.
        unsafe { self.0.write(value) }
    }
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string that lives for
/// `'a`.
pub(crate) unsafe fn text<'a>(ptr: *const c_char, name: &'static str) -> Result<&'a str, Fail> {
    if ptr.is_null() {
        return Err(Fail::Null(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map_err(|_| {
        Fail::Shmq(shmq::Error::InvalidName {
            name: s.to_string_lossy().into_owned(),
            reason: "a name must be ASCII [A-Za-z0-9._-]",
        })
    })
}

/// A byte-buffer argument: NULL is allowed only with length 0.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that live, unwritten
/// by others, for `'a`.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    name: &'static str,
) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Fail::Null(name));
    }
    if len > isize::MAX as usize {
        return Err(invalid(format!("length of `{name}` ({len}) is not a size")));
    }
    // SAFETY: non-NULL, `len <= isize::MAX`, readable for `len` bytes per
    // the contract; u8 has no alignment or validity requirement.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
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

/// The version of the C ABI this header describes: the layout of every
/// struct and the signature of every function. It changes when one of
/// them changes incompatibly (a field added, moved or resized), and is the
/// major number of the shared library's SONAME (`libshmq_ffi.so.2`), so a
/// program built against another ABI does not load this library at all.
/// `shmq_abi_version()` is the library's; `shmq_options.abi_version`
/// carries the header's into every call that takes options.
pub const SHMQ_ABI_VERSION: u32 = 2;

/// The C ABI version of the library (`SHMQ_ABI_VERSION` of the header it
/// was built with). A program can check it at run time:
/// `shmq_abi_version() == SHMQ_ABI_VERSION`.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_abi_version() -> u32 {
    SHMQ_ABI_VERSION
}

/// The version of the library, `"MAJOR.MINOR.PATCH"`; compare it with the
/// header's `SHMQ_VERSION_STRING` to catch a header/library mismatch.
/// Never NULL; never to be freed.
#[unsafe(no_mangle)]
pub extern "C" fn shmq_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("the crate version contains a NUL"),
        };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        // SAFETY: `shmq_last_error` returns a NUL-terminated string valid
        // until the next call on this thread.
        unsafe { CStr::from_ptr(shmq_last_error()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn panics_become_a_status() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, SHMQ_PANIC);
        assert!(last().contains("boom 42"), "{}", last());
        assert_eq!(guard_or(7, || panic!("again")), 7);
    }

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
        assert_eq!(guard(|| Err(invalid("a\0b"))), SHMQ_INVALID_ARGUMENT);
        assert_eq!(last(), "a\\0b");
    }
}
