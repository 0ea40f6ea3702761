//! The persistent adaptive radix tree every index of pandodb is made of.
//!
//! A [`Tree`] maps byte-string keys to values of type `V`. It is
//! *persistent*: cloning it is O(1) and no version ever changes after it was
//! made. Mutation through `&mut Tree` (or a [`TreeTxn`]) is copy-on-write:
//! the first write to a path copies the nodes on it that are shared with
//! another version; nodes the tree already owns alone (reference count 1) are
//! changed in place, so a million inserts into one version copy each path
//! at most once.
//!
//! Inner nodes adapt their size (`Small` ≤ 16 children, `Medium` ≤ 48,
//! `Large` ≤ 256), compress single-child paths into a prefix, and count the
//! keys below them, which makes [`Tree::len`] O(1) and
//! [`Tree::count_prefix`] O(key length).
//!
//! ```
//! use pandodb::tree::Tree;
//!
//! let mut v1 = Tree::new();
//! v1.insert(b"user-1", 1);
//! v1.insert(b"user-2", 2);
//! let mut v2 = v1.clone(); // O(1): shares every node with v1
//! v2.insert(b"user-3", 3);
//! v2.remove(b"user-1");
//! assert_eq!(v1.len(), 2);
//! assert_eq!(v2.len(), 2);
//! assert_eq!(v1.get(b"user-1"), Some(&1));
//! assert_eq!(v2.count_prefix(b"user-"), 2);
//! let keys: Vec<&[u8]> = v2.iter().map(|(k, _)| k).collect();
//! assert_eq!(keys, [&b"user-2"[..], b"user-3"]);
//! ```

mod ahead;
mod check;
mod iter;
mod leaf;
mod node;

use std::ops::{Bound, RangeBounds};

pub(crate) use ahead::ReadAhead;
pub use iter::{IntoIter, Iter, Key, Values};
use node::{EntryRef, Inner, Leaf, Slot, common_len};

/// A persistent (immutable, structurally shared) ordered map from byte keys
/// to values.
///
/// See the [module documentation](self) for the model.
pub struct Tree<V> {
    root: Option<Inner<V>>,
}

impl<V> Clone for Tree<V> {
    /// O(1): the clone shares every node with `self`.
    fn clone(&self) -> Self {
        Tree {
            root: self.root.clone(),
        }
    }
}

impl<V> Default for Tree<V> {
    fn default() -> Self {
        Tree { root: None }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Tree<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
            .finish()
    }
}

/// What an insert does at the child slot of the current node.
#[derive(Clone, Copy)]
enum Step {
    Add,
    Replace,
    SplitLeaf(usize),
    SplitInner(usize),
    Descend,
}

/// What a removal descends towards.
#[derive(Clone, Copy)]
enum Target<'k> {
    Key(&'k [u8]),
    Prefix(&'k [u8]),
}

impl Target<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Target::Key(k) | Target::Prefix(k) => k,
        }
    }
}

/// Where, inside one node, a removal takes effect.
#[derive(Clone, Copy)]
enum Direct {
    Terminal,
    Child(u8),
}

impl<V> Tree<V> {
    /// An empty tree. Does not allocate.
    pub const fn new() -> Self {
        Tree { root: None }
    }

    /// Number of keys, in O(1).
    #[inline]
    pub fn len(&self) -> usize {
        self.root.as_ref().map_or(0, |r| r.count)
    }

