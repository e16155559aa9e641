//! Read-only bytes of a file: memory-mapped (guarded), read into memory, or owned (a
//! reassembled stream).
//!
//! **A file that shrinks or changes while it is read.** A memory map of a file that
//! another process truncates faults (SIGBUS) when the vanished pages are read, which would
//! kill the process. On Linux every map made here is registered with a SIGBUS handler
//! ([`guard`]) that, for a fault inside one of our maps, maps zeros over the rest of that
//! map (one anonymous `MAP_FIXED` mapping, so that the decoder reads on and every later
//! page reads zeros without another signal), marks the map as damaged and returns; a fault
//! anywhere else goes to the handler that was there before (Python's `faulthandler`, or the
//! default action). [`Source::check`] then reports [`Error::FileChanged`]: the map faulted,
//! or the file's size, modification time or inode changed since it was opened (`fstat` of
//! the open descriptor, a few hundred nanoseconds, done after every public call). Without
//! the guard (another OS), or when the guard table is full, files are read instead of
//! mapped. A file read into memory (`mmap = false`) is checked the same way around the
//! read: once read, its bytes are ours and cannot change.
//!
//! **Reading ahead of the decoder.** The map is advised `MADV_SEQUENTIAL`, so that the
//! kernel's own read-ahead (`read_ahead_kb` of the device, 8 MiB here) streams a cold file
//! ahead of the index walk, asynchronously, as fast as `read()` does (`benchmarks/README.md`).
//! Explicit advice beyond it ([`Source::ahead`], `MADV_WILLNEED` of the next bytes as the
//! walk or the decoder reports its position) measured slower (the advice submits its reads
//! in the caller and the walk then waits on them in major faults), so it is off unless the
//! environment variable `AMS02_READ_AHEAD` asks for it (bytes ahead); the benchmarks
//! compare both, and the tests check that the results do not depend on it.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::problems::{Error, Result};

/// How far ahead of the reader's position the kernel is asked to read explicitly (bytes),
/// unless the environment variable `AMS02_READ_AHEAD` says otherwise: 0, off (module doc).
pub const AHEAD: usize = 0;

/// How far ahead of its walk a streaming decode (`AmsFile::decode_all`) asks the kernel
/// to read, unless `AMS02_READ_AHEAD` says otherwise.
pub const STREAM_AHEAD: usize = 64 << 20;

/// `AMS02_READ_AHEAD` when it is set to a number (read once).
fn read_ahead_env() -> Option<usize> {
    static BYTES: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        std::env::var("AMS02_READ_AHEAD")
            .ok()
            .and_then(|v| v.trim().parse().ok())
    })
}

/// [`AHEAD`], or `AMS02_READ_AHEAD` when it is set to a number (read once).
pub fn read_ahead() -> usize {
    read_ahead_env().unwrap_or(AHEAD)
}

/// [`STREAM_AHEAD`], or `AMS02_READ_AHEAD` when it is set to a number (read once).
pub fn stream_read_ahead() -> usize {
    read_ahead_env().unwrap_or(STREAM_AHEAD)
}

/// What identifies a file's content cheaply: size, modification time, inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
    dev: u64,
}

impl Stamp {
    fn of(file: &File) -> std::io::Result<Stamp> {
        let m = file.metadata()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Ok(Stamp {
                len: m.len(),
                mtime: m.mtime(),
                mtime_nsec: m.mtime_nsec(),
                ino: m.ino(),
                dev: m.dev(),
            })
        }
        #[cfg(not(unix))]
        {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64);
            Ok(Stamp {
                len: m.len(),
                mtime,
                mtime_nsec: 0,
                ino: 0,
                dev: 0,
            })
        }
    }

    /// How `now` differs from `self`, in words, or None.
    fn differs(&self, now: &Stamp) -> Option<String> {
        if now.len != self.len {
            Some(format!(
                "the file is now {} bytes long, {} when it was opened",
                now.len, self.len
            ))
        } else if (now.mtime, now.mtime_nsec) != (self.mtime, self.mtime_nsec) {
            Some("the file was modified after it was opened".to_string())
        } else if (now.ino, now.dev) != (self.ino, self.dev) {
            Some("the file was replaced after it was opened".to_string())
        } else {
            None
        }
    }
}

