//! The child slot of an inner node: a leaf or an inner node in one tagged
//! word, and the uncounted [`duplicate`] a lending copy makes of one.

use super::body::NodeArc;
use super::leaf::{self, Leaf};
use super::node::Inner;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// One child of an inner node: a leaf or an inner node, in one word.
///
/// The word is the child's own handle: an inner node's (an even address)
/// or a leaf's (its header's address plus [`leaf::TAG`], odd). Both handle
/// types are `repr(transparent)` over that pointer, so a slot can lend
/// out a `&Leaf` or `&Inner` to itself. An `Option<Slot>` is one word too
/// (the pointer is never null): half the two-word enum it replaced, which
/// made every slot array twice as large.
#[repr(transparent)]
pub(crate) struct Slot<V> {
    raw: NonNull<u8>,
    _owns: PhantomData<(Leaf<V>, Inner<V>)>,
}

// SAFETY: a slot owns either a `Leaf<V>` or an `Inner<V>`, which are `Send`
// and `Sync` when `V` is both; it adds no shared state of its own.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Send for Slot<V> {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Sync for Slot<V> {}

/// A child taken out of its slot.
pub(crate) enum Entry<V> {
    Leaf(Leaf<V>),
    Inner(Inner<V>),
}

/// Mutable access to the child in a slot.
pub(crate) enum EntryMut<'a, V> {
    Leaf(&'a mut Leaf<V>),
    Inner(&'a mut Inner<V>),
}

// The handles are one pointer each, so a slot can be either of them.
const _: () = {
    assert!(size_of::<Leaf<u64>>() == size_of::<usize>());
    assert!(size_of::<Inner<u64>>() == size_of::<usize>());
    assert!(size_of::<Option<Slot<u64>>>() == size_of::<usize>());
};

#[allow(unsafe_code)]
impl<V> Slot<V> {
    /// Whether the child is a leaf.
    #[inline]
    pub(crate) fn is_leaf(&self) -> bool {
        self.raw.as_ptr().addr() & leaf::TAG != 0
    }

    /// The child, borrowed.
    #[inline]
    pub(crate) fn get(&self) -> EntryRef<'_, V> {
        let p: *const Self = self;
        if self.is_leaf() {
            // SAFETY: a tagged slot holds the bits of a live `Leaf<V>`,
            // a `repr(transparent)` handle of the same size as `Slot<V>`;
            // the borrow cannot outlive `self`.
            EntryRef::Leaf(unsafe { &*p.cast::<Leaf<V>>() })
        } else {
            // SAFETY: an untagged slot holds the bits of a live
            // `Inner<V>` (`repr(transparent)` over `ThinArc`, itself
            // `repr(transparent)` over one pointer: see the size check
            // above); the borrow cannot outlive `self`.
            EntryRef::Inner(unsafe { &*p.cast::<Inner<V>>() })
        }
    }

    /// The child, borrowed mutably. Whatever is written through the
    /// reference is a handle of the same kind, so the tag stays right.
    #[inline]
    pub(crate) fn get_mut(&mut self) -> EntryMut<'_, V> {
        let p: *mut Self = self;
        if self.is_leaf() {
            // SAFETY: as in `get`, with the exclusive borrow of `self`.
            EntryMut::Leaf(unsafe { &mut *p.cast::<Leaf<V>>() })
        } else {
            // SAFETY: as in `get`, with the exclusive borrow of `self`.
            EntryMut::Inner(unsafe { &mut *p.cast::<Inner<V>>() })
        }
    }

    /// The child, moved out.
    #[inline]
    pub(crate) fn into_entry(self) -> Entry<V> {
        let this = std::mem::ManuallyDrop::new(self);
        let p: *const Self = &*this;
        if this.is_leaf() {
            // SAFETY: the bits are a `Leaf<V>` handle (see `get`); `this`
            // is never dropped, so the handle moves out exactly once.
            Entry::Leaf(unsafe { p.cast::<Leaf<V>>().read() })
        } else {
            // SAFETY: an untagged slot holds the pointer of a `NodeArc`
            // handle (see `From<Inner<V>>`), not yet taken back: `this` is
            // never dropped.
            Entry::Inner(Inner(unsafe { NodeArc::from_raw(this.raw) }))
        }
    }

    /// The slot's word, handed over with the handle it stands for (which
    /// is not dropped): one word to keep a retired handle in.
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<u8> {
        std::mem::ManuallyDrop::new(self).raw
    }

    /// The slot whose word is `raw`.
    ///
    /// # Safety
    /// `raw` must come from [`Slot::into_raw`], and this must be the only
    /// slot made from it (the handle is taken back once).
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<u8>) -> Self {
        Slot {
            raw,
            _owns: PhantomData,
        }
    }

    /// The slot's word, as a number (for tests).
    #[cfg(test)]
    pub(crate) fn word(&self) -> usize {
        self.raw.as_ptr().addr()
    }

    /// Number of keys below this slot.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        match self.get() {
            EntryRef::Leaf(_) => 1,
            EntryRef::Inner(n) => n.count,
        }
    }
}

