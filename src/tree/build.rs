//! Bottom-up construction of a tree from keys in increasing order
//! ([`TreeBuilder`], [`Tree::from_sorted`]).
//!
//! Incremental inserts descend from the root for every key, copy or grow
//! nodes on the way and rebuild a node each time it changes layout. From
//! sorted input none of that is needed: the builder keeps the path of the
//! last key as a stack of open nodes, and each node is allocated once, at
//! its final size, when the first key that cannot belong to it arrives.
//!
//! The rule it follows is the one that makes the incremental tree
//! canonical: the lowest node holding two consecutive keys branches at the
//! length of their common prefix. So for each new key, with `l` the common
//! prefix length with the key before, every open node branching deeper than
//! `l` is complete; the last of them (or the last leaf) hangs from the open
//! node branching at `l`, which is opened if it does not exist yet. The
//! result has the shape the incremental path gives the same keys (prefix
//! compression, terminals, layouts by child count: `Small` up to 16
//! children, `Medium` up to 48, `Large` above), with slot arrays exactly as
//! long as needed.

use super::Tree;
use super::body::NodeArc;
use super::node::{Head, Inner, Layout, Leaf, MEDIUM_MAX, Prefix, SMALL_MAX, common_len};
use super::slot::Slot;

/// The error of a [`TreeBuilder`] given a key that is not greater than the
/// key before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSorted {
    /// The position of the offending key in the input (0-based).
    pub position: usize,
    /// Whether the key equals the one before it (rather than sorting
    /// before it).
    pub duplicate: bool,
}

impl std::fmt::Display for NotSorted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.duplicate {
            write!(f, "key {} repeats the key before it", self.position)
        } else {
            write!(f, "key {} sorts before the key before it", self.position)
        }
    }
}

impl std::error::Error for NotSorted {}

/// A node on the path of the last key, still open for entries.
struct Open<V> {
    /// Length of the path to the node's children: they are told apart by
    /// the key byte at this position; a key of exactly this length is the
    /// node's terminal.
    depth: usize,
    terminal: Option<Leaf<V>>,
    children: Vec<(u8, Slot<V>)>,
    count: usize,
}

/// The last complete subtree, not yet attached (its parent may still be
/// opened between it and the open node above it).
enum Done<V> {
    Leaf(Leaf<V>),
    Node(Open<V>),
}

/// Builds a [`Tree`] from keys given in strictly increasing order, in time
/// linear in the input and with every node allocated once, at its final
/// size. The tree has the same shape as one built by inserting the same
/// keys (same nodes, prefixes and layouts; `check_invariants` holds).
///
/// ```
/// use pandodb::tree::TreeBuilder;
///
/// let mut b = TreeBuilder::new();
/// for (i, k) in ["apple", "apricot", "banana"].iter().enumerate() {
///     b.push(k.as_bytes(), i)?;
/// }
/// assert!(b.push(b"avocado", 3).is_err()); // "avocado" < "banana"
/// let t = b.finish();
/// assert_eq!(t.len(), 3);
/// assert_eq!(t.get(b"apricot"), Some(&1));
/// # Ok::<(), pandodb::tree::NotSorted>(())
/// ```
pub struct TreeBuilder<V> {
    /// Open nodes from the root (depth 0) down, depths increasing.
    open: Vec<Open<V>>,
    /// The last complete subtree: its keys all start with `last[..depth]`.
    done: Option<Done<V>>,
    /// The last key pushed.
    last: Vec<u8>,
    /// Keys pushed.
    pushed: usize,
    /// Child vectors of materialized nodes, kept for reuse.
    spare: Vec<Vec<(u8, Slot<V>)>>,
}

impl<V> Default for TreeBuilder<V> {
    fn default() -> Self {
        TreeBuilder::new()
    }
}

impl<V> TreeBuilder<V> {
    /// An empty builder.
    pub fn new() -> Self {
        TreeBuilder {
            open: Vec::new(),
            done: None,
            last: Vec::new(),
            pushed: 0,
            spare: Vec::new(),
        }
    }

    /// Number of keys pushed so far.
    pub fn len(&self) -> usize {
        self.pushed
    }

