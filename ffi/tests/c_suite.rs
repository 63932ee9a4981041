//! Builds the C tests in `tests/c/` with the system C compiler
//! (`-std=c11 -Wall -Wextra -Wpedantic -Werror`) against the library this
//! `cargo test` just built, and runs them under AddressSanitizer and
//! UndefinedBehaviorSanitizer (leak checking on), and linked statically
//! without sanitizers. The cross-process
//! tests pair a C producer with a Rust consumer and a Rust producer with a
//! C consumer through one queue file.
//!
//! The C++ suite (`tests/cpp/*.cpp`, over the header-only
//! `include/shmq.hpp`) is built the same way with the system C++ compiler
//! (`-std=c++17` and the same warnings, plus a few stricter ones) and run
//! under the same sanitizers.
//!
//! A missing C or C++ compiler fails these tests: nothing is skipped
//! silently.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use shmq::{ConsumerOptions, Meta, Options, Queue, Start};

/// `target/<profile>`, with `libshmq_ffi.{so,a}` freshly built there.
///
/// `cargo test` builds the library's cdylib and staticlib too, but only
/// copies them up to `target/<profile>` when it recompiles the crate; so
/// the suite asks cargo (the one running it) for an up-to-date build once.
fn lib_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary has a path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("tests run from target/<profile>/deps")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "shmq-ffi", "--lib"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target) = dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        let out = cmd.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "building libshmq_ffi failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for lib in ["libshmq_ffi.so", "libshmq_ffi.a"] {
            assert!(
                dir.join(lib).exists(),
                "{} is missing after cargo build",
                dir.join(lib).display()
            );
        }
        dir
    })
    .clone()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn build_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-tests");
    std::fs::create_dir_all(&dir).expect("the build dir can be made");
    dir
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

const WARNINGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"];
const SANITIZERS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
];
/// What the Rust staticlib needs from the system (`--print native-static-libs`).
const STATIC_DEPS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    /// `-lshmq_ffi` (the .so) with an rpath, under ASan + UBSan.
    SharedSanitized,
    /// `libshmq_ffi.a`, no sanitizer.
    Static,
}