    /// Whether the tree holds no key.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `self` and `other` are the very same version (same root node).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        match (&self.root, &other.root) {
            (None, None) => true,
            (Some(a), Some(b)) => a.ptr_eq(b),
            _ => false,
        }
    }

    /// The value stored under `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.get_leaf(key).map(Leaf::value)
    }

    /// Whether `key` is stored.
    #[inline]
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get_leaf(key).is_some()
    }

    #[inline]
    fn get_leaf(&self, key: &[u8]) -> Option<&Leaf<V>> {
        let mut node: &Inner<V> = self.root.as_ref()?;
        let mut depth = 0;
        loop {
            // Optimistic: prefixes are skipped, the leaf's full key decides.
            let pos = depth + node.prefix.len();
            if key.len() <= pos {
                return node
                    .terminal
                    .as_ref()
                    .filter(|l| key.len() == pos && l.key() == key);
            }
            match node.child(key[pos])? {
                Slot::Leaf(l) => return (l.key() == key).then_some(l),
                Slot::Inner(n) => {
                    node = n;
                    depth = pos + 1;
                }
            }
        }
    }

    /// The smallest key and its value.
    pub fn first(&self) -> Option<(&[u8], &V)> {
        self.iter().next()
    }

    /// The largest key and its value.
    pub fn last(&self) -> Option<(&[u8], &V)> {
        self.iter().next_back()
    }

    /// The smallest key that starts with `prefix`, with its value: one
    /// descent, no iterator.
    pub fn first_prefix(&self, prefix: &[u8]) -> Option<(&[u8], &V)> {
        self.edge_prefix(prefix, true)
    }

    /// The largest key that starts with `prefix`, with its value.
    pub fn last_prefix(&self, prefix: &[u8]) -> Option<(&[u8], &V)> {
        self.edge_prefix(prefix, false)
    }

    fn edge_prefix(&self, prefix: &[u8], first: bool) -> Option<(&[u8], &V)> {
        let mut node = self.root.as_ref()?;
        let mut depth = 0;
        loop {
            let rest = &prefix[depth..];
            if rest.len() <= node.prefix.len() {
                // Every key below `node` starts with `prefix`, or none does.
                return node
                    .prefix
                    .starts_with(rest)
                    .then(|| edge_leaf(node, first));
            }
            if !rest.starts_with(&node.prefix) {
                return None;
            }
            let pos = depth + node.prefix.len();
            match node.child(prefix[pos])? {
                Slot::Leaf(l) => return l.key().starts_with(prefix).then(|| (l.key(), l.value())),
                Slot::Inner(n) => {
                    node = n;
                    depth = pos + 1;
                }
            }
        }
    }

    /// Number of keys that start with `prefix`, in O(prefix length).
    pub fn count_prefix(&self, prefix: &[u8]) -> usize {
        let Some(mut node) = self.root.as_ref() else {
            return 0;
        };
        let mut depth = 0;
        loop {
            let rest = &prefix[depth..];
            let plen = node.prefix.len();
            if rest.len() <= plen {
                return if node.prefix.starts_with(rest) {
                    node.count
                } else {
                    0
                };
            }
            if !rest.starts_with(&node.prefix) {
                return 0;
            }
            let pos = depth + plen;
            match node.child(prefix[pos]) {
                None => return 0,
                Some(Slot::Leaf(l)) => return usize::from(l.key().starts_with(prefix)),
                Some(Slot::Inner(n)) => {
                    node = n;
                    depth = pos + 1;
                }
            }
        }
    }

    /// The longest stored key that is a prefix of `key` (`key` itself
    /// included), with its value.
    pub fn longest_prefix(&self, key: &[u8]) -> Option<(&[u8], &V)> {
        let mut node = self.root.as_ref()?;
        let mut depth = 0;
        let mut best: Option<&Leaf<V>> = None;
        loop {
            let rest = &key[depth..];
            if !rest.starts_with(&node.prefix) {
                break;
            }
            let pos = depth + node.prefix.len();
            if let Some(t) = &node.terminal {
                best = Some(t);
            }
            if key.len() == pos {
                break;
            }
            match node.child(key[pos]) {
                None => break,
                Some(Slot::Leaf(l)) => {
                    if key.starts_with(l.key()) {
                        best = Some(l);
                    }
                    break;
                }
                Some(Slot::Inner(n)) => {
                    node = n;
                    depth = pos + 1;
                }
            }
        }
        best.map(|l| (l.key(), l.value()))
    }

    /// Number of keys `< key` (or `<= key` when `inclusive`).
    pub(crate) fn rank(&self, key: &[u8], inclusive: bool) -> usize {
        let Some(mut node) = self.root.as_ref() else {
            return 0;
        };
        let mut depth = 0;
        let mut acc = 0;
        loop {
            let rest = &key[depth..];
            let plen = node.prefix.len();
            let c = common_len(rest, &node.prefix);
            if c < plen {
                // Diverges inside the prefix (or `key` ends there).
                return if c < rest.len() && rest[c] > node.prefix[c] {
                    acc + node.count
                } else {
                    acc
                };
            }
            let pos = depth + plen;
            if key.len() == pos {
                return acc + usize::from(inclusive && node.terminal.is_some());
            }
            acc += usize::from(node.terminal.is_some());
            let b = key[pos];
            acc += node.count_below(b);
            match node.child(b) {
                None => return acc,
                Some(Slot::Leaf(l)) => {
                    return acc
                        + match l.key().cmp(key) {
                            std::cmp::Ordering::Less => 1,
                            std::cmp::Ordering::Equal => usize::from(inclusive),
                            std::cmp::Ordering::Greater => 0,
                        };
                }
                Some(Slot::Inner(n)) => {
                    node = n;
                    depth = pos + 1;
                }
            }
        }
    }

    /// The rank interval `[start, end)` of the keys inside `range`.
    fn rank_range<'k>(&self, range: &impl RangeBounds<&'k [u8]>) -> (usize, usize) {
        let start = match range.start_bound() {
            Bound::Included(k) => self.rank(k, false),
            Bound::Excluded(k) => self.rank(k, true),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(k) => self.rank(k, true),
            Bound::Excluded(k) => self.rank(k, false),
            Bound::Unbounded => self.len(),
        };
        (start, end.max(start))
    }

    /// Iterates over all keys in ascending order (double-ended).
    pub fn iter(&self) -> Iter<'_, V> {
        Iter::new(self.root.as_ref(), 0, self.len())
    }

    /// Iterates over the keys inside `range`, ascending (double-ended).
    ///
    /// ```
    /// # use pandodb::tree::Tree;
    /// let t: Tree<u32> = (0u32..10).map(|i| (vec![b'k', b'0' + i as u8], i)).collect();
    /// let got: Vec<u32> = t.range(&b"k3"[..]..&b"k6"[..]).map(|(_, v)| *v).collect();
    /// assert_eq!(got, [3, 4, 5]);
    /// ```
    pub fn range<'k>(&self, range: impl RangeBounds<&'k [u8]>) -> Iter<'_, V> {
        let (start, end) = self.rank_range(&range);
        Iter::new(self.root.as_ref(), start, end)
    }

    /// Iterates over the keys that start with `prefix`, ascending.
    pub fn prefix(&self, prefix: &[u8]) -> Iter<'_, V> {
        let start = self.rank(prefix, false);
        Iter::new(self.root.as_ref(), start, start + self.count_prefix(prefix))
    }

    /// Iterates from the first key `>= key` to the end, ascending.
    pub fn lower_bound(&self, key: &[u8]) -> Iter<'_, V> {
        self.range((Bound::Included(key), Bound::Unbounded))
    }

    /// Iterates from the last key `<= key` down to the first, descending.
    pub fn reverse_lower_bound(&self, key: &[u8]) -> std::iter::Rev<Iter<'_, V>> {
        self.range((Bound::Unbounded, Bound::Included(key))).rev()
    }

    /// An iterator over all keys that owns this version: later writes to
    /// any tree never affect it. Yields owned keys and cloned values.
    pub fn owned_iter(&self) -> IntoIter<V> {
        IntoIter::new(self.root.clone(), 0, self.len())
    }

    /// Like [`Tree::range`], but the iterator owns this version.
    pub fn owned_range<'k>(&self, range: impl RangeBounds<&'k [u8]>) -> IntoIter<V> {
        let (start, end) = self.rank_range(&range);
        IntoIter::new(self.root.clone(), start, end)
    }

    /// Like [`Tree::prefix`], but the iterator owns this version.
    pub fn owned_prefix(&self, prefix: &[u8]) -> IntoIter<V> {
        let start = self.rank(prefix, false);
        IntoIter::new(self.root.clone(), start, start + self.count_prefix(prefix))
    }

    /// Checks every structural invariant; for tests and fuzzing.
    ///
    /// Verifies: canonical path compression (every inner node but the root
    /// has at least two entries; the root has an empty prefix), sorted and
    /// correctly placed children, keys consistent with their path, subtree
    /// counts, and node size classes.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        check::check(self.root.as_ref())
    }
}

