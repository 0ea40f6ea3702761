//! Node types of the persistent adaptive radix tree: leaves, inner nodes and
//! their three adaptive layouts (`Small`, `Medium`, `Large`).
//!
//! This module owns the node layout and the per-node primitives (find, add and
//! remove a child, walk entries in order, copy-on-write). It knows nothing of
//! versions or iteration state; `mod.rs` drives these primitives.
//!
//! An inner node is ONE allocation (`body::NodeArc`): a shared header
//! (prefix, count, terminal leaf, layout) followed by its child slots.
//! Reaching a child therefore costs one pointer hop, and copying a node for a
//! new version is one allocation. A node's slot array has a capacity; a node
//! that outgrows it grows in place when this version owns it alone (the block
//! is reallocated), and otherwise, or when it changes layout, is rebuilt into
//! a new allocation, moving the slots when this version owns the node and
//! cloning (or lending) them when the node is shared.

use super::body::{Body, NodeArc};

/// Most children a `Small` node holds (sorted byte keys, linear search).
pub(crate) const SMALL_MAX: usize = 16;
/// Most children a `Medium` node holds (a 256-byte index into the slots).
pub(crate) const MEDIUM_MAX: usize = 48;
/// A `Medium` node that shrinks to this many children becomes `Small`.
pub(crate) const MEDIUM_MIN: usize = 12;
/// A `Large` node that shrinks to this many children becomes `Medium`.
pub(crate) const LARGE_MIN: usize = 36;
/// Slot capacity a `Medium` node grows by.
const MEDIUM_STEP: usize = 8;

/// Entry position of the terminal leaf (the key that ends at this node).
pub(crate) const POS_TERMINAL: u16 = 0;
/// One past the largest entry position (`1 + 255` is the largest child).
pub(crate) const POS_END: u16 = 257;

use super::leaf;
pub(crate) use super::leaf::Leaf;
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

/// How an inner node addresses its slots.
#[derive(Clone)]
pub(crate) enum Layout {
    /// `slots[..len]` hold the children, `keys[..len]` their bytes, sorted.
    Small { keys: [u8; SMALL_MAX], len: u8 },
    /// `slots[..len]` hold the children; `index[b]` is 1 + the slot of byte
    /// `b`, or 0.
    Medium { index: Box<[u8; 256]>, len: u8 },
    /// 256 slots, the child of byte `b` in `slots[b]`.
    Large { len: u16 },
}

impl Layout {
    /// The slot index of the child at byte `b`.
    #[inline]
    pub(crate) fn find(&self, b: u8) -> Option<usize> {
        match self {
            Layout::Small { keys, len } => keys[..usize::from(*len)].iter().position(|&k| k == b),
            Layout::Medium { index, .. } => match index[usize::from(b)] {
                0 => None,
                i => Some(usize::from(i) - 1),
            },
            Layout::Large { .. } => Some(usize::from(b)),
        }
    }
}

/// The compressed path of an inner node: up to 7 bytes inline (no
/// allocation, same 16 bytes as a boxed slice), longer ones on the heap.
#[derive(Clone)]
pub(crate) enum Prefix {
    Inline { len: u8, bytes: [u8; 7] },
    Heap(Box<[u8]>),
}

impl Prefix {
    /// The empty prefix.
    pub(crate) const EMPTY: Prefix = Prefix::Inline {
        len: 0,
        bytes: [0; 7],
    };

    pub(crate) fn new(p: &[u8]) -> Self {
        match p.len() {
            n @ 0..=7 => {
                let mut bytes = [0; 7];
                bytes[..n].copy_from_slice(p);
                Prefix::Inline {
                    len: n as u8,
                    bytes,
                }
            }
            _ => Prefix::Heap(p.into()),
        }
    }
}

impl std::ops::Deref for Prefix {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Prefix::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Prefix::Heap(b) => b,
        }
    }
}

/// The header of an inner node. Every key below the node starts with the
/// path to it followed by `prefix`; `terminal` is the key that ends right
/// there, if any.
pub(crate) struct Head<V> {
    pub(crate) prefix: Prefix,
    /// Number of keys in this subtree (terminal included).
    pub(crate) count: usize,
    pub(crate) terminal: Option<Leaf<V>>,
    pub(crate) layout: Layout,
    /// The lending transaction that made this node (see [`Ledger`]), or 0
    /// for a node made outside one. Only a node of the current
    /// transaction's own generation may change in place during it.
    pub(crate) generation: u64,
}

/// A shared handle on an inner node: one thin pointer (the slot count is
/// stored in the allocation), so a child slot is one word. Cloning it is
/// one reference-count increment; [`Inner::make_mut`] gives write access,
/// copying first when another version shares the node.
///
/// `repr(transparent)`: [`Slot`] relies on the handle being its pointer.
#[repr(transparent)]
pub(crate) struct Inner<V>(NodeArc<V>);

