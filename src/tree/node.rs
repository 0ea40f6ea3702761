//! Node types of the persistent adaptive radix tree: leaves, inner nodes and
//! their three adaptive child containers (`Small`, `Medium`, `Large`).
//!
//! This module owns the node layout and the per-node primitives (find, add and
//! remove a child, walk entries in order). It knows nothing of versions or
//! iteration state; `mod.rs` drives these primitives copy-on-write.

use triomphe::{Arc, HeaderSlice};

/// Most children a `Small` node holds (sorted byte keys, linear search).
pub(crate) const SMALL_MAX: usize = 16;
/// Most children a `Medium` node holds (a 256-byte index into a slot vector).
pub(crate) const MEDIUM_MAX: usize = 48;
/// A `Medium` node that shrinks to this many children becomes `Small`.
pub(crate) const MEDIUM_MIN: usize = 12;
/// A `Large` node that shrinks to this many children becomes `Medium`.
pub(crate) const LARGE_MIN: usize = 36;

/// Entry position of the terminal leaf (the key that ends at this node).
pub(crate) const POS_TERMINAL: u16 = 0;
/// One past the largest entry position (`1 + 255` is the largest child).
pub(crate) const POS_END: u16 = 257;

/// A stored key and its value in one shared allocation (the value is the
/// header, the whole key the slice). Cloning a leaf is one reference-count
/// increment, so copying a node touches each leaf once and never the
/// objects the values point to.
pub(crate) struct Leaf<V>(Arc<HeaderSlice<V, [u8]>>);

impl<V> Clone for Leaf<V> {
    #[inline]
    fn clone(&self) -> Self {
        Leaf(self.0.clone())
    }
}

impl<V> Leaf<V> {
    pub(crate) fn new(key: &[u8], value: V) -> Self {
        Leaf(Arc::from_header_and_slice(value, key))
    }

    /// The whole key.
    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        &self.0.slice
    }

    /// The value.
    #[inline]
    pub(crate) fn value(&self) -> &V {
        &self.0.header
    }

    /// Replaces the value: in place when no other version shares this leaf,
    /// else by a new leaf (the shared one stays as it was).
    pub(crate) fn replace_value(&mut self, value: V) -> V
    where
        V: Clone,
    {
        match Arc::get_mut(&mut self.0) {
            Some(l) => std::mem::replace(&mut l.header, value),
            None => {
                let old = self.value().clone();
                *self = Leaf::new(self.key(), value);
                old
            }
        }
    }
}

