//! What the CLI's test files share: running `shmq` in a private queue
//! directory, with every wait bounded.
#![allow(dead_code)] // each test file uses its own part of it

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

pub fn shmq(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(SHMQ)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = shmq(dir, args);
    assert!(
        out.status.success(),
        "shmq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits for a child with a bound, killing it past the bound. Its piped
/// stdout and stderr are drained as it runs, so it never blocks on a full
/// pipe.
pub fn finish(mut child: std::process::Child, timeout: Duration) -> Output {
    use std::io::Read;
    fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Whether the system tool `name` (tmux, prometheus, promtool) runs. When
/// it does not, the test that needs it is skipped with a line on stderr,
/// unless `SHMQ_REQUIRE_TOOLS` is set (CI sets it, and installs them), in
/// which case it fails.
pub fn have_tool(name: &str) -> bool {
    let runs = Command::new(name)
        .arg(if name == "tmux" { "-V" } else { "--version" })
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        assert!(
            std::env::var_os("SHMQ_REQUIRE_TOOLS").is_none(),
            "{name} is needed (SHMQ_REQUIRE_TOOLS is set): install it (.ci/run does, with apt-get)"
        );
        eprintln!("skipped: {name} is not installed");
    }
    runs
}

/// Calls `f` until it returns `Ok`, every 100 ms, failing the test with
/// `what` and the last `Err` it gave past `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: not seen within {timeout:?}; last:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Messages flowing in the background: `tick` runs every `every` in a
/// thread until the `Load` is dropped (or `tick` returns false), which
/// stops and joins it, passing on a panic of the thread.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(every: Duration, mut tick: impl FnMut() -> bool + Send + 'static) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && tick() {
                std::thread::sleep(every);
            }
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let failed = self.thread.take().is_some_and(|t| t.join().is_err());
        if failed && !std::thread::panicking() {
            panic!("the load thread panicked");
        }
    }
}
