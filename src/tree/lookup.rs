//! The read side of a version: point lookups, first and last keys, prefix
//! counts and longest-prefix matches, ranks, and the constructors of the
//! borrowed and owning iterators.

use std::ops::{Bound, RangeBounds};

use super::Tree;
use super::iter::{self, IntoIter, Iter};
use super::node::{self, Inner, Leaf};
use super::slot::EntryRef;

impl<V> Tree<V> {
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
    pub(super) fn get_leaf(&self, key: &[u8]) -> Option<&Leaf<V>> {
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
                EntryRef::Leaf(l) => return (l.key() == key).then_some(l),
                EntryRef::Inner(n) => {
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
                EntryRef::Leaf(l) => {
                    return l.key().starts_with(prefix).then(|| (l.key(), l.value()));
                }
                EntryRef::Inner(n) => {
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
                Some(EntryRef::Leaf(l)) => return usize::from(l.key().starts_with(prefix)),
                Some(EntryRef::Inner(n)) => {
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
                Some(EntryRef::Leaf(l)) => {
                    if key.starts_with(l.key()) {
                        best = Some(l);
                    }
                    break;
                }
                Some(EntryRef::Inner(n)) => {
                    node = n;
                    depth = pos + 1;
                }
            }
        }
        best.map(|l| (l.key(), l.value()))
    }

    /// Number of keys `< key` (or `<= key` when `inclusive`).
    pub(crate) fn rank(&self, key: &[u8], inclusive: bool) -> usize {
        self.root
            .as_ref()
            .map_or(0, |r| iter::rank(r, key, inclusive))
    }

    /// The rank just past the keys `range` admits at its upper end.
    fn end_rank<'k>(&self, range: &impl RangeBounds<&'k [u8]>) -> usize {
        match range.end_bound() {
            Bound::Included(k) => self.rank(k, true),
            Bound::Excluded(k) => self.rank(k, false),
            Bound::Unbounded => self.len(),
        }
    }

    /// The start bound of `range`, for the iterators that seek it.
    fn start_of<'r, 'k>(range: &'r impl RangeBounds<&'k [u8]>) -> Bound<&'k [u8]> {
        match range.start_bound() {
            Bound::Included(k) => Bound::Included(*k),
            Bound::Excluded(k) => Bound::Excluded(*k),
            Bound::Unbounded => Bound::Unbounded,
        }
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
        Iter::bounded(self.root.as_ref(), Self::start_of(&range), |_| {
            self.end_rank(&range)
        })
    }

    /// Iterates over the keys that start with `prefix`, ascending.
    pub fn prefix(&self, prefix: &[u8]) -> Iter<'_, V> {
        Iter::bounded(self.root.as_ref(), Bound::Included(prefix), |start| {
            start + self.count_prefix(prefix)
        })
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
        IntoIter::bounded(self.root.clone(), Self::start_of(&range), |_| {
            self.end_rank(&range)
        })
    }

    /// Like [`Tree::prefix`], but the iterator owns this version.
    pub fn owned_prefix(&self, prefix: &[u8]) -> IntoIter<V> {
        IntoIter::bounded(self.root.clone(), Bound::Included(prefix), |start| {
            start + self.count_prefix(prefix)
        })
    }
}

#[allow(unsafe_code)]
impl<V> Tree<V> {
    /// Like [`Tree::range`], but the iterator does not borrow the tree: it
    /// walks uncounted aliases of its nodes.
    ///
    /// # Safety
    /// This version must stay alive and unchanged for as long as the
    /// iterator exists (a versioned tree's pin keeps it so).
    pub(crate) unsafe fn alias_range<'k>(
        &self,
        range: impl RangeBounds<&'k [u8]>,
    ) -> iter::AliasIter<V> {
        // SAFETY: the caller's contract.
        unsafe {
            iter::AliasIter::bounded(self.root.as_ref(), Self::start_of(&range), |_| {
                self.end_rank(&range)
            })
        }
    }

    /// Like [`Tree::prefix`], as [`Tree::alias_range`] does.
    ///
    /// # Safety
    /// As for [`Tree::alias_range`].
    pub(crate) unsafe fn alias_prefix(&self, prefix: &[u8]) -> iter::AliasIter<V> {
        // SAFETY: the caller's contract.
        unsafe {
            iter::AliasIter::bounded(self.root.as_ref(), Bound::Included(prefix), |start| {
                start + self.count_prefix(prefix)
            })
        }
    }

    /// Every entry, as [`Tree::alias_range`] does.
    ///
    /// # Safety
    /// As for [`Tree::alias_range`].
    pub(crate) unsafe fn alias_iter(&self) -> iter::AliasIter<V> {
        // SAFETY: the caller's contract.
        unsafe { iter::AliasIter::new(self.root.as_ref(), 0, self.len()) }
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