/// One child of an inner node: a leaf stored inline, or a shared inner node.
#[derive(Clone)]
pub(crate) enum Slot<V> {
    Leaf(Leaf<V>),
    Inner(Arc<Inner<V>>),
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

/// The children of an inner node, in one of three sizes.
#[derive(Clone)]
pub(crate) enum Children<V> {
    /// Up to `SMALL_MAX` children; `keys[..slots.len()]` sorted ascending.
    Small {
        keys: [u8; SMALL_MAX],
        slots: Vec<Slot<V>>,
    },
    /// Up to `MEDIUM_MAX` children; `index[b]` is 1 + the slot of byte `b`, or 0.
    Medium {
        index: Box<[u8; 256]>,
        slots: Vec<Slot<V>>,
    },
    /// Up to 256 children, addressed directly by byte.
    Large {
        slots: Box<[Option<Slot<V>>]>,
        len: u16,
    },
}

/// The compressed path of an inner node: up to 7 bytes inline (no
/// allocation, same 16 bytes as a boxed slice), longer ones on the heap.
#[derive(Clone)]
pub(crate) enum Prefix {
    Inline { len: u8, bytes: [u8; 7] },
    Heap(Box<[u8]>),
}

impl Prefix {
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

/// An inner node. Every key below it starts with the path to it followed by
/// `prefix`; `terminal` is the key that ends right there, if any.
#[derive(Clone)]
pub(crate) struct Inner<V> {
    pub(crate) prefix: Prefix,
    /// Number of keys in this subtree (terminal included).
    pub(crate) count: usize,
    pub(crate) terminal: Option<Leaf<V>>,
    pub(crate) children: Children<V>,
}

/// A borrowed entry of an inner node.
pub(crate) enum EntryRef<'a, V> {
    Leaf(&'a Leaf<V>),
    Inner(&'a Arc<Inner<V>>),
}

impl<V> Inner<V> {
    pub(crate) fn new(prefix: &[u8]) -> Self {
        Inner {
            prefix: Prefix::new(prefix),
            count: 0,
            terminal: None,
            children: Children::Small {
                keys: [0; SMALL_MAX],
                slots: Vec::new(),
            },
        }
    }

    /// Number of children (terminal excluded).
    #[inline]
    pub(crate) fn num_children(&self) -> usize {
        match &self.children {
            Children::Small { slots, .. } | Children::Medium { slots, .. } => slots.len(),
            Children::Large { len, .. } => usize::from(*len),
        }
    }

    /// Number of entries (children plus terminal).
    #[inline]
    pub(crate) fn num_entries(&self) -> usize {
        self.num_children() + usize::from(self.terminal.is_some())
    }

    /// The child at byte `b`.
    #[inline]
    pub(crate) fn child(&self, b: u8) -> Option<&Slot<V>> {
        match &self.children {
            Children::Small { keys, slots } => {
                let n = slots.len();
                keys[..n].iter().position(|&k| k == b).map(|i| &slots[i])
            }
            Children::Medium { index, slots } => match index[usize::from(b)] {
                0 => None,
                i => slots.get(usize::from(i) - 1),
            },
            Children::Large { slots, .. } => slots[usize::from(b)].as_ref(),
        }
    }

    /// The child at byte `b`, mutably.
    #[inline]
    pub(crate) fn child_mut(&mut self, b: u8) -> Option<&mut Slot<V>> {
        match &mut self.children {
            Children::Small { keys, slots } => {
                let n = slots.len();
                keys[..n]
                    .iter()
                    .position(|&k| k == b)
                    .map(move |i| &mut slots[i])
            }
            Children::Medium { index, slots } => match index[usize::from(b)] {
                0 => None,
                i => slots.get_mut(usize::from(i) - 1),
            },
            Children::Large { slots, .. } => slots[usize::from(b)].as_mut(),
        }
    }

    /// Adds a child at byte `b`, which must be absent. Grows the container
    /// to the next size when full.
    pub(crate) fn add_child(&mut self, b: u8, slot: Slot<V>) {
        debug_assert!(self.child(b).is_none());
        match &mut self.children {
            Children::Small { keys, slots } if slots.len() < SMALL_MAX => {
                let n = slots.len();
                let at = keys[..n].iter().position(|&k| k > b).unwrap_or(n);
                keys.copy_within(at..n, at + 1);
                keys[at] = b;
                if slots.len() == slots.capacity() {
                    // Exact growth keeps small nodes compact (most nodes are small).
                    slots.reserve_exact(if n < 4 { 1 } else { 2 });
                }
                slots.insert(at, slot);
            }
            Children::Small { keys, slots } => {
                let mut index = Box::new([0u8; 256]);
                let mut moved = Vec::with_capacity(SMALL_MAX + 8);
                for (i, s) in slots.drain(..).enumerate() {
                    index[usize::from(keys[i])] = (i + 1) as u8;
                    moved.push(s);
                }
                moved.push(slot);
                index[usize::from(b)] = moved.len() as u8;
                self.children = Children::Medium {
                    index,
                    slots: moved,
                };
            }
            Children::Medium { index, slots } if slots.len() < MEDIUM_MAX => {
                slots.push(slot);
                index[usize::from(b)] = slots.len() as u8;
            }
            Children::Medium { index, slots } => {
                let mut large: Vec<Option<Slot<V>>> = (0..256).map(|_| None).collect();
                let mut taken: Vec<Option<Slot<V>>> = slots.drain(..).map(Some).collect();
                for (byte, &i) in index.iter().enumerate() {
                    if i != 0 {
                        large[byte] = taken[usize::from(i) - 1].take();
                    }
                }
                large[usize::from(b)] = Some(slot);
                self.children = Children::Large {
                    slots: large.into_boxed_slice(),
                    len: (MEDIUM_MAX + 1) as u16,
                };
            }
            Children::Large { slots, len } => {
                slots[usize::from(b)] = Some(slot);
                *len += 1;
            }
        }
    }

    /// Removes and returns the child at byte `b`, shrinking the container
    /// when it falls below its size class.
    pub(crate) fn remove_child(&mut self, b: u8) -> Option<Slot<V>> {
        let removed = match &mut self.children {
            Children::Small { keys, slots } => {
                let n = slots.len();
                let at = keys[..n].iter().position(|&k| k == b)?;
                keys.copy_within(at + 1..n, at);
                slots.remove(at)
            }
            Children::Medium { index, slots } => {
                let i = usize::from(std::mem::replace(&mut index[usize::from(b)], 0));
                if i == 0 {
                    return None;
                }
                let last = slots.len();
                if i != last {
                    // The last slot moves into the hole: repoint its byte.
                    if let Some(e) = index.iter_mut().find(|e| usize::from(**e) == last) {
                        *e = i as u8;
                    }
                }
                slots.swap_remove(i - 1)
            }
            Children::Large { slots, len } => {
                let s = slots[usize::from(b)].take()?;
                *len -= 1;
                s
            }
        };
        self.shrink();
        Some(removed)
    }

    fn shrink(&mut self) {
        match &mut self.children {
            Children::Medium { index, slots } if slots.len() <= MEDIUM_MIN => {
                let mut taken: Vec<Option<Slot<V>>> = slots.drain(..).map(Some).collect();
                let mut keys = [0u8; SMALL_MAX];
                let mut small = Vec::with_capacity(taken.len());
                for (byte, &i) in index.iter().enumerate() {
                    if let Some(s) = (i != 0).then(|| taken[usize::from(i) - 1].take()).flatten() {
                        keys[small.len()] = byte as u8;
                        small.push(s);
                    }
                }
                self.children = Children::Small { keys, slots: small };
            }
            Children::Large { slots, len } if usize::from(*len) <= LARGE_MIN => {
                let mut index = Box::new([0u8; 256]);
                let mut medium = Vec::with_capacity(usize::from(*len));
                for (byte, s) in slots.iter_mut().enumerate() {
                    if let Some(s) = s.take() {
                        medium.push(s);
                        index[byte] = medium.len() as u8;
                    }
                }
                self.children = Children::Medium {
                    index,
                    slots: medium,
                };
            }
            _ => {}
        }
    }

    /// The byte of the child at entry position `pos` (`pos >= 1`).
    #[inline]
    pub(crate) fn byte_at(&self, pos: u16) -> u8 {
        match &self.children {
            Children::Small { keys, .. } => keys[usize::from(pos - 1)],
            Children::Medium { .. } | Children::Large { .. } => (pos - 1) as u8,
        }
    }

    /// The smallest entry position `>= from` that holds an entry.
    ///
    /// Positions: `POS_TERMINAL` is the terminal leaf; `1 + i` is the i-th
    /// child of a `Small` node, or the child at byte `i` of the others.
    #[inline]
    pub(crate) fn next_pos(&self, from: u16) -> Option<u16> {
        if from == POS_TERMINAL && self.terminal.is_some() {
            return Some(POS_TERMINAL);
        }
        let from = from.max(1);
        match &self.children {
            Children::Small { slots, .. } => (usize::from(from) <= slots.len()).then_some(from),
            Children::Medium { index, .. } => {
                (from..POS_END).find(|&p| index[usize::from(p - 1)] != 0)
            }
            Children::Large { slots, .. } => {
                (from..POS_END).find(|&p| slots[usize::from(p - 1)].is_some())
            }
        }
    }

    /// Like [`Inner::next_pos`], also telling whether the entry is a leaf.
    #[inline]
    pub(crate) fn next_entry(&self, from: u16) -> Option<(u16, bool)> {
        if from == POS_TERMINAL && self.terminal.is_some() {
            return Some((POS_TERMINAL, true));
        }
        let from = from.max(1);
        match &self.children {
            Children::Small { slots, .. } => slots
                .get(usize::from(from - 1))
                .map(|s| (from, matches!(s, Slot::Leaf(_)))),
            Children::Medium { index, slots } => {
                (from..POS_END).find_map(|p| match index[usize::from(p - 1)] {
                    0 => None,
                    i => Some((p, matches!(slots[usize::from(i) - 1], Slot::Leaf(_)))),
                })
            }
            Children::Large { slots, .. } => (from..POS_END).find_map(|p| {
                slots[usize::from(p - 1)]
                    .as_ref()
                    .map(|s| (p, matches!(s, Slot::Leaf(_))))
            }),
        }
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

    /// The largest entry position `< before` that holds an entry.
    #[inline]
    pub(crate) fn prev_pos(&self, before: u16) -> Option<u16> {
        let child = match &self.children {
            Children::Small { slots, .. } => {
                let last = slots.len() as u16;
                (before > 1 && last > 0).then(|| last.min(before - 1))
            }
            Children::Medium { index, .. } => (1..before.min(POS_END))
                .rev()
                .find(|&p| index[usize::from(p - 1)] != 0),
            Children::Large { slots, .. } => (1..before.min(POS_END))
                .rev()
                .find(|&p| slots[usize::from(p - 1)].is_some()),
        };
        child.or_else(|| (before > POS_TERMINAL && self.terminal.is_some()).then_some(POS_TERMINAL))
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
            match &self.children {
                Children::Small { slots, .. } => &slots[usize::from(pos - 1)],
                Children::Medium { index, slots } => {
                    &slots[usize::from(index[usize::from(pos - 1)]) - 1]
                }
                Children::Large { slots, .. } => match &slots[usize::from(pos - 1)] {
                    Some(s) => s,
                    None => unreachable!("entry() at an empty child position"),
                },
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
        match &self.children {
            Children::Small { keys, slots } => keys
                .iter()
                .zip(slots.iter())
                .take_while(|(k, _)| **k < b)
                .map(|(_, s)| s.count())
                .sum(),
            Children::Medium { index, slots } => index[..usize::from(b)]
                .iter()
                .filter(|&&i| i != 0)
                .map(|&i| slots[usize::from(i) - 1].count())
                .sum(),
            Children::Large { slots, .. } => slots[..usize::from(b)]
                .iter()
                .flatten()
                .map(Slot::count)
                .sum(),
        }
    }

    /// Moves every inner child this node holds the last reference to into
    /// `out` (used by the iterative drop). Shared children stay: dropping
    /// them only decrements a count and cannot recurse.
    fn take_unique_children(&mut self, out: &mut Vec<Arc<Inner<V>>>) {
        let unique = |s: &Slot<V>| matches!(s, Slot::Inner(n) if n.is_unique());
        match &mut self.children {
            Children::Small { slots, .. } | Children::Medium { slots, .. } => {
                if slots.iter().any(unique) {
                    out.extend(slots.drain(..).filter_map(|s| match s {
                        Slot::Inner(n) => Some(n),
                        Slot::Leaf(_) => None,
                    }));
                }
            }
            Children::Large { slots, .. } => {
                for s in slots.iter_mut() {
                    if s.as_ref().is_some_and(unique)
                        && let Some(Slot::Inner(n)) = s.take()
                    {
                        out.push(n);
                    }
                }
            }
        }
    }
}

impl<V> Drop for Inner<V> {
    /// Drops a subtree without recursion: uniquely owned inner children are
    /// unlinked onto an explicit stack first, so a deep tree cannot overflow
    /// the call stack.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        self.take_unique_children(&mut stack);
        while let Some(node) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(node) {
                inner.take_unique_children(&mut stack);
            }
        }
    }
}

/// Length of the common prefix of `a` and `b`.
#[inline]
pub(crate) fn common_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