impl<V: Clone> Tree<V> {
    /// Starts a batch of mutations on a new version; see [`TreeTxn`].
    pub fn txn(&self) -> TreeTxn<V> {
        TreeTxn { tree: self.clone() }
    }

    /// Inserts `value` under `key`, returning the value it replaced.
    ///
    /// # Panics
    /// When `key` is longer than 4 GiB (`u32::MAX` bytes). The database
    /// refuses index keys over 1 GiB with `Error::InvalidKey` before they
    /// reach a tree.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let grows = !self.contains_key(key);
        self.insert_known(key, value, grows)
    }

    /// [`Tree::insert`] for a caller that already knows whether `key` is
    /// new (`grows`), saving the lookup that finds it out. A wrong `grows`
    /// would corrupt the subtree counts; the database layer passes it only
    /// where its own lookups established it.
    pub(crate) fn insert_known(&mut self, key: &[u8], value: V, grows: bool) -> Option<V> {
        debug_assert_eq!(
            grows,
            !self.contains_key(key),
            "insert_known: wrong `grows`"
        );
        let mut node: &mut Inner<V> = self.root.get_or_insert_with(|| Inner::new(&[], 1));
        let mut depth = 0;
        loop {
            let body = node.make_mut();
            let head = body.header_mut();
            if grows {
                head.count += 1;
            }
            let pos = depth + head.prefix.len();
            if key.len() == pos {
                return match &mut head.terminal {
                    Some(t) => Some(t.replace_value(value)),
                    None => {
                        head.terminal = Some(Leaf::new(key, value));
                        None
                    }
                };
            }
            let b = key[pos];
            let at = pos + 1;
            let step = match node.child(b) {
                None => Step::Add,
                Some(Slot::Leaf(l)) if l.key() == key => Step::Replace,
                Some(Slot::Leaf(l)) => Step::SplitLeaf(common_len(&l.key()[at..], &key[at..])),
                Some(Slot::Inner(c)) => match common_len(&c.prefix, &key[at..]) {
                    n if n < c.prefix.len() => Step::SplitInner(n),
                    _ => Step::Descend,
                },
            };
            if let Step::Add = step {
                node.add_child(b, Slot::Leaf(Leaf::new(key, value)));
                return None;
            }
            if let Step::Descend = step {
                let Some(Some(Slot::Inner(child))) = node.child_mut(b) else {
                    unreachable!("insert: descending into a missing inner child");
                };
                node = child;
                depth = at;
                continue;
            }
            let Some(slot) = node.child_mut(b) else {
                unreachable!("insert: the child was just found");
            };
            let replacement = match (step, slot.take()) {
                (Step::Replace, Some(Slot::Leaf(mut l))) => {
                    let old = l.replace_value(value);
                    *slot = Some(Slot::Leaf(l));
                    return Some(old);
                }
                (Step::SplitLeaf(c), Some(Slot::Leaf(l))) => {
                    // Two leaves now share `key[at..at + c]`: a new node holds both.
                    let mut split = Inner::new(&key[at..at + c], 2);
                    split.make_mut().header_mut().count = 2;
                    place(&mut split, at + c, l);
                    place(&mut split, at + c, Leaf::new(key, value));
                    split
                }
                (Step::SplitInner(c), Some(Slot::Inner(mut old))) => {
                    // The new key leaves the child's prefix early: split it.
                    // The child was taken out of its slot, so a child this
                    // version owns alone is changed in place, not copied.
                    let mut split = Inner::new(&key[at..at + c], 2);
                    split.make_mut().header_mut().count = old.count + 1;
                    let moved = old.make_mut().header_mut();
                    let byte = moved.prefix[c];
                    moved.prefix = node::Prefix::new(&moved.prefix[c + 1..]);
                    split.add_child(byte, Slot::Inner(old));
                    place(&mut split, at + c, Leaf::new(key, value));
                    split
                }
                _ => unreachable!("insert: step does not match the slot"),
            };
            *slot = Some(Slot::Inner(replacement));
            return None;
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let value = self.get(key)?.clone();
        self.remove_existing(Target::Key(key), 1);
        Some(value)
    }

    /// Removes every key that starts with `prefix`; returns how many.
    pub fn remove_prefix(&mut self, prefix: &[u8]) -> usize {
        let n = self.count_prefix(prefix);
        if n == self.len() {
            self.root = None;
        } else if n > 0 {
            self.remove_existing(Target::Prefix(prefix), n);
        }
        n
    }

    /// Removes `removed >= 1` keys that `target` designates and that exist,
    /// but not all keys of the tree. Copies the path down, fixes counts and
    /// merges a node left with a single entry into its parent's slot.
    fn remove_existing(&mut self, target: Target<'_>, removed: usize) {
        let Some(root) = self.root.as_mut() else {
            return;
        };
        let mut node: &mut Inner<V> = root;
        let mut depth = 0;
        loop {
            node.make_mut().header_mut().count -= removed;
            match direct(node, depth, target) {
                Some(Direct::Terminal) => {
                    node.make_mut().header_mut().terminal = None;
                    break;
                }
                Some(Direct::Child(b)) => {
                    node.remove_child(b);
                    break;
                }
                None => {}
            }
            let pos = depth + node.prefix.len();
            let b = target.bytes()[pos];
            let merged = match node.child(b) {
                Some(Slot::Inner(c)) if c.num_entries() == 2 => {
                    // The child keeps one entry: it merges into this slot.
                    direct(c, pos + 1, target).map(|d| merge_single(c, d))
                }
                _ => None,
            };
            let Some(slot) = node.child_mut(b) else {
                unreachable!("remove_existing: the target must lie below a child");
            };
            if let Some(merged) = merged {
                *slot = Some(merged);
                break;
            }
            let Some(Slot::Inner(child)) = slot else {
                unreachable!("remove_existing: the target must lie below an inner child");
            };
            node = child;
            depth = pos + 1;
        }
        if self.root.as_ref().is_some_and(|r| r.count == 0) {
            self.root = None;
        }
    }
}

