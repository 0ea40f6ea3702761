//! Node types of the persistent adaptive radix tree: inner nodes and their
//! three adaptive layouts (`Small`, `Medium`, `Large`).
//!
//! This module owns the node layout and the per-node read primitives (find
//! a child, walk entries in order, prefetch, the iterative drop). It knows
//! nothing of versions or iteration state; `mod.rs` drives these
//! primitives. Next to it: `slot.rs` (the one-word child [`Slot`]),
//! `write.rs` (copy-on-write, adding and removing a child, growth and
//! rebuilds) and `ledger.rs` (the lending transaction's [`Ledger`]).
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
use super::ledger::Ledger;
use super::slot::{Entry, EntryRef, Slot};

/// Most children a `Small` node holds (sorted byte keys, linear search).
pub(crate) const SMALL_MAX: usize = 16;
/// Most children a `Medium` node holds (a 256-byte index into the slots).
pub(crate) const MEDIUM_MAX: usize = 48;
/// A `Medium` node that shrinks to this many children becomes `Small`.
pub(crate) const MEDIUM_MIN: usize = 12;
/// A `Large` node that shrinks to this many children becomes `Medium`.
pub(crate) const LARGE_MIN: usize = 36;

/// Entry position of the terminal leaf (the key that ends at this node).
pub(crate) const POS_TERMINAL: u16 = 0;
/// One past the largest entry position (`1 + 255` is the largest child).
pub(crate) const POS_END: u16 = 257;

pub(crate) use super::leaf::Leaf;

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
pub(crate) struct Inner<V>(pub(super) NodeArc<V>);

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

    /// A second handle on this node that holds no count of its own,
    /// wrapped so that dropping it does nothing.
    ///
    /// # Safety
    /// The caller must not use the alias once the node may have been freed
    /// (a versioned tree pins the version it reads first), and must not
    /// drop it as a counted handle (take it out of the `ManuallyDrop`).
    #[allow(unsafe_code)]
    #[inline]
    pub(super) unsafe fn alias(&self) -> std::mem::ManuallyDrop<Inner<V>> {
        // SAFETY: a bitwise copy of a one-pointer handle; the caller's
        // contract keeps it from outliving the node or being counted.
        std::mem::ManuallyDrop::new(Inner(unsafe { std::ptr::read(&self.0) }))
    }

    /// Whether `self` and `other` are the same node.
    #[inline]
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        self.0.ptr() == other.0.ptr()
    }

    /// Whether this handle is the only one on its node (with acquire
    /// ordering: the writes of every dropped handle's thread are visible).
    #[inline]
    pub(super) fn is_unique(&self) -> bool {
        self.0.is_unique()
    }

    /// The node's reference count (acquire, like [`Inner::is_unique`]).
    #[inline]
    pub(super) fn count_refs(&self) -> usize {
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
    pub(super) fn owned(&self, lg: &Option<&mut Ledger<V>>) -> bool {
        match lg {
            None => self.is_unique(),
            Some(l) => self.generation == l.generation && self.is_unique(),
        }
    }

    /// Write access to the node when this handle is the only one.
    #[inline]
    pub(super) fn get_mut(&mut self) -> Option<&mut Body<V>> {
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
    pub(super) fn find(&self, b: u8) -> Option<usize> {
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
    #[cfg(any(test, feature = "testing"))]
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
    pub(super) fn free_without_slots(self) {
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

/// Length of the common prefix of `a` and `b`, compared eight bytes at a
/// time (keys often share long prefixes: ids, emails).
#[inline]
pub(crate) fn common_len(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            unreachable!("chunks_exact(8) yields 8 bytes")
        };
        // Little-endian: the first differing byte is the lowest set one.
        let d = u64::from_le_bytes(x) ^ u64::from_le_bytes(y);
        if d != 0 {
            return i + d.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}
