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
mod body;
mod check;
mod iter;
mod leaf;
mod node;
mod refcount;

use std::ops::{Bound, RangeBounds};

pub(crate) use ahead::ReadAhead;
pub use iter::{IntoIter, Iter, Key, Values};
pub(crate) use node::Ledger;
use node::{Entry, EntryMut, EntryRef, Inner, Leaf, Slot, common_len, dispose};

/// A walk toward one key that reads one node per [`Descent::step`] and
/// asks for the next one's first cache lines before it returns.
///
/// A write of one object descends several trees (its rows and every index)
/// along random paths, each level a cache miss that waits for the one
/// above. Stepping the descents of all those trees in turn, before the
/// writes themselves, overlaps their misses: one wait per level instead of
/// one per level and tree. The writes then find their paths in the cache.
/// A descent only reads; it changes nothing.
pub(crate) struct Descent<'a, V> {
    /// The node the next step reads (its lines were asked for by the step
    /// before), or `None` once the walk reached its end.
    node: Option<&'a Inner<V>>,
    depth: usize,
    key: &'a [u8],
}

impl<V> Descent<'_, V> {
    /// Reads the current node, asks for the lines of the child toward the
    /// key (an inner node's header and first slots, or a leaf), and moves
    /// to it. Returns whether there is a node left to read.
    #[inline]
    pub(crate) fn step(&mut self) -> bool {
        let Some(node) = self.node.take() else {
            return false;
        };
        let pos = self.depth + node.prefix.len();
        match self.key.get(pos) {
            Some(&b) => match node.child(b) {
                Some(EntryRef::Inner(n)) => {
                    n.prefetch_head();
                    self.node = Some(n);
                    self.depth = pos + 1;
                    return true;
                }
                Some(EntryRef::Leaf(l)) => node::prefetch(l.addr()),
                None => {}
            },
            None => {
                if let Some(t) = &node.terminal {
                    node::prefetch(t.addr());
                }
            }
        }
        false
    }
}

/// A persistent (immutable, structurally shared) ordered map from byte keys
/// to values.
///
/// See the [module documentation](self) for the model.
pub struct Tree<V> {
    /// Set while the tree is the private copy of a lending write
    /// transaction (see [`Ledger`]). Declared before `root`: fields drop in
    /// order, and an unsettled ledger must restore the counts before the
    /// copy's nodes go.
    ledger: Option<Box<Ledger<V>>>,
    root: Option<Inner<V>>,
}

impl<V> Clone for Tree<V> {
    /// O(1): the clone shares every node with `self` (and is a plain tree,
    /// even when `self` belongs to a lending transaction).
    fn clone(&self) -> Self {
        Tree {
            ledger: None,
            root: self.root.clone(),
        }
    }
}

impl<V> Default for Tree<V> {
    fn default() -> Self {
        Tree::new()
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Tree<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
            .finish()
    }
}

