//! Helpers for shmq's cross-process tests: spawning workers with bounded
//! waits, and the message encoding the workers share.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Payload of test message `index` from producer `id`: 4 + 8 bytes, padded
/// to `size`.
pub fn encode(id: u32, index: u64, size: usize) -> Vec<u8> {
    let mut v = vec![0u8; size.max(12)];
    v[..4].copy_from_slice(&id.to_le_bytes());
    v[4..12].copy_from_slice(&index.to_le_bytes());
    v
}

/// Producer id and index of a test payload.
pub fn decode(p: &[u8]) -> Option<(u32, u64)> {
    if p.len() < 12 {
        return None;
    }
    Some((
        u32::from_le_bytes(p[..4].try_into().ok()?),
        u64::from_le_bytes(p[4..12].try_into().ok()?),
    ))
}

/// Fills `buf` with large test message `index`: every 8-byte word says
/// the index and its own offset, so a torn or stale record (a word of
/// another message, or one not written) is told by [`large_index`].
pub fn fill_large(buf: &mut [u8], index: u64) {
    for (w, chunk) in buf.chunks_mut(8).enumerate() {
        let word = (index << 40) ^ w as u64 ^ 0x5a5a_5a5a;
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
}

/// The index of a large test message if every word of it is whole and
/// its own (see [`fill_large`]), else `None`.
pub fn large_index(buf: &[u8]) -> Option<u64> {
    let first = u64::from_le_bytes(buf.get(..8)?.try_into().ok()?);
    let index = (first ^ 0x5a5a_5a5a) >> 40;
    buf.chunks(8)
        .enumerate()
        .all(|(w, chunk)| {
            let word = (index << 40) ^ w as u64 ^ 0x5a5a_5a5a;
            chunk == &word.to_le_bytes()[..chunk.len()]
        })
        .then_some(index)
}

pub mod chaos;

/// A small deterministic generator (xorshift; no dependency needed for
/// "random" kill points). Seed it with anything but 0.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A child process that is killed if still running when dropped.
pub struct Worker {
    child: Child,
    name: String,
}

impl Worker {
    /// Starts `exe args…` with stdout piped.
    pub fn spawn(exe: &str, args: &[&str]) -> Worker {
        let child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {exe}: {e}"));
        Worker {
            child,
            name: format!("{exe} {}", args.join(" ")),
        }
    }

    /// Starts `exe args…` with `SHMQ_FAULT=fault` (a named fault point
    /// of the library's `fault-points` feature: the process kills or stops
    /// itself there), stdout and stderr piped.
    pub fn spawn_faulty(exe: &str, args: &[&str], fault: &str) -> Worker {
        let child = Command::new(exe)
            .args(args)
            .env("SHMQ_FAULT", fault)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {exe}: {e}"));
        Worker {
            child,
            name: format!("SHMQ_FAULT={fault} {exe} {}", args.join(" ")),
        }
    }

    /// Starts `exe args…` (stdout piped) under a seccomp filter that
    /// refuses `membarrier(2)` with EPERM, as some container profiles do:
    /// the process cannot make the heavy fence of the asymmetric commit.
    /// The filter is checked in the child before the exec (a membarrier
    /// query must fail), and seccomp filters are kept across exec.
    pub fn spawn_fenceless(exe: &str, args: &[&str]) -> Worker {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: the closure runs in the forked child before exec and
        // makes only async-signal-safe system calls (prctl, syscall) on
        // memory of its own stack.
        unsafe { cmd.pre_exec(refuse_membarrier) };
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {exe} without membarrier: {e}"));
        Worker {
            child,
            name: format!("(no membarrier) {exe} {}", args.join(" ")),
        }
    }

    /// Waits (within `timeout`) for a child started by
    /// [`spawn_faulty`](Self::spawn_faulty) to die of SIGKILL at fault
    /// point `point`; returns its stdout. Panics if it exited otherwise
    /// or died elsewhere.
    pub fn died_at(mut self, point: &str, timeout: Duration) -> String {
        use std::os::unix::process::ExitStatusExt;
        let mut out = self.child.stdout.take();
        let mut err = self.child.stderr.take();
        let reader = std::thread::spawn(move || {
            let (mut o, mut e) = (String::new(), String::new());
            if let Some(x) = out.as_mut() {
                let _ = std::io::Read::read_to_string(x, &mut o);
            }
            if let Some(x) = err.as_mut() {
                let _ = std::io::Read::read_to_string(x, &mut e);
            }
            (o, e)
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("{}: still running after {timeout:?}; killed", self.name);
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let (o, e) = reader.join().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "{}: expected to die of SIGKILL at {point}, got {status}\nstdout:\n{o}\nstderr:\n{e}",
            self.name
        );
        assert!(
            e.contains(&format!("shmq fault point {point}")),
            "{}: died, but not at {point}:\n{e}",
            self.name
        );
        o
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stdout lines until one equals `line`, within `timeout`.
    pub fn wait_for_line(&mut self, line: &str, timeout: Duration) {
        let out = self.child.stdout.take().expect("stdout");
        let want = line.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut l = String::new();
            loop {
                l.clear();
                match r.read_line(&mut l) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(false);
                        return;
                    }
                    Ok(_) if l.trim_end() == want => {
                        let _ = tx.send(true);
                        // Keep draining so the child never blocks on a pipe.
                        let _ = std::io::copy(&mut r, &mut std::io::sink());
                        return;
                    }
                    Ok(_) => {}
                }
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(true) => {}
            _ => panic!("{}: did not print {line:?} within {timeout:?}", self.name),
        }
    }

    /// Reads the child's whole stdout on a thread (until it exits or is
    /// killed); join the handle for the text.
    pub fn read_all(&mut self) -> std::thread::JoinHandle<String> {
        let mut out = self.child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        })
    }

    /// Whether the child has exited (and reaps it).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit within `timeout`; returns its stdout.
    /// Panics (after killing it) if it does not exit in time or fails.
    pub fn finish(mut self, timeout: Duration) -> String {
        let mut out = self.child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = std::io::Read::read_to_string(o, &mut s);
            }
            s
        });
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => {
                    let s = reader.join().unwrap();
                    assert!(status.success(), "{} failed: {status}\n{s}", self.name);
                    return s;
                }
                None if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("{}: still running after {timeout:?}; killed", self.name);
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The path as a `&str` (test dirs are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Installs a seccomp filter on this process that makes `membarrier(2)`
/// fail with EPERM (x86-64; other architectures' calls are allowed), then
/// checks that it does. For [`Worker::spawn_fenceless`]'s child.
fn refuse_membarrier() -> std::io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut filter = [
        // seccomp_data.arch (offset 4): not x86-64, allow everything.
        insn(LD_W_ABS, 0, 0, 4),
        insn(JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        // seccomp_data.nr (offset 0): membarrier, EPERM.
        insn(LD_W_ABS, 0, 0, 0),
        insn(JEQ_K, 0, 1, libc::SYS_membarrier as u32),
        insn(RET_K, 0, 0, RET_EPERM),
        insn(RET_K, 0, 0, RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments, then with a pointer to a
    // filter program that outlives the call (the kernel copies it).
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        // MEMBARRIER_CMD_QUERY (0) must now be refused.
        if libc::syscall(libc::SYS_membarrier, 0, 0, 0) != -1 {
            return Err(std::io::Error::other("membarrier still allowed"));
        }
    }
    Ok(())
}