/// A guarded memory map of a file, with the open descriptor to check it against.
pub struct MappedFile {
    map: memmap2::Mmap,
    file: File,
    stamp: Stamp,
    #[cfg(target_os = "linux")]
    slot: guard::Slot,
    /// How far the kernel has been asked to read ahead.
    advised: AtomicUsize,
    /// The file again, for the read-ahead thread (`None` if it could not be shared).
    #[cfg(target_os = "linux")]
    shared: Option<std::sync::Arc<File>>,
    /// The next file of a multi-file read and how many of its first bytes to read ahead
    /// once this file's own read-ahead has asked for its last byte
    /// ([`Source::read_ahead_after`]).
    #[cfg(target_os = "linux")]
    then: std::sync::Mutex<Option<(std::sync::Arc<File>, u64)>>,
}

#[cfg(target_os = "linux")]
impl MappedFile {
    /// Hands the next file's read-ahead request, if any, to the read-ahead thread (behind
    /// this file's last request), or advises it here when there is no such thread.
    fn start_next(&self) {
        let next = self.then.lock().ok().and_then(|mut t| t.take());
        if let Some((file, len)) = next {
            if !reader::ask(&file, 0, len) {
                if let Ok(len) = libc::off_t::try_from(len) {
                    use std::os::unix::io::AsRawFd;
                    // SAFETY: the descriptor is open (`file` lives through the call);
                    // posix_fadvise only advises the kernel and touches no memory of ours.
                    let _ = unsafe {
                        libc::posix_fadvise(file.as_raw_fd(), 0, len, libc::POSIX_FADV_WILLNEED)
                    };
                }
            }
        }
    }

    /// Whether a read-ahead request for the next file waits ([`Source::read_ahead_after`]).
    #[cfg(test)]
    fn next_waits(&self) -> bool {
        self.then.lock().is_ok_and(|t| t.is_some())
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // The slot is freed before the map is unmapped (fields drop after this), so that
        // the handler never takes a fault elsewhere for ours.
        #[cfg(target_os = "linux")]
        self.slot.free();
    }
}

/// The bytes a decoder reads. The length is taken once, when the source is made.
pub enum Source {
    /// A guarded memory map of a file.
    Mapped(MappedFile),
    /// Bytes owned in memory (a file read with `mmap=False`, or a reassembled stream).
    Owned(Vec<u8>),
}

impl Source {
    /// Opens a file, memory-mapped and guarded (`mmap = true`, where the guard exists) or
    /// read into memory. Either way a file that shrinks or changes while it is read is
    /// reported ([`Error::FileChanged`]), never a crash.
    pub fn open(path: &Path, mmap: bool) -> Result<Source> {
        let file = File::open(path)?;
        let stamp = Stamp::of(&file)?;
        if file.metadata()?.is_dir() {
            return Err(std::io::Error::from_raw_os_error(21).into()); // EISDIR
        }
        if mmap && stamp.len > 0 {
            if let Some(source) = Source::map(file.try_clone()?, stamp)? {
                return Ok(source);
            }
        }
        Source::read(file, stamp)
    }

    /// Reads the whole file, checking that it did not change meanwhile.
    fn read(mut file: File, stamp: Stamp) -> Result<Source> {
        let mut bytes = Vec::with_capacity(usize::try_from(stamp.len).unwrap_or(0));
        file.read_to_end(&mut bytes)?;
        let now = Stamp::of(&file)?;
        if let Some(why) = stamp.differs(&now) {
            return Err(Error::FileChanged(format!("{why} (while it was read)")));
        }
        if bytes.len() as u64 != stamp.len {
            return Err(Error::FileChanged(format!(
                "{} bytes read, the file is {} bytes long",
                bytes.len(),
                stamp.len
            )));
        }
        Ok(Source::Owned(bytes))
    }

    /// A guarded map, or None where no guard can be had (then the file is read).
    #[cfg(target_os = "linux")]
    fn map(file: File, stamp: Stamp) -> Result<Option<Source>> {
        let Some(slot) = guard::Slot::take() else {
            return Ok(None);
        };
        // SAFETY: the map is read-only and private to this process. A truncation by another
        // process makes reads past the new end fault; the guard registered below turns
        // such a fault into zeros and a mark that `check` reports (module doc).
        let map = match unsafe { memmap2::MmapOptions::new().map(&file) } {
            Ok(m) => m,
            Err(e) => {
                slot.free();
                return Err(e.into());
            }
        };
        slot.set(map.as_ptr() as usize, map.len());
        let _ = map.advise(memmap2::Advice::Sequential);
        let shared = file.try_clone().ok().map(std::sync::Arc::new);
        let mapped = MappedFile {
            map,
            file,
            stamp,
            slot,
            advised: AtomicUsize::new(0),
            shared,
            then: std::sync::Mutex::new(None),
        };
        let source = Source::Mapped(mapped);
        source.ahead(0);
        Ok(Some(source))
    }

