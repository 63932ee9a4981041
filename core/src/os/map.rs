//! The shared mapping of a queue or segment file.

use std::fs::File;
use std::io;

use memmap2::MmapRaw;

/// A shared, read-write mapping of a whole queue file.
///
/// `MmapRaw` hands out raw pointers only: other processes write this memory
/// at any time, so no `&mut [u8]` over all of it may ever exist.
pub(crate) struct Mapping {
    map: MmapRaw,
}

impl Mapping {
    /// Maps all of `file`, which must be exactly `len` bytes long.
    pub(crate) fn new(file: &File, len: u64) -> io::Result<Mapping> {
        let usize_len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        let map = memmap2::MmapOptions::new().len(usize_len).map_raw(file)?;
        Ok(Mapping { map })
    }

    /// First byte of the mapping. Page-aligned.
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Flushes the mapping to its file (only meaningful on a disk path).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// Flushes bytes `off .. off + len` to the file and waits (`msync`).
    pub(crate) fn flush_range(&self, off: usize, len: usize) -> io::Result<()> {
        let len = len.min(self.map.len().saturating_sub(off));
        if len == 0 {
            return Ok(());
        }
        self.map.flush_range(off, len)
    }
}