impl<V> From<Leaf<V>> for Slot<V> {
    #[inline]
    fn from(l: Leaf<V>) -> Self {
        let l = std::mem::ManuallyDrop::new(l);
        let p: *const Leaf<V> = &*l;
        // SAFETY: `Leaf<V>` is `repr(transparent)` over a non-null pointer;
        // its handle moves into the slot (`l` is never dropped).
        #[allow(unsafe_code)]
        let raw = unsafe { p.cast::<NonNull<u8>>().read() };
        debug_assert!(raw.as_ptr().addr() & leaf::TAG != 0);
        Slot {
            raw,
            _owns: PhantomData,
        }
    }
}

impl<V> From<Inner<V>> for Slot<V> {
    #[inline]
    fn from(n: Inner<V>) -> Self {
        // The handle moves into the slot as its pointer (`get` relies on
        // the handle being exactly that word:
        // `tree::tests::miri_slot_words_are_the_handles` checks it).
        let Some(raw) = NonNull::new(n.0.ptr().cast_mut()) else {
            unreachable!("a node's pointer is not null")
        };
        // Its count now belongs to the slot: the handle is forgotten
        // (`Inner` has a `Drop` and cannot be taken apart).
        std::mem::forget(n);
        debug_assert_eq!(raw.as_ptr().addr() & leaf::TAG, 0);
        Slot {
            raw,
            _owns: PhantomData,
        }
    }
}

impl<V> Clone for Slot<V> {
    #[inline]
    fn clone(&self) -> Self {
        match self.get() {
            EntryRef::Leaf(l) => Slot::from(l.clone()),
            EntryRef::Inner(n) => Slot::from(n.clone()),
        }
    }
}

impl<V> Drop for Slot<V> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the slot's handle moves out once, here, and is dropped.
        #[allow(unsafe_code)]
        let entry = unsafe { std::ptr::read(self) }.into_entry();
        drop(entry);
    }
}

/// A borrowed entry of an inner node.
pub(crate) enum EntryRef<'a, V> {
    Leaf(&'a Leaf<V>),
    Inner(&'a Inner<V>),
}

/// A second handle on the same child, made without touching its count.
///
/// # Safety
/// The two handles together hold one count: the caller must make sure that
/// exactly one of them is ever dropped as a counted handle, and that the
/// other is forgotten (or its count restored) before that happens.
#[allow(unsafe_code)]
pub(super) unsafe fn duplicate<V>(s: &Slot<V>) -> Slot<V> {
    // SAFETY: a bitwise copy of a handle (a pointer, no drop glue of its
    // own); the caller's contract keeps the count balanced.
    unsafe { std::ptr::read(s) }
}