impl<V> Clone for Inner<V> {
    #[inline]
    fn clone(&self) -> Self {
        Inner(self.0.clone())
    }
}

impl<V> std::ops::Deref for Inner<V> {
    type Target = Head<V>;
    #[inline]
    fn deref(&self) -> &Head<V> {
        self.0.head()
    }
}

/// A borrowed entry of an inner node.
pub(crate) enum EntryRef<'a, V> {
    Leaf(&'a Leaf<V>),
    Inner(&'a Inner<V>),
}

/// The capacity a `Small` node of `len` children grows to when full:
/// exact steps while tiny, then by two (most nodes are small).
#[inline]
fn small_growth(len: usize) -> usize {
    if len < 4 {
        len + 1
    } else {
        (len + 2).min(SMALL_MAX)
    }
}

impl<V> Inner<V> {
    /// An empty `Small` node with room for `cap` children, made by the
    /// lending transaction `generation` (0: none).
    pub(crate) fn new(prefix: &[u8], cap: usize, generation: u64) -> Self {
        let head = Head {
            prefix: Prefix::new(prefix),
            count: 0,
            terminal: None,
            layout: Layout::Small {
                keys: [0; SMALL_MAX],
                len: 0,
            },
            generation,
        };
        Inner(NodeArc::from_iter(
            head,
            (0..cap.min(SMALL_MAX)).map(|_| None),
        ))
    }

    /// Whether `self` and `other` are the same node.
    #[inline]
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        self.0.ptr() == other.0.ptr()
    }

    /// Whether this handle is the only one on its node (with acquire
    /// ordering: the writes of every dropped handle's thread are visible).
    #[inline]
    fn is_unique(&self) -> bool {
        self.0.is_unique()
    }

    /// The node's reference count (acquire, like [`Inner::is_unique`]).
    #[inline]
    fn count_refs(&self) -> usize {
        self.0.count()
    }

    /// The node's address, as a number (identity only).
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self.0.ptr().addr()
    }

    /// Whether the writer whose ledger is `lg` (plain writer: `None`) may
    /// change this node in place: it holds the only handle and, for a
    /// lending transaction, made the node itself. (A node of the base
    /// version can have count 1 while the transaction's copies point into
    /// it: the handle the transaction reached it through was lent.)
    #[inline]
    fn owned(&self, lg: &Option<&mut Ledger<V>>) -> bool {
        match lg {
            None => self.is_unique(),
            Some(l) => self.generation == l.generation && self.is_unique(),
        }
    }

    /// Write access to the node when this handle is the only one.
    #[inline]
    fn get_mut(&mut self) -> Option<&mut Body<V>> {
        self.0.get_mut()
    }

    /// The slot array (capacity-long; unused slots are `None`).
    #[inline]
    pub(crate) fn slots(&self) -> &[Option<Slot<V>>] {
        self.0.slots()
    }

    /// Number of children (terminal excluded).
    #[inline]
    pub(crate) fn num_children(&self) -> usize {
        match &self.layout {
            Layout::Small { len, .. } | Layout::Medium { len, .. } => usize::from(*len),
            Layout::Large { len } => usize::from(*len),
        }
    }

    /// Number of entries (children plus terminal).
    #[inline]
    pub(crate) fn num_entries(&self) -> usize {
        self.num_children() + usize::from(self.terminal.is_some())
    }

    /// The slot index of the child at byte `b`.
    #[inline]
    fn find(&self, b: u8) -> Option<usize> {
        self.layout.find(b)
    }

    /// The entry position of the child at byte `b`, which must exist.
    #[inline]
    pub(crate) fn pos_of(&self, b: u8) -> u16 {
        match &self.layout {
            Layout::Small { keys, len } => {
                let i = keys[..usize::from(*len)].iter().position(|&k| k == b);
                debug_assert!(i.is_some(), "pos_of: no child at byte {b}");
                1 + i.unwrap_or(0) as u16
            }
            Layout::Medium { .. } | Layout::Large { .. } => 1 + u16::from(b),
        }
    }

    /// The smallest entry position whose child's byte is `> b` (it may hold
    /// no entry: [`Inner::next_entry`] looks from there).
    #[inline]
    pub(crate) fn pos_after(&self, b: u8) -> u16 {
        match &self.layout {
            Layout::Small { keys, len } => {
                1 + keys[..usize::from(*len)]
                    .iter()
                    .take_while(|&&k| k <= b)
                    .count() as u16
            }
            Layout::Medium { .. } | Layout::Large { .. } => 2 + u16::from(b),
        }
    }

    /// The child at byte `b`.
    #[inline]
    pub(crate) fn child(&self, b: u8) -> Option<EntryRef<'_, V>> {
        self.slots().get(self.find(b)?)?.as_ref().map(Slot::get)
    }

    /// The byte of the child at entry position `pos` (`pos >= 1`).
    #[inline]
    pub(crate) fn byte_at(&self, pos: u16) -> u8 {
        match &self.layout {
            Layout::Small { keys, .. } => keys[usize::from(pos - 1)],
            Layout::Medium { .. } | Layout::Large { .. } => (pos - 1) as u8,
        }
    }

    /// The slot at entry position `pos >= 1`, if it holds a child.
    #[inline]
    fn slot_at(&self, pos: u16) -> Option<&Slot<V>> {
        let p = usize::from(pos - 1);
        let i = match &self.layout {
            Layout::Small { len, .. } => (p < usize::from(*len)).then_some(p)?,
            Layout::Medium { index, .. } => usize::from(*index.get(p)?).checked_sub(1)?,
            Layout::Large { .. } => p,
        };
        self.slots().get(i)?.as_ref()
    }

    /// The smallest entry position `>= from` that holds an entry.
    ///
    /// Positions: `POS_TERMINAL` is the terminal leaf; `1 + i` is the i-th
    /// child of a `Small` node, or the child at byte `i` of the others.
    #[inline]
    pub(crate) fn next_pos(&self, from: u16) -> Option<u16> {
        self.next_entry(from).map(|(p, _)| p)
    }

    /// Like [`Inner::next_pos`], also telling whether the entry is a leaf.
    #[inline]
    pub(crate) fn next_entry(&self, from: u16) -> Option<(u16, bool)> {
        if from == POS_TERMINAL && self.terminal.is_some() {
            return Some((POS_TERMINAL, true));
        }
        let from = from.max(1);
        let is_leaf = Slot::is_leaf;
        match &self.layout {
            Layout::Small { len, .. } => {
                if from > u16::from(*len) {
                    return None;
                }
                let s = self.slots().get(usize::from(from - 1))?.as_ref()?;
                Some((from, is_leaf(s)))
            }
            Layout::Medium { index, .. } => {
                let slots = self.slots();
                (from..POS_END).find_map(|p| match index[usize::from(p - 1)] {
                    0 => None,
                    i => slots[usize::from(i) - 1].as_ref().map(|s| (p, is_leaf(s))),
                })
            }
            Layout::Large { .. } => {
                let slots = self.slots();
                (from..POS_END)
                    .find_map(|p| slots[usize::from(p - 1)].as_ref().map(|s| (p, is_leaf(s))))
            }
        }
    }

    /// The largest entry position `< before` that holds an entry.
    #[inline]
    pub(crate) fn prev_pos(&self, before: u16) -> Option<u16> {
        let child = match &self.layout {
            Layout::Small { len, .. } => {
                let last = u16::from(*len);
                (before > 1 && last > 0).then(|| last.min(before - 1))
            }
            Layout::Medium { index, .. } => (1..before.min(POS_END))
                .rev()
                .find(|&p| index[usize::from(p - 1)] != 0),
            Layout::Large { .. } => {
                let slots = self.slots();
                (1..before.min(POS_END))
                    .rev()
                    .find(|&p| slots[usize::from(p - 1)].is_some())
            }
        };
        child.or_else(|| (before > POS_TERMINAL && self.terminal.is_some()).then_some(POS_TERMINAL))
    }

    /// Like [`Inner::prev_pos`], also telling whether the entry is a leaf.
    #[inline]
    pub(crate) fn prev_entry(&self, before: u16) -> Option<(u16, bool)> {
        let p = self.prev_pos(before)?;
        Some((p, matches!(self.entry(p), EntryRef::Leaf(_))))
    }

    /// The leaf at entry position `pos`, which must hold a leaf.
    #[inline]
    pub(crate) fn leaf_at(&self, pos: u16) -> &Leaf<V> {
        match self.entry(pos) {
            EntryRef::Leaf(l) => l,
            EntryRef::Inner(_) => unreachable!("leaf_at() at an inner node"),
        }
    }

    /// The entry at position `pos`, which must hold one.
    #[inline]
    pub(crate) fn entry(&self, pos: u16) -> EntryRef<'_, V> {
        let slot = if pos == POS_TERMINAL {
            match &self.terminal {
                Some(l) => return EntryRef::Leaf(l),
                None => unreachable!("entry() at an empty terminal position"),
            }
        } else {
            match self.slot_at(pos) {
                Some(s) => s,
                None => unreachable!("entry() at an empty child position"),
            }
        };
        slot.get()
    }

    /// Number of keys under the entry at `pos`.
    #[inline]
    pub(crate) fn entry_count(&self, pos: u16) -> usize {
        match self.entry(pos) {
            EntryRef::Leaf(_) => 1,
            EntryRef::Inner(n) => n.count,
        }
    }

    /// Number of keys under children whose byte is `< b` (terminal excluded).
    pub(crate) fn count_below(&self, b: u8) -> usize {
        let slots = self.slots();
        let count = |s: &Option<Slot<V>>| s.as_ref().map_or(0, Slot::count);
        match &self.layout {
            Layout::Small { keys, len } => keys[..usize::from(*len)]
                .iter()
                .zip(slots)
                .take_while(|(k, _)| **k < b)
                .map(|(_, s)| count(s))
                .sum(),
            Layout::Medium { index, .. } => index[..usize::from(b)]
                .iter()
                .filter(|&&i| i != 0)
                .map(|&i| count(&slots[usize::from(i) - 1]))
                .sum(),
            Layout::Large { .. } => slots[..usize::from(b)].iter().map(count).sum(),
        }
    }

    /// Asks the CPU to start loading every child of this node, so the
    /// cache misses that follow overlap instead of coming one after the
    /// other: the first `lines` cache lines of each inner child, and each
    /// leaf (one line for keys of up to ~48 bytes).
    ///
    /// Iterators entering a node ask for 4 lines of inner children (header
    /// and up to ~22 slots, which the cursor reads next); node copies and
    /// frees ask for 1 (the reference count, which locked instructions then
    /// change).
    #[inline]
    pub(crate) fn prefetch_children(&self, lines: usize) {
        for s in self.slots().iter().flatten() {
            match s.get() {
                EntryRef::Leaf(l) => prefetch(l.addr()),
                EntryRef::Inner(n) => {
                    let a = n.0.ptr().cast::<u8>();
                    for line in 0..lines {
                        prefetch(a.wrapping_add(64 * line));
                    }
                }
            }
        }
    }

    /// Asks for the first three cache lines of this node: the header and
    /// the slots of a `Small` node of up to about a dozen children.
    #[inline]
    pub(crate) fn prefetch_head(&self) {
        let a = self.0.ptr().cast::<u8>();
        for line in 0..3 {
            prefetch(a.wrapping_add(64 * line));
        }
    }

    /// Like [`Inner::prefetch_children`], for at most `max` inner children
    /// from entry position `from` on (`forward`), or before `from`.
    pub(crate) fn prefetch_entries(&self, from: u16, forward: bool, max: usize, lines: usize) {
        let mut pos = from;
        for _ in 0..max {
            let next = if forward {
                self.next_entry(pos)
            } else {
                self.prev_entry(pos)
            };
            let Some((p, leaf)) = next else { return };
            if !leaf {
                let a = self.entry_inner(p).0.ptr().cast::<u8>();
                for line in 0..lines {
                    prefetch(a.wrapping_add(64 * line));
                }
            }
            if forward {
                pos = p + 1;
            } else {
                pos = p;
            }
        }
    }

    /// The inner node at entry position `pos`, which must hold one.
    #[inline]
    pub(crate) fn entry_inner(&self, pos: u16) -> &Inner<V> {
        match self.entry(pos) {
            EntryRef::Inner(n) => n,
            EntryRef::Leaf(_) => unreachable!("entry_inner() at a leaf"),
        }
    }

    /// Every child with its byte, in byte order (for the invariant check).
    pub(crate) fn children(&self) -> Vec<(u8, &Slot<V>)> {
        let mut out = Vec::with_capacity(self.num_children());
        let mut pos = self.next_pos(1);
        while let Some(p) = pos {
            if let Some(s) = self.slot_at(p) {
                out.push((self.byte_at(p), s));
            }
            pos = self.next_pos(p + 1);
        }
        out
    }

    /// Frees this node, which must be unshared, without dropping its slots
    /// (their handles are forgotten: settlement's fast path, where each
    /// count has passed to a copy's duplicate). Only the header is dropped:
    /// no slot is read, so a `Large` node costs what a `Small` one does.
    #[allow(unsafe_code)]
    fn free_without_slots(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `Inner` is a `Drop` wrapper of its `NodeArc`, read out
        // once here and never dropped through `this`.
        unsafe { std::ptr::read(&this.0) }.free_without_slots();
    }

    /// Moves every inner child this node holds the last reference to into
    /// `out` (used by the iterative drop). Shared children stay: dropping
    /// them only decrements a count and cannot recurse.
    fn take_unique_children(body: &mut Body<V>, out: &mut Vec<Inner<V>>) {
        for s in body.slice_mut().iter_mut() {
            if matches!(s.as_ref().map(Slot::get), Some(EntryRef::Inner(n)) if n.is_unique())
                && let Some(Entry::Inner(n)) = s.take().map(Slot::into_entry)
            {
                out.push(n);
            }
        }
    }
}