/// What an insert does at an occupied child slot of the current node
/// (other than replacing the value of the same key, done on the spot).
#[derive(Clone, Copy)]
enum Step {
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
        Tree {
            ledger: None,
            root: None,
        }
    }

    /// A private copy of this version for a write transaction that lends
    /// (see [`Ledger`]): writes to the copy do not touch the reference
    /// counts of the children of the nodes they copy. The copy's ledger is
    /// settled with [`Tree::take_ledger`] and [`Ledger::settle`] once the
    /// base version is gone, or restores the counts when dropped.
    pub(crate) fn lending_clone(&self) -> Tree<V> {
        Tree {
            ledger: Some(Box::new(Ledger::new(
                self.root.as_ref().map_or(0, Inner::addr),
            ))),
            root: self.root.clone(),
        }
    }

    /// Ends the lending of this private copy, which becomes a plain tree
    /// (to publish); the ledger must then be settled (or dropped).
    pub(crate) fn take_ledger(&mut self) -> Option<Box<Ledger<V>>> {
        self.ledger.take()
    }

    /// The root handle, for [`Ledger::settle`].
    pub(crate) fn root_mut(&mut self) -> &mut Option<Inner<V>> {
        &mut self.root
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
                EntryRef::Leaf(l) => return (l.key() == key).then_some(l),
                EntryRef::Inner(n) => {
                    node = n;
                    depth = pos + 1;
                }
            }
        }
    }

    /// A descent toward `key` that goes down one node per
    /// [`Descent::step`] (see there).
    #[inline]
    pub(crate) fn descent<'a>(&'a self, key: &'a [u8]) -> Descent<'a, V> {
        Descent {
            node: self.root.as_ref(),
            depth: 0,
            key,
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
        TreeTxn {
            tree: self.clone(),
            base: None,
        }
    }

    /// Starts a batch of mutations that takes this version over: when
    /// nothing else holds it any more at [`TreeTxn::commit`] (no clone, no
    /// owning iterator), its nodes are replaced without the reference-count
    /// traffic of a plain copy (the children of a copied node are lent to
    /// the copy instead of counted twice; see the architecture document).
    /// Otherwise the commit costs what [`Tree::txn`]'s does. The version
    /// itself never changes: [`TreeTxn::base`] reads it and
    /// [`TreeTxn::abort`] hands it back.
    ///
    /// ```
    /// # use pandodb::tree::Tree;
    /// let mut v: Tree<u64> = (0..100u64).map(|i| (i.to_be_bytes(), i)).collect();
    /// for round in 0..10u64 {
    ///     let mut txn = v.into_txn();
    ///     txn.insert(&round.to_be_bytes(), 1000 + round);
    ///     assert_eq!(txn.base().unwrap().get(&round.to_be_bytes()), Some(&round));
    ///     v = txn.commit();
    /// }
    /// assert_eq!(v.get(&9u64.to_be_bytes()), Some(&1009));
    /// ```
    pub fn into_txn(self) -> TreeTxn<V> {
        TreeTxn {
            tree: self.lending_clone(),
            base: Some(self),
        }
    }

    /// Inserts `value` under `key`, returning the value it replaced.
    ///
    /// # Panics
    /// When `key` is longer than 4 GiB (`u32::MAX` bytes). The database
    /// refuses index keys over 1 GiB with `Error::InvalidKey` before they
    /// reach a tree.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        // One descent that counts the key on its way down, as if it were
        // new (the usual case); a replaced key takes the count back with a
        // second walk over the same, now owned, path.
        let old = self.insert_counted(key, value, true);
        if old.is_some() {
            self.uncount(key);
        }
        old
    }

    /// Takes back the count [`Tree::insert`] added on the path to `key`,
    /// which is stored: one less key below every node of the path.
    fn uncount(&mut self, key: &[u8]) {
        let Tree { ledger, root } = self;
        let Some(mut node) = root.as_mut() else {
            unreachable!("uncount: the tree holds the key")
        };
        let mut depth = 0;
        loop {
            let head = node.make_mut(ledger.as_deref_mut()).header_mut();
            head.count -= 1;
            let pos = depth + head.prefix.len();
            if key.len() == pos {
                return; // the terminal leaf
            }
            match node
                .child_mut(key[pos], ledger.as_deref_mut())
                .and_then(Option::as_mut)
                .map(Slot::get_mut)
            {
                Some(EntryMut::Inner(child)) => {
                    node = child;
                    depth = pos + 1;
                }
                Some(EntryMut::Leaf(_)) => return,
                None => unreachable!("uncount: the tree holds the key"),
            }
        }
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
        self.insert_counted(key, value, grows)
    }

    /// The descent of [`Tree::insert_known`]: adds one to the count of
    /// every node on the path when `grows`.
    fn insert_counted(&mut self, key: &[u8], value: V, grows: bool) -> Option<V> {
        let Tree { ledger, root } = self;
        let generation = ledger.as_ref().map_or(0, |l| l.generation);
        let mut node: &mut Inner<V> = root.get_or_insert_with(|| Inner::new(&[], 1, generation));
        let mut depth = 0;
        loop {
            let body = node.make_mut(ledger.as_deref_mut());
            let head = body.header_mut();
            if grows {
                head.count += 1;
            }
            let pos = depth + head.prefix.len();
            if key.len() == pos {
                return match &mut head.terminal {
                    Some(t) => Some(replace_value(t, value, ledger.as_deref_mut())),
                    None => {
                        head.terminal = Some(Leaf::new(key, value));
                        None
                    }
                };
            }
            let b = key[pos];
            let at = pos + 1;
            // One lookup of the byte; the node is this writer's now, so its
            // slot is changed (or descended into) in place.
            let found = body.header().layout.find(b);
            let Some(i) = found.filter(|&i| body.slice_mut().get(i).is_some_and(Option::is_some))
            else {
                node.add_child(b, Slot::from(Leaf::new(key, value)), ledger.as_deref_mut());
                return None;
            };
            // (A second, owned, access: the borrow checker does not let the
            // first one flow into `node` on one branch and end on another.)
            let slot = &mut node.make_mut(ledger.as_deref_mut()).slice_mut()[i];
            let step = match slot.as_mut().map(Slot::get_mut) {
                Some(EntryMut::Leaf(l)) if l.key() == key => {
                    return Some(replace_value(l, value, ledger.as_deref_mut()));
                }
                Some(EntryMut::Leaf(l)) => Step::SplitLeaf(common_len(&l.key()[at..], &key[at..])),
                Some(EntryMut::Inner(c)) => match common_len(&c.prefix, &key[at..]) {
                    n if n < c.prefix.len() => Step::SplitInner(n),
                    _ => Step::Descend,
                },
                None => unreachable!("insert: the slot was just found occupied"),
            };
            if let Step::Descend = step {
                let Some(EntryMut::Inner(child)) = slot.as_mut().map(Slot::get_mut) else {
                    unreachable!("insert: descending into a missing inner child");
                };
                node = child;
                depth = at;
                continue;
            }
            let replacement = match (step, slot.take().map(Slot::into_entry)) {
                (Step::SplitLeaf(c), Some(Entry::Leaf(l))) => {
                    // Two leaves now share `key[at..at + c]`: a new node holds both.
                    let mut split = Inner::new(&key[at..at + c], 2, generation);
                    split.make_mut(ledger.as_deref_mut()).header_mut().count = 2;
                    place(&mut split, at + c, l, ledger.as_deref_mut());
                    place(
                        &mut split,
                        at + c,
                        Leaf::new(key, value),
                        ledger.as_deref_mut(),
                    );
                    split
                }
                (Step::SplitInner(c), Some(Entry::Inner(mut old))) => {
                    // The new key leaves the child's prefix early: split it.
                    // The child was taken out of its slot, so a child this
                    // version owns alone is changed in place, not copied.
                    let mut split = Inner::new(&key[at..at + c], 2, generation);
                    split.make_mut(ledger.as_deref_mut()).header_mut().count = old.count + 1;
                    let moved = old.make_mut(ledger.as_deref_mut()).header_mut();
                    let byte = moved.prefix[c];
                    moved.prefix = node::Prefix::new(&moved.prefix[c + 1..]);
                    split.add_child(byte, Slot::from(old), ledger.as_deref_mut());
                    place(
                        &mut split,
                        at + c,
                        Leaf::new(key, value),
                        ledger.as_deref_mut(),
                    );
                    split
                }
                _ => unreachable!("insert: step does not match the slot"),
            };
            *slot = Some(Slot::from(replacement));
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
            let old = self.root.take();
            dispose(self.ledger.as_deref_mut(), old.map(Slot::from));
        } else if n > 0 {
            self.remove_existing(Target::Prefix(prefix), n);
        }
        n
    }

    /// Removes `removed >= 1` keys that `target` designates and that exist,
    /// but not all keys of the tree. Copies the path down, fixes counts and
    /// merges a node left with a single entry into its parent's slot.
    fn remove_existing(&mut self, target: Target<'_>, removed: usize) {
        let Tree { ledger, root } = self;
        let Some(root) = root.as_mut() else {
            return;
        };
        let mut node: &mut Inner<V> = root;
        let mut depth = 0;
        loop {
            node.make_mut(ledger.as_deref_mut()).header_mut().count -= removed;
            match direct(node, depth, target) {
                Some(Direct::Terminal) => {
                    let old = node
                        .make_mut(ledger.as_deref_mut())
                        .header_mut()
                        .terminal
                        .take();
                    dispose(ledger.as_deref_mut(), old.map(Slot::from));
                    break;
                }
                Some(Direct::Child(b)) => {
                    let old = node.remove_child(b, ledger.as_deref_mut());
                    dispose(ledger.as_deref_mut(), old);
                    break;
                }
                None => {}
            }
            let pos = depth + node.prefix.len();
            let b = target.bytes()[pos];
            let merged = match node.child(b) {
                Some(EntryRef::Inner(c)) if c.num_entries() == 2 => {
                    // The child keeps one entry: it merges into this slot.
                    direct(c, pos + 1, target).map(|d| merge_single(c, d, ledger.as_deref_mut()))
                }
                _ => None,
            };
            let Some(slot) = node.child_mut(b, ledger.as_deref_mut()) else {
                unreachable!("remove_existing: the target must lie below a child");
            };
            if let Some(merged) = merged {
                let old = slot.replace(merged);
                dispose(ledger.as_deref_mut(), old);
                break;
            }
            let Some(EntryMut::Inner(child)) = slot.as_mut().map(Slot::get_mut) else {
                unreachable!("remove_existing: the target must lie below an inner child");
            };
            node = child;
            depth = pos + 1;
        }
        if self.root.as_ref().is_some_and(|r| r.count == 0) {
            let old = self.root.take();
            dispose(self.ledger.as_deref_mut(), old.map(Slot::from));
        }
    }
}

