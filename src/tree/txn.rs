//! Batches of mutations on one version: [`TreeTxn`], and the lending
//! private copy (see [`Ledger`]) that [`Tree::into_txn`] writes to.

use super::Tree;
use super::ledger::Ledger;
use super::node::Inner;

impl<V> Tree<V> {
    /// A private copy of this version for a write transaction that lends
    /// (see [`Ledger`]): writes to the copy do not touch the reference
    /// counts of the children of the nodes they copy. The copy's ledger is
    /// settled with [`Tree::take_ledger`] and [`Ledger::settle`] once the
    /// base version is gone, or restores the counts when dropped.
    pub(crate) fn lending_clone(&self) -> Tree<V> {
        self.lending_clone_with(None)
    }

    /// [`Tree::lending_clone`] with `spare`, a settled ledger to reuse (see
    /// [`Ledger::renew`]), when there is one.
    pub(crate) fn lending_clone_with(&self, spare: Option<Box<Ledger<V>>>) -> Tree<V> {
        let base_root = self.root.as_ref().map_or(0, Inner::addr);
        let ledger = match spare {
            Some(mut l) => {
                l.renew(base_root);
                l
            }
            None => Box::new(Ledger::new(base_root)),
        };
        Tree {
            ledger: Some(ledger),
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
