//! [`VersionedTree`]: a single-writer line of versions whose replaced nodes
//! are reclaimed by version interval, and [`Version`], a read-only version
//! of it, pinned while held.
//!
//! A write transaction copies the nodes of its base version the way a
//! lending [`Ledger`] does: a copy duplicates its slot array bit for bit
//! and no child's reference count changes. Its commit does not settle the
//! ledger: every node it copied (lent) and every handle it let go of
//! (replaced leaves, removed subtrees) is *retired* with the revision of
//! the commit, and freed later, by a later writer, once no pinned version
//! can reach it (the rule of `reclaim.rs`):
//! - a copied node is freed alone: its slots' handles live on in the copy;
//! - a let-go handle is released; a node it was the last handle of is
//!   freed alone, and its entries are retired in turn, each checked against
//!   its own birth (an entry can be older than the node that held it, and
//!   reachable from older versions through older nodes).
//!
//! Only the nodes a commit replaced are visited, never their children, and
//! nothing is freed inside the commit. An aborted transaction restores the
//! counts as a lending transaction's abort does, then frees what it made.
//!
//! Versions cannot fork: [`Version`] has no write access and gives out no
//! counted handle (no owning iterator, no [`Tree`]), since a node replaced
//! in two lines of versions would be retired twice.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::RangeBounds;
use std::ptr::NonNull;
use std::sync::Arc;

use super::Tree;
use super::body::NodeArc;
use super::iter::{AliasIter, Iter};
use super::key::Key;
use super::ledger::Ledger;
use super::node::{Inner, Leaf};
use super::reclaim::{self, Garbage, Registry, Scratch};
use super::slot::{Entry, EntryRef, Slot};
use crate::sync::{Mutex, lock};

/// How many pieces of garbage a write transaction frees, at least when
/// there are that many, before it starts: the freeing is spread over the
/// writers that follow, a bounded batch each. A batch is also at least
/// twice what the last commit retired, so a line of large transactions
/// frees faster than it retires.
pub(crate) const RECLAIM_BATCH: usize = 1024;

/// What a leaf's value tells of the revision that made the leaf: a
/// replaced leaf is reachable from `[born, replaced)` only. (Inner nodes
/// record theirs in their header; a leaf's lives in its value, so that
/// trees that do not need it pay nothing for it.)
pub(crate) trait Born {
    /// The revision of the transaction that made the leaf holding this
    /// value, or an earlier one.
    fn born(&self) -> u64;
}

/// A value of a [`VersionedTree`] with the revision that stored it.
#[derive(Clone)]
pub(crate) struct Stamped<V> {
    born: u64,
    value: V,
}

impl<V> Born for Stamped<V> {
    fn born(&self) -> u64 {
        self.born
    }
}

/// A node or a handle a commit replaced (see the module documentation), in
/// one word: a slot's word for a let-go handle (an inner node's even
/// address, or a leaf's address plus one), an inner node's address plus
/// [`NODE`] for a copied node. An inner node is 8-aligned and a leaf
/// 4-aligned (its header starts with a `u32`), so bit 1 of a slot's word is
/// free. Dropping a piece by mistake leaks, never frees.
struct Piece<V> {
    word: NonNull<u8>,
    _owns: PhantomData<Slot<V>>,
}

/// Bit 1 of a piece's word: a copied node (freed alone), not a handle.
const NODE: usize = 2;

// SAFETY: a piece owns a node or a handle as a `Slot` does, and is sent
// with the registry when the last holder of a line frees it on its thread:
// `Send` and `Sync` when a slot is (`V: Send + Sync`).
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Send for Piece<V> {}
// SAFETY: as above; a piece is only read through `&mut` registry access.
#[allow(unsafe_code)]
unsafe impl<V: Send + Sync> Sync for Piece<V> {}

/// A piece, taken apart.
enum Kind<V> {
    /// A node copied by the commit: freed alone.
    Node(ManuallyDrop<Inner<V>>),
    /// A handle the commit let go of: released.
    Handle(ManuallyDrop<Slot<V>>),
}

