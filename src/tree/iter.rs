//! Ordered, double-ended iteration over one version of a tree.
//!
//! Every iterator is a rank interval `[start, end)` plus two lazily built
//! cursors (front and back). The interval comes from subtree counts, so the
//! exact length is known up front and the two ends can never cross. A cursor
//! is a stack of (node, position) frames and is generic over how it holds
//! nodes: borrowed (`&Inner`, for [`Iter`]) or owned (a counted node handle, for
//! [`IntoIter`], which pins its version for as long as it lives).

use std::iter::FusedIterator;
use std::ops::{Bound, Deref};

use super::ahead::ReadAhead;
use super::key::Key;

use super::node::{Inner, Layout, Leaf, POS_END, POS_TERMINAL, common_len};
use super::slot::EntryRef;

/// How a cursor holds a node.
pub(crate) trait Handle<V>: Deref<Target = Inner<V>> + Clone {
    /// A reference to a leaf below this handle: as long as the tree for a
    /// borrowed handle, as long as the cursor for an owned one.
    type LeafRef<'s>
    where
        Self: 's;
    /// The inner child at entry position `pos`.
    fn child(&self, pos: u16) -> Self;
    /// The leaf at entry position `pos`.
    fn leaf(&self, pos: u16) -> Self::LeafRef<'_>;
}

impl<'a, V> Handle<V> for &'a Inner<V> {
    type LeafRef<'s>
        = &'a Leaf<V>
    where
        Self: 's;
    #[inline]
    fn child(&self, pos: u16) -> Self {
        let node: &'a Inner<V> = self;
        match node.entry(pos) {
            EntryRef::Inner(n) => n,
            EntryRef::Leaf(_) => unreachable!("child() at a leaf position"),
        }
    }
    #[inline]
    fn leaf(&self, pos: u16) -> &'a Leaf<V> {
        let node: &'a Inner<V> = self;
        node.leaf_at(pos)
    }
}

impl<V> Handle<V> for Owned<V> {
    type LeafRef<'s>
        = &'s Leaf<V>
    where
        Self: 's;
    #[inline]
    fn child(&self, pos: u16) -> Self {
        match self.entry(pos) {
            EntryRef::Inner(n) => Owned(n.clone()),
            EntryRef::Leaf(_) => unreachable!("child() at a leaf position"),
        }
    }
    #[inline]
    fn leaf(&self, pos: u16) -> &Leaf<V> {
        self.leaf_at(pos)
    }
}

#[inline]
fn is_leaf<V>(node: &Inner<V>, pos: u16) -> bool {
    matches!(node.entry(pos), EntryRef::Leaf(_))
}

/// Cache lines of each inner child an iterator requests on entering a node.
const ITER_PREFETCH_LINES: usize = 4;

/// Siblings a fresh cursor requests beyond the node it lands in (a page of
/// 100 rows crosses about ten bottom nodes; a `Small` node has at most 16
/// children, and the bound keeps a 256-child node from flooding the
/// memory system).
const SEEK_PREFETCH_SIBLINGS: usize = 16;

/// An owned node handle for the cursors of [`IntoIter`]: it pins the node
/// (and so the version) while the cursor stands on it.
pub(crate) struct Owned<V>(Inner<V>);

impl<V> Clone for Owned<V> {
    #[inline]
    fn clone(&self) -> Self {
        Owned(self.0.clone())
    }
}

impl<V> Deref for Owned<V> {
    type Target = Inner<V>;
    #[inline]
    fn deref(&self) -> &Inner<V> {
        &self.0
    }
}

/// A node handle for the cursors of [`AliasIter`]: an uncounted alias
/// (`Inner::alias`), never dropped. Whoever made the iterator keeps the
/// version alive for as long as it exists (its safety contract).
pub(crate) struct Aliased<V>(std::mem::ManuallyDrop<Inner<V>>);

impl<V> Clone for Aliased<V> {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: the same node, under the same iterator's contract.
        #[allow(unsafe_code)]
        Aliased(unsafe { self.0.alias() })
    }
}

impl<V> Deref for Aliased<V> {
    type Target = Inner<V>;
    #[inline]
    fn deref(&self) -> &Inner<V> {
        &self.0
    }
}

