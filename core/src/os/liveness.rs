//! Whether another process that shares a queue still lives, asked through
//! the kernel's record locks, so that the answer holds across PID
//! namespaces (containers): a pid means nothing outside its namespace, and
//! a process in another one can be neither signalled nor looked up in
//! `/proc`.
//!
//! Each process has a **liveness key**: a 47-bit hash of its PID
//! namespace's identity (the device and inode of `/proc/self/ns/pid`), its
//! pid and its start time, with the low two bits clear and never 0. The key
//! is what the queue file's records store beside a pid (`owner_key`,
//! `holder_key`, a dedup entry's PENDING word). Every handle that maps a
//! queue file holds an open-file-description read lock (`F_OFD_SETLK`,
//! `F_RDLCK`) on one byte of that file at `BASE + key / 4` — far past its
//! end; a lock there changes no byte. The kernel drops the lock when the
//! last descriptor of that open file description is closed: when the
//! process exits or is killed, wherever it runs. So "is key K alive" is
//! "does anyone hold a lock on byte `BASE + K / 4`" (`F_OFD_GETLK` with a
//! write lock: any read lock conflicts with it): one system call, exact in
//! every namespace that sees the file (the lock is on the inode), as fast
//! as a death can be seen.
//!
//! Read locks of several handles of one process on the same byte do not
//! conflict, and a process asks about itself without a system call.
//! What it does not see: a child forked (without exec) from a process that
//! had the queue open shares that open file description, so the parent's
//! key stays locked until the child exits too (the descriptors are
//! close-on-exec, so an exec drops them). A filesystem without record locks
//! (some network and FUSE filesystems) fails the lock at open with a clear
//! error: shmq's files belong in `/dev/shm` or on a local disk.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};

/// First byte of the lock range: past any queue file (`2^61`), so that the
/// bytes locked are never bytes of the file.
const BASE: i64 = 1 << 61;
/// Keys are hashed into `2^45` bytes (`key / 4 < 2^45`), so that a key
/// and a group index fit in one dead-letter state word
/// (`protocol::dead_letter_entry::deliverer`); two processes of a queue
/// share a byte with odds of 2^-45 per pair.
const KEY_BITS: u32 = 47;

/// This process's liveness key (see the module doc), computed once per
/// process (again after a fork: the pid is part of it).
pub(crate) fn my_key() -> u64 {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    static CACHED_PID: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id() as u64;
    // Relaxed: both words describe this process; a thread that sees a
    // stale pair recomputes the same value.
    if CACHED_PID.load(Ordering::Relaxed) == pid {
        let k = CACHE.load(Ordering::Relaxed);
        if k != 0 {
            return k;
        }
    }
    let k = key_of(
        namespace_id(),
        pid as u32,
        super::process::start_time(pid as u32),
    );
    CACHE.store(k, Ordering::Relaxed);
    CACHED_PID.store(pid, Ordering::Relaxed);
    k
}

/// The key of process `pid` started at `start` in the PID namespace `ns`.
pub(crate) fn key_of(ns: u64, pid: u32, start: u64) -> u64 {
    // splitmix64 over the three: well spread (see `KEY_BITS`).
    let mut x = ns ^ (pid as u64).rotate_left(32) ^ start.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let k = (x & ((1u64 << KEY_BITS) - 1)) & !3;
    if k == 0 { 4 } else { k }
}

/// This process's PID namespace: the device and inode of
/// `/proc/self/ns/pid`, 0 where `/proc` cannot tell (then every process
/// of the host is taken to share one namespace).
pub(crate) fn namespace_id() -> u64 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(m) => m.dev().rotate_left(32) ^ m.ino(),
        Err(_) => 0,
    }
}

fn lock_at(key: u64) -> i64 {
    BASE + (key >> 2) as i64
}

fn flock(kind: libc::c_short, key: u64) -> libc::flock {
    // SAFETY: `flock` is plain data; all-zero is a valid value of it
    // (l_pid 0, as F_OFD_* require).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = lock_at(key);
    fl.l_len = 1;
    fl
}

/// Holds this process's liveness lock on `file` (a queue file), for as
/// long as this open file description lives.
pub(crate) fn hold(file: &File) -> std::io::Result<()> {
    let fl = flock(libc::F_RDLCK as libc::c_short, my_key());
    // SAFETY: F_OFD_SETLK reads the `flock` we pass by pointer, which
    // lives across the call; the fd is open (borrowed from `file`).
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if r == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the process whose key is `key` (and, in its own namespace,
/// whose pid is `pid`) still has the queue of `file` open. Key 0 is a
/// record being written (its owner is between two stores): alive if the
/// pid exists in our namespace, and also if it cannot be seen from here.
pub(crate) fn alive(file: &File, pid: u32, key: u64) -> bool {
    if key == 0 {
        return pid != 0;
    }
    if key == my_key() {
        return true;
    }
    let mut fl = flock(libc::F_WRLCK as libc::c_short, key);
    // SAFETY: F_OFD_GETLK reads and writes the `flock` we pass by
    // pointer, which lives across the call; the fd is open.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if r == -1 {
        // Cannot tell (no record locks here): never call a live process
        // dead on a guess; a pid of our namespace is asked the old way.
        return super::process::alive(pid, 0);
    }
    fl.l_type != libc::F_UNLCK as libc::c_short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_nonzero_with_clear_low_bits_and_differ() {
        let a = key_of(1, 100, 5);
        let b = key_of(1, 101, 5);
        let c = key_of(2, 100, 5);
        let d = key_of(1, 100, 6);
        for k in [a, b, c, d, my_key()] {
            assert_ne!(k, 0);
            assert_eq!(k & 3, 0);
            assert!(k < 1 << KEY_BITS);
        }
        assert!(a != b && a != c && a != d);
        assert_eq!(my_key(), my_key());
    }

    #[test]
    fn a_held_key_is_alive_and_a_closed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let other_key = key_of(7, 4242, 1);
        let checker = File::open(&path).unwrap();
        assert!(!alive(&checker, 4242, other_key));
        // Another open file description stands in for another process.
        let holder = std::fs::OpenOptions::new().read(true).open(&path).unwrap();
        let fl = flock(libc::F_RDLCK as libc::c_short, other_key);
        // SAFETY: as in `hold`: the `flock` outlives the call, the fd is
        // open.
        let r = unsafe { libc::fcntl(holder.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
        assert_eq!(r, 0);
        assert!(alive(&checker, 4242, other_key));
        assert!(!alive(&checker, 4242, key_of(7, 4243, 1)));
        drop(holder);
        assert!(!alive(&checker, 4242, other_key));
        // Our own key: alive without asking; our own lock coexists with
        // another handle's.
        hold(&checker).unwrap();
        let second = File::open(&path).unwrap();
        hold(&second).unwrap();
        assert!(alive(&checker, 1, my_key()));
        // The file's bytes are untouched.
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }
}