impl<V: Clone> Inner<V> {
    /// Write access to this node: in place when the writer owns it (see
    /// [`Inner::owned`]), else after copying it, by lending its child
    /// handles when the ledger allows (see [`Ledger`]) or by cloning them
    /// (one reference count each).
    #[inline]
    pub(crate) fn make_mut(&mut self, lg: Option<&mut Ledger<V>>) -> &mut Body<V> {
        if !self.owned(&lg) {
            self.copy_for_write(lg);
        }
        match self.get_mut() {
            Some(body) => body,
            None => unreachable!("make_mut: the node was just made unique"),
        }
    }

    /// The copy of [`Inner::make_mut`], out of line: most calls find the
    /// node owned already (every node of a path after its first write), and
    /// that check is what gets inlined into each descent.
    #[inline(never)]
    fn copy_for_write(&mut self, lg: Option<&mut Ledger<V>>) {
        let cap = self.slots().len();
        // A copied `Small` node that is full gets one spare slot: a copy
        // is usually made to change the node, often to add a child.
        let cap = match self.layout {
            Layout::Small { len, .. } if usize::from(len) == cap => small_growth(cap),
            _ => cap,
        };
        match lg {
            Some(l) if l.may_lend(self) => self.lend_copy(cap, l),
            lg => {
                let layout = self.layout.clone();
                self.rebuild(layout, (0..cap).map(Some), lg);
            }
        }
    }

