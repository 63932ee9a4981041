//! The boundary every exported function goes through: its body runs
//! inside [`guard`] (an error becomes its status code and message, a panic
//! becomes `SHMQ_PANIC` and never unwinds into C), and every argument
//! crosses it through one check: handles ([`handle`], [`handle_ref`]),
//! input structs ([`input`]), out-parameters ([`out`], [`out_opt`]),
//! caller's buffers and arrays ([`OutBuf`], [`fill_array`]), strings
//! ([`text`]) and byte buffers ([`bytes`]). A close or free is
//! [`free_handle`].

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::status::{CallError, record_panic, shmq_status};

/// Runs the body of an exported function: an `Err` becomes its code and
/// message, a panic becomes `SHMQ_PANIC` and never unwinds into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), CallError>) -> shmq_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => shmq_status::SHMQ_OK,
        Ok(Err(e)) => e.record(),
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
            record_panic(&what)
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
        (shmq_status::SHMQ_OK, Some(v)) => v,
        _ => fallback,
    }
}

/// The body of a close or free (`shmq_queue_close`, `shmq_producer_free`,
/// `shmq_consumer_free`): takes the handle out of `*handle_ptr`, sets
/// `*handle_ptr` to NULL and drops the handle. `handle_ptr == NULL` (or
/// misaligned) or `*handle_ptr == NULL` is a no-op.
///
/// # Safety
/// `handle_ptr` is NULL or points to NULL or a handle from `Box::into_raw`
/// that was not freed; no other thread uses it.
pub(crate) unsafe fn free_handle<T>(handle_ptr: *mut *mut T) {
    guard_or((), || {
        if handle_ptr.is_null() || !handle_ptr.is_aligned() {
            return;
        }
        // SAFETY: non-NULL, aligned, readable and writable per the contract.
        let h = unsafe { handle_ptr.replace(std::ptr::null_mut()) };
        if !h.is_null() {
            // SAFETY: from `Box::into_raw` per the contract, freed once (the
            // caller's pointer is now NULL).
            drop(unsafe { Box::from_raw(h) });
        }
    })
}

/// An argument that cannot be used (`SHMQ_INVALID_ARGUMENT`), and why.
pub(crate) fn invalid_argument(why: impl Into<String>) -> CallError {
    CallError::InvalidArgument(why.into())
}

/// A handle argument: non-NULL and aligned, else an error naming it.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` that nothing else accesses
/// for `'a` (the C contract of a handle: not freed, one thread at a time).
pub(crate) unsafe fn handle<'a, T>(
    ptr: *mut T,
    name: &'static str,
) -> Result<&'a mut T, CallError> {
    if ptr.is_null() {
        return Err(CallError::NullHandle(name));
    }
    if !ptr.is_aligned() {
        return Err(invalid_argument(format!(
            "argument `{name}` is not a valid handle"
        )));
    }
    // SAFETY: non-NULL and aligned; live and unshared per the contract.
    Ok(unsafe { &mut *ptr })
}

/// A shared handle argument (`shmq_queue` may be used by many threads).
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` for `'a`.
pub(crate) unsafe fn handle_ref<'a, T>(
    ptr: *const T,
    name: &'static str,
) -> Result<&'a T, CallError> {
    if ptr.is_null() {
        return Err(CallError::NullHandle(name));
    }
    if !ptr.is_aligned() {
        return Err(invalid_argument(format!(
            "argument `{name}` is not a valid handle"
        )));
    }
    // SAFETY: non-NULL and aligned; live per the contract.
    Ok(unsafe { &*ptr })
}

/// An input struct by pointer; `None` for NULL where NULL means defaults.
///
/// # Safety
/// A non-NULL `ptr` must point to a readable `T`.
pub(crate) unsafe fn input<T: Copy>(
    ptr: *const T,
    name: &'static str,
) -> Result<Option<T>, CallError> {
    if ptr.is_null() {
        return Ok(None);
    }
    if !ptr.is_aligned() {
        return Err(invalid_argument(format!("argument `{name}` is misaligned")));
    }
    // SAFETY: non-NULL, aligned and readable per the contract; `T` is a
    // plain `repr(C)` struct of integers and pointers, valid for any bits.
    Ok(Some(unsafe { ptr.read() }))
}

/// An out-parameter, checked before the call does anything.
pub(crate) fn out<T>(ptr: *mut T, name: &'static str) -> Result<Out<T>, CallError> {
    if ptr.is_null() {
        return Err(CallError::Null(name));
    }
    if !ptr.is_aligned() {
        return Err(invalid_argument(format!("argument `{name}` is misaligned")));
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
    snapshot: impl FnOnce() -> Result<Vec<T>, CallError>,
) -> Result<(), CallError>
where
    for<'a> &'a T: Into<C>,
{
    let count_out = out(count_out, "count_out")?;
    if capacity > 0 {
        out(array, array_name)?;
    }
    if capacity > isize::MAX as usize / std::mem::size_of::<C>().max(1) {
        return Err(invalid_argument(format!(
            "capacity {capacity} is not a size"
        )));
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
    pub(crate) fn new(
        buf: *mut u8,
        capacity: usize,
        len_out: *mut usize,
    ) -> Result<OutBuf, CallError> {
        let len_out = out(len_out, "len_out")?;
        if capacity > 0 {
            out(buf, "buf")?;
        }
        if capacity > isize::MAX as usize {
            return Err(invalid_argument(format!(
                "capacity {capacity} is not a size"
            )));
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
pub(crate) fn out_opt<T>(ptr: *mut T, name: &'static str) -> Result<Option<Out<T>>, CallError> {
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
pub(crate) unsafe fn text<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<&'a str, CallError> {
    if ptr.is_null() {
        return Err(CallError::Null(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map_err(|_| {
        CallError::Shmq(shmq::Error::InvalidName {
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
) -> Result<&'a [u8], CallError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CallError::Null(name));
    }
    if len > isize::MAX as usize {
        return Err(invalid_argument(format!(
            "length of `{name}` ({len}) is not a size"
        )));
    }
    // SAFETY: non-NULL, `len <= isize::MAX`, readable for `len` bytes per
    // the contract; u8 has no alignment or validity requirement.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes header `index` of `headers` (a listed message's) to two
/// [`OutBuf`]s; `of` names the message for the error when there is no
/// such header.
///
/// # Safety
/// As [`OutBuf::write_bytes`], for both.
pub(crate) unsafe fn write_header(
    headers: &[(String, Vec<u8>)],
    index: usize,
    of: impl FnOnce() -> String,
    name_dest: OutBuf,
    value_dest: OutBuf,
) -> Result<(), CallError> {
    let (name, value) = headers.get(index).ok_or_else(|| {
        invalid_argument(format!(
            "header index {index} of {}, which has {} headers",
            of(),
            headers.len()
        ))
    })?;
    // SAFETY: the caller's contract, passed on.
    unsafe {
        name_dest.write_bytes(name.as_bytes());
        value_dest.write_bytes(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::last_error as last;
    use crate::status::shmq_status::SHMQ_PANIC;

    #[test]
    fn panics_become_a_status() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, SHMQ_PANIC);
        assert!(last().contains("boom 42"), "{}", last());
        assert_eq!(guard_or(7, || panic!("again")), 7);
    }
}
