//! Read-only bytes of a file: memory-mapped, read into memory, or owned (a reassembled stream).

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use crate::problems::Result;

/// The bytes a decoder reads. The length is taken once, when the source is made.
pub enum Source {
    /// A memory map of a file.
    Mapped(memmap2::Mmap),
    /// Bytes owned in memory (a file read with `mmap=False`, or a reassembled stream).
    Owned(Vec<u8>),
}

impl Source {
    /// Opens a file, memory-mapped (`mmap = true`) or read into memory.
    ///
    /// A memory map of a file that another process truncates while it is open can fault
    /// (SIGBUS) when the vanished pages are read; `mmap = false` avoids that hazard at the
    /// cost of reading the whole file.
    pub fn open(path: &Path, mmap: bool) -> Result<Source> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        if !mmap || len == 0 {
            return Ok(Source::Owned(std::fs::read(path)?));
        }
        // SAFETY: the map is read-only and private to this process. The remaining hazard,
        // another process truncating the file while it is mapped, is documented above and
        // avoided with `mmap = false`.
        let map = unsafe { memmap2::MmapOptions::new().map(&file)? };
        #[cfg(unix)]
        {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
        Ok(Source::Mapped(map))
    }

    /// Wraps bytes already in memory.
    pub fn from_vec(bytes: Vec<u8>) -> Source {
        Source::Owned(bytes)
    }

    /// Tells the kernel that the mapped pages wholly inside `start..end` are not needed
    /// now, so that they stop counting in this process's resident memory once decoded. The
    /// file's pages stay in the page cache, and a later read maps them again (a minor
    /// fault). Owned bytes are left alone; failures are ignored (it is only advice).
    pub fn release(&self, start: usize, end: usize) {
        #[cfg(unix)]
        if let Source::Mapped(map) = self {
            const PAGE: usize = 4096;
            let end = end.min(map.len());
            let first = start.div_ceil(PAGE) * PAGE;
            let last = end / PAGE * PAGE;
            if last > first {
                // SAFETY: MADV_DONTNEED on a read-only mapping of a file never loses data:
                // the pages are clean copies of the file and are read again on the next
                // access, by this or any other thread. No reference into the map is
                // invalidated (the mapping itself stays).
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        first,
                        last - first,
                    )
                };
            }
        }
        #[cfg(not(unix))]
        let _ = (start, end);
    }
}

impl Deref for Source {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
        }
    }
}
