//! The shared mapping of a queue or segment file, and the twice-mapped
//! ring of a queue whose records may cross the end of its slots.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use memmap2::MmapRaw;

/// A shared, read-write mapping of a whole queue file.
///
/// It hands out raw pointers only: other processes write this memory at
/// any time, so no `&mut [u8]` over all of it may ever exist.
pub(crate) struct Mapping {
    map: Map,
}

enum Map {
    /// The file, once.
    Once(MmapRaw),
    /// The file, then its last `total - len` bytes again right after it
    /// (see [`Mapping::mirrored`]); unmapped as one range on drop.
    Mirrored {
        base: *mut u8,
        len: usize,
        total: usize,
    },
}

// SAFETY: the mapping is plain shared memory; the struct only holds its
// address and lengths, never mutated after it is made.
unsafe impl Send for Map {}
// SAFETY: as above.
unsafe impl Sync for Map {}

/// The size of a memory page (4096 on x86-64).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "file too large to map")
}

impl Mapping {
    /// Maps all of `file`, which must be exactly `len` bytes long.
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Mapping> {
        let usize_len = usize::try_from(len).map_err(|_| too_large())?;
        let map = memmap2::MmapOptions::new().len(usize_len).map_raw(file)?;
        Ok(Mapping {
            map: Map::Once(map),
        })
    }

    /// Maps all of `file` (`len` bytes), then its bytes from `from` to the
    /// end a second time, right after the first mapping: the same pages
    /// twice in a row, so that a record that starts near the end of the
    /// ring (the file's last region) and runs past it reads and writes as
    /// one slice. `from` and `len` must be multiples of the page size.
    pub(crate) fn mirrored(file: &File, len: u64, from: u64) -> io::Result<Mapping> {
        let len = usize::try_from(len).map_err(|_| too_large())?;
        let from = usize::try_from(from).map_err(|_| too_large())?;
        let page = page_size();
        if from >= len || from % page != 0 || len % page != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a mirrored region must be whole pages at the end of the file",
            ));
        }
        let total = len.checked_add(len - from).ok_or_else(too_large)?;
        let fd = file.as_raw_fd();
        // SAFETY: a fresh anonymous reservation of `total` bytes (no
        // access), at an address the kernel picks: nothing else is there.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let unmap = |e: io::Error| {
            // SAFETY: the reservation made above, unmapped once.
            unsafe { libc::munmap(base, total) };
            e
        };
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let fixed = libc::MAP_SHARED | libc::MAP_FIXED;
        // SAFETY: both maps replace pages of our own reservation (MAP_FIXED
        // inside `base .. base + total`), with the file's pages at
        // page-aligned offsets the file has (`from < len`, checked).
        let (a, b) = unsafe {
            (
                libc::mmap(base, len, rw, fixed, fd, 0),
                libc::mmap(
                    base.cast::<u8>().add(len).cast(),
                    len - from,
                    rw,
                    fixed,
                    fd,
                    from as libc::off_t,
                ),
            )
        };
        if a == libc::MAP_FAILED || b == libc::MAP_FAILED {
            return Err(unmap(io::Error::last_os_error()));
        }
        Ok(Mapping {
            map: Map::Mirrored {
                base: base.cast(),
                len,
                total,
            },
        })
    }

    /// First byte of the mapping. Page-aligned.
    pub(crate) fn base(&self) -> *mut u8 {
        match &self.map {
            Map::Once(m) => m.as_mut_ptr(),
            Map::Mirrored { base, .. } => *base,
        }
    }

    /// Length of the file mapped, in bytes (a mirrored mapping's second
    /// copy comes after it).
    pub(crate) fn len(&self) -> usize {
        match &self.map {
            Map::Once(m) => m.len(),
            Map::Mirrored { len, .. } => *len,
        }
    }

    /// Flushes the mapping to its file (only meaningful on a disk path).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.flush_range(0, self.len())
    }

    /// Flushes bytes `off .. off + len` to the file and waits (`msync`).
    pub(crate) fn flush_range(&self, off: usize, len: usize) -> io::Result<()> {
        let len = len.min(self.len().saturating_sub(off));
        if len == 0 {
            return Ok(());
        }
        match &self.map {
            Map::Once(m) => m.flush_range(off, len),
            Map::Mirrored { base, .. } => {
                let page = page_size();
                let start = off / page * page;
                // SAFETY: `start .. off + len` lies in the first copy of
                // the file, which is mapped shared.
                let r = unsafe {
                    libc::msync(base.add(start).cast(), off + len - start, libc::MS_SYNC)
                };
                if r != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            }
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        if let Map::Mirrored { base, total, .. } = *self {
            // SAFETY: the whole range `mirrored` made, unmapped once.
            unsafe { libc::munmap(base.cast(), total) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_shows_the_same_bytes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let page = page_size();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        f.set_len(3 * page as u64).unwrap();
        let m = Mapping::mirrored(&f, 3 * page as u64, page as u64).unwrap();
        assert_eq!(m.len(), 3 * page);
        let base = m.base();
        // SAFETY: all inside the 5 pages mapped (3, then the last 2 again).
        unsafe {
            // A write across the end of the file lands at its region's
            // start, and reads back as one slice.
            let end = base.add(3 * page - 4);
            std::ptr::copy_nonoverlapping(b"abcdefgh".as_ptr(), end, 8);
            assert_eq!(std::slice::from_raw_parts(base.add(page), 4), b"efgh");
            assert_eq!(std::slice::from_raw_parts(end, 8), b"abcdefgh");
        }
        m.flush().unwrap();
        drop(m);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[page..page + 4], b"efgh");
        assert_eq!(&bytes[3 * page - 4..], b"abcd");
        // Not whole pages: refused.
        assert!(Mapping::mirrored(&f, 3 * page as u64, 100).is_err());
    }
}