#[allow(unsafe_code)]
impl<V> Piece<V> {
    /// A node the commit copied (lent): the piece stands for its handle.
    fn node(n: ManuallyDrop<Inner<V>>) -> Self {
        let word = n.0.ptr().cast_mut();
        debug_assert_eq!(word.addr() & (NODE | 1), 0, "inner nodes are 8-aligned");
        let Some(word) = NonNull::new(word.map_addr(|a| a | NODE)) else {
            unreachable!("a node's address is not null")
        };
        Piece {
            word,
            _owns: PhantomData,
        }
    }

    /// A handle the commit let go of.
    fn handle(s: Slot<V>) -> Self {
        let word = s.into_raw();
        debug_assert_eq!(word.as_ptr().addr() & NODE, 0, "blocks are 4-aligned");
        Piece {
            word,
            _owns: PhantomData,
        }
    }

    /// The node or handle, borrowed: wrapped so that it is never dropped.
    fn peek(&self) -> Kind<V> {
        let w = self.word.as_ptr();
        if w.addr() & NODE != 0 {
            let Some(p) = NonNull::new(w.map_addr(|a| a & !NODE)) else {
                unreachable!("a node's address is not null")
            };
            // SAFETY: the word is a node handle's pointer plus `NODE`
            // (`Piece::node`); the copy is wrapped, never dropped, and the
            // caller reads it while the piece, which owns it, lives.
            Kind::Node(ManuallyDrop::new(Inner(unsafe { NodeArc::from_raw(p) })))
        } else {
            // SAFETY: the word is a slot's (`Piece::handle`); as above.
            Kind::Handle(ManuallyDrop::new(unsafe { Slot::from_raw(self.word) }))
        }
    }

    /// The node or handle, taken back (once: `self` is consumed).
    fn into_kind(self) -> Kind<V> {
        self.peek()
    }
}

impl<V: Born> Garbage for Piece<V> {
    fn born(&self) -> u64 {
        match self.peek() {
            Kind::Node(n) => n.generation,
            Kind::Handle(s) => match s.get() {
                EntryRef::Leaf(l) => l.value().born(),
                EntryRef::Inner(n) => n.generation,
            },
        }
    }

    fn free(self, more: &mut Vec<Self>) {
        match self.into_kind() {
            // Its slots' counts passed to the copy's duplicates; its
            // terminal was cloned into the copy, so the header's own count
            // on it goes with the header.
            Kind::Node(n) => ManuallyDrop::into_inner(n).free_without_slots(),
            Kind::Handle(s) => match ManuallyDrop::into_inner(s).into_entry() {
                Entry::Leaf(l) => drop(l),
                Entry::Inner(mut n) => {
                    if let Some(body) = n.get_mut() {
                        // The last handle: the node goes alone, and each of
                        // its entries is garbage from the same commit on.
                        if let Some(t) = body.header_mut().terminal.take() {
                            more.push(Piece::handle(Slot::from(t)));
                        }
                        more.extend(
                            body.slice_mut()
                                .iter_mut()
                                .filter_map(Option::take)
                                .map(Piece::handle),
                        );
                    }
                    // Empty now (freed), or shared (one count less).
                    drop(n);
                }
            },
        }
    }
}

/// What the line and its versions share: the pins and the garbage.
struct Shared<V> {
    registry: Mutex<Registry<Piece<Stamped<V>>>>,
}

impl<V> Drop for Shared<V> {
    /// The line and every version are gone: nothing can be read any more.
    fn drop(&mut self) {
        reclaim::reclaim_all(&mut lock(&self.registry));
    }
}