impl<V> Handle<V> for Aliased<V> {
    type LeafRef<'s>
        = &'s Leaf<V>
    where
        Self: 's;
    #[inline]
    fn child(&self, pos: u16) -> Self {
        match self.entry(pos) {
            // SAFETY: a node of the version the iterator's contract keeps
            // alive.
            #[allow(unsafe_code)]
            EntryRef::Inner(n) => Aliased(unsafe { n.alias() }),
            EntryRef::Leaf(_) => unreachable!("child() at a leaf position"),
        }
    }
    #[inline]
    fn leaf(&self, pos: u16) -> &Leaf<V> {
        self.leaf_at(pos)
    }
}

/// An owning iterator over a version that something else keeps alive (a
/// [`Version`](super::Version)'s pin): its cursors hold uncounted aliases,
/// so no count changes as it walks. The caller adds the keepalive and
/// turns leaves into items ([`AliasIter::next_with`]).
pub(crate) struct AliasIter<V> {
    raw: Raw<Aliased<V>>,
}

#[allow(unsafe_code)]
impl<V> AliasIter<V> {
    /// The entries of rank `start..end` below `root`.
    ///
    /// # Safety
    /// Every node reachable from `root` must stay alive and unchanged for
    /// as long as the iterator exists.
    pub(crate) unsafe fn new(root: Option<&Inner<V>>, start: usize, end: usize) -> Self {
        // SAFETY: the caller's contract covers the alias.
        let root = root.map(|r| Aliased(unsafe { r.alias() }));
        AliasIter {
            raw: Raw::new(root, start, end),
        }
    }

    /// See [`Raw::bounded`].
    ///
    /// # Safety
    /// As for [`AliasIter::new`].
    pub(crate) unsafe fn bounded(
        root: Option<&Inner<V>>,
        start: Bound<&[u8]>,
        end: impl FnOnce(usize) -> usize,
    ) -> Self {
        // SAFETY: the caller's contract covers the alias.
        let root = root.map(|r| Aliased(unsafe { r.alias() }));
        AliasIter {
            raw: Raw::bounded(root, start, end),
        }
    }

    /// The next entry, read by `f`.
    #[inline]
    pub(crate) fn next_with<R>(&mut self, f: impl Fn(&Leaf<V>) -> R) -> Option<R> {
        match self.raw.next_in_small(&f) {
            Some(r) => Some(r),
            None => self.raw.next().map(f),
        }
    }

    /// The last entry, read by `f`.
    #[inline]
    pub(crate) fn next_back_with<R>(&mut self, f: impl FnOnce(&Leaf<V>) -> R) -> Option<R> {
        self.raw.next_back().map(f)
    }

    /// Entries left.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.raw.len()
    }
}

/// A stack of frames `(node, position)`. Front frames hold the next position
/// to look at (inclusive); back frames hold the position to look below
/// (exclusive).
struct Cursor<H> {
    stack: Vec<(H, u16)>,
}

impl<H> Cursor<H> {
    /// Descends from `node` to the key of rank `k` (which must exist).
    /// Returns the cursor and the position of that leaf in the top node.
    fn seek<V>(mut node: H, mut k: usize, front: bool) -> Self
    where
        H: Handle<V>,
    {
        let mut stack: Vec<(H, u16)> = Vec::with_capacity(8);
        loop {
            let mut p = node.next_pos(0);
            let pos = loop {
                let Some(pos) = p else {
                    unreachable!("seek: rank beyond the subtree count");
                };
                let c = node.entry_count(pos);
                if k < c {
                    break pos;
                }
                k -= c;
                p = node.next_pos(pos + 1);
            };
            if is_leaf(&node, pos) {
                node.prefetch_children(ITER_PREFETCH_LINES);
                if let Some((parent, at)) = stack.last() {
                    // The siblings the cursor walks into next, this way.
                    parent.prefetch_entries(
                        *at,
                        front,
                        SEEK_PREFETCH_SIBLINGS,
                        ITER_PREFETCH_LINES,
                    );
                }
                stack.push((node, if front { pos } else { pos + 1 }));
                return Cursor { stack };
            }
            let child = node.child(pos);
            stack.push((node, if front { pos + 1 } else { pos }));
            node = child;
        }
    }

