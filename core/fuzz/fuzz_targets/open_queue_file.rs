//! The input as a queue file: open it, and if it opens, receive and stat.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmq_fuzz::open_queue_file(data));