/// A persistent ordered map from byte keys to values with one writer and
/// any number of readers, each reading a [`Version`] that stays exactly as
/// it was when taken.
///
/// Unlike [`Tree`], whose clones are independent and counted node by node,
/// a `VersionedTree` is one line of versions: a write transaction
/// ([`VersionedTree::txn`]) makes the next revision, copying a node of the
/// current version without touching its children's counts, and the nodes
/// a commit replaced are freed later, alone, once no held [`Version`] can
/// reach them. One long-held version keeps only what it can read: the
/// nodes of the versions after it that no version held reaches are freed.
///
/// ```
/// use pandodb::tree::VersionedTree;
///
/// let mut line = VersionedTree::new();
/// let mut txn = line.txn();
/// txn.insert(b"user-1", 1);
/// txn.insert(b"user-2", 2);
/// assert_eq!(txn.commit(), 1);
/// let v1 = line.version(); // pins revision 1
/// let mut txn = line.txn();
/// txn.insert(b"user-3", 3);
/// txn.remove(b"user-1");
/// txn.commit();
/// assert_eq!(v1.view().get(b"user-1"), Some(&1));
/// assert_eq!(line.view().get(b"user-1"), None);
/// let keys: Vec<&[u8]> = line.view().iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, [&b"user-2"[..], b"user-3"]);
/// drop(v1);
/// line.reclaim(); // what only revision 1 reached is freed
/// assert_eq!(line.waiting_garbage(), 0);
/// ```
pub struct VersionedTree<V> {
    /// The current version. Its root handle is the line's own: retired,
    /// never dropped as a plain tree.
    current: ManuallyDrop<Tree<Stamped<V>>>,
    revision: u64,
    /// How many pieces the last commit retired (see [`RECLAIM_BATCH`]).
    retired_last: usize,
    /// The reclaimer's buffers, kept between transactions.
    scratch: Scratch<Piece<Stamped<V>>>,
    shared: Arc<Shared<V>>,
}

impl<V> Default for VersionedTree<V> {
    fn default() -> Self {
        VersionedTree::new()
    }
}

impl<V> VersionedTree<V> {
    /// An empty line at revision 0. Does not allocate a node.
    pub fn new() -> Self {
        VersionedTree {
            current: ManuallyDrop::new(Tree::new()),
            revision: 0,
            retired_last: 0,
            scratch: Scratch::default(),
            shared: Arc::new(Shared {
                registry: Mutex::new(Registry::default()),
            }),
        }
    }

    /// The revision of the current version: how many transactions have
    /// committed.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The current version, read in place (no pin: the borrow of `self`
    /// keeps the writer away).
    pub fn view(&self) -> View<'_, V> {
        View {
            tree: &self.current,
        }
    }

    /// The current version, pinned: it reads the same whatever commits
    /// after, until dropped. May be sent to and read from other threads.
    pub fn version(&self) -> Version<V> {
        lock(&self.shared.registry).pin(self.revision);
        Version {
            tree: alias_tree(&self.current),
            revision: self.revision,
            shared: self.shared.clone(),
        }
    }

    /// Frees every piece of garbage no held version can reach; returns how
    /// many were freed. Write transactions do this in bounded batches
    /// ([`VersionedTree::txn`]); this call is for an idle writer, or a test.
    pub fn reclaim(&mut self) -> usize {
        reclaim::reclaim(&self.shared.registry, usize::MAX, &mut self.scratch)
    }

    /// How many replaced nodes and leaves wait to be freed (held by a
    /// version, or not reclaimed yet).
    pub fn waiting_garbage(&self) -> usize {
        lock(&self.shared.registry).waiting()
    }

    /// How many distinct revisions held [`Version`]s pin.
    pub fn pinned_revisions(&self) -> usize {
        lock(&self.shared.registry).pinned()
    }
}

impl<V: Clone> VersionedTree<V> {
    /// Starts the transaction that makes the next revision. First frees a
    /// bounded batch of the garbage no held version reaches.
    pub fn txn(&mut self) -> VersionTxn<'_, V> {
        let batch = RECLAIM_BATCH.max(self.retired_last.saturating_mul(2));
        reclaim::reclaim(&self.shared.registry, batch, &mut self.scratch);
        let revision = self.revision + 1;
        let base = self.current.root.as_ref().map_or(0, Inner::addr);
        let tree = Tree {
            ledger: Some(Box::new(Ledger::line(revision, base))),
            // A counted handle on the base root, as a lending transaction
            // holds one: copying the root lends it (`Ledger::lent_from`).
            root: self.current.root.clone(),
        };
        VersionTxn { line: self, tree }
    }
}