    /// Descends from `root` towards `key` and stands on the first key
    /// `>= key` (`> key` when `after`), as a front cursor; also returns
    /// that key's rank (the number of keys before it). One descent
    /// instead of a rank descent and then a [`Cursor::seek`] by rank.
    ///
    /// Without `CURSOR` it only sums the rank: no frame is kept and
    /// nothing is prefetched ([`rank`], behind `Tree::rank`).
    fn seek_key<V, const CURSOR: bool>(mut node: H, key: &[u8], after: bool) -> (Self, usize)
    where
        H: Handle<V>,
    {
        let mut stack: Vec<(H, u16)> = Vec::with_capacity(if CURSOR { 8 } else { 0 });
        let mut depth = 0;
        let mut rank = 0;
        // Whether the last frame is the one the cursor starts in (else the
        // start lies after the last frame's current child).
        let mut landed = true;
        loop {
            let rest = &key[depth..];
            let plen = node.prefix.len();
            let c = common_len(rest, &node.prefix);
            if c < plen {
                if c < rest.len() && rest[c] > node.prefix[c] {
                    // Every key below is smaller: go on after this node
                    // (the parent's frame already points past it).
                    rank += node.count;
                    landed = false;
                } else {
                    // Every key below is larger: start at its first entry.
                    land::<V, H, CURSOR>(&mut stack, node, POS_TERMINAL);
                }
                break;
            }
            let pos = depth + plen;
            if key.len() == pos {
                // `key` ends here: the terminal, if any, equals it.
                let skip = after && node.terminal.is_some();
                rank += usize::from(skip);
                land::<V, H, CURSOR>(&mut stack, node, if skip { 1 } else { POS_TERMINAL });
                break;
            }
            rank += usize::from(node.terminal.is_some());
            let b = key[pos];
            let inner: &Inner<V> = &node;
            rank += inner.count_below(b);
            let p = match inner.child(b) {
                None => {
                    let p = inner.pos_after(b);
                    land::<V, H, CURSOR>(&mut stack, node, p);
                    break;
                }
                Some(EntryRef::Leaf(l)) => {
                    let before = match l.key().cmp(key) {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => after,
                        std::cmp::Ordering::Greater => false,
                    };
                    rank += usize::from(before);
                    let p = inner.pos_of(b) + u16::from(before);
                    land::<V, H, CURSOR>(&mut stack, node, p);
                    break;
                }
                Some(EntryRef::Inner(_)) => inner.pos_of(b),
            };
            let child = node.child(p);
            if CURSOR {
                stack.push((node, p + 1));
            }
            node = child;
            depth = pos + 1;
        }
        // The cursor walks on into the siblings after the node it stands in
        // (after the last frame's child, when no leaf frame was pushed):
        // ask for the next few now, as a running scan would have (see
        // `next_front`).
        let ahead = match stack.as_slice() {
            [.., (parent, next), _] if landed => Some((parent, *next)),
            [.., (parent, next)] if !landed => Some((parent, *next)),
            _ => None,
        };
        if let Some((node, from)) = ahead.filter(|_| CURSOR) {
            node.prefetch_entries(from, true, SEEK_PREFETCH_SIBLINGS, ITER_PREFETCH_LINES);
        }
        (Cursor { stack }, rank)
    }

    #[inline]
    fn next_front<V>(&mut self) -> Option<H::LeafRef<'_>>
    where
        H: Handle<V>,
    {
        loop {
            let (node, next) = self.stack.last_mut()?;
            match node.next_entry(*next) {
                None => {
                    self.stack.pop();
                }
                Some((p, true)) => {
                    *next = p + 1;
                    return Some(self.stack.last()?.0.leaf(p));
                }
                Some((p, false)) => {
                    *next = p + 1;
                    // The next sibling's children are requested now, a whole
                    // subtree ahead of the cursor (its slots arrived when
                    // this node was entered).
                    if let Some((q, false)) = node.next_entry(p + 1) {
                        node.entry_inner(q).prefetch_children(ITER_PREFETCH_LINES);
                    }
                    let child = node.child(p);
                    child.prefetch_children(ITER_PREFETCH_LINES);
                    self.stack.push((child, 0));
                }
            }
        }
    }

