//! The leaf of the tree: one stored key and its value in a single,
//! reference-counted allocation addressed by a thin pointer.
//!
//! Layout: `[count: u32][key length: u32][value: V][key bytes]`. Packing the
//! count and the length into one word keeps a leaf as small as a fat `Arc`
//! of the same data while the pointer stays one word, which makes a child
//! slot of an inner node 16 bytes (with `Option` around it). Measured with
//! `cargo bench --bench tree` (memory table, N = 1M `user-{i:08}` keys):
//! 65.8 B/key with `triomphe::ThinArc` leaves (a `usize` length in the
//! allocation), against BTreeMap's 63.5; see `docs/PERFORMANCE.md`.
//!
//! This module owns the only `unsafe` code of leaves; it is exercised under
//! Miri by `tree::tests` (`cargo +nightly miri test --lib tree::`).

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counts above this abort the process (as `std::sync::Arc` does near
/// `isize::MAX`): an overflow would free a leaf still in use.
const MAX_COUNT: u32 = u32::MAX / 2;

#[repr(C)]
struct Header<V> {
    count: AtomicU32,
    len: u32,
    value: V,
}

/// A stored key and its value. Cloning is one reference-count increment,
/// so copying a node touches each leaf once and never the objects the
/// values point to.
pub(crate) struct Leaf<V> {
    ptr: NonNull<Header<V>>,
    _owns: PhantomData<Header<V>>,
}

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
        let (lay, offset) = layout::<V>(key.len());
        // SAFETY: `lay` has a non-zero size (the header holds two u32).
        let raw = unsafe { alloc::alloc(lay) };
        let Some(ptr) = NonNull::new(raw.cast::<Header<V>>()) else {
            alloc::handle_alloc_error(lay)
        };
        // SAFETY: `ptr` is a fresh allocation of `lay`, which starts with a
        // `Header<V>` (aligned for it) and has `key.len()` bytes at
        // `offset`; nothing else references it yet.
        unsafe {
            ptr.as_ptr().write(Header {
                count: AtomicU32::new(1),
                len,
                value,
            });
            std::ptr::copy_nonoverlapping(key.as_ptr(), raw.add(offset), key.len());
        }
        Leaf {
            ptr,
            _owns: PhantomData,
        }
    }

    #[inline]
    fn header(&self) -> &Header<V> {
        // SAFETY: `ptr` points to a live, initialised header for as long
        // as this handle holds its count.
        unsafe { self.ptr.as_ref() }
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
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(offset), len) }
    }

    /// The address of the allocation (for prefetching).
    #[inline]
    pub(crate) fn addr(&self) -> *const u8 {
        self.ptr.as_ptr().cast::<u8>().cast_const()
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
            let slot = unsafe { &mut (*self.ptr.as_ptr()).value };
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
        // Relaxed, as in `std::sync::Arc`: a new handle is made from an
        // existing one, which already keeps the leaf alive.
        if self.header().count.fetch_add(1, Ordering::Relaxed) > MAX_COUNT {
            std::process::abort();
        }
        Leaf {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<V> Drop for Leaf<V> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if self.header().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other handle's last use happened before its `Release`
        // decrement. This `Acquire` load reads the value our decrement
        // wrote, the end of the release sequence of all of them, so their
        // uses happen before the free. (A load rather than
        // `fence(Acquire)`: the same guarantee, and ThreadSanitizer, which
        // does not model fences, can check it; `std::sync::Arc` does the
        // same under TSan.)
        self.header().count.load(Ordering::Acquire);
        let (lay, _) = layout::<V>(self.header().len as usize);
        // SAFETY: the count reached 0, so this was the last handle: nobody
        // else can read the leaf. The value is dropped once, then the
        // allocation made with this same layout in `new` is freed.
        unsafe {
            std::ptr::drop_in_place(&mut (*self.ptr.as_ptr()).value);
            alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), lay);
        }
    }
}