impl<V> Drop for VersionedTree<V> {
    /// The current version is retired for good: what no held version
    /// reaches is freed now, the rest when the last version goes.
    fn drop(&mut self) {
        if let Some(root) = self.current.root.take() {
            lock(&self.shared.registry).retire([Piece::handle(Slot::from(root))], u64::MAX);
        }
        reclaim::reclaim(&self.shared.registry, usize::MAX, &mut self.scratch);
    }
}

impl<V: Clone, K: AsRef<[u8]>> FromIterator<(K, V)> for VersionedTree<V> {
    /// A line whose revision 1 holds the pairs (the last value of a key
    /// counts).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut line = VersionedTree::new();
        let mut txn = line.txn();
        for (k, v) in iter {
            txn.insert(k.as_ref(), v);
        }
        txn.commit();
        line
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for VersionedTree<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedTree")
            .field("revision", &self.revision)
            .field("current", &self.view())
            .finish()
    }
}

/// A plain tree reading the same nodes as `tree`, holding no count.
fn alias_tree<V>(tree: &Tree<V>) -> ManuallyDrop<Tree<V>> {
    ManuallyDrop::new(Tree {
        ledger: None,
        // SAFETY: the alias is only read through `Version`, whose pin keeps
        // every node of its version alive (garbage is freed only once no
        // pin lies in its interval) for as long as it is held, and it is
        // never dropped (`ManuallyDrop`, here and around the tree).
        #[allow(unsafe_code)]
        root: tree
            .root
            .as_ref()
            .map(|r| ManuallyDrop::into_inner(unsafe { r.alias() })),
    })
}

/// The transaction that makes the next revision of a [`VersionedTree`].
///
/// Reads ([`VersionTxn::view`]) see its own writes. [`VersionTxn::commit`]
/// makes it the current version; dropping it without a commit aborts it
/// (what it made is freed, the line stays as it was).
pub struct VersionTxn<'a, V: Clone> {
    line: &'a mut VersionedTree<V>,
    /// The new version, with the ledger of what it lent and let go of.
    tree: Tree<Stamped<V>>,
}

impl<V: Clone> VersionTxn<'_, V> {
    /// Inserts `value` under `key`, returning the value it replaced.
    ///
    /// # Panics
    /// When `key` is longer than 4 GiB, as [`Tree::insert`] does.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let born = self.revision();
        self.tree
            .insert(key, Stamped { born, value })
            .map(|s| s.value)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.tree.remove(key).map(|s| s.value)
    }

    /// Removes every key starting with `prefix`; returns how many.
    pub fn remove_prefix(&mut self, prefix: &[u8]) -> usize {
        self.tree.remove_prefix(prefix)
    }

    /// The transaction's version, with its writes so far.
    pub fn view(&self) -> View<'_, V> {
        View { tree: &self.tree }
    }

    /// The revision this transaction makes.
    pub fn revision(&self) -> u64 {
        self.line.revision + 1
    }

    /// Makes this transaction's version the current one; returns its
    /// revision. What it replaced is retired, not freed: a later writer
    /// frees it once no held version reaches it.
    pub fn commit(mut self) -> u64 {
        let revision = self.line.revision + 1;
        let Some(ledger) = self.tree.ledger.take() else {
            unreachable!("a versioned transaction has a ledger")
        };
        let (lent, deferred) = ledger.into_parts();
        let root_lent = lent.iter().any(|(_, root)| *root);
        let old = std::mem::replace(&mut self.line.current.root, self.tree.root.take());
        if root_lent {
            // The retired copy of the root stands for the line's handle.
            std::mem::forget(old);
        } else {
            // The transaction's own counted handle (unchanged root) or a
            // retired one (removed root) keeps the node.
            drop(old);
        }
        self.line.revision = revision;
        let pieces = lent
            .into_iter()
            .map(|(n, _)| Piece::node(n))
            .chain(deferred.into_iter().map(Piece::handle));
        let mut registry = lock(&self.line.shared.registry);
        let before = registry.waiting();
        registry.retire(pieces, revision);
        self.line.retired_last = registry.waiting() - before;
        revision
    }
}

