//! Who may have made, or may change, the files shmq reads: a queue file,
//! and the spill, journal and DLQ directories of segment files. One owned
//! by another user, or writable by others, could have been planted or could
//! be changed under us (a moved segment loses messages, a forged one adds
//! some: the crc is no authentication), so it is refused unless the user
//! said to trust that owner or group (`Options::trust_owner`,
//! `trust_group`). This user and root are always trusted.
//!
//! The rules, checked on the path with its symbolic links resolved:
//! - every directory from `/` down to the one checked is owned by a trusted
//!   user and writable by nobody untrusted — a sticky directory (`/tmp`,
//!   `/var/tmp`, `/dev/shm`) excepted above the one checked, since no one
//!   can move or delete another's entries in it;
//! - a spill, journal or DLQ directory itself, where the segment files
//!   are, is not writable by others at all, sticky or not;
//! - a queue file is owned by a trusted user or has a trusted group; its
//!   mode is its owner's choice (a queue shared on purpose through `mode`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::options::Trust;
use crate::os;

fn refuse(path: &Path, why: String, help: String) -> Error {
    Error::io(
        format!(
            "refusing {}: {why}; only files of this user (uid {}) and root are trusted: {help}",
            path.display(),
            os::process::uid()
        ),
        std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    )
}

fn trusted_owner(uid: u32, trust: Trust) -> bool {
    uid == os::process::uid() || uid == 0 || trust.owner == Some(uid)
}

/// The uid the kernel shows for an owner that has no mapping in this user
/// namespace (`/proc/sys/kernel/overflowuid`).
const OVERFLOW_UID: u32 = 65534;

/// Refuses `path` unless its owner, or its group, is trusted.
fn check_owner(path: &Path, uid: u32, gid: u32, trust: Trust) -> Result<()> {
    if !trusted_owner(uid, trust) && trust.group != Some(gid) {
        // In a user namespace (a rootless container) the owner shows as
        // the uid it maps to here, or as the overflow uid if it maps to
        // none: say so, since that is the uid to trust.
        let seen = if uid == OVERFLOW_UID {
            format!(
                "it is owned by uid {uid} as this process sees it (the overflow uid: its \
                 owner has no uid in this user namespace, as in a rootless container)"
            )
        } else {
            format!("it is owned by user {uid} (as this process sees it), not this user")
        };
        return Err(refuse(
            path,
            seen,
            format!(
                "to share it on purpose, trust that owner (Options::trust_owner({uid}), \
                 shmq --trust-owner {uid}) or its group (trust_group({gid}), \
                 --trust-group {gid})"
            ),
        ));
    }
    Ok(())
}

/// Checks one directory; `leaf`: it holds the files (no sticky exception).
fn check_one(dir: &Path, leaf: bool, trust: Trust) -> Result<()> {
    let (uid, gid, mode) =
        os::file::owner(dir).map_err(|e| Error::io(format!("checking {}", dir.display()), e))?;
    check_owner(dir, uid, gid, trust)?;
    let sticky = mode & 0o1000 != 0 && !leaf;
    if mode & 0o002 != 0 && !sticky {
        return Err(refuse(
            dir,
            format!("it is writable by every user (mode {mode:o}, owner {uid})"),
            format!(
                "no trust option makes that safe (anyone could replace the files); \
                 take others' write permission away (chmod o-w {}){}, or use another \
                 directory",
                dir.display(),
                if leaf {
                    ""
                } else {
                    ", or make it sticky (chmod +t, as /tmp and /dev/shm are)"
                }
            ),
        ));
    }
    if mode & 0o020 != 0 && !sticky && trust.group != Some(gid) {
        return Err(refuse(
            dir,
            format!("it is writable by group {gid} (mode {mode:o}, owner {uid})"),
            format!(
                "trust that group (Options::trust_group({gid}), shmq --trust-group {gid}), \
                 take its write permission away (chmod g-w {}), or use another directory",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// `path` with its symbolic links resolved.
fn real(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .map_err(|e| Error::io(format!("resolving {}", path.display()), e))
}

/// Checks `dir` and every directory above it as directories above the one
/// that holds the files (sticky ones allowed).
fn check_from(dir: &Path, trust: Trust) -> Result<()> {
    dir.ancestors()
        .try_for_each(|up| check_one(up, false, trust))
}

/// Checks `dir` (which holds segment files) and every directory above it.
pub(crate) fn check_dir(dir: &Path, trust: Trust) -> Result<()> {
    let real = real(dir)?;
    check_one(&real, true, trust)?;
    real.parent().map_or(Ok(()), |up| check_from(up, trust))
}

/// Checks the queue file at `path` and every directory above it.
pub(crate) fn check_queue_file(path: &Path, trust: Trust) -> Result<()> {
    let real = real(path)?;
    // Only its owner (or root) sets its mode: a trusted owner's choice to
    // share it with a group or everyone (`mode`) is respected.
    let (uid, gid, _mode) =
        os::file::owner(&real).map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
    check_owner(path, uid, gid, trust)?;
    real.parent().map_or(Ok(()), |up| check_from(up, trust))
}

/// Makes `dir` (mode 0700, with any missing parents) if it is not there,
/// then checks it as [`check_dir`] does. Returns whether it made it.
pub(crate) fn private_dir(dir: &Path, trust: Trust) -> Result<bool> {
    let made = !dir.exists();
    if made {
        os::file::create_private_dir(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    check_dir(dir, trust)?;
    Ok(made)
}

/// Checks the directory a queue file is made in, and every one above it.
pub(crate) fn check_queue_dir(dir: &Path, trust: Trust) -> Result<()> {
    check_from(&real(dir)?, trust)
}