    /// The lending copy of [`Inner::make_mut`] (see [`Inner::rebuild`]):
    /// the same layout with `cap` slots (at least the current capacity), the
    /// children's handles duplicated bit for bit in one copy of the slot
    /// array rather than one slot at a time. The old node joins the ledger.
    #[allow(unsafe_code)]
    fn lend_copy(&mut self, cap: usize, l: &mut Ledger<V>) {
        let head = Head {
            prefix: self.prefix.clone(),
            count: self.count,
            terminal: self.terminal.clone(),
            layout: self.layout.clone(),
            generation: l.generation,
        };
        let slots = self.slots();
        let n = slots.len();
        assert!(n <= cap, "lend_copy: {cap} slots cannot hold {n}");
        // SAFETY: the closure writes every one of the new node's `cap >= n`
        // slots. The first `n` become bitwise duplicates of the old node's
        // slots (a child handle's duplicate, as `duplicate` makes one, or
        // `None`), copied in one piece from a distinct allocation:
        // `may_lend` established that the old node belongs to the base
        // version alone, and it joins the ledger below, which keeps it (and
        // so each lent child's count) alive until settlement, which then
        // either frees it without dropping its slots (their counts pass to
        // these copies) or gives each of its children one more count. The
        // rest are `None`.
        let new = Inner(unsafe {
            NodeArc::new_with(head, cap, |dst| {
                let (lent, spare) = dst.split_at_mut(n);
                std::ptr::copy_nonoverlapping(slots.as_ptr(), lent.as_mut_ptr().cast(), n);
                for s in spare {
                    s.write(None);
                }
            })
        });
        let old = std::mem::replace(self, new);
        l.lent_from(old);
    }