/// The smallest (or largest) key under a non-empty node.
fn edge_leaf<V>(mut node: &Inner<V>, first: bool) -> (&[u8], &V) {
    loop {
        let pos = if first {
            node.next_pos(node::POS_TERMINAL)
        } else {
            node.prev_pos(node::POS_END)
        };
        let Some(pos) = pos else {
            unreachable!("edge_leaf: an inner node in a tree is never empty");
        };
        match node.entry(pos) {
            EntryRef::Leaf(l) => return (l.key(), l.value()),
            EntryRef::Inner(n) => node = n,
        }
    }
}

/// Whether the removal of `target` takes effect directly in `node` (at
/// `depth`): the terminal, or one child slot that goes entirely.
fn direct<V>(node: &Inner<V>, depth: usize, target: Target<'_>) -> Option<Direct> {
    let pos = depth + node.prefix.len();
    let bytes = target.bytes();
    if bytes.len() == pos {
        // Only an exact key reaches here: a prefix this short covers the node.
        return Some(Direct::Terminal);
    }
    let b = bytes[pos];
    match node.child(b)? {
        Slot::Leaf(_) => Some(Direct::Child(b)),
        Slot::Inner(n) => match target {
            Target::Prefix(p) if p.len() <= pos + 1 + n.prefix.len() => Some(Direct::Child(b)),
            _ => None,
        },
    }
}

