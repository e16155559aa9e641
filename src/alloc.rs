//! A global allocator that asks Linux for transparent huge pages on large allocations, as
//! NumPy does for its own arrays (`numpy/_core/src/multiarray/alloc.c`).
//!
//! The decoder's output columns are hundreds of megabytes of new memory. Touched 4 KiB at a
//! time, each page is a fault that the kernel zeroes and maps; on a virtual machine that
//! costs more than writing the data (measured on the development machine: 3.0 GB/s for
//! 374 MB of `np.ones` with 4 KiB pages against 16.6 GB/s with huge pages, see
//! `benchmarks/README.md`). Where the kernel's `transparent_hugepage/enabled` is
//! `madvise`, as on many distributions, only memory advised with `MADV_HUGEPAGE` gets
//! 2 MiB pages. So blocks of [`THRESHOLD`] bytes or more are mapped here, advised, and
//! grown with `mremap` (no copy, no second first touch); everything else is the system
//! allocator's. Elsewhere than Linux this is the system allocator unchanged.
//!
//! The Python extension installs it (`src/python/mod.rs`); a Rust program using the crate
//! can do the same with `#[global_allocator] static A: ams02::alloc::HugePages =
//! ams02::alloc::HugePages;`.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size on are mapped by this allocator (NumPy's threshold for
/// huge-page advice).
pub const THRESHOLD: usize = 4 << 20;

/// The system allocator for small blocks; blocks of [`THRESHOLD`] bytes or more (with an
/// alignment of at most a page) mapped directly, advised for huge pages and grown with
/// `mremap`, which moves page tables instead of copying (glibc copies blocks under its
/// dynamic mmap threshold, up to 32 MiB, when they grow: each copy also touches new
/// pages). Elsewhere than Linux, the system allocator unchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct HugePages;

#[cfg(target_os = "linux")]
mod linux {
    use super::THRESHOLD;

    const PAGE: usize = 4096;

    /// Whether a block of this layout is mapped here rather than by `System`.
    #[inline(always)]
    pub fn mapped(size: usize, align: usize) -> bool {
        size >= THRESHOLD && align <= PAGE
    }