/// A version of a [`VersionedTree`], pinned: it reads the same whatever the
/// writer commits after, for as long as it is held. Cloning pins again.
pub struct Version<V> {
    /// The version's nodes, aliased (no counts): see `alias_tree`.
    tree: ManuallyDrop<Tree<Stamped<V>>>,
    revision: u64,
    shared: Arc<Shared<V>>,
}

impl<V> Version<V> {
    /// The revision of this version.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Reads this version.
    pub fn view(&self) -> View<'_, V> {
        View { tree: &self.tree }
    }
}

impl<V: Clone> Version<V> {
    /// Every key and value in key order, in an iterator that holds this
    /// version (pinned) for as long as it lives: it outlives `self`, and
    /// walks the nodes without touching a count. Yields owned keys and
    /// cloned values; double-ended and of exact size.
    ///
    /// ```
    /// # use pandodb::tree::VersionedTree;
    /// let mut line: VersionedTree<u32> = [("a", 1), ("b", 2)].into_iter().collect();
    /// let it = line.version().owned_iter(); // the version itself is dropped
    /// let mut txn = line.txn();
    /// txn.remove(b"a");
    /// txn.commit();
    /// let got: Vec<(Vec<u8>, u32)> = it.map(|(k, v)| (k.to_vec(), v)).collect();
    /// assert_eq!(got, [(b"a".to_vec(), 1), (b"b".to_vec(), 2)]);
    /// ```
    pub fn owned_iter(&self) -> VersionIter<V> {
        // SAFETY: see `Version::pinned`.
        #[allow(unsafe_code)]
        self.pinned(unsafe { self.tree.alias_iter() })
    }

    /// Like [`Version::owned_iter`], for the keys in `range`.
    pub fn owned_range<'k>(&self, range: impl RangeBounds<&'k [u8]>) -> VersionIter<V> {
        // SAFETY: see `Version::pinned`.
        #[allow(unsafe_code)]
        self.pinned(unsafe { self.tree.alias_range(range) })
    }

    /// Like [`Version::owned_iter`], for the keys starting with `prefix`.
    pub fn owned_prefix(&self, prefix: &[u8]) -> VersionIter<V> {
        // SAFETY: see `Version::pinned`.
        #[allow(unsafe_code)]
        self.pinned(unsafe { self.tree.alias_prefix(prefix) })
    }

    /// `it`, a walk of this version's nodes, with a clone of this version:
    /// its pin keeps every node of it alive and unchanged for as long as
    /// the iterator lives (what the alias walk requires).
    fn pinned(&self, it: AliasIter<Stamped<V>>) -> VersionIter<V> {
        VersionIter {
            it,
            _version: self.clone(),
        }
    }
}

/// A stored key, owned: a handle on its leaf (one count, which keeps the
/// leaf alive whatever the tree does), dereferencing to the key bytes.
pub struct VersionKey<V>(Key<Stamped<V>>);

impl<V> Clone for VersionKey<V> {
    fn clone(&self) -> Self {
        VersionKey(self.0.clone())
    }
}

impl<V> std::ops::Deref for VersionKey<V> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<V> std::fmt::Debug for VersionKey<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An iterator that holds a pinned [`Version`]: see
/// [`Version::owned_iter`].
pub struct VersionIter<V> {
    /// Declared first: its aliases go before the pin.
    it: AliasIter<Stamped<V>>,
    _version: Version<V>,
}

/// An entry of a version, owned.
fn owned<V: Clone>(l: &Leaf<Stamped<V>>) -> (VersionKey<V>, V) {
    (VersionKey(Key::of(l)), l.value().value.clone())
}