    /// Whether no key was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.pushed == 0
    }

    /// The last key pushed (empty before the first).
    pub fn last_key(&self) -> &[u8] {
        &self.last
    }

    /// Adds `key` with `value`. `key` must be greater than every key
    /// pushed before; otherwise nothing changes and the error says where.
    ///
    /// # Panics
    /// When `key` is longer than 4 GiB (as [`Tree::insert`]).
    pub fn push(&mut self, key: &[u8], value: V) -> Result<(), NotSorted> {
        let Some(done) = self.done.take() else {
            let root = open_node(0, &mut self.spare);
            self.open.push(root);
            self.done = Some(Done::Leaf(Leaf::new(key, value)));
            self.last.clear();
            self.last.extend_from_slice(key);
            self.pushed = 1;
            return Ok(());
        };
        let l = common_len(&self.last, key);
        // Greater: the last key is a proper prefix, or the first differing
        // byte is larger.
        let greater = match (self.last.get(l), key.get(l)) {
            (None, next) => next.is_some(),
            (Some(a), Some(b)) => b > a,
            (Some(_), None) => false,
        };
        if !greater {
            self.done = Some(done);
            return Err(NotSorted {
                position: self.pushed,
                duplicate: key.len() == self.last.len() && l == key.len(),
            });
        }
        let mut done = done;
        // Every open node branching below `l` is complete.
        while let Some(top) = self.open.last()
            && top.depth > l
        {
            let Some(mut node) = self.open.pop() else {
                unreachable!("the open stack is not empty")
            };
            attach(&mut node, done, &self.last, &mut self.spare);
            done = Done::Node(node);
        }
        // The root (depth 0) never pops: `l >= 0`.
        match self.open.last_mut() {
            Some(top) if top.depth == l => attach(top, done, &self.last, &mut self.spare),
            _ => {
                let mut node = open_node(l, &mut self.spare);
                attach(&mut node, done, &self.last, &mut self.spare);
                self.open.push(node);
            }
        }
        self.done = Some(Done::Leaf(Leaf::new(key, value)));
        self.last.clear();
        self.last.extend_from_slice(key);
        self.pushed += 1;
        Ok(())
    }

    /// The finished tree.
    pub fn finish(mut self) -> Tree<V> {
        let Some(mut done) = self.done.take() else {
            return Tree::new();
        };
        while let Some(mut node) = self.open.pop() {
            attach(&mut node, done, &self.last, &mut self.spare);
            if self.open.is_empty() {
                let root = materialize(node, 0, &self.last, &mut self.spare);
                return Tree {
                    ledger: None,
                    root: Some(root),
                };
            }
            done = Done::Node(node);
        }
        unreachable!("the root is open until the end")
    }
}

impl<V> Tree<V> {
    /// A tree of the given entries, whose keys must be in strictly
    /// increasing order, built bottom-up (see [`TreeBuilder`]): linear
    /// time, each node allocated once. Out-of-order or repeated keys give
    /// [`NotSorted`] (the entries taken so far are dropped).
    ///
    /// ```
    /// use pandodb::tree::Tree;
    ///
    /// let t = Tree::from_sorted((0..1000u32).map(|i| (i.to_be_bytes(), i)))?;
    /// assert_eq!(t.len(), 1000);
    /// assert!(Tree::from_sorted([(b"b", 1), (b"a", 2)]).is_err());
    /// # Ok::<(), pandodb::tree::NotSorted>(())
    /// ```
    pub fn from_sorted<K: AsRef<[u8]>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Tree<V>, NotSorted> {
        let mut b = TreeBuilder::new();
        for (k, v) in entries {
            b.push(k.as_ref(), v)?;
        }
        Ok(b.finish())
    }
}

/// A new open node branching at `depth`.
fn open_node<V>(depth: usize, spare: &mut Vec<Vec<(u8, Slot<V>)>>) -> Open<V> {
    Open {
        depth,
        terminal: None,
        children: spare.pop().unwrap_or_default(),
        count: 0,
    }
}

/// Hangs `done`, whose keys all start with `last[..=node.depth]` (or which
/// is the leaf of exactly `last`, the last key pushed), in `node`.
fn attach<V>(node: &mut Open<V>, done: Done<V>, last: &[u8], spare: &mut Vec<Vec<(u8, Slot<V>)>>) {
    match done {
        Done::Leaf(leaf) => {
            node.count += 1;
            if leaf.key().len() == node.depth {
                node.terminal = Some(leaf);
            } else {
                node.children.push((last[node.depth], Slot::from(leaf)));
            }
        }
        Done::Node(child) => {
            node.count += child.count;
            let b = last[node.depth];
            let inner = materialize(child, node.depth + 1, last, spare);
            node.children.push((b, Slot::from(inner)));
        }
    }
}

/// Allocates the complete node `open`, whose path starts at byte `from` of
/// `last` (its prefix is the rest, up to its depth).
fn materialize<V>(
    open: Open<V>,
    from: usize,
    last: &[u8],
    spare: &mut Vec<Vec<(u8, Slot<V>)>>,
) -> Inner<V> {
    let Open {
        depth,
        terminal,
        mut children,
        count,
    } = open;
    let n = children.len();
    let layout = if n <= SMALL_MAX {
        let mut keys = [0; SMALL_MAX];
        for (k, (b, _)) in keys.iter_mut().zip(&children) {
            *k = *b;
        }
        Layout::Small { keys, len: n as u8 }
    } else if n <= MEDIUM_MAX {
        let mut index = Box::new([0u8; 256]);
        for (i, (b, _)) in children.iter().enumerate() {
            index[usize::from(*b)] = i as u8 + 1;
        }
        Layout::Medium {
            index,
            len: n as u8,
        }
    } else {
        Layout::Large { len: n as u16 }
    };
    let head = Head {
        prefix: Prefix::new(&last[from..depth]),
        count,
        terminal,
        layout,
        generation: 0,
    };
    let node = if n > MEDIUM_MAX {
        let mut slots: Vec<Option<Slot<V>>> = (0..256).map(|_| None).collect();
        for (b, s) in children.drain(..) {
            slots[usize::from(b)] = Some(s);
        }
        NodeArc::from_iter(head, slots.into_iter())
    } else if n == 0 {
        // A root holding only the empty key: one empty slot, as a
        // fresh root has.
        NodeArc::from_iter(head, std::iter::once(None))
    } else {
        NodeArc::from_iter(head, children.drain(..).map(|(_, s)| Some(s)))
    };
    spare.push(children);
    Inner(node)
}
