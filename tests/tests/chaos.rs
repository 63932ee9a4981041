//! The chaos checker checked (issue #35): a run whose ack=auto consumer
//! writes one delivery down wrong, as a broken queue would have delivered
//! it (`--plant`), must be caught, by that anomaly's class and no other.
//! The full harness runs in `.ci/run` (`job_chaos`) and for 30 minutes and
//! more as `docs/reliability.md` says.

use std::process::Command;

const CHAOS: &str = env!("CARGO_BIN_EXE_chaos");

/// One run at a time: each is nine processes, and four at once on two
/// cores would make a slow drain, not a finding.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A short run without faults, `--plant PLANT`; returns its report.
fn planted(plant: &str) -> String {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(CHAOS)
        .args([
            "--duration",
            "4",
            "--seed",
            "5",
            "--no-faults",
            "--tmpfs-mb",
            "0",
        ])
        .args(["--plant", plant, "--dir"])
        .arg(dir.path().join("run"))
        .output()
        .expect("running the chaos binary");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "--plant {plant} was not caught:\n{report}"
    );
    report
}

/// How many anomalies of `class` the report counts.
fn count(report: &str, class: &str) -> u64 {
    let prefix = format!("  {class} ");
    report
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no line for {class}:\n{report}"))
}

fn caught_as(plant: &str, class: &str) {
    let report = planted(plant);
    for &other in shmq_tests::chaos::check::CLASSES {
        let n = count(&report, other);
        if other == class {
            assert!(n >= 1, "--plant {plant}: no {class}:\n{report}");
        } else {
            assert_eq!(
                n, 0,
                "--plant {plant}: {other} as well as {class}:\n{report}"
            );
        }
    }
}

#[test]
fn a_dropped_delivery_is_lost() {
    caught_as("drop@200", "lost");
}

#[test]
fn a_delivery_written_twice_is_duplicated() {
    caught_as("dup@200", "duplicated");
}

#[test]
fn two_of_a_key_swapped_are_reordered() {
    caught_as("swap@200", "reordered");
}

#[test]
fn a_flipped_payload_byte_is_corrupted() {
    caught_as("flip@200", "corrupted");
}
