//! The bookkeeping of a lending write transaction ([`Ledger`]) and its
//! settlement.

use super::node::Inner;
use super::slot::Slot;

/// The next ledger generation (0 means "no ledger").
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The bookkeeping of a *lending* write transaction: one that copies nodes
/// of the version it started from (its *base*) without changing the
/// reference counts of their children.
///
/// A plain copy of a node clones every child handle (one atomic increment
/// on each child's cache line), and freeing the replaced node later
/// decrements them all again. When the base version is the only owner of
/// the node, the transaction instead *lends* the child handles: the copy
/// gets bitwise duplicates, and the base node, still read by the base
/// version's readers, joins the ledger. Settlement then finishes the job
/// one of two ways:
/// - [`Ledger::settle`] with exclusive access to the base tree (the base
///   version is gone: no reader can reach it) and every lent node still
///   unshared: the lent nodes are freed without dropping their slots. Their
///   counts now belong to the copies. This is the fast path.
/// - otherwise (abort, a reader still on the base version, a lent node
///   cloned meanwhile): each lent node takes one more count on each of its
///   children, after which every handle counts as in a plain copy.
///
/// Until then nothing the transaction lets go of may be dropped: a handle
/// it removes may be one of the lent duplicates, whose count still serves
/// the base version. Those handles are kept in the ledger and dropped at
/// settlement, after the lent nodes are dealt with.
///
/// Nodes the transaction makes carry its `generation`; only those change
/// in place during it (a base node can have count 1 while copies point
/// into it).
pub(crate) struct Ledger<V> {
    pub(crate) generation: u64,
    /// Address of the base version's root node (0: empty base). The
    /// transaction's tree holds one counted handle on it until it copies
    /// the root.
    base_root: usize,
    /// Base nodes whose child handles were lent: an uncounted duplicate
    /// handle each, and whether it is the base root.
    lent: Vec<(std::mem::ManuallyDrop<Inner<V>>, bool)>,
    /// Handles the transaction let go of, dropped at settlement.
    deferred: Vec<Slot<V>>,
}

impl<V> Ledger<V> {
    /// A ledger for a transaction whose base root is at `base_root`.
    pub(crate) fn new(base_root: usize) -> Self {
        Ledger {
            generation: GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            base_root,
            lent: Vec::new(),
            deferred: Vec::new(),
        }
    }

    /// A ledger for a transaction of a [`VersionedTree`](super::VersionedTree)
    /// making revision `revision` (its generation: the nodes and leaves it
    /// makes are born there) from a version whose root is at `base_root`.
    pub(crate) fn line(revision: u64, base_root: usize) -> Self {
        Ledger {
            generation: revision,
            base_root,
            lent: Vec::new(),
            deferred: Vec::new(),
        }
    }

    /// Ends the transaction without settling: the lent nodes (with whether
    /// each is the base root) and the deferred handles, for a versioned
    /// tree to retire (`versioned.rs`). Their counts stay as they are: each
    /// lent node is freed later without its slots, each deferred handle is
    /// released later.
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_parts(
        mut self,
    ) -> (Vec<(std::mem::ManuallyDrop<Inner<V>>, bool)>, Vec<Slot<V>>) {
        (
            std::mem::take(&mut self.lent),
            std::mem::take(&mut self.deferred),
        )
    }

    /// Makes a settled (empty) ledger the ledger of a new transaction whose
    /// base root is at `base_root`: a fresh generation, the buffers' room
    /// kept. The database keeps settled ledgers for its next transactions
    /// (`TableDef::spare`), which saves allocating them and growing their
    /// vectors on every commit.
    pub(crate) fn renew(&mut self, base_root: usize) {
        assert!(
            self.lent.is_empty() && self.deferred.is_empty(),
            "Ledger::renew: the ledger is not settled"
        );
        self.generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.base_root = base_root;
    }

    /// The room its buffers hold, in entries: a ledger kept for reuse
    /// after a large transaction would hold on to it.
    pub(crate) fn room(&self) -> usize {
        self.lent.capacity() + self.deferred.capacity()
    }

    /// How many nodes the transaction lent the children of.
    #[cfg(test)]
    pub(crate) fn lent_len(&self) -> usize {
        self.lent.len()
    }

