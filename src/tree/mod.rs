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
//! A [`VersionedTree`] is the other way to keep versions: one writer,
//! readers holding pinned [`Version`]s, and the nodes a commit replaced
//! freed later, alone, once no held version can reach them (reclamation
//! by version interval), instead of counted node by node.
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
mod build;
#[cfg(any(test, feature = "testing"))]
mod check;
mod descent;
mod iter;
mod key;
mod leaf;
mod ledger;
mod lookup;
mod node;
mod pool;
mod reclaim;
mod refcount;
mod slot;
mod txn;
mod versioned;
mod write;

pub(crate) use ahead::ReadAhead;
pub use build::{NotSorted, TreeBuilder};
pub(crate) use descent::Descent;
pub use iter::{IntoIter, Iter, Values};
pub use key::Key;
pub(crate) use ledger::Ledger;
use ledger::dispose;
pub(crate) use node::prefetch;
use node::{Inner, Leaf, common_len};
#[cfg(loom)]
#[doc(hidden)]
pub use reclaim::{Garbage, Registry, Scratch, reclaim as reclaim_unpinned};
use slot::{Entry, EntryMut, EntryRef, Slot};
pub use txn::TreeTxn;
pub use versioned::{Version, VersionIter, VersionKey, VersionTxn, VersionedTree, View, ViewIter};

/// Hands the blocks of freed nodes that the calling thread keeps for reuse
/// (at most 256 KiB per thread) back to the global allocator, for tests
/// that count the allocator's live bytes.
///
/// Compiled only for this crate's tests and with the `testing` feature.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn release_thread_cache() {
    pool::release_thread_cache();
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

    /// Checks every structural invariant; for tests and fuzzing.
    ///
    /// Verifies: canonical path compression (every inner node but the root
    /// has at least two entries; the root has an empty prefix), sorted and
    /// correctly placed children, keys consistent with their path, subtree
    /// counts, and node size classes.
    ///
    /// Compiled only for this crate's tests and with the `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        check::check(self.root.as_ref())
    }

    /// The tree's shape, one line per inner node (path, prefix, layout,
    /// count, terminal, child bytes): equal for two trees of the same
    /// keys built the same canonical way. For tests.
    ///
    /// Compiled only for this crate's tests and with the `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn shape(&self) -> Vec<String> {
        check::shape(self.root.as_ref())
    }
}

impl<V: Clone> Tree<V> {
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

#[cfg(test)]
mod tests;