    #[inline]
    fn next_back<V>(&mut self) -> Option<H::LeafRef<'_>>
    where
        H: Handle<V>,
    {
        loop {
            let (node, before) = self.stack.last_mut()?;
            match node.prev_entry(*before) {
                None => {
                    self.stack.pop();
                }
                Some((p, true)) => {
                    *before = p;
                    return Some(self.stack.last()?.0.leaf(p));
                }
                Some((p, false)) => {
                    *before = p;
                    if let Some((q, false)) = node.prev_entry(p) {
                        node.entry_inner(q).prefetch_children(ITER_PREFETCH_LINES);
                    }
                    let child = node.child(p);
                    child.prefetch_children(ITER_PREFETCH_LINES);
                    self.stack.push((child, POS_END));
                }
            }
        }
    }
}

/// Pushes the frame a seeking cursor starts in, asking for the node's
/// children first (with `CURSOR`; else nothing is kept).
#[inline]
fn land<V, H: Handle<V>, const CURSOR: bool>(stack: &mut Vec<(H, u16)>, node: H, pos: u16) {
    if CURSOR {
        node.prefetch_children(ITER_PREFETCH_LINES);
        stack.push((node, pos));
    }
}

/// Number of keys `< key` (`<= key` when `inclusive`) below `root`: the
/// descent of [`Cursor::seek_key`] without its cursor, so a range's two
/// ends are counted alike.
pub(crate) fn rank<V>(root: &Inner<V>, key: &[u8], inclusive: bool) -> usize {
    Cursor::seek_key::<V, false>(root, key, inclusive).1
}

/// The rank interval and the two cursors, shared by every iterator type.
struct Raw<H> {
    root: Option<H>,
    start: usize,
    end: usize,
    front: Option<Cursor<H>>,
    back: Option<Cursor<H>>,
}

impl<H> Raw<H> {
    fn new(root: Option<H>, start: usize, end: usize) -> Self {
        let end = if root.is_some() { end } else { start };
        Raw {
            root,
            start,
            end,
            front: None,
            back: None,
        }
    }

    /// The interval from the first key inside `start` to rank `end(r)`,
    /// where `r` is that key's rank; the front cursor is placed on the way
    /// (see [`Cursor::seek_key`]).
    fn bounded<V>(root: Option<H>, start: Bound<&[u8]>, end: impl FnOnce(usize) -> usize) -> Self
    where
        H: Handle<V>,
    {
        let (key, after) = match (&root, start) {
            (Some(_), Bound::Included(k)) => (k, false),
            (Some(_), Bound::Excluded(k)) => (k, true),
            _ => return Raw::new(root, 0, end(0)),
        };
        let Some(r) = root.clone() else {
            unreachable!("bounded: the root was just matched")
        };
        let (front, rank) = Cursor::seek_key::<V, true>(r, key, after);
        Raw {
            root,
            start: rank,
            end: end(rank).max(rank),
            front: Some(front),
            back: None,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    fn next<V>(&mut self) -> Option<H::LeafRef<'_>>
    where
        H: Handle<V>,
    {
        if self.start >= self.end {
            return None;
        }
        let k = self.start;
        self.start += 1;
        if self.front.is_none() {
            self.front = Some(Cursor::seek(self.root.clone()?, k, true));
        }
        self.front.as_mut()?.next_front()
    }

    /// The common case, inlined: the next entry is a leaf of the `Small`
    /// node the front cursor stands in; `f` reads it.
    #[inline]
    fn next_in_small<V, R>(&mut self, f: impl FnOnce(&Leaf<V>) -> R) -> Option<R>
    where
        H: Deref<Target = Inner<V>>,
    {
        if self.start >= self.end {
            return None;
        }
        let (node, next) = self.front.as_mut()?.stack.last_mut()?;
        let node: &Inner<V> = node;
        let Layout::Small { .. } = &node.layout else {
            return None;
        };
        let Some(Some(s)) = node.slots().get(usize::from(next.checked_sub(1)?)) else {
            return None;
        };
        let EntryRef::Leaf(l) = s.get() else {
            return None;
        };
        *next += 1;
        self.start += 1;
        Some(f(l))
    }

    #[inline]
    fn next_back<V>(&mut self) -> Option<H::LeafRef<'_>>
    where
        H: Handle<V>,
    {
        if self.start >= self.end {
            return None;
        }
        self.end -= 1;
        if self.back.is_none() {
            self.back = Some(Cursor::seek(self.root.clone()?, self.end, false));
        }
        self.back.as_mut()?.next_back()
    }
}

/// A borrowing iterator over `(key, value)` pairs in key order.
///
/// ```
/// # use pandodb::tree::Tree;
/// let t: Tree<u8> = [("b", 2), ("a", 1), ("c", 3)].into_iter().collect();
/// let mut it = t.iter();
/// assert_eq!(it.len(), 3);
/// assert_eq!(it.next(), Some((&b"a"[..], &1)));
/// assert_eq!(it.next_back(), Some((&b"c"[..], &3)));
/// assert_eq!(it.len(), 1);
/// ```
///
/// Created by [`Tree::iter`](super::Tree::iter) and the other query
/// methods; double-ended and of exact size.
pub struct Iter<'a, V> {
    raw: Raw<&'a Inner<V>>,
}

impl<'a, V> Iter<'a, V> {
    pub(crate) fn new(root: Option<&'a Inner<V>>, start: usize, end: usize) -> Self {
        Iter {
            raw: Raw::new(root, start, end),
        }
    }

