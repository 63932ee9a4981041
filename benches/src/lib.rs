//! criterion micro-benchmarks for shmq's in-process paths (claim/commit,
//! receive, batches, fan-out). The two-process figures come from
//! `shmq bench`; these exist so a regression on one path shows up in
//! review. Run with `cargo bench -p shmq-benches`.