    /// Replaces this node by a new allocation with header `layout` and a
    /// slot array laid out by `map` (one item per new slot: the old slot
    /// index to fill it from, or `None`; every occupied old slot must be
    /// mapped). Out-of-range or empty old slots give empty new slots. The
    /// slots are
    /// - moved, when the writer owns the node ([`Inner::owned`]);
    /// - lent (copied bit for bit, no count changes), when the ledger
    ///   allows it ([`Ledger::may_lend`]): the old node joins the ledger;
    /// - cloned otherwise, and the old handle is dropped (by the ledger at
    ///   settlement, in a lending transaction).
    #[allow(unsafe_code)]
    fn rebuild(
        &mut self,
        layout: Layout,
        map: impl ExactSizeIterator<Item = Option<usize>>,
        lg: Option<&mut Ledger<V>>,
    ) {
        let generation = lg.as_ref().map_or(0, |l| l.generation);
        if self.owned(&lg) {
            let Some(body) = self.get_mut() else {
                unreachable!("rebuild: an owned node is unique")
            };
            let h = body.header_mut();
            let head = Head {
                prefix: std::mem::replace(&mut h.prefix, Prefix::EMPTY),
                count: h.count,
                terminal: h.terminal.take(),
                layout,
                generation,
            };
            let slots = body.slice_mut();
            self.0 = NodeArc::from_iter(
                head,
                map.map(|i| i.and_then(|i| slots.get_mut(i).and_then(Option::take))),
            );
            return;
        }
        let head = Head {
            prefix: self.prefix.clone(),
            count: self.count,
            terminal: self.terminal.clone(),
            layout,
            generation,
        };
        match lg {
            Some(l) if l.may_lend(self) => {
                let slots = self.slots();
                let mut lent = 0;
                let new = NodeArc::from_iter(
                    head,
                    map.map(|i| {
                        let s = i.and_then(|i| slots.get(i)).and_then(Option::as_ref)?;
                        lent += 1;
                        // SAFETY: `may_lend` established that the old node
                        // belongs to the base version alone; it joins the
                        // ledger below, which keeps it (and so the count
                        // of each lent child) alive until settlement, and
                        // settlement either frees it without dropping its
                        // slots (their counts pass to these copies) or
                        // gives each of its children one more count.
                        Some(unsafe { duplicate(s) })
                    }),
                );
                debug_assert_eq!(lent, self.num_children(), "rebuild: a slot was not mapped");
                let old = std::mem::replace(&mut self.0, new);
                l.lent_from(Inner(old));
            }
            lg => {
                self.prefetch_children(1);
                let slots = self.slots();
                let new = NodeArc::from_iter(
                    head,
                    map.map(|i| i.and_then(|i| slots.get(i).cloned().flatten())),
                );
                let old = Inner(std::mem::replace(&mut self.0, new));
                match lg {
                    Some(l) => l.defer(Slot::from(old)),
                    None => drop(old),
                }
            }
        }
    }