/// The slot that replaces a two-entry node once entry `gone` is removed.
fn merge_single<V: Clone>(node: &Inner<V>, gone: Direct) -> Slot<V> {
    let mut pos = node.next_pos(0);
    while let Some(p) = pos {
        let is_gone = match gone {
            Direct::Terminal => p == node::POS_TERMINAL,
            Direct::Child(b) => p != node::POS_TERMINAL && node.byte_at(p) == b,
        };
        if !is_gone {
            return match node.entry(p) {
                EntryRef::Leaf(l) => Slot::Leaf(l.clone()),
                EntryRef::Inner(n) => {
                    let mut n = n.clone();
                    let byte = node.byte_at(p);
                    let m = n.make_mut().header_mut();
                    let mut prefix = Vec::with_capacity(node.prefix.len() + 1 + m.prefix.len());
                    prefix.extend_from_slice(&node.prefix);
                    prefix.push(byte);
                    prefix.extend_from_slice(&m.prefix);
                    m.prefix = node::Prefix::new(&prefix);
                    Slot::Inner(n)
                }
            };
        }
        pos = node.next_pos(p + 1);
    }
    unreachable!("merge_single: a two-entry node keeps one entry")
}

/// Puts leaf `l` into `node`, whose keys diverge at `pos`: as the terminal
/// when the key ends there, else as the child at byte `key[pos]`.
fn place<V: Clone>(node: &mut Inner<V>, pos: usize, l: Leaf<V>) {
    match l.key().get(pos) {
        None => node.make_mut().header_mut().terminal = Some(l),
        Some(&b) => node.add_child(b, Slot::Leaf(l)),
    }
}

