//! The versions a program checks its header against: the C ABI's
//! (`SHMQ_ABI_VERSION`, `shmq_abi_version`) and the library's
//! (`shmq_version`).

use std::ffi::{CStr, c_char};

/// The version of the C ABI this header describes: the layout of every
/// struct and the signature of every function. It changes when one of
/// them changes incompatibly (a field added, moved or resized), and is the
/// major number of the shared library's SONAME (`libshmq_ffi.so.2`), so a
/// program built against another ABI does not load this library at all.
/// `shmq_abi_version()` is the library's; `shmq_options.abi_version`
/// carries the header's into every call that takes options.
pub const SHMQ_ABI_VERSION: u32 = 3;

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
