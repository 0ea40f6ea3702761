//! The leaf of the tree: one stored key and its value in a single,
//! reference-counted allocation addressed by a thin pointer.
//!
//! Layout: `[count: u32][key length: u32][value: V][key bytes]`. Packing the
//! count and the length into one word keeps a leaf as small as a fat `Arc`
//! of the same data while the pointer stays one word. Measured with
//! `cargo bench --bench tree` (memory table, N = 1M `user-{i:08}` keys):
//! 65.8 B/key with `triomphe::ThinArc` leaves (a `usize` length in the
//! allocation), against BTreeMap's 63.5; see `docs/PERFORMANCE.md`.
//!
//! The handle holds the header's address **plus one** (a *tagged*
//! pointer; the header is at least 4-aligned, so the address is odd).
//! An inner node's handle is an even address, so a child slot of an inner
//! node can hold either handle in one word and tell them apart by the low
//! bit (see `node::Slot`).
//!
//! This module owns the only `unsafe` code of leaves; it is exercised under
//! Miri by `tree::tests` (`cargo +nightly miri test --lib tree::`).

use super::pool;
use super::refcount;
use std::alloc::Layout;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

#[repr(C)]
struct Header<V> {
    count: AtomicU32,
    len: u32,
    value: V,
}

/// A stored key and its value. Cloning is one reference-count increment,
/// so copying a node touches each leaf once and never the objects the
/// values point to.
///
/// `repr(transparent)` over the tagged pointer: `node::Slot` relies on a
/// leaf handle being exactly its bits.
#[repr(transparent)]
pub(crate) struct Leaf<V> {
    /// The header's address plus [`TAG`].
    ptr: NonNull<u8>,
    _owns: PhantomData<Header<V>>,
}

/// What a leaf handle adds to its header's address (an inner node's handle
/// is its even address).
pub(crate) const TAG: usize = 1;

// SAFETY: a `Leaf` is a shared, reference-counted handle on an immutable
// `(key, value)` (the value is changed only through `replace_value` with
// the count at 1, i.e. with exclusive access), exactly like `Arc<V>`: it
// may move to and be shared between threads when `V` may.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Send for Leaf<V> {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Sync for Leaf<V> {}

/// The allocation layout of a leaf with a key of `len` bytes, and the
/// offset of the key bytes in it.
fn layout<V>(len: usize) -> (Layout, usize) {
    let header = Layout::new::<Header<V>>();
    match Layout::array::<u8>(len).and_then(|k| header.extend(k)) {
        Ok((l, offset)) => {
            debug_assert_eq!(offset, std::mem::size_of::<Header<V>>());
            (l.pad_to_align(), offset)
        }
        Err(_) => panic!("tree key of {len} bytes is too large to allocate"),
    }
}

#[allow(unsafe_code)]
impl<V> Leaf<V> {
    /// A new leaf holding `key` and `value`.
    ///
    /// # Panics
    /// When `key` is longer than `u32::MAX` bytes (4 GiB).
    pub(crate) fn new(key: &[u8], value: V) -> Self {
        let len = match u32::try_from(key.len()) {
            Ok(l) => l,
            Err(_) => panic!("tree keys are limited to 4 GiB"),
        };
        // The tag needs a free low bit: the header is at least 4-aligned.
        const { assert!(std::mem::align_of::<Header<V>>() >= 2) };
        let (lay, offset) = layout::<V>(key.len());
        // SAFETY: `lay` has a non-zero size (the header holds two u32).
        let raw = unsafe { pool::allocate(lay) };
        // SAFETY: `raw` is a fresh allocation of `lay`, which starts with a
        // `Header<V>` (aligned for it) and has `key.len()` bytes at
        // `offset`; nothing else references it yet.
        unsafe {
            raw.cast::<Header<V>>().write(Header {
                count: AtomicU32::new(1),
                len,
                value,
            });
            std::ptr::copy_nonoverlapping(key.as_ptr(), raw.add(offset), key.len());
        }
        // The header is at least 4-aligned (it holds a `u32`), so its
        // address is even and the tagged one odd, never null.
        debug_assert_eq!(raw.addr() & TAG, 0);
        let Some(ptr) = NonNull::new(raw.wrapping_add(TAG)) else {
            unreachable!("an allocation's address plus one is not null")
        };
        Leaf {
            ptr,
            _owns: PhantomData,
        }
    }

    /// The header's address (the handle minus its tag).
    #[inline]
    fn raw(&self) -> *mut Header<V> {
        self.ptr.as_ptr().wrapping_sub(TAG).cast::<Header<V>>()
    }

    #[inline]
    fn header(&self) -> &Header<V> {
        // SAFETY: `raw()` is the address of a live, initialised header for
        // as long as this handle holds its count.
        unsafe { &*self.raw() }
    }

    /// The whole key.
    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        let len = self.header().len as usize;
        // The key follows the header directly (bytes need no alignment),
        // as `layout` computes it.
        let offset = std::mem::size_of::<Header<V>>();
        // SAFETY: `new` wrote `len` initialised bytes at `offset` of this
        // allocation, which lives as long as `self`; they never change.
        unsafe { std::slice::from_raw_parts(self.raw().cast::<u8>().add(offset), len) }
    }

    /// The address of the allocation (for prefetching).
    #[inline]
    pub(crate) fn addr(&self) -> *const u8 {
        self.raw().cast::<u8>().cast_const()
    }

    /// The reference count (for tests that check counts balance).
    #[cfg(test)]
    pub(crate) fn count(&self) -> u32 {
        self.header().count.load(Ordering::Acquire)
    }

    /// The value.
    #[inline]
    pub(crate) fn value(&self) -> &V {
        &self.header().value
    }

    /// Replaces the value: in place when no other version shares this leaf,
    /// else by a new leaf (the shared one stays as it was).
    pub(crate) fn replace_value(&mut self, value: V) -> V
    where
        V: Clone,
    {
        if self.header().count.load(Ordering::Acquire) == 1 {
            // SAFETY: the count is 1 and `self` is borrowed mutably: no
            // other handle exists and none can be made while this borrow
            // lasts, so this is the only access to the value. `Acquire`
            // pairs with the `Release` decrement of every dropped handle,
            // so their reads of the value happened before this write.
            let slot = unsafe { &mut (*self.raw()).value };
            return std::mem::replace(slot, value);
        }
        let old = self.value().clone();
        *self = Leaf::new(self.key(), value);
        old
    }
}

impl<V> Clone for Leaf<V> {
    #[inline]
    fn clone(&self) -> Self {
        refcount::retain(&self.header().count);
        Leaf {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<V> Drop for Leaf<V> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if !refcount::release(&self.header().count) {
            return;
        }
        let (lay, _) = layout::<V>(self.header().len as usize);
        // SAFETY: the count reached 0, so this was the last handle: nobody
        // else can read the leaf. The value is dropped once, then the
        // allocation made with this same layout in `new` is freed.
        unsafe {
            std::ptr::drop_in_place(&mut (*self.raw()).value);
            pool::free(self.raw().cast::<u8>(), lay);
        }
    }
}
