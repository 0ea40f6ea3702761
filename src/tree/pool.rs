//! A per-thread cache of freed tree blocks (inner nodes and leaves), by
//! exact size: the allocation and the freeing of the tree's nodes.
//!
//! A single-object commit copies a path in each of its table's trees and,
//! one commit later, frees the path it replaced: blocks of the same few
//! sizes cycle on every commit. Handing them straight back to the next
//! copies of the same thread skips the general allocator's search for a
//! page with a free block, which with a large live heap was a third of an
//! update's instructions (docs/PERFORMANCE.md, "Where a single-object
//! update's time goes").
//!
//! Each thread keeps, per block size (a multiple of 8 bytes up to
//! [`MAX_SIZE`]), a last-in-first-out list of free blocks threaded through
//! their first word, bounded by [`MAX_PER_SIZE`] blocks and [`MAX_BYTES`]
//! in all; beyond that, and for other sizes or alignments, blocks go to the
//! global allocator. A thread's cached blocks go back to the global
//! allocator when the thread ends. Every cached block was allocated by the
//! global allocator with exactly the layout it is handed out for, so it can
//! be reallocated or freed like any other.

use std::alloc::{self, Layout};
use std::cell::RefCell;

/// Blocks up to this size are cached.
const MAX_SIZE: usize = 4096;
/// The alignment of cached blocks (every inner node's, and the leaves' of
/// 8-aligned values).
const ALIGN: usize = 8;
/// Free blocks kept per size.
const MAX_PER_SIZE: u32 = 64;
/// Bytes kept per thread, all sizes together.
const MAX_BYTES: usize = 256 << 10;

const CLASSES: usize = MAX_SIZE / ALIGN + 1;

/// One thread's free blocks.
struct Cache {
    /// Per size class (size / 8), the first free block (null: none).
    heads: [*mut u8; CLASSES],
    lens: [u32; CLASSES],
    bytes: usize,
    /// Whether this thread has allocated tree blocks: only such a thread
    /// keeps freed ones (a thread that only reads, and frees what a
    /// version it held last reached, hands them straight back).
    armed: bool,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            heads: [std::ptr::null_mut(); CLASSES],
            lens: [0; CLASSES],
            bytes: 0,
            armed: false,
        })
    };
}

/// The size class of `lay`, when blocks of it are cached.
#[inline]
fn class(lay: Layout) -> Option<usize> {
    (lay.align() == ALIGN && lay.size() <= MAX_SIZE && lay.size().is_multiple_of(ALIGN))
        .then_some(lay.size() / ALIGN)
}

#[allow(unsafe_code)]
impl Cache {
    /// A free block of class `c`, if one is kept.
    #[inline]
    fn pop(&mut self, c: usize) -> Option<*mut u8> {
        self.armed = true;
        let head = self.heads[c];
        if head.is_null() {
            return None;
        }
        // SAFETY: `head` is a block this cache keeps (allocated, not in
        // use), whose first word `push` set to the next free block of the
        // class; the block is at least 8 bytes and 8-aligned.
        self.heads[c] = unsafe { head.cast::<*mut u8>().read() };
        self.lens[c] -= 1;
        self.bytes -= c * ALIGN;
        Some(head)
    }

    /// Keeps `block` of class `c`; `false` when the cache is full.
    ///
    /// # Safety
    /// `block` must be a live block of class `c` (`c * 8` bytes, 8-aligned)
    /// from the global allocator that nothing uses any more; when this
    /// returns `true`, the cache owns it.
    #[inline]
    unsafe fn push(&mut self, c: usize, block: *mut u8) -> bool {
        if !self.armed || self.lens[c] >= MAX_PER_SIZE || self.bytes + c * ALIGN > MAX_BYTES {
            return false;
        }
        // SAFETY: the caller's contract: `block` is a live, unused
        // allocation of class `c` (at least 8 bytes, 8-aligned), so its
        // first word is ours to write.
        unsafe { block.cast::<*mut u8>().write(self.heads[c]) };
        self.heads[c] = block;
        self.lens[c] += 1;
        self.bytes += c * ALIGN;
        true
    }
}

#[allow(unsafe_code)]
impl Cache {
    /// Hands every kept block back to the global allocator.
    fn release(&mut self) {
        for c in 1..CLASSES {
            while let Some(b) = self.pop(c) {
                // SAFETY: every kept block of class `c` was allocated by
                // the global allocator with this layout and is not in use.
                unsafe { alloc::dealloc(b, Layout::from_size_align_unchecked(c * ALIGN, ALIGN)) };
            }
        }
        // Nothing is kept again until the thread allocates tree blocks.
        self.armed = false;
    }
}

impl Drop for Cache {
    /// The thread ends: its kept blocks go back to the global allocator.
    fn drop(&mut self) {
        self.release();
    }
}

/// Hands the calling thread's kept blocks back to the global allocator
/// (for tests that count the allocator's live bytes).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn release_thread_cache() {
    let _ = CACHE.try_with(|cache| {
        if let Ok(mut k) = cache.try_borrow_mut() {
            k.release();
        }
    });
}

/// Allocates a block of `lay` (non-zero size), from the thread's cache when
/// it keeps one; aborts through `handle_alloc_error` when memory is out.
///
/// # Safety
/// `lay` must have a non-zero size.
#[allow(unsafe_code)]
#[inline]
pub(crate) unsafe fn allocate(lay: Layout) -> *mut u8 {
    if let Some(c) = class(lay)
        && let Ok(Some(b)) = CACHE.try_with(|cache| cache.try_borrow_mut().ok()?.pop(c))
    {
        return b;
    }
    // SAFETY: the caller's contract: `lay` has a non-zero size.
    let raw = unsafe { alloc::alloc(lay) };
    if raw.is_null() {
        alloc::handle_alloc_error(lay)
    }
    raw
}

/// Frees `block`, allocated by [`allocate`] (or reallocated by the global
/// allocator) with `lay`: into the thread's cache when it has room.
///
/// # Safety
/// `block` must be a live block of layout `lay` from the global allocator
/// that nothing uses any more.
#[allow(unsafe_code)]
#[inline]
pub(crate) unsafe fn free(block: *mut u8, lay: Layout) {
    if let Some(c) = class(lay)
        && CACHE.try_with(|cache| {
            cache.try_borrow_mut().is_ok_and(|mut k| {
                // SAFETY: the caller's contract: `block` is live, unused
                // and of layout `lay`, i.e. of class `c`.
                unsafe { k.push(c, block) }
            })
        }) == Ok(true)
    {
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { alloc::dealloc(block, lay) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn blocks_are_reused_by_size_and_bounded() {
        let lay = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: non-zero sizes; each block is freed once, with its layout.
        unsafe {
            let a = allocate(lay);
            free(a, lay);
            let b = allocate(lay);
            assert_eq!(a, b, "the freed block comes back for the same size");
            let other = Layout::from_size_align(72, 8).unwrap();
            let c = allocate(other);
            assert_ne!(c, b);
            free(b, lay);
            free(c, other);
            // More than the cache keeps: the rest goes to the allocator.
            let many: Vec<_> = (0..200).map(|_| allocate(lay)).collect();
            for m in many {
                free(m, lay);
            }
            CACHE.with(|k| assert!(k.borrow().lens[8] <= MAX_PER_SIZE));
            // Sizes and alignments outside the cache pass through.
            let big = Layout::from_size_align(MAX_SIZE + 8, 8).unwrap();
            let odd = Layout::from_size_align(12, 4).unwrap();
            let (x, y) = (allocate(big), allocate(odd));
            free(x, big);
            free(y, odd);
        }
    }
}
