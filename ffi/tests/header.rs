//! `include/shmq.h` is what the pinned cbindgen generates from this crate
//! (CI fails on drift), and its version macros are Cargo.toml's version.
//!
//! `SHMQ_BLESS=1 cargo test --release -p shmq-ffi --test header` rewrites
//! the header.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("..").join("include").join("shmq.h")
}

/// The version macros, from this crate's (the workspace's) version.
fn version_macros() -> String {
    format!(
        "\n#define SHMQ_VERSION_MAJOR {}\n#define SHMQ_VERSION_MINOR {}\n#define SHMQ_VERSION_PATCH {}\n#define SHMQ_VERSION_STRING \"{}\"\n",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate() -> String {
    let dir = crate_dir();
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml is readable");
    config.after_includes = Some(version_macros());
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

/// The first line where two texts differ, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  checked in: {x}\n  generated:  {y}", i + 1);
        }
    }
    format!(
        "one is a prefix of the other ({} vs {} lines)",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn header_matches_the_crate() {
    let fresh = generate();
    let path = header_path();
    if std::env::var_os("SHMQ_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("include/shmq.h is writable");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/shmq.h differs from what cbindgen generates from ffi/src \
         (rerun with SHMQ_BLESS=1 to rewrite it): {}",
        first_difference(&checked_in, &fresh)
    );
}

fn macro_value(header: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} is not defined in include/shmq.h"))
        .trim()
        .to_string()
}

/// The version of the workspace, read from the root Cargo.toml itself.
fn workspace_version() -> String {
    let root = crate_dir().join("..").join("Cargo.toml");
    let text = std::fs::read_to_string(Path::new(&root)).expect("Cargo.toml is readable");
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(v) = line.strip_prefix("version") {
            let v = v.trim_start().trim_start_matches('=').trim();
            return v.trim_matches('"').to_string();
        }
    }
    panic!("no version in [workspace.package] of Cargo.toml");
}

#[test]
fn version_macros_match_cargo_toml() {
    let header = std::fs::read_to_string(header_path()).expect("include/shmq.h exists");
    let version = workspace_version();
    let mut parts = version.split(['.', '-', '+']);
    for name in [
        "SHMQ_VERSION_MAJOR",
        "SHMQ_VERSION_MINOR",
        "SHMQ_VERSION_PATCH",
    ] {
        assert_eq!(
            macro_value(&header, name),
            parts.next().expect("MAJOR.MINOR.PATCH"),
            "{name}"
        );
    }
    assert_eq!(
        macro_value(&header, "SHMQ_VERSION_STRING"),
        format!("\"{version}\"")
    );
}
