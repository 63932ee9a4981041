//! The input as a spill segment of a queue with a backlog: reopen, drain.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq_fuzz::open_segment(data));