impl<V: Clone> Iterator for VersionIter<V> {
    type Item = (VersionKey<V>, V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.it.next_with(owned)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.it.len(), Some(self.it.len()))
    }
}

impl<V: Clone> DoubleEndedIterator for VersionIter<V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.it.next_back_with(owned)
    }
}

impl<V: Clone> ExactSizeIterator for VersionIter<V> {}
impl<V: Clone> std::iter::FusedIterator for VersionIter<V> {}

impl<V> Clone for Version<V> {
    fn clone(&self) -> Self {
        lock(&self.shared.registry).pin(self.revision);
        Version {
            tree: alias_tree(&self.tree),
            revision: self.revision,
            shared: self.shared.clone(),
        }
    }
}

impl<V> Drop for Version<V> {
    fn drop(&mut self) {
        lock(&self.shared.registry).unpin(self.revision);
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for Version<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("revision", &self.revision)
            .field("tree", &self.view())
            .finish()
    }
}

/// Read access to one version of a [`VersionedTree`]: the read methods of
/// [`Tree`], borrowing.
pub struct View<'a, V> {
    tree: &'a Tree<Stamped<V>>,
}

impl<V> Clone for View<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for View<'_, V> {}

impl<V: std::fmt::Debug> std::fmt::Debug for View<'_, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
            .finish()
    }
}

/// A stored pair, without its stamp.
fn pair<'a, V>((k, s): (&'a [u8], &'a Stamped<V>)) -> (&'a [u8], &'a V) {
    (k, &s.value)
}

impl<'a, V> View<'a, V> {
    /// Number of keys, in O(1).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the version holds no key.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&'a V> {
        self.tree.get(key).map(|s| &s.value)
    }

    /// Whether `key` is stored.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.tree.contains_key(key)
    }

    /// The smallest key and its value.
    pub fn first(&self) -> Option<(&'a [u8], &'a V)> {
        self.tree.first().map(pair)
    }

    /// The largest key and its value.
    pub fn last(&self) -> Option<(&'a [u8], &'a V)> {
        self.tree.last().map(pair)
    }

    /// Number of keys starting with `prefix`, in O(key length).
    pub fn count_prefix(&self, prefix: &[u8]) -> usize {
        self.tree.count_prefix(prefix)
    }

    /// The longest stored key that is a prefix of `key`, with its value.
    pub fn longest_prefix(&self, key: &[u8]) -> Option<(&'a [u8], &'a V)> {
        self.tree.longest_prefix(key).map(pair)
    }

    /// Every key and value in key order.
    pub fn iter(&self) -> ViewIter<'a, V> {
        ViewIter(self.tree.iter())
    }

    /// The keys in `range`, in order.
    pub fn range<'k>(&self, range: impl RangeBounds<&'k [u8]>) -> ViewIter<'a, V> {
        ViewIter(self.tree.range(range))
    }

    /// The keys starting with `prefix`, in order.
    pub fn prefix(&self, prefix: &[u8]) -> ViewIter<'a, V> {
        ViewIter(self.tree.prefix(prefix))
    }

    /// The keys from `key` (included) on, in order.
    pub fn lower_bound(&self, key: &[u8]) -> ViewIter<'a, V> {
        ViewIter(self.tree.lower_bound(key))
    }

    /// Checks every structural invariant of the version (see
    /// [`Tree::check_invariants`]); for tests and fuzzing.
    ///
    /// Compiled only for this crate's tests and with the `testing` feature.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.tree.check_invariants()
    }
}

/// The pairs of a [`View`] in key order (or a range of them): borrowing,
/// double-ended and of exact size, like [`Iter`].
pub struct ViewIter<'a, V>(Iter<'a, Stamped<V>>);

impl<'a, V> Iterator for ViewIter<'a, V> {
    type Item = (&'a [u8], &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(pair)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> DoubleEndedIterator for ViewIter<'_, V> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(pair)
    }
}

impl<V> ExactSizeIterator for ViewIter<'_, V> {}
impl<V> std::iter::FusedIterator for ViewIter<'_, V> {}

#[cfg(test)]
mod tests;