    /// Whether the transaction may lend the children of `node`, a node it
    /// reached and did not make: the base version holds the only count on
    /// it (for the base root: the base's and the transaction's own).
    pub(super) fn may_lend(&self, node: &Inner<V>) -> bool {
        node.generation != self.generation
            && node.count_refs() == if node.addr() == self.base_root { 2 } else { 1 }
    }

    /// Takes `old`, whose children were just lent to its copy.
    #[allow(unsafe_code)]
    pub(super) fn lent_from(&mut self, old: Inner<V>) {
        if self.lent.capacity() == 0 {
            // One allocation for a whole path of a deep tree, rather than
            // growing 0 → 4 → 8 as `push` would.
            self.lent.reserve(8);
        }
        if old.addr() == self.base_root {
            // The transaction's own counted handle on the base root: keep
            // an uncounted duplicate and let the count go (the base keeps
            // the node alive).
            // SAFETY: the alias is never dropped as a counted handle:
            // settlement frees the root through it only after forgetting
            // the base's own handle, or forgets it; the base's handle keeps
            // the node alive until then.
            let dup = unsafe { old.alias() };
            drop(old);
            self.lent.push((dup, true));
        } else {
            // `old` is the duplicate the copy of its parent was lent.
            self.lent.push((std::mem::ManuallyDrop::new(old), false));
        }
    }

    /// Keeps `s` until settlement.
    #[inline]
    pub(crate) fn defer(&mut self, s: Slot<V>) {
        self.deferred.push(s);
    }

    /// Settles with the base version's tree in hand (`base_root`, its
    /// root handle), which the caller owns exclusively: no reader can
    /// reach the base any more. Takes the fast path when every lent node
    /// is still unshared; otherwise restores the counts (see [`Ledger`]).
    /// Returns whether it took the fast path.
    pub(crate) fn settle(mut self, base_root: &mut Option<Inner<V>>) -> bool {
        self.settle_keep(Some(base_root))
    }

    /// [`Ledger::settle`] (`Some`: the base version's root, which the
    /// caller owns exclusively) or the slow settlement (`None`: someone may
    /// still read the base), leaving the ledger empty, for
    /// [`Ledger::renew`].
    pub(crate) fn settle_keep(&mut self, base_root: Option<&mut Option<Inner<V>>>) -> bool {
        let Some(base_root) = base_root else {
            self.restore();
            return false;
        };
        let root_lent = self.lent.iter().any(|(_, r)| *r);
        let fast = root_lent
            && base_root
                .as_ref()
                .is_some_and(|r| r.addr() == self.base_root)
            && self.lent.iter().all(|(n, _)| n.is_unique());
        if fast {
            // The base's handle on its root and the lent duplicate are one
            // count: the duplicate frees the root below.
            std::mem::forget(base_root.take());
            for (n, _) in self.lent.drain(..) {
                // Its slots' counts now belong to the copies' duplicates.
                std::mem::ManuallyDrop::into_inner(n).free_without_slots();
            }
        }
        self.restore();
        fast
    }

    /// The slow settlement: every lent node takes a count on each of its
    /// children (the copies' duplicates now count as clones), the
    /// duplicates of lent nodes other than the root are released (their
    /// parent's new count stands for them), then the deferred handles go.
    fn restore(&mut self) {
        for (n, _) in &self.lent {
            for s in n.slots().iter().flatten() {
                std::mem::forget(s.clone());
            }
        }
        for (n, root) in self.lent.drain(..) {
            if !root {
                drop(std::mem::ManuallyDrop::into_inner(n));
            }
        }
        self.deferred.clear();
    }
}

impl<V> Drop for Ledger<V> {
    /// A ledger dropped without [`Ledger::settle`] (an aborted transaction)
    /// restores the counts.
    fn drop(&mut self) {
        self.restore();
    }
}

/// Drops `s`, or hands it to the ledger of a lending transaction.
#[inline]
pub(crate) fn dispose<V>(lg: Option<&mut Ledger<V>>, s: Option<Slot<V>>) {
    if let (Some(l), Some(s)) = (lg, s) {
        l.defer(s);
    }
}