impl<V: Clone, K: AsRef<[u8]>> FromIterator<(K, V)> for Tree<V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut t = Tree::new();
        t.extend(iter);
        t
    }
}

impl<V: Clone, K: AsRef<[u8]>> Extend<(K, V)> for Tree<V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k.as_ref(), v);
        }
    }
}

impl<'a, V> IntoIterator for &'a Tree<V> {
    type Item = (&'a [u8], &'a V);
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

impl<V: Clone> IntoIterator for Tree<V> {
    type Item = (Key<V>, V);
    type IntoIter = IntoIter<V>;
    fn into_iter(self) -> IntoIter<V> {
        let len = self.len();
        IntoIter::new(self.root, 0, len)
    }
}

/// A batch of mutations producing one new version.
///
/// The transaction starts from a version (O(1)), copies each path the first
/// time it writes there and then mutates the nodes it owns in place;
/// [`TreeTxn::commit`] hands out the new version. The version it started
/// from is never changed. Reads through `Deref` see the transaction's own
/// writes.
///
/// ```
/// # use pandodb::tree::Tree;
/// let base: Tree<u64> = Tree::new();
/// let mut txn = base.txn();
/// for i in 0..1000u64 {
///     txn.insert(format!("k{i:04}").as_bytes(), i);
/// }
/// let next = txn.commit();
/// assert_eq!((base.len(), next.len()), (0, 1000));
/// ```
pub struct TreeTxn<V> {
    tree: Tree<V>,
}

impl<V: Clone> TreeTxn<V> {
    /// Inserts `value` under `key`, returning the value it replaced.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        self.tree.insert(key, value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.tree.remove(key)
    }

    /// Removes every key starting with `prefix`; returns how many.
    pub fn remove_prefix(&mut self, prefix: &[u8]) -> usize {
        self.tree.remove_prefix(prefix)
    }

    /// Finishes the batch and returns the new version.
    pub fn commit(self) -> Tree<V> {
        self.tree
    }
}

impl<V> std::ops::Deref for TreeTxn<V> {
    type Target = Tree<V>;
    fn deref(&self) -> &Tree<V> {
        &self.tree
    }
}

#[cfg(test)]
mod tests;
