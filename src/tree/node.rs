//! Node types of the persistent adaptive radix tree: leaves, inner nodes and
//! their three adaptive layouts (`Small`, `Medium`, `Large`).
//!
//! This module owns the node layout and the per-node primitives (find, add and
//! remove a child, walk entries in order, copy-on-write). It knows nothing of
//! versions or iteration state; `mod.rs` drives these primitives.
//!
//! An inner node is ONE allocation: a shared header (prefix, count, terminal
//! leaf, layout) followed by its child slots. Reaching a child therefore costs
//! one pointer hop, and copying a node for a new version is one allocation.
//! A node's slot array has a capacity; a node that outgrows it (or changes
//! layout) is rebuilt into a new allocation, moving the slots when this version
//! owns the node alone and cloning them when the node is shared.

use triomphe::{Arc, HeaderSliceWithLengthProtected, ThinArc};

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

pub(crate) use super::leaf::Leaf;

/// One child of an inner node: a leaf, or an inner node.
#[derive(Clone)]
pub(crate) enum Slot<V> {
    Leaf(Leaf<V>),
    Inner(Inner<V>),
}

impl<V> Slot<V> {
    /// Number of keys below this slot.
    #[inline]
    pub(crate) fn count(&self) -> usize {
        match self {
            Slot::Leaf(_) => 1,
            Slot::Inner(n) => n.count,
        }
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
}

/// The one allocation of an inner node: header, then the slot array (its
/// length is the node's capacity; unused slots are `None`).
pub(crate) type Body<V> = HeaderSliceWithLengthProtected<Head<V>, Option<Slot<V>>>;

/// A shared handle on an inner node: one thin pointer (the slot count is
/// stored in the allocation), so a child slot is 16 bytes. Cloning it is
/// one reference-count increment; [`Inner::make_mut`] gives write access,
/// copying first when another version shares the node.
pub(crate) struct Inner<V>(ThinArc<Head<V>, Option<Slot<V>>>);

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
        &self.0.header.header
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
    /// An empty `Small` node with room for `cap` children.
    pub(crate) fn new(prefix: &[u8], cap: usize) -> Self {
        let head = Head {
            prefix: Prefix::new(prefix),
            count: 0,
            terminal: None,
            layout: Layout::Small {
                keys: [0; SMALL_MAX],
                len: 0,
            },
        };
        Inner(ThinArc::from_header_and_iter(
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
        self.0.with_arc(|a| a.is_unique())
    }

    /// Write access to the node when this handle is the only one.
    #[inline]
    #[allow(unsafe_code)]
    fn get_mut(&mut self) -> Option<&mut Body<V>> {
        // `ThinArc` lends its node mutably only inside a closure; take the
        // address out and re-borrow it for as long as `self` is borrowed.
        let body: *mut Body<V> = self
            .0
            .with_arc_mut(|a| Arc::get_mut(a).map(|b| b as *mut _))?;
        // SAFETY: `Arc::get_mut` returned `Some`, so this handle was the
        // only reference to the allocation (count 1, acquire-synchronised
        // with every dropped handle). The allocation lives as long as
        // `self.0`, which the returned borrow keeps mutably borrowed: no
        // clone, drop or other access through `self` can happen while the
        // reference lives, and no other handle exists to reach the node.
        // `with_arc_mut` writes the same pointer back into `self.0` (the
        // closure did not replace the `Arc`), so the address stays valid.
        Some(unsafe { &mut *body })
    }

    /// The slot array (capacity-long; unused slots are `None`).
    #[inline]
    pub(crate) fn slots(&self) -> &[Option<Slot<V>>] {
        &self.0.slice
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
        match &self.layout {
            Layout::Small { keys, len } => keys[..usize::from(*len)].iter().position(|&k| k == b),
            Layout::Medium { index, .. } => match index[usize::from(b)] {
                0 => None,
                i => Some(usize::from(i) - 1),
            },
            Layout::Large { .. } => Some(usize::from(b)),
        }
    }

    /// The child at byte `b`.
    #[inline]
    pub(crate) fn child(&self, b: u8) -> Option<&Slot<V>> {
        self.slots().get(self.find(b)?)?.as_ref()
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
        let is_leaf = |s: &Slot<V>| matches!(s, Slot::Leaf(_));
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
        match slot {
            Slot::Leaf(l) => EntryRef::Leaf(l),
            Slot::Inner(n) => EntryRef::Inner(n),
        }
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
    /// and up to ~11 slots, which the cursor reads next); node copies and
    /// frees ask for 1 (the reference count, which locked instructions then
    /// change).
    #[inline]
    pub(crate) fn prefetch_children(&self, lines: usize) {
        for s in self.slots().iter().flatten() {
            match s {
                Slot::Leaf(l) => prefetch(l.addr()),
                Slot::Inner(n) => {
                    let a = n.0.ptr().cast::<u8>();
                    for line in 0..lines {
                        prefetch(a.wrapping_add(64 * line));
                    }
                }
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

    /// Moves every inner child this node holds the last reference to into
    /// `out` (used by the iterative drop). Shared children stay: dropping
    /// them only decrements a count and cannot recurse.
    fn take_unique_children(body: &mut Body<V>, out: &mut Vec<Inner<V>>) {
        for s in body.slice_mut().iter_mut() {
            if matches!(s, Some(Slot::Inner(n)) if n.is_unique())
                && let Some(Slot::Inner(n)) = s.take()
            {
                out.push(n);
            }
        }
    }
}

impl<V: Clone> Inner<V> {
    /// Write access to this node: in place when this handle is the only
    /// one, else after copying the node (its children are shared, one
    /// reference count each).
    #[inline]
    pub(crate) fn make_mut(&mut self) -> &mut Body<V> {
        if !self.is_unique() {
            let cap = self.slots().len();
            // A copied `Small` node that is full gets one spare slot: a copy
            // is usually made to change the node, often to add a child.
            let cap = match self.layout {
                Layout::Small { len, .. } if usize::from(len) == cap => small_growth(cap),
                _ => cap,
            };
            let layout = self.layout.clone();
            self.rebuild(layout, (0..cap).map(Some));
        }
        match self.get_mut() {
            Some(body) => body,
            None => unreachable!("make_mut: the node was just made unique"),
        }
    }

    /// Replaces this node by a new allocation with header `layout` and a
    /// slot array laid out by `map` (one item per new slot: the old slot
    /// index to fill it from, or `None`). Slots are moved when this handle
    /// owns the node alone, cloned otherwise; out-of-range or empty old
    /// slots give empty new slots.
    fn rebuild(&mut self, layout: Layout, map: impl ExactSizeIterator<Item = Option<usize>>) {
        let new = if let Some(body) = self.get_mut() {
            let h = body.header_mut();
            let head = Head {
                prefix: std::mem::replace(&mut h.prefix, Prefix::EMPTY),
                count: h.count,
                terminal: h.terminal.take(),
                layout,
            };
            let slots = body.slice_mut();
            ThinArc::from_header_and_iter(
                head,
                map.map(|i| i.and_then(|i| slots.get_mut(i).and_then(Option::take))),
            )
        } else {
            self.prefetch_children(1);
            let head = Head {
                prefix: self.prefix.clone(),
                count: self.count,
                terminal: self.terminal.clone(),
                layout,
            };
            let slots = self.slots();
            ThinArc::from_header_and_iter(
                head,
                map.map(|i| i.and_then(|i| slots.get(i).cloned().flatten())),
            )
        };
        self.0 = new;
    }

    /// The child at byte `b`, for writing (the node is made unique first).
    #[inline]
    pub(crate) fn child_mut(&mut self, b: u8) -> Option<&mut Option<Slot<V>>> {
        let i = self.find(b)?;
        let body = self.make_mut();
        body.slice_mut().get_mut(i).filter(|s| s.is_some())
    }

    /// Adds a child at byte `b`, which must be absent. Grows the node (to
    /// the next capacity or layout) when it is full.
    pub(crate) fn add_child(&mut self, b: u8, slot: Slot<V>) {
        debug_assert!(self.child(b).is_none());
        let cap = self.slots().len();
        let n = self.num_children();
        if n == cap {
            match &self.layout {
                Layout::Small { .. } if n < SMALL_MAX => {
                    let layout = self.layout.clone();
                    self.rebuild(layout, (0..small_growth(n)).map(Some));
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
                    self.rebuild(layout, (0..n + MEDIUM_STEP).map(Some));
                }
                Layout::Medium { .. } if n < MEDIUM_MAX => {
                    let layout = self.layout.clone();
                    self.rebuild(layout, (0..(n + MEDIUM_STEP).min(MEDIUM_MAX)).map(Some));
                }
                Layout::Medium { index, .. } => {
                    let map: [u8; 256] = **index;
                    let layout = Layout::Large { len: n as u16 };
                    self.rebuild(
                        layout,
                        map.into_iter().map(|i| usize::from(i).checked_sub(1)),
                    );
                }
                Layout::Large { .. } => {}
            }
        }
        let body = self.make_mut();
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
    pub(crate) fn remove_child(&mut self, b: u8) -> Option<Slot<V>> {
        let i = self.find(b)?;
        self.slots().get(i)?.as_ref()?;
        let body = self.make_mut();
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
        self.shrink();
        removed
    }

    /// Moves a node that fell below its size class to the next smaller
    /// layout.
    fn shrink(&mut self) {
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
                self.rebuild(layout, order[..n].iter().map(|&i| Some(i)));
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
                self.rebuild(layout, order.into_iter().map(Some));
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

/// Length of the common prefix of `a` and `b`.
#[inline]
pub(crate) fn common_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