    /// Without a guard (not Linux), files are read, never mapped.
    #[cfg(not(target_os = "linux"))]
    fn map(_file: File, _stamp: Stamp) -> Result<Option<Source>> {
        Ok(None)
    }

    /// Wraps bytes already in memory.
    pub fn from_vec(bytes: Vec<u8>) -> Source {
        Source::Owned(bytes)
    }

    /// Whether the bytes are a memory map of the file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Source::Mapped(_))
    }

    /// Checks that the bytes read so far are the file's: [`Error::FileChanged`] if the
    /// map faulted (the file shrank or could not be read) or the file's size, modification
    /// time or inode changed since it was opened. Owned bytes cannot change.
    pub fn check(&self) -> Result<()> {
        let Source::Mapped(m) = self else {
            return Ok(());
        };
        #[cfg(target_os = "linux")]
        if m.slot.faulted() {
            let now = Stamp::of(&m.file).map_or_else(
                |_| "could not be read".to_string(),
                |s| format!("is now {} bytes long", s.len),
            );
            return Err(Error::FileChanged(format!(
                "the file shrank or could not be read while it was mapped (it was {} bytes \
                 long when opened, and {now}): what was decoded is not returned",
                m.map.len()
            )));
        }
        match Stamp::of(&m.file) {
            Ok(now) => match m.stamp.differs(&now) {
                Some(why) => Err(Error::FileChanged(why)),
                None => Ok(()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Asks that the first `len` bytes of the file `next` (the next file of a multi-file
    /// read) be read ahead once this file's streaming read-ahead ([`Source::stream_ahead`])
    /// has asked for its last byte, at once if it already has: the disk then reads the two
    /// files one after the other, never both at once. Replaces an earlier request. False
    /// (nothing asked) when this source is not a map shared with the read-ahead thread or
    /// `next` cannot be opened: the caller may advise the next file itself.
    pub fn read_ahead_after(&self, next: &Path, len: u64) -> bool {
        #[cfg(target_os = "linux")]
        if let Source::Mapped(m) = self {
            if m.shared.is_none() {
                return false;
            }
            let Ok(file) = File::open(next) else {
                return false;
            };
            let len = file.metadata().map_or(len, |md| md.len().min(len));
            if let Ok(mut then) = m.then.lock() {
                *then = Some((std::sync::Arc::new(file), len));
            }
            // Stored first, then the end tested, as `stream_ahead` does the reverse: the
            // request is taken exactly once, by whichever sees both.
            if m.advised.load(Ordering::Relaxed) >= m.map.len() {
                m.start_next();
            }
            return true;
        }
        let _ = (next, len);
        false
    }

    /// Tells the kernel that the bytes from `pos` to [`read_ahead`] bytes beyond will be read
    /// soon (`MADV_WILLNEED`: the reads are queued, the call does not wait for them). Each
    /// byte is asked for once; owned bytes are left alone. Only advice: errors are ignored.
    pub fn ahead(&self, pos: usize) {
        self.ahead_by(pos, read_ahead());
    }

    /// [`Source::ahead`] for a streaming decode, whose walk is at `pos`: the kernel is
    /// asked for [`stream_read_ahead`] bytes beyond it, so that the disk reads on while
    /// the events already walked are decoded.
    /// The advice is given by a thread of its own ([`reader`]), so that the walk never
    /// waits while the kernel queues the reads (a `MADV_WILLNEED` of 64 MB returns only
    /// once the disk's queue has taken them, i.e. after most of them are read).
    pub fn stream_ahead(&self, pos: usize) {
        #[cfg(target_os = "linux")]
        if let Source::Mapped(m) = self {
            if let Some(file) = &m.shared {
                let len = m.map.len();
                let want = pos.saturating_add(stream_read_ahead()).min(len);
                let from = m.advised.fetch_max(want, Ordering::Relaxed);
                if want > from && !reader::ask(file, from as u64, (want - from) as u64) {
                    // No read-ahead thread: advise here.
                    let first = from / 4096 * 4096;
                    let _ = m
                        .map
                        .advise_range(memmap2::Advice::WillNeed, first, want - first);
                }
                if want == len {
                    m.start_next();
                }
                return;
            }
        }
        self.ahead_by(pos, stream_read_ahead());
    }

    fn ahead_by(&self, pos: usize, ahead: usize) {
        #[cfg(unix)]
        if let Source::Mapped(m) = self {
            const PAGE: usize = 4096;
            if ahead == 0 {
                return;
            }
            let len = m.map.len();
            let want = pos.saturating_add(ahead).min(len);
            let mut from = m.advised.load(Ordering::Relaxed);
            loop {
                if want <= from {
                    return;
                }
                match m.advised.compare_exchange_weak(
                    from,
                    want,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(now) => from = now,
                }
            }
            let first = from / PAGE * PAGE;
            let _ = m
                .map
                .advise_range(memmap2::Advice::WillNeed, first, want - first);
        }
        #[cfg(not(unix))]
        let _ = (pos, ahead);
    }

    /// Tells the kernel that the mapped pages wholly inside `start..end` are not needed
    /// now, so that they stop counting in this process's resident memory once decoded
    /// (the file's pages stay in the page cache, and a later read maps them again: a minor
    /// fault), and asks for the bytes after `end` to be read ahead ([`Source::ahead`]).
    /// Owned bytes are left alone; failures are ignored (it is only advice).
    pub fn release(&self, start: usize, end: usize) {
        #[cfg(unix)]
        if let Source::Mapped(m) = self {
            self.ahead(end);
            const PAGE: usize = 4096;
            let map = &m.map;
            let end = end.min(map.len());
            let first = start.div_ceil(PAGE) * PAGE;
            let last = end / PAGE * PAGE;
            if last > first {
                // SAFETY: MADV_DONTNEED on a read-only mapping of a file never loses data:
                // the pages are clean copies of the file and are read again on the next
                // access, by this or any other thread. No reference into the map is
                // invalidated (the mapping itself stays). Pages the guard replaced with
                // zeros are anonymous: dropped, they read as zeros again.
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
            Source::Mapped(m) => &m.map,
            Source::Owned(v) => v,
        }
    }
}

/// The SIGBUS guard of memory maps (Linux): a fixed table of the maps in use, and a
/// handler that turns a fault inside one of them into zeros and a mark.
#[cfg(target_os = "linux")]
pub mod guard {
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Maps that can be guarded at once (beyond, files are read instead of mapped).
    pub const SLOTS: usize = 4096;

    struct Entry {
        /// Start address (0: free).
        start: AtomicUsize,
        /// Length in bytes (0 while being set or freed).
        len: AtomicUsize,
        faulted: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: Entry = Entry {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    };
    static TABLE: [Entry; SLOTS] = [FREE; SLOTS];
    /// Slots ever used: the handler scans no further.
    static HIGH: AtomicUsize = AtomicUsize::new(0);
    /// Faults turned into zeros, over the life of the process (for tests).
    static FAULTS: AtomicUsize = AtomicUsize::new(0);

    /// The SIGBUS action that was there before ours, which faults outside our maps go to.
    struct Previous(UnsafeCell<Option<libc::sigaction>>);
    // SAFETY: written only under INSTALL's lock while our handler is not the installed one
    // (so the handler cannot be reading it), read by the handler.
    unsafe impl Sync for Previous {}
    static PREVIOUS: Previous = Previous(UnsafeCell::new(None));
    static INSTALL: Mutex<()> = Mutex::new(());

    /// One map's place in the table.
    pub struct Slot(usize);

    impl Slot {
        /// A free slot (the handler installed first), or None when all are in use.
        pub fn take() -> Option<Slot> {
            install();
            let mut i = 0;
            while i < SLOTS {
                if TABLE[i]
                    .start
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    TABLE[i].faulted.store(false, Ordering::Release);
                    HIGH.fetch_max(i + 1, Ordering::AcqRel);
                    return Some(Slot(i));
                }
                i += 1;
            }
            None
        }

        /// Registers the map `start .. start + len`.
        pub fn set(&self, start: usize, len: usize) {
            let e = &TABLE[self.0];
            e.len.store(0, Ordering::Release);
            e.start.store(start, Ordering::Release);
            e.len.store(len, Ordering::Release);
        }

        /// Whether a fault inside the map was turned into zeros.
        pub fn faulted(&self) -> bool {
            TABLE[self.0].faulted.load(Ordering::Acquire)
        }

        /// Frees the slot (before the map is unmapped).
        pub fn free(&self) {
            let e = &TABLE[self.0];
            e.len.store(0, Ordering::Release);
            e.start.store(0, Ordering::Release);
        }
    }

    /// Faults turned into zeros since the process started.
    pub fn faults() -> usize {
        FAULTS.load(Ordering::Relaxed)
    }

    fn page() -> usize {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as usize
        } else {
            4096
        }
    }

    static PAGE: AtomicUsize = AtomicUsize::new(4096);

    /// Installs the handler unless it is the installed one (someone, e.g. Python's
    /// `faulthandler.enable()`, may have put theirs in since: ours then goes on top and
    /// passes them the faults that are not ours).
    fn install() {
        let Ok(_lock) = INSTALL.lock() else { return };
        // SAFETY: querying and setting a signal action with valid pointers; PREVIOUS is
        // written only while our handler is not installed (checked just before).
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) != 0 {
                return;
            }
            if current.sa_sigaction == on_sigbus as *const () as usize {
                return;
            }
            PAGE.store(page(), Ordering::Relaxed);
            *PREVIOUS.0.get() = Some(current);
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut ours.sa_mask);
            libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut());
        }
    }

    /// The handler: async-signal-safe (atomics, `mmap`, `sigaction` only).
    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        let high = HIGH.load(Ordering::Acquire).min(SLOTS);
        let page = PAGE.load(Ordering::Relaxed);
        for e in &TABLE[..high] {
            let start = e.start.load(Ordering::Acquire);
            let len = e.len.load(Ordering::Acquire);
            if start <= 1 || len == 0 || addr < start || addr - start >= len {
                continue;
            }
            let from = addr & !(page - 1);
            let end = (start + len).div_ceil(page) * page;
            // SAFETY: `from .. end` lies inside one of our live read-only file maps (the
            // slot is freed before its map is unmapped); replacing its pages with an
            // anonymous read-only zero mapping only changes what they read (zeros instead
            // of vanished file data). The faulting access then completes.
            let p = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    end - from,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                e.faulted.store(true, Ordering::Release);
                FAULTS.fetch_add(1, Ordering::Relaxed);
                return;
            }
            break;
        }
        // Not ours: what was there before.
        // SAFETY: PREVIOUS was set before our handler was installed and is not written
        // while it is installed. A previous SA_SIGINFO handler gets the same arguments.
        unsafe {
            let prev = (*PREVIOUS.0.get()).as_ref();
            let handler = prev.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
            if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
                // The default action: reinstall it and return, so that the access faults
                // again and the process ends as it would have without us.
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                return;
            }
            let flags = prev.map_or(0, |p| p.sa_flags);
            if flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                f(sig, info, ctx);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                f(sig);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ams02-source-{}-{name}", std::process::id()));
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    #[test]
    fn mapped_and_read_sources_hold_the_file_and_check_clean() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let p = temp("same", &data);
        for mmap in [true, false] {
            let s = Source::open(&p, mmap).unwrap();
            assert_eq!(&s[..], &data[..]);
            assert_eq!(s.is_mapped(), mmap && cfg!(target_os = "linux"));
            s.release(0, s.len());
            assert_eq!(&s[..], &data[..]);
            s.check().unwrap();
        }
        std::fs::remove_file(p).unwrap();
    }

    /// A file truncated while mapped: reading past the new end reads zeros instead of
    /// killing the process, and `check` reports the change.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_truncated_map_reads_zeros_and_reports_the_change() {
        let data = vec![7u8; 64 * 4096];
        let p = temp("shrink", &data);
        let s = Source::open(&p, true).unwrap();
        assert!(s.is_mapped());
        s.release(0, s.len()); // drop the pages from the process: the next read faults
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let before = guard::faults();
        let sum: u64 = s.iter().map(|&b| b as u64).sum();
        assert_eq!(
            sum,
            7 * 4096,
            "the kept page reads as before, the rest as zeros"
        );
        assert!(guard::faults() > before);
        let err = s.check().unwrap_err();
        assert!(matches!(err, Error::FileChanged(_)), "{err}");
        drop(s);
        std::fs::remove_file(p).unwrap();
    }

    /// The next file's read-ahead waits until this file's own has asked for its last
    /// byte, and is then handed on once; a source that cannot take it says so.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_next_file_is_read_ahead_after_this_one() {
        let big = temp("this", &[]);
        let len = stream_read_ahead().saturating_add(2 << 20);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&big)
            .unwrap()
            .set_len(len as u64) // sparse: nothing is written
            .unwrap();
        let next = temp("next", &[5u8; 8192]);
        let s = Source::open(&big, true).unwrap();
        let Source::Mapped(m) = &s else {
            panic!("a file on Linux is mapped")
        };
        assert!(s.read_ahead_after(&next, 1 << 20));
        assert!(m.next_waits(), "nothing of this file asked for yet");
        s.stream_ahead(0);
        assert!(
            m.next_waits(),
            "this file's read-ahead stops short of its end"
        );
        s.stream_ahead(len); // as the walk does at the end
        assert!(
            !m.next_waits(),
            "handed on once this file's end is asked for"
        );
        // Asked again after the end: handed on at once.
        assert!(s.read_ahead_after(&next, 1 << 20));
        assert!(!m.next_waits());
        // A file that cannot be opened, and owned bytes: nothing asked.
        assert!(!s.read_ahead_after(Path::new("/nonexistent/ams02-next.dat"), 1));
        assert!(!Source::open(&next, false)
            .unwrap()
            .read_ahead_after(&next, 1));
        drop(s);
        std::fs::remove_file(big).unwrap();
        std::fs::remove_file(next).unwrap();
    }

    #[test]
    fn a_modified_file_is_reported() {
        let p = temp("modify", &[1u8; 8192]);
        let s = Source::open(&p, true).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .write_all(&[2u8; 16])
            .unwrap();
        assert!(matches!(s.check(), Err(Error::FileChanged(_))));
        std::fs::remove_file(p).unwrap();
    }
}

