//! Path warming for writes: [`Descent`], a read-only walk toward one key
//! that prefetches the next node of the path at each step.

use super::Tree;
use super::node::{self, Inner};
use super::slot::EntryRef;

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
    pub(super) node: Option<&'a Inner<V>>,
    pub(super) depth: usize,
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
impl<V> Tree<V> {
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
}