    /// The child at byte `b`, for writing (the node is made unique first).
    #[inline]
    pub(crate) fn child_mut(
        &mut self,
        b: u8,
        lg: Option<&mut Ledger<V>>,
    ) -> Option<&mut Option<Slot<V>>> {
        let i = self.find(b)?;
        let body = self.make_mut(lg);
        body.slice_mut().get_mut(i).filter(|s| s.is_some())
    }

    /// More slots (`cap`) in the same layout: the owned node's block grows
    /// where it is ([`NodeArc::grow`]: one reallocation, no slot visited);
    /// a node the writer does not own is copied into a larger one.
    fn grow(&mut self, cap: usize, lg: Option<&mut Ledger<V>>) {
        if self.owned(&lg) {
            self.0.grow(cap);
        } else {
            let layout = self.layout.clone();
            self.rebuild(layout, (0..cap).map(Some), lg);
        }
    }

    /// Adds a child at byte `b`, which must be absent. Grows the node (to
    /// the next capacity or layout) when it is full.
    pub(crate) fn add_child(&mut self, b: u8, slot: Slot<V>, mut lg: Option<&mut Ledger<V>>) {
        debug_assert!(self.child(b).is_none());
        let cap = self.slots().len();
        let n = self.num_children();
        if n == cap {
            match &self.layout {
                Layout::Small { .. } if n < SMALL_MAX => {
                    self.grow(small_growth(n), lg.as_deref_mut());
                }
                Layout::Small { keys, .. } => {
                    let mut index = Box::new([0u8; 256]);
                    for (i, &k) in keys.iter().enumerate() {
                        index[usize::from(k)] = (i + 1) as u8;
                    }
                    let layout = Layout::Medium {
                        index,
                        len: n as u8,
                    };
                    self.rebuild(layout, (0..n + MEDIUM_STEP).map(Some), lg.as_deref_mut());
                }
                Layout::Medium { .. } if n < MEDIUM_MAX => {
                    self.grow((n + MEDIUM_STEP).min(MEDIUM_MAX), lg.as_deref_mut());
                }
                Layout::Medium { index, .. } => {
                    let map: [u8; 256] = **index;
                    let layout = Layout::Large { len: n as u16 };
                    self.rebuild(
                        layout,
                        map.into_iter().map(|i| usize::from(i).checked_sub(1)),
                        lg.as_deref_mut(),
                    );
                }
                Layout::Large { .. } => {}
            }
        }
        let body = self.make_mut(lg);
        // The header first, then the slots (one allocation, two borrows).
        let (at, shift_from) = match &mut body.header_mut().layout {
            Layout::Small { keys, len } => {
                let n = usize::from(*len);
                let at = keys[..n].iter().position(|&k| k > b).unwrap_or(n);
                keys.copy_within(at..n, at + 1);
                keys[at] = b;
                *len += 1;
                (at, Some(n))
            }
            Layout::Medium { index, len } => {
                let at = usize::from(*len);
                *len += 1;
                index[usize::from(b)] = *len;
                (at, None)
            }
            Layout::Large { len } => {
                *len += 1;
                (usize::from(b), None)
            }
        };
        let slots = body.slice_mut();
        if let Some(n) = shift_from {
            slots[at..=n].rotate_right(1);
        }
        slots[at] = Some(slot);
    }

    /// Removes and returns the child at byte `b`, shrinking the node when
    /// it falls below its layout's size class.
    /// The caller disposes of the removed slot (through the ledger, in a
    /// lending transaction).
    pub(crate) fn remove_child(
        &mut self,
        b: u8,
        mut lg: Option<&mut Ledger<V>>,
    ) -> Option<Slot<V>> {
        let i = self.find(b)?;
        self.slots().get(i)?.as_ref()?;
        let body = self.make_mut(lg.as_deref_mut());
        // The header first, then the slots (one allocation, two borrows).
        enum Fill {
            /// Close the gap: `slots[i..n]` shift left by one.
            Shift(usize),
            /// Move the last slot (`slots[n]`) into the hole.
            Last(usize),
            Hole,
        }
        let fill = match &mut body.header_mut().layout {
            Layout::Small { keys, len } => {
                let n = usize::from(*len);
                keys.copy_within(i + 1..n, i);
                *len -= 1;
                Fill::Shift(n)
            }
            Layout::Medium { index, len } => {
                index[usize::from(b)] = 0;
                let last = usize::from(*len) - 1;
                *len -= 1;
                if i != last {
                    // The last slot moves into the hole: repoint its byte.
                    if let Some(e) = index.iter_mut().find(|e| usize::from(**e) == last + 1) {
                        *e = (i + 1) as u8;
                    }
                    Fill::Last(last)
                } else {
                    Fill::Hole
                }
            }
            Layout::Large { len } => {
                *len -= 1;
                Fill::Hole
            }
        };
        let slots = body.slice_mut();
        let removed = slots[i].take();
        match fill {
            Fill::Shift(n) => slots[i..n].rotate_left(1),
            Fill::Last(last) => slots.swap(i, last),
            Fill::Hole => {}
        }
        self.shrink(lg);
        removed
    }

