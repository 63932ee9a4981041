//! The input as the records of a schedule segment: rebuild, read back.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq_fuzz::rebuild_schedule(data));
