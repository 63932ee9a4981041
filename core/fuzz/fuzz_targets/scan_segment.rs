//! The input as segment bytes for the spill's reader (no files: fast).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq_fuzz::scan_segment(data));
