//! The allocation of an inner node: a reference count, the slot capacity,
//! the node's header ([`Head`]) and its slot array, in one block addressed
//! by a thin pointer.
//!
//! Layout: `[count: u32][capacity: u32][Head<V>][slots: Option<Slot<V>>; capacity]`.
//! The count and the capacity share one word (a `triomphe::ThinArc`, used
//! before, kept a `usize` of each: 8 bytes more per node). Reaching the
//! header costs no length load (it is at a fixed offset), and write access
//! to a node the writer owns is one count check.
//!
//! This module owns the only `unsafe` code of inner-node allocations; it is
//! exercised under Miri by `tree::tests` (`.ci/miri`).

use super::node::Head;
use super::pool;
use super::refcount;
use super::slot::Slot;
use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// The fixed part of the allocation.
#[repr(C)]
struct Fixed<V> {
    count: AtomicU32,
    cap: u32,
    head: Head<V>,
}

/// A whole inner node, borrowed: its header and its slot array (the
/// capacity-long tail of the allocation; unused slots are `None`).
///
/// `repr(C)` with the same leading fields as `Fixed`, so both put the
/// header at the same offset; the slots start where `Fixed` ends.
#[repr(C)]
pub(crate) struct Body<V> {
    count: AtomicU32,
    cap: u32,
    head: Head<V>,
    slots: [Option<Slot<V>>],
}

impl<V> Body<V> {
    /// The header.
    #[inline]
    pub(crate) fn header(&self) -> &Head<V> {
        &self.head
    }

    /// The header.
    #[inline]
    pub(crate) fn header_mut(&mut self) -> &mut Head<V> {
        &mut self.head
    }

    /// The slot array.
    #[inline]
    pub(crate) fn slice_mut(&mut self) -> &mut [Option<Slot<V>>] {
        &mut self.slots
    }
}

/// A counted handle on an inner node's allocation: one pointer to its
/// start. Cloning is one count increment; the last handle dropped drops
/// the header and every slot and frees the block.
#[repr(transparent)]
pub(crate) struct NodeArc<V> {
    ptr: NonNull<u8>,
    _owns: PhantomData<Fixed<V>>,
}