    /// Moves a node that fell below its size class to the next smaller
    /// layout.
    fn shrink(&mut self, lg: Option<&mut Ledger<V>>) {
        match &self.layout {
            Layout::Medium { index, len } if usize::from(*len) <= MEDIUM_MIN => {
                let mut keys = [0u8; SMALL_MAX];
                let mut order = [0usize; SMALL_MAX];
                let mut n = 0;
                for (byte, &i) in index.iter().enumerate() {
                    if i != 0 {
                        keys[n] = byte as u8;
                        order[n] = usize::from(i) - 1;
                        n += 1;
                    }
                }
                let layout = Layout::Small { keys, len: n as u8 };
                self.rebuild(layout, order[..n].iter().map(|&i| Some(i)), lg);
            }
            Layout::Large { len } if usize::from(*len) <= LARGE_MIN => {
                let n = usize::from(*len);
                let mut index = Box::new([0u8; 256]);
                let mut order = Vec::with_capacity(n);
                for (byte, s) in self.slots().iter().enumerate() {
                    if s.is_some() {
                        order.push(byte);
                        index[byte] = order.len() as u8;
                    }
                }
                let layout = Layout::Medium {
                    index,
                    len: n as u8,
                };
                self.rebuild(layout, order.into_iter().map(Some), lg);
            }
            _ => {}
        }
    }
}

impl<V> Drop for Inner<V> {
    /// Drops a subtree without recursion: uniquely owned inner children are
    /// unlinked onto an explicit stack first, so a deep tree cannot overflow
    /// the call stack.
    fn drop(&mut self) {
        if !self.is_unique() {
            return; // shared: dropping the handle only decrements the count
        }
        if self.num_children() == 0 {
            return; // nothing to unlink (a lent node emptied by `settle`)
        }
        // The node is freed: every child's count is about to change.
        self.prefetch_children(1);
        let Some(body) = self.get_mut() else {
            return;
        };
        let mut stack = Vec::new();
        Self::take_unique_children(body, &mut stack);
        while let Some(mut node) = stack.pop() {
            node.prefetch_children(1);
            if let Some(body) = node.get_mut() {
                Self::take_unique_children(body, &mut stack);
            }
            // `node` drops here with no unique inner child left.
        }
    }
}

/// A second handle on the same child, made without touching its count.
///
/// # Safety
/// The two handles together hold one count: the caller must make sure that
/// exactly one of them is ever dropped as a counted handle, and that the
/// other is forgotten (or its count restored) before that happens.
#[allow(unsafe_code)]
unsafe fn duplicate<V>(s: &Slot<V>) -> Slot<V> {
    // SAFETY: a bitwise copy of a handle (a pointer, no drop glue of its
    // own); the caller's contract keeps the count balanced.
    unsafe { std::ptr::read(s) }
}

/// The next ledger generation (0 means "no ledger").
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The bookkeeping of a *lending* write transaction: one that copies nodes
/// of the version it started from (its *base*) without changing the
/// reference counts of their children.
///
/// A plain copy of a node clones every child handle (one atomic increment
/// on each child's cache line), and freeing the replaced node later
/// decrements them all again. When the base version is the only owner of
/// the node, the transaction instead *lends* the child handles: the copy
/// gets bitwise duplicates, and the base node, still read by the base
/// version's readers, joins the ledger. Settlement then finishes the job
/// one of two ways:
/// - [`Ledger::settle`] with exclusive access to the base tree (the base
///   version is gone: no reader can reach it) and every lent node still
///   unshared: the lent nodes are freed without dropping their slots. Their
///   counts now belong to the copies. This is the fast path.
/// - otherwise (abort, a reader still on the base version, a lent node
///   cloned meanwhile): each lent node takes one more count on each of its
///   children, after which every handle counts as in a plain copy.
///
/// Until then nothing the transaction lets go of may be dropped: a handle
/// it removes may be one of the lent duplicates, whose count still serves
/// the base version. Those handles are kept in the ledger and dropped at
/// settlement, after the lent nodes are dealt with.
///
/// Nodes the transaction makes carry its `generation`; only those change
/// in place during it (a base node can have count 1 while copies point
/// into it).
pub(crate) struct Ledger<V> {
    pub(crate) generation: u64,
    /// Address of the base version's root node (0: empty base). The
    /// transaction's tree holds one counted handle on it until it copies
    /// the root.
    base_root: usize,
    /// Base nodes whose child handles were lent: an uncounted duplicate
    /// handle each, and whether it is the base root.
    lent: Vec<(std::mem::ManuallyDrop<Inner<V>>, bool)>,
    /// Handles the transaction let go of, dropped at settlement.
    deferred: Vec<Slot<V>>,
}