    /// See [`Raw::bounded`].
    pub(crate) fn bounded(
        root: Option<&'a Inner<V>>,
        start: Bound<&[u8]>,
        end: impl FnOnce(usize) -> usize,
    ) -> Self {
        Iter {
            raw: Raw::bounded(root, start, end),
        }
    }
}

impl<'a, V> Iter<'a, V> {
    /// The common case, inlined: the next entry is a leaf of the `Small`
    /// node the front cursor stands in.
    #[inline]
    fn next_in_small(&mut self) -> Option<&'a Leaf<V>> {
        let raw = &mut self.raw;
        if raw.start >= raw.end {
            return None;
        }
        let (node, next) = raw.front.as_mut()?.stack.last_mut()?;
        let node: &'a Inner<V> = node;
        let Layout::Small { .. } = &node.layout else {
            return None;
        };
        let Some(Some(s)) = node.slots().get(usize::from(next.checked_sub(1)?)) else {
            return None;
        };
        let EntryRef::Leaf(l) = s.get() else {
            return None;
        };
        *next += 1;
        raw.start += 1;
        Some(l)
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let l: &'a Leaf<V> = match self.next_in_small() {
            Some(l) => l,
            None => self.raw.next()?,
        };
        Some((l.key(), l.value()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.raw.len(), Some(self.raw.len()))
    }
}

impl<'a, V> DoubleEndedIterator for Iter<'a, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        let l: &'a Leaf<V> = self.raw.next_back()?;
        Some((l.key(), l.value()))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}
impl<V> FusedIterator for Iter<'_, V> {}

/// An iterator that owns its version of the tree, yielding owned keys and
/// cloned values in key order. Writes made after it was created, to any
/// tree, never affect what it yields.
///
/// ```
/// # use pandodb::tree::Tree;
/// let mut t: Tree<u8> = [("a", 1), ("b", 2)].into_iter().collect();
/// let it = t.owned_iter();
/// t.remove(b"a");
/// assert_eq!(it.map(|(_, v)| v).collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct IntoIter<V> {
    raw: Raw<Owned<V>>,
}

impl<V> IntoIter<V> {
    pub(crate) fn new(root: Option<Inner<V>>, start: usize, end: usize) -> Self {
        IntoIter {
            raw: Raw::new(root.map(Owned), start, end),
        }
    }

    /// See [`Raw::bounded`].
    pub(crate) fn bounded(
        root: Option<Inner<V>>,
        start: Bound<&[u8]>,
        end: impl FnOnce(usize) -> usize,
    ) -> Self {
        IntoIter {
            raw: Raw::bounded(root.map(Owned), start, end),
        }
    }

    /// The next entry as a key handle only: its value is read through
    /// [`Key::value`] and never cloned (no count of the value touched).
    #[inline]
    pub(crate) fn next_key(&mut self) -> Option<Key<V>> {
        let owned = |l: &Leaf<V>| Key::of(l);
        match self.raw.next_in_small(owned) {
            Some(k) => Some(k),
            None => self.raw.next().map(owned),
        }
    }

    /// Turns this iterator into one that yields only the values (no key
    /// reference count is touched).
    pub fn values(self) -> Values<V> {
        Values {
            raw: self.raw,
            ahead: None,
        }
    }
}

