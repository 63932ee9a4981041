//! A queue seen from a user namespace (a rootless container): its owner,
//! unmapped there, shows as the overflow uid. `shmq` says so, names the
//! uid to trust, and works once told to trust it. Real namespaces
//! (`unshare --user --map-root-user`); needs root to set the file's owner,
//! and says why and passes without it unless `SHMQ_REQUIRE_TOOLS` is set.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const SHMQ: &str = env!("CARGO_BIN_EXE_shmq");

#[test]
fn a_queue_of_an_unmapped_owner_is_refused_with_the_uid_to_trust() {
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    let userns = Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !(root.unwrap_or(false) && userns) {
        assert!(
            std::env::var_os("SHMQ_REQUIRE_TOOLS").is_none(),
            "needs root and unshare --user"
        );
        eprintln!("skipped: needs root and unshare --user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let made = Command::new(SHMQ)
        .args([
            "--dir", d, "create", "shared", "--slots", "8", "--mode", "666",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // Made by another user of the host (uid 4242), shared on purpose.
    let file = dir.path().join("shared.shmq");
    std::os::unix::fs::chown(&file, Some(4242), Some(4242)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let inside = |extra: &[&str]| {
        let mut args = vec!["--user", "--map-root-user", SHMQ, "--dir", d];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["stat", "shared"]);
        Command::new("unshare").args(&args).output().unwrap()
    };
    let refused = inside(&[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("owned by uid 65534 as this process sees it (the overflow uid"),
        "{err}"
    );
    assert!(err.contains("--trust-owner 65534"), "{err}");
    let trusted = inside(&["--trust-owner", "65534"]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("shared"));
}