    /// Advises the whole mapping `ptr .. ptr + len` for huge pages (the kernel uses them
    /// for its 2 MiB-aligned part). The whole mapping, not its aligned interior, so that it
    /// stays one VMA, which `mremap` needs. Only advice: the result is ignored (a kernel
    /// without transparent huge pages says `EINVAL`).
    fn advise(ptr: *mut u8, len: usize) {
        // SAFETY: `ptr .. ptr + len` is one live mapping of ours, page aligned at `ptr`.
        // MADV_HUGEPAGE changes no content and no protection.
        unsafe {
            libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE);
        }
    }

    /// The size of a huge page (x86-64 and arm64 with 4 KiB pages).
    const HUGE: usize = 2 << 20;

    /// A new zeroed anonymous mapping of `size` bytes starting on a [`HUGE`] boundary, or
    /// null. Aligned, so that all of it but the last partial huge page can be huge pages,
    /// and so that [`remap`] can move those pages whole (a move to another offset within
    /// 2 MiB splits them into 4 KiB pages, measured: about half of the decoder's columns
    /// were 4 KiB pages before, `AnonHugePages` of `/proc/self/smaps_rollup`).
    pub fn map(size: usize) -> *mut u8 {
        let p = reserve(size);
        if !p.is_null() {
            advise(p, size);
        }
        p
    }

    /// `size` bytes of new anonymous memory on a [`HUGE`] boundary (not advised), or null:
    /// a mapping `HUGE` bytes longer, trimmed on both sides.
    fn reserve(size: usize) -> *mut u8 {
        let Some(len) = size.checked_next_multiple_of(PAGE) else {
            return std::ptr::null_mut();
        };
        let Some(whole) = len.checked_add(HUGE) else {
            return std::ptr::null_mut();
        };
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing
        // touches no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                whole,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let start = p as usize;
        let aligned = start.next_multiple_of(HUGE);
        let head = aligned - start;
        let tail = whole - head - len;
        // SAFETY: both trimmed pieces lie inside the mapping just made (`head + len + tail`
        // = `whole`), page aligned, and nothing else refers to them.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        aligned as *mut u8
    }

    /// Unmaps a block made by [`map`] or [`remap`].
    ///
    /// # Safety
    /// `ptr` is such a block of `size` bytes, not used afterwards.
    pub unsafe fn unmap(ptr: *mut u8, size: usize) {
        // SAFETY: by the caller's contract the range is exactly one of our mappings.
        unsafe {
            libc::munmap(ptr.cast(), size);
        }
    }

    /// Resizes a block made by [`map`], in place when the addresses after it are free,
    /// otherwise by moving its pages (not copying them) to a new [`HUGE`] boundary; null
    /// on failure, the old block then untouched.
    ///
    /// # Safety
    /// `ptr` is such a block of `old` bytes; on success it is not used afterwards.
    pub unsafe fn remap(ptr: *mut u8, old: usize, new: usize) -> *mut u8 {
        // SAFETY: by the caller's contract the range is exactly one of our mappings;
        // without MREMAP_MAYMOVE it grows or shrinks where it is, or fails untouched.
        let p = unsafe { libc::mremap(ptr.cast(), old, new, 0) };
        if p != libc::MAP_FAILED {
            advise(ptr, new);
            return ptr;
        }
        let target = reserve(new);
        if target.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: `target .. target + new` is the reservation just made, ours alone;
        // MREMAP_FIXED replaces it with the old block's pages (which then start at
        // `target`) and unmaps the old block.
        let p = unsafe {
            libc::mremap(
                ptr.cast(),
                old,
                new,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                target.cast::<libc::c_void>(),
            )
        };
        if p == libc::MAP_FAILED {
            // SAFETY: the reservation is ours and unused.
            unsafe { libc::munmap(target.cast(), new) };
            return std::ptr::null_mut();
        }
        let p = p.cast::<u8>();
        advise(p, new);
        p
    }
}

impl HugePages {
    /// `alloc` (`zeroed` false) or `alloc_zeroed`: a mapping of ours (zeroed anyway) or
    /// `System`'s block.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    #[inline]
    unsafe fn allocate(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        #[cfg(target_os = "linux")]
        if linux::mapped(layout.size(), layout.align()) {
            return linux::map(layout.size());
        }
        // SAFETY: forwarded as is; the caller's contract is `System`'s.
        unsafe {
            if zeroed {
                System.alloc_zeroed(layout)
            } else {
                System.alloc(layout)
            }
        }
    }
}