impl<V> Ledger<V> {
    /// A ledger for a transaction whose base root is at `base_root`.
    pub(crate) fn new(base_root: usize) -> Self {
        Ledger {
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            base_root,
            lent: Vec::new(),
            deferred: Vec::new(),
        }
    }

    /// Whether the transaction may lend the children of `node`, a node it
    /// reached and did not make: the base version holds the only count on
    /// it (for the base root: the base's and the transaction's own).
    fn may_lend(&self, node: &Inner<V>) -> bool {
        node.generation != self.generation
            && node.count_refs() == if node.addr() == self.base_root { 2 } else { 1 }
    }

    /// Takes `old`, whose children were just lent to its copy.
    #[allow(unsafe_code)]
    fn lent_from(&mut self, old: Inner<V>) {
        if self.lent.capacity() == 0 {
            // One allocation for a whole path of a deep tree, rather than
            // growing 0 → 4 → 8 as `push` would.
            self.lent.reserve(8);
        }
        if old.addr() == self.base_root {
            // The transaction's own counted handle on the base root: keep
            // an uncounted duplicate and let the count go (the base keeps
            // the node alive).
            // SAFETY: the duplicate is never dropped as a counted handle:
            // settlement frees the root through it only after forgetting
            // the base's own handle, or forgets it.
            let dup = Inner(unsafe { std::ptr::read(&old.0) });
            drop(old);
            self.lent.push((std::mem::ManuallyDrop::new(dup), true));
        } else {
            // `old` is the duplicate the copy of its parent was lent.
            self.lent.push((std::mem::ManuallyDrop::new(old), false));
        }
    }

    /// Keeps `s` until settlement.
    #[inline]
    pub(crate) fn defer(&mut self, s: Slot<V>) {
        self.deferred.push(s);
    }

    /// Settles with the base version's tree in hand (`base_root`, its
    /// root handle), which the caller owns exclusively: no reader can
    /// reach the base any more. Takes the fast path when every lent node
    /// is still unshared; otherwise restores the counts (see [`Ledger`]).
    /// Returns whether it took the fast path.
    pub(crate) fn settle(mut self, base_root: &mut Option<Inner<V>>) -> bool {
        let root_lent = self.lent.iter().any(|(_, r)| *r);
        let fast = root_lent
            && base_root
                .as_ref()
                .is_some_and(|r| r.addr() == self.base_root)
            && self.lent.iter().all(|(n, _)| n.is_unique());
        if fast {
            // The base's handle on its root and the lent duplicate are one
            // count: the duplicate frees the root below.
            std::mem::forget(base_root.take());
            for (n, _) in self.lent.drain(..) {
                // Its slots' counts now belong to the copies' duplicates.
                std::mem::ManuallyDrop::into_inner(n).free_without_slots();
            }
        }
        self.restore();
        fast
    }

    /// The slow settlement: every lent node takes a count on each of its
    /// children (the copies' duplicates now count as clones), the
    /// duplicates of lent nodes other than the root are released (their
    /// parent's new count stands for them), then the deferred handles go.
    fn restore(&mut self) {
        for (n, _) in &self.lent {
            for s in n.slots().iter().flatten() {
                std::mem::forget(s.clone());
            }
        }
        for (n, root) in self.lent.drain(..) {
            if !root {
                drop(std::mem::ManuallyDrop::into_inner(n));
            }
        }
        self.deferred.clear();
    }
}

impl<V> Drop for Ledger<V> {
    /// A ledger dropped without [`Ledger::settle`] (an aborted transaction)
    /// restores the counts.
    fn drop(&mut self) {
        self.restore();
    }
}

/// Drops `s`, or hands it to the ledger of a lending transaction.
#[inline]
pub(crate) fn dispose<V>(lg: Option<&mut Ledger<V>>, s: Option<Slot<V>>) {
    if let (Some(l), Some(s)) = (lg, s) {
        l.defer(s);
    }
}

/// A hint to load the cache line at `addr`; no effect on results.
#[inline(always)]
pub(crate) fn prefetch(addr: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    #[allow(unsafe_code)]
    // SAFETY: `prefetcht0` is a hint: it never faults, whatever the address,
    // and reads or writes no program-visible state. SSE, which it needs, is
    // part of the x86_64 baseline every Rust target for it enables.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr.cast::<i8>());
    }
    #[cfg(any(not(target_arch = "x86_64"), miri))]
    let _ = addr;
}

/// Length of the common prefix of `a` and `b`.
#[inline]
pub(crate) fn common_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