impl<V: Clone> Iterator for IntoIter<V> {
    type Item = (Key<V>, V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let owned = |l: &Leaf<V>| (Key::of(l), l.value().clone());
        match self.raw.next_in_small(owned) {
            Some(item) => Some(item),
            None => self.raw.next().map(owned),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.raw.len(), Some(self.raw.len()))
    }
}

impl<V: Clone> DoubleEndedIterator for IntoIter<V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        let l = self.raw.next_back()?;
        Some((Key::of(l), l.value().clone()))
    }
}

impl<V: Clone> ExactSizeIterator for IntoIter<V> {}
impl<V: Clone> FusedIterator for IntoIter<V> {}

/// Like [`IntoIter`], yielding only cloned values.
///
/// ```
/// # use pandodb::tree::Tree;
/// let t: Tree<u8> = [("a", 1), ("b", 2)].into_iter().collect();
/// assert_eq!(t.owned_iter().values().rev().collect::<Vec<_>>(), [2, 1]);
/// ```
pub struct Values<V> {
    raw: Raw<Owned<V>>,
    /// The read-ahead of [`Values::read_ahead`], if asked for (boxed: the
    /// ring is several times the size of the rest of the iterator).
    ahead: Option<Box<Ahead<V>>>,
}

/// The read-ahead of [`Values::read_ahead`]: leaf addresses, and the hint
/// given each value when it is read.
struct Ahead<V> {
    ring: ReadAhead<*const Leaf<V>>,
    hint: fn(&V) -> *const u8,
}

// SAFETY: the ring only holds addresses of leaves of the version its
// `Values` owns (see `Values::leaf`); it is as sendable and shareable as the
// `&Leaf<V>` it stands for.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Send for Ahead<V> {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Sync for Ahead<V> {}

impl<V> Values<V> {
    /// Reads up to `READ_AHEAD` (16) leaves ahead of the caller, prefetching the objects
    /// their values point to, while those objects are scattered in memory
    /// ([`super::ahead::Stride`]). `hint` gives a value's object address,
    /// which the tree cannot know, and `span` the objects' size. Yields the
    /// same items in the same order.
    pub(crate) fn read_ahead(mut self, hint: fn(&V) -> *const u8, span: usize) -> Self {
        self.ahead = Some(Box::new(Ahead {
            ring: ReadAhead::new(span),
            hint,
        }));
        self
    }

    /// The leaf at an address the read-ahead took from `self.raw`.
    #[inline]
    #[allow(unsafe_code)]
    fn leaf(&self, l: *const Leaf<V>) -> &Leaf<V> {
        // SAFETY: `l` came from `self.raw.next()`: a leaf of the version
        // `self.raw.root` holds a counted handle on. That handle lives as
        // long as `self`, and a version with a handle on it is never
        // changed (a writer copies every node and leaf another handle
        // shares), so the leaf stays where it is, unchanged and alive, for
        // as long as `self` (the lifetime returned).
        unsafe { &*l }
    }
}

impl<V: Clone> Iterator for Values<V> {
    type Item = V;

    #[inline]
    fn next(&mut self) -> Option<V> {
        if let Some(ahead) = &mut self.ahead {
            let (raw, hint) = (&mut self.raw, ahead.hint);
            // `next` asks for an item's address right after pulling it.
            let at = std::cell::Cell::new(std::ptr::null());
            let l = ahead.ring.next(
                || {
                    let l = raw.next()?;
                    at.set(hint(l.value()));
                    Some(std::ptr::from_ref(l))
                },
                |_| at.get(),
            )?;
            return Some(self.leaf(l).value().clone());
        }
        let value = |l: &Leaf<V>| l.value().clone();
        match self.raw.next_in_small(value) {
            Some(v) => Some(v),
            None => self.raw.next().map(value),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.raw.len() + self.ahead.as_ref().map_or(0, |a| a.ring.len());
        (n, Some(n))
    }
}

impl<V: Clone> DoubleEndedIterator for Values<V> {
    #[inline]
    fn next_back(&mut self) -> Option<V> {
        // Order: what the read-ahead holds, then what the cursors have left.
        if let Some(l) = self.raw.next_back() {
            return Some(l.value().clone());
        }
        let l = self.ahead.as_mut()?.ring.pop_back()?;
        Some(self.leaf(l).value().clone())
    }
}

impl<V: Clone> ExactSizeIterator for Values<V> {}
impl<V: Clone> FusedIterator for Values<V> {}