// SAFETY: small blocks (and over-aligned ones) are `System`'s, with the same arguments;
// large ones are whole anonymous mappings (page aligned, zeroed, which satisfies any
// alignment up to a page and `alloc_zeroed`), resized with mremap and unmapped on
// dealloc. Which of the two owns a block follows from its layout alone (`mapped`), and
// realloc across the threshold moves the contents from one to the other.
unsafe impl GlobalAlloc for HugePages {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        unsafe { self.allocate(layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        unsafe { self.allocate(layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        #[cfg(target_os = "linux")]
        if linux::mapped(layout.size(), layout.align()) {
            // SAFETY: blocks of this layout were made by `linux::map`/`remap`.
            unsafe { linux::unmap(ptr, layout.size()) };
            return;
        }
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        #[cfg(target_os = "linux")]
        {
            let old_ours = linux::mapped(layout.size(), layout.align());
            let new_ours = linux::mapped(new_size, layout.align());
            if old_ours && new_ours {
                // SAFETY: the block is one of ours, of `layout.size()` bytes.
                return unsafe { linux::remap(ptr, layout.size(), new_size) };
            }
            if old_ours || new_ours {
                let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: `new_layout` has a non-zero size (`new_size` > 0 by the
                // caller's contract); the two blocks are distinct, each at least
                // `min(old, new)` bytes long; the old one is freed with its own layout.
                unsafe {
                    let q = self.alloc(new_layout);
                    if !q.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    return q;
                }
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates, fills, grows, shrinks (across the threshold both ways) and frees blocks
    /// of many sizes and alignments, checking zeroing and that contents survive.
    #[test]
    fn allocates_reallocates_and_frees_like_the_system() {
        let a = HugePages;
        let sizes = [
            16,
            THRESHOLD - 1,
            THRESHOLD,
            THRESHOLD + 1,
            3 * THRESHOLD + 4095,
        ];
        for align in [1, 8, 4096, 1 << 16] {
            for &size in &sizes {
                for &new in &sizes {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: non-zero layouts; every access is within the block's current
                    // size; each block is freed once with the layout of its current size.
                    unsafe {
                        let p = a.alloc_zeroed(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0);
                        let s = std::slice::from_raw_parts_mut(p, size);
                        assert!(s.iter().all(|&b| b == 0));
                        for (i, b) in s.iter_mut().enumerate() {
                            *b = (i % 251) as u8;
                        }
                        let q = a.realloc(p, layout, new);
                        assert!(!q.is_null(), "{size} -> {new} aligned {align}");
                        assert_eq!(q as usize % align, 0);
                        let s = std::slice::from_raw_parts_mut(q, new);
                        let kept = size.min(new);
                        assert!(s[..kept]
                            .iter()
                            .enumerate()
                            .all(|(i, &b)| b == (i % 251) as u8));
                        s[new - 1] = 7;
                        a.dealloc(q, Layout::from_size_align(new, align).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn vectors_grow_through_the_threshold() {
        let a = HugePages;
        let layout = Layout::from_size_align(THRESHOLD, 8).unwrap();
        // SAFETY: as above.
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(1, THRESHOLD);
            let mut size = THRESHOLD;
            let mut q = p;
            for _ in 0..4 {
                q = a.realloc(q, Layout::from_size_align(size, 8).unwrap(), 2 * size);
                assert!(!q.is_null());
                assert_eq!(*q.add(size - 1), 1);
                q.add(size).write_bytes(1, size);
                size *= 2;
            }
            a.dealloc(q, Layout::from_size_align(size, 8).unwrap());
        }
    }

    /// Mapped blocks start on a 2 MiB boundary and stay there as they grow (in place or
    /// moved), so that their pages can be huge pages and move whole; the contents survive
    /// and other mappings placed in the way do not break the growth.
    #[cfg(target_os = "linux")]
    #[test]
    fn mapped_blocks_stay_on_huge_page_boundaries() {
        let a = HugePages;
        let huge = 2usize << 20;
        // SAFETY: as above; the blocks in the way are freed with their own layouts.
        unsafe {
            let mut size = THRESHOLD + 12_345;
            let p = a.alloc(Layout::from_size_align(size, 8).unwrap());
            assert!(!p.is_null());
            assert_eq!(p as usize % huge, 0);
            p.write_bytes(3, size);
            let mut q = p;
            let mut in_the_way = Vec::new();
            for k in 0..5 {
                // Something mapped meanwhile, likely just below or after the block.
                let l = Layout::from_size_align(THRESHOLD + k, 8).unwrap();
                in_the_way.push((a.alloc(l), l));
                let new = size * 2 + 4097;
                q = a.realloc(q, Layout::from_size_align(size, 8).unwrap(), new);
                assert!(!q.is_null());
                assert_eq!(q as usize % huge, 0, "growth {k} left the 2 MiB boundary");
                assert!(std::slice::from_raw_parts(q, size).iter().all(|&b| b == 3));
                assert!(std::slice::from_raw_parts(q.add(size), new - size)
                    .iter()
                    .all(|&b| b == 0));
                q.add(size).write_bytes(3, new - size);
                size = new;
            }
            a.dealloc(q, Layout::from_size_align(size, 8).unwrap());
            for (b, l) in in_the_way {
                assert_eq!(b as usize % huge, 0);
                a.dealloc(b, l);
            }
        }
    }
}