/// Replaces the value of leaf `l`: in place when the writer may (a plain
/// writer holding the only handle), else by a new leaf; a lending
/// transaction never changes a leaf in place (leaves carry no generation)
/// and keeps the replaced one until settlement.
fn replace_value<V: Clone>(l: &mut Leaf<V>, value: V, lg: Option<&mut Ledger<V>>) -> V {
    match lg {
        None => l.replace_value(value),
        Some(lg) => {
            let old = l.value().clone();
            let new = Leaf::new(l.key(), value);
            lg.defer(Slot::from(std::mem::replace(l, new)));
            old
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
        EntryRef::Leaf(_) => Some(Direct::Child(b)),
        EntryRef::Inner(n) => match target {
            Target::Prefix(p) if p.len() <= pos + 1 + n.prefix.len() => Some(Direct::Child(b)),
            _ => None,
        },
    }
}

/// The slot that replaces a two-entry node once entry `gone` is removed.
fn merge_single<V: Clone>(node: &Inner<V>, gone: Direct, lg: Option<&mut Ledger<V>>) -> Slot<V> {
    let mut pos = node.next_pos(0);
    while let Some(p) = pos {
        let is_gone = match gone {
            Direct::Terminal => p == node::POS_TERMINAL,
            Direct::Child(b) => p != node::POS_TERMINAL && node.byte_at(p) == b,
        };
        if !is_gone {
            return match node.entry(p) {
                EntryRef::Leaf(l) => Slot::from(l.clone()),
                EntryRef::Inner(n) => {
                    let mut n = n.clone();
                    let byte = node.byte_at(p);
                    let m = n.make_mut(lg).header_mut();
                    let mut prefix = Vec::with_capacity(node.prefix.len() + 1 + m.prefix.len());
                    prefix.extend_from_slice(&node.prefix);
                    prefix.push(byte);
                    prefix.extend_from_slice(&m.prefix);
                    m.prefix = node::Prefix::new(&prefix);
                    Slot::from(n)
                }
            };
        }
        pos = node.next_pos(p + 1);
    }
    unreachable!("merge_single: a two-entry node keeps one entry")
}

/// Puts leaf `l` into `node`, whose keys diverge at `pos`: as the terminal
/// when the key ends there, else as the child at byte `key[pos]`.
fn place<V: Clone>(node: &mut Inner<V>, pos: usize, l: Leaf<V>, lg: Option<&mut Ledger<V>>) {
    match l.key().get(pos) {
        None => node.make_mut(lg).header_mut().terminal = Some(l),
        Some(&b) => node.add_child(b, Slot::from(l), lg),
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
    /// The new version. Declared first: it drops first, so that its ledger
    /// (from [`Tree::into_txn`]) restores counts while `base` still lives.
    tree: Tree<V>,
    /// The version taken over by [`Tree::into_txn`].
    base: Option<Tree<V>>,
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
        let TreeTxn { mut tree, base } = self;
        if let Some(mut base) = base
            && let Some(ledger) = tree.take_ledger()
        {
            (*ledger).settle(base.root_mut());
        }
        tree
    }

    /// Discards the batch; returns the version taken over by
    /// [`Tree::into_txn`] (`None` for [`Tree::txn`]).
    pub fn abort(self) -> Option<Tree<V>> {
        let TreeTxn { tree, base } = self;
        drop(tree);
        base
    }

    /// The version taken over by [`Tree::into_txn`], unchanged by the
    /// batch (`None` for [`Tree::txn`]).
    pub fn base(&self) -> Option<&Tree<V>> {
        self.base.as_ref()
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
