//! Queue and segment files: created exclusively, never through a symlink,
//! with exactly the mode asked for.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `path` exclusively (`O_EXCL`), never through a symlink
/// (`O_NOFOLLOW`), with exactly `mode` (the umask is undone by `fchmod`),
/// and sizes it to `len` bytes of zeros, preallocated (`fallocate`) but
/// for the ranges `lazy` (in order, apart): on a tmpfs like `/dev/shm` a
/// sparse file would be backed page by page as the mapping is first
/// touched, and a page the filesystem has no room for kills the process
/// with SIGBUS; preallocated, a full directory is an `ENOSPC` here
/// instead. The `lazy` ranges are left for their users to allocate (with
/// `fallocate`) before they read or write there. A
/// filesystem that cannot preallocate (`EOPNOTSUPP`) gets a sparse file,
/// as before.
pub(crate) fn create(path: &Path, mode: u32, len: u64, lazy: &[Range<u64>]) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)?;
    let sized = (|| {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.set_len(len)?;
        let mut from = 0;
        for skip in lazy.iter().chain(std::iter::once(&(len..len))) {
            let to = skip.start.clamp(from, len);
            if to > from {
                preallocate(&file, from, to - from)?;
            }
            from = skip.end.clamp(to, len);
        }
        Ok(())
    })();
    if let Err(e) = sized {
        // Leave nothing half-made behind.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// Allocates `len` bytes of `file` from `offset` (`fallocate`, the size
/// kept), so that writing them through a mapping cannot fault for want of
/// room: a full filesystem is an `ENOSPC` here. A filesystem that cannot
/// preallocate (`EOPNOTSUPP`) is left sparse, and this succeeds.
pub(crate) fn preallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len) {
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => Ok(()),
        r => r.map_err(io::Error::from),
    }
}

/// Opens an existing queue file for reading and writing, never through a
/// symlink.
pub(crate) fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)
}

/// Creates segment file `path` in `dir` (made, mode 0700, if missing)
/// exclusively and never through a symlink, mode 0600, and preallocates
/// `len` bytes (`fallocate`), so that a full disk is an error here and not
/// a fault later when the mapping is written.
pub(crate) fn create_segment(dir: &Path, path: &Path, len: u64) -> io::Result<File> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags::O_NOFOLLOW | libc_flags::O_CLOEXEC)
        .open(path)?;
    if let Err(e) = rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len) {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(file)
}

/// The open flags we need, from rustix so that we do not depend on libc.
mod libc_flags {
    pub(super) const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    pub(super) const O_CLOEXEC: i32 = rustix::fs::OFlags::CLOEXEC.bits() as i32;
}

/// Bytes free for an unprivileged user in the filesystem holding `dir`.
pub(crate) fn free_space(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Who owns `path` and its permission bits: (uid, gid, mode), following
/// symbolic links.
pub(crate) fn owner(path: &Path) -> io::Result<(u32, u32, u32)> {
    let m = std::fs::metadata(path)?;
    Ok((m.uid(), m.gid(), m.mode() & 0o7777))
}

/// Creates directory `dir` and any missing parents, each mode 0700.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