/// The read-ahead thread of the process: asked for byte ranges of files, it tells the
/// kernel that they will be needed (`posix_fadvise(WILLNEED)`), a piece at a time, while
/// the thread that asked goes on decoding.
#[cfg(target_os = "linux")]
mod reader {
    use std::fs::File;
    use std::os::unix::io::AsRawFd;
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Arc, Mutex, OnceLock};

    /// The most bytes advised in one call: the disk's queue takes them in turn.
    const PIECE: u64 = 8 << 20;

    struct Request {
        file: Arc<File>,
        start: u64,
        len: u64,
    }

    fn sender() -> Option<&'static Mutex<Sender<Request>>> {
        static TX: OnceLock<Option<Mutex<Sender<Request>>>> = OnceLock::new();
        TX.get_or_init(|| {
            let (tx, rx) = channel::<Request>();
            std::thread::Builder::new()
                .name("ams02-read-ahead".into())
                .spawn(move || {
                    while let Ok(r) = rx.recv() {
                        let mut at = r.start;
                        let end = r.start.saturating_add(r.len);
                        while at < end {
                            let n = PIECE.min(end - at);
                            let (Ok(off), Ok(len)) =
                                (libc::off_t::try_from(at), libc::off_t::try_from(n))
                            else {
                                break;
                            };
                            // SAFETY: the descriptor is open (the Arc keeps its File alive
                            // for the call); posix_fadvise only advises the kernel about
                            // the file's pages and touches no memory of ours.
                            let _ = unsafe {
                                libc::posix_fadvise(
                                    r.file.as_raw_fd(),
                                    off,
                                    len,
                                    libc::POSIX_FADV_WILLNEED,
                                )
                            };
                            at += n;
                        }
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
    }

    /// Asks the thread to read `len` bytes of `file` from `start` ahead; false when there
    /// is no such thread (then the caller advises itself).
    pub fn ask(file: &Arc<File>, start: u64, len: u64) -> bool {
        let Some(tx) = sender() else {
            return false;
        };
        let Ok(tx) = tx.lock() else {
            return false;
        };
        tx.send(Request {
            file: Arc::clone(file),
            start,
            len,
        })
        .is_ok()
    }
}