// SAFETY: a `NodeArc` is a shared, reference-counted handle on an inner
// node (a header and child slots), changed only through `get_mut` with the
// count at 1, i.e. exclusively, exactly like `Arc<(Head<V>, [Slot<V>])>`:
// it may move to and be shared between threads when the contents may,
// which holds when `V` is `Send + Sync` (see `Slot`'s and `Leaf`'s impls).
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Send for NodeArc<V> {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Sync for NodeArc<V> {}

/// Byte offset of the slot array: the end of `Fixed`, whose size is a
/// multiple of its alignment, which is at least a slot's (a `u64` field).
const fn slots_offset<V>() -> usize {
    size_of::<Fixed<V>>()
}

/// The allocation layout of a node with `cap` slots.
fn layout<V>(cap: usize) -> Layout {
    const { assert!(align_of::<Fixed<V>>() >= align_of::<Option<Slot<V>>>()) };
    const { assert!(size_of::<Fixed<V>>().is_multiple_of(align_of::<Option<Slot<V>>>())) };
    let size = cap
        .checked_mul(size_of::<Option<Slot<V>>>())
        .and_then(|s| s.checked_add(slots_offset::<V>()));
    match size.map(|s| Layout::from_size_align(s, align_of::<Fixed<V>>())) {
        Some(Ok(l)) => l,
        _ => panic!("an inner node of {cap} slots is too large to allocate"),
    }
}

#[allow(unsafe_code)]
impl<V> NodeArc<V> {
    /// A new node holding `head` and `cap` slots, which `fill` must
    /// initialise, every one of them (it gets them uninitialised).
    ///
    /// # Safety
    /// `fill` must write every element of the slice it is given.
    #[inline]
    pub(crate) unsafe fn new_with(
        head: Head<V>,
        cap: usize,
        fill: impl FnOnce(&mut [MaybeUninit<Option<Slot<V>>>]),
    ) -> Self {
        let Ok(cap32) = u32::try_from(cap) else {
            panic!("an inner node of {cap} slots is too large to allocate")
        };
        let lay = layout::<V>(cap);
        // SAFETY: `lay` has a non-zero size (`Fixed` holds a count).
        let raw = unsafe { pool::allocate(lay) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(lay)
        };
        // SAFETY: `raw` is a fresh allocation of `lay`: a `Fixed<V>` at its
        // start (aligned for it), then `cap` slots at `slots_offset`,
        // nothing initialised yet and nothing else referencing it. The
        // slice handed to `fill` covers exactly the slots, as
        // `MaybeUninit` (any bits are valid for it); the caller's contract
        // makes `fill` initialise them all before the handle exists.
        unsafe {
            raw.cast::<Fixed<V>>().write(Fixed {
                count: AtomicU32::new(1),
                cap: cap32,
                head,
            });
            let slots = raw
                .add(slots_offset::<V>())
                .cast::<MaybeUninit<Option<Slot<V>>>>();
            fill(std::slice::from_raw_parts_mut(slots, cap));
        }
        NodeArc {
            ptr,
            _owns: PhantomData,
        }
    }

    /// A new node holding `head` and one slot per item of `items`.
    ///
    /// # Panics
    /// When `items` yields fewer items than its length says (the block is
    /// then leaked, never read uninitialised).
    #[inline]
    pub(crate) fn from_iter(
        head: Head<V>,
        mut items: impl ExactSizeIterator<Item = Option<Slot<V>>>,
    ) -> Self {
        let cap = items.len();
        // SAFETY: the closure writes every slot, or panics before the
        // handle exists (the block then leaks; nothing reads it).
        unsafe {
            Self::new_with(head, cap, |slots| {
                for s in slots {
                    s.write(
                        items
                            .next()
                            .expect("from_iter: the iterator is shorter than its length"),
                    );
                }
            })
        }
    }

    #[inline]
    fn fixed(&self) -> &Fixed<V> {
        // SAFETY: `ptr` is the start of a live allocation (this handle
        // holds a count) holding an initialised `Fixed<V>`.
        unsafe { self.ptr.cast::<Fixed<V>>().as_ref() }
    }

    /// The whole node, as a pointer that covers the slot array too.
    #[inline]
    fn body_ptr(&self) -> *mut Body<V> {
        let cap = self.fixed().cap as usize;
        // The metadata of a pointer to `Body<V>` is its slot count, as for
        // a slice; the address is the allocation's start, with its
        // provenance over the whole block.
        std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr().cast::<Option<Slot<V>>>(), cap)
            as *mut Body<V>
    }

    /// The header.
    #[inline]
    pub(crate) fn head(&self) -> &Head<V> {
        &self.fixed().head
    }

    /// The slot array (capacity-long).
    #[inline]
    pub(crate) fn slots(&self) -> &[Option<Slot<V>>] {
        let cap = self.fixed().cap as usize;
        // SAFETY: the allocation holds `cap` initialised slots at
        // `slots_offset`, alive as long as `self` is borrowed; they change
        // only through `get_mut`, which needs `self` exclusively.
        unsafe {
            std::slice::from_raw_parts(
                self.ptr
                    .as_ptr()
                    .add(slots_offset::<V>())
                    .cast::<Option<Slot<V>>>(),
                cap,
            )
        }
    }

    /// Whether this handle is the only one (with acquire ordering: the
    /// writes of every dropped handle's thread are visible).
    #[inline]
    pub(crate) fn is_unique(&self) -> bool {
        self.fixed().count.load(Ordering::Acquire) == 1
    }

    /// The reference count (acquire, like [`NodeArc::is_unique`]).
    #[inline]
    pub(crate) fn count(&self) -> usize {
        self.fixed().count.load(Ordering::Acquire) as usize
    }

    /// Write access to the node when this handle is the only one.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> Option<&mut Body<V>> {
        // SAFETY: a count of 1 means no other handle exists (and the
        // acquire load synchronised with every dropped one), so nothing
        // else can reach the node while `self` stays mutably borrowed,
        // which the returned borrow ensures. `body_ptr` covers the whole,
        // initialised allocation.
        self.is_unique().then(|| unsafe { &mut *self.body_ptr() })
    }

    /// The allocation's address (identity and prefetching only).
    #[inline]
    pub(crate) fn ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The handle whose pointer is `ptr`.
    ///
    /// # Safety
    /// `ptr` must be the pointer of a handle that was forgotten (as
    /// `node::Slot` does when a node moves into a slot), whose count has
    /// not been taken back yet.
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: NonNull<u8>) -> Self {
        NodeArc {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Gives the node, which must be unshared, `cap` slots (at least as many
    /// as it has): the block is reallocated, so the allocator may extend it
    /// in place, and the new slots are `None`. Header and slots keep their
    /// contents.
    ///
    /// # Panics
    /// When the node is shared or `cap` is smaller than its capacity.
    pub(crate) fn grow(&mut self, cap: usize) {
        assert!(self.is_unique(), "grow: the node is shared");
        let old_cap = self.fixed().cap as usize;
        assert!(cap >= old_cap, "grow: {cap} slots cannot hold {old_cap}");
        let Ok(cap32) = u32::try_from(cap) else {
            panic!("an inner node of {cap} slots is too large to allocate")
        };
        let (old, new) = (layout::<V>(old_cap), layout::<V>(cap));
        // SAFETY: `ptr` was allocated with `old` (its capacity is
        // `old_cap`) and this is the only handle on it (count 1, `self`
        // borrowed exclusively), so nothing else can observe the block
        // move; `new` has the same alignment and a non-zero size. After a
        // successful `realloc` the old pointer is dead and the header and
        // the first `old_cap` slots are at the same offsets in the new
        // block; the capacity is updated and the added slots are written
        // before anything reads them.
        unsafe {
            let raw = alloc::realloc(self.ptr.as_ptr(), old, new.size());
            let Some(ptr) = NonNull::new(raw) else {
                alloc::handle_alloc_error(new)
            };
            (*raw.cast::<Fixed<V>>()).cap = cap32;
            let slots = raw.add(slots_offset::<V>()).cast::<Option<Slot<V>>>();
            for i in old_cap..cap {
                slots.add(i).write(None);
            }
            self.ptr = ptr;
        }
    }

    /// Frees the node, which must be unshared, dropping its header but not
    /// its slots: their handles are forgotten (settlement's fast path,
    /// where each count has passed to a copy's duplicate). No slot is
    /// read, so a 256-slot node costs what a small one does.
    pub(crate) fn free_without_slots(self) {
        let this = std::mem::ManuallyDrop::new(self);
        if !this.is_unique() {
            // Unreachable: settlement checks every lent node is unshared,
            // with the base version in its exclusive hands. Going on would
            // free slots another handle still reaches; returning would
            // leave their counts short (the copies' duplicates hold them).
            std::process::abort();
        }
        let lay = layout::<V>(this.fixed().cap as usize);
        // SAFETY: the count is 1 (acquire: every dropped handle's uses
        // happen before) and this is that handle: no other exists or can
        // appear. The header is dropped once, then the block is freed with
        // the layout it was allocated with; the slots are not dropped,
        // which only forgets the handles they hold.
        unsafe {
            std::ptr::drop_in_place(&raw mut (*this.ptr.as_ptr().cast::<Fixed<V>>()).head);
            pool::free(this.ptr.as_ptr(), lay);
        }
    }
}

impl<V> Clone for NodeArc<V> {
    #[inline]
    fn clone(&self) -> Self {
        refcount::retain(&self.fixed().count);
        NodeArc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

#[allow(unsafe_code)]
impl<V> Drop for NodeArc<V> {
    /// Releases the count; the last handle drops the header and every
    /// slot and frees the block (`Arc`'s release/acquire protocol).
    fn drop(&mut self) {
        if !refcount::release(&self.fixed().count) {
            return;
        }
        let body = self.body_ptr();
        // SAFETY: the count went from 1 to 0: this was the last handle.
        // `body` covers the initialised header and slots, dropped once
        // here; the block is then freed with the layout it was allocated
        // with (`cap` is read before the drop).
        unsafe {
            let lay = layout::<V>((*body).cap as usize);
            std::ptr::drop_in_place(body);
            pool::free(self.ptr.as_ptr(), lay);
        }
    }
}