/// Compiles `tests/c/<src>.c` into the build dir; panics with the
/// compiler's output on failure.
fn compile(src: &str, link: Link) -> PathBuf {
    let lib = lib_dir();
    let suffix = match link {
        Link::SharedSanitized => "asan",
        Link::Static => "static",
    };
    let out = build_dir().join(format!("{src}-{suffix}"));
    let mut cmd = Command::new(cc());
    cmd.args(WARNINGS).arg("-g").arg("-O1");
    cmd.arg("-I").arg(repo().join("include"));
    cmd.arg(repo().join("tests/c").join(format!("{src}.c")));
    cmd.arg("-o").arg(&out);
    match link {
        Link::SharedSanitized => {
            cmd.args(SANITIZERS);
            cmd.arg("-L").arg(&lib).arg("-lshmq_ffi");
            cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
            cmd.arg("-lpthread");
        }
        Link::Static => {
            cmd.arg(lib.join("libshmq_ffi.a"));
            cmd.args(STATIC_DEPS);
        }
    }
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {:?}: {e}", cc()));
    assert!(
        output.status.success(),
        "compiling tests/c/{src}.c failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn cxx() -> String {
    std::env::var("CXX").unwrap_or_else(|_| "c++".into())
}

/// The C warnings' C++ counterpart, and what a strict user of the header
/// may turn on: it must compile cleanly under all of them.
const CXX_WARNINGS: &[&str] = &[
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-Wshadow",
    "-Wconversion",
    "-Wsign-conversion",
    "-Wold-style-cast",
    "-Wnon-virtual-dtor",
];

/// Compiles `tests/cpp/<src>.cpp` into the build dir, linked against
/// `libshmq_ffi.so` under ASan + UBSan (and libstdc++'s assertions);
/// panics with the compiler's output on failure.
fn compile_cpp(src: &str) -> PathBuf {
    let lib = lib_dir();
    let out = build_dir().join(format!("{src}-asan"));
    let mut cmd = Command::new(cxx());
    cmd.args(CXX_WARNINGS).arg("-g").arg("-O1");
    cmd.arg("-D_GLIBCXX_ASSERTIONS");
    cmd.arg("-I").arg(repo().join("include"));
    cmd.arg(repo().join("tests/cpp").join(format!("{src}.cpp")));
    cmd.arg("-o").arg(&out);
    cmd.args(SANITIZERS);
    cmd.arg("-L").arg(&lib).arg("-lshmq_ffi");
    cmd.arg(format!("-Wl,-rpath,{}", lib.display()));
    cmd.arg("-lpthread");
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler {:?}: {e}", cxx()));
    assert!(
        output.status.success(),
        "compiling tests/cpp/{src}.cpp failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// The environment of a sanitized program: leaks checked, every finding
/// fatal.
fn sanitizer_env(cmd: &mut Command) -> &mut Command {
    cmd.env(
        "ASAN_OPTIONS",
        "detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86",
    )
    .env(
        "UBSAN_OPTIONS",
        "halt_on_error=1:print_stacktrace=1:exitcode=87",
    )
}

/// Runs `cmd` to completion or kills it after `limit`; returns its output.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out_pipe = child.stdout.take().expect("piped");
    let mut err_pipe = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_reader.join().expect("reader"),
        stderr: err_reader.join().expect("reader"),
    }
}

/// Runs a C test program and checks that it passed every check.
fn run_suite(binary: &Path, wrapper: Option<&[&str]>) {
    let mut cmd = match wrapper {
        Some(w) => {
            let mut c = Command::new(w[0]);
            c.args(&w[1..]).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    sanitizer_env(&mut cmd);
    let out = run(&mut cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(" passed, 0 failed"),
        "{} failed ({}):\n{stdout}\n{stderr}",
        binary.display(),
        out.status
    );
    println!(
        "{}: {}",
        binary.display(),
        stdout.lines().last().unwrap_or("")
    );
}

#[test]
fn basic_under_asan_and_ubsan() {
    run_suite(&compile("test_basic", Link::SharedSanitized), None);
}

#[test]
fn errors_under_asan_and_ubsan() {
    run_suite(&compile("test_errors", Link::SharedSanitized), None);
}

#[test]
fn deliveries_under_asan_and_ubsan() {
    run_suite(&compile("test_delivery", Link::SharedSanitized), None);
}

#[test]
fn spill_under_asan_and_ubsan() {
    run_suite(&compile("test_spill", Link::SharedSanitized), None);
}

#[test]
fn journal_under_asan_and_ubsan() {
    run_suite(&compile("test_journal", Link::SharedSanitized), None);
}

#[test]
fn ordering_keys_and_headers_under_asan_and_ubsan() {
    run_suite(&compile("test_envelope", Link::SharedSanitized), None);
}

#[test]
fn readiness_fds_under_asan_and_ubsan() {
    run_suite(&compile("test_async", Link::SharedSanitized), None);
}

/// The C++ API (`include/shmq.hpp`): `tests/cpp/test_cpp.cpp`.
#[test]
fn cpp_under_asan_and_ubsan() {
    run_suite(&compile_cpp("test_cpp"), None);
}

/// Linked against `libshmq_ffi.a` with the system libraries the README
/// lists. (Not under valgrind: rustix, which core uses for system calls,
/// reads the vDSO's ELF header from the auxiliary vector, a page valgrind
/// does not map, so any process crashes there before shmq code runs:
/// rustix issue 1559. ASan/UBSan/LSan above cover the same ground.)
#[test]
fn statically_linked() {
    for src in [
        "test_basic",
        "test_errors",
        "test_delivery",
        "test_spill",
        "test_journal",
        "test_envelope",
        "test_async",
    ] {
        run_suite(&compile(src, Link::Static), None);
    }
}

fn cross_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| compile("cross", Link::SharedSanitized))
}

const CROSS_COUNT: u64 = 5000;

/// A C process publishes; this Rust process consumes, concurrently.
#[test]
fn c_producer_feeds_rust_consumer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().dir(dir.path()).slots(256).slot_size(64);
    let name = format!("c-to-rust-{}", std::process::id());
    let queue = Queue::create(&name, &opts).expect("create");
    let mut consumer = queue
        .consumer("rust", ConsumerOptions::new().start(Start::Earliest))
        .expect("consumer");
    let mut cmd = Command::new(cross_binary());
    cmd.arg("produce")
        .arg(dir.path())
        .arg(&name)
        .arg(CROSS_COUNT.to_string());
    sanitizer_env(&mut cmd);
    let producer = std::thread::spawn(move || run(&mut cmd, Duration::from_secs(60)));
    for i in 0..CROSS_COUNT {
        let msg = consumer
            .receive_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        assert_eq!(msg.payload(), format!("c-msg-{i}").as_bytes());
        assert_eq!((msg.seq(), msg.type_id(), msg.correlation_id()), (i, 7, i));
    }
    let out = producer.join().expect("the producer thread");
    assert!(
        out.status.success(),
        "C producer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(consumer.try_receive().expect("poll").is_none());
}

/// This Rust process publishes; a C process consumes, concurrently.
#[test]
fn rust_producer_feeds_c_consumer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options::new().dir(dir.path()).slots(256).slot_size(64);
    let name = format!("rust-to-c-{}", std::process::id());
    let queue = Queue::create(&name, &opts).expect("create");
    queue
        .create_group("c", Start::Earliest)
        .expect("group before the consumer runs");
    let mut cmd = Command::new(cross_binary());
    cmd.arg("consume")
        .arg(dir.path())
        .arg(&name)
        .arg("c")
        .arg(CROSS_COUNT.to_string());
    sanitizer_env(&mut cmd);
    let consumer = std::thread::spawn(move || run(&mut cmd, Duration::from_secs(60)));
    let mut producer = queue.producer().expect("producer");
    for i in 0..CROSS_COUNT {
        producer
            .publish_with(
                format!("rust-msg-{i}").as_bytes(),
                &Meta::new().type_id(9).correlation_id(i),
            )
            .expect("publish");
    }
    let out = consumer.join().expect("the consumer thread");
    assert!(
        out.status.success(),
        "C consumer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = (0..CROSS_COUNT).map(|i| format!("rust-msg-{i}")).collect();
    assert_eq!(lines, expected);
}
