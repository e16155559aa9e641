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
