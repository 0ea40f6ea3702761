//! Transactions: [`ReadTxn`] (a frozen version), [`WriteTxn`] (a private
//! copy-on-write version, published atomically on commit) and the [`Query`]
//! methods both share.

mod filter;
mod read;
mod select;
mod versioned;
mod watch_stream;
mod write;

use std::iter::FusedIterator;
use std::ops::Bound;
use std::sync::Arc;

pub use filter::{Filter, SetMatch};
pub use read::ReadTxn;
pub use select::Selection;
pub use versioned::{VersionedQuery, VersionedRows};
pub use watch_stream::WatchStream;
pub use write::{Commit, WriteTxn};

use crate::error::{Error, Result};
use crate::index::key::{Encode, UuidPrefix, successor};
use crate::schema::{Index, Table};
use crate::table::{TableState, Versioned, state_ref};
use crate::tree::{self, ReadAhead, Tree};

pub(crate) mod sealed {
    use std::any::Any;

    /// Where a transaction finds the state of a table.
    pub trait Source {
        /// The state of table `id`, if the schema matches.
        fn state(&self, schema: u64, id: usize) -> Option<&(dyn Any + Send + Sync)>;
    }
}

/// Objects of one query, in index order; owns its version, so no later
/// write (not even one in the same write transaction) changes what it
/// yields. Double-ended and of exact size.
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// # struct Person { id: String, age: i64 }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Person>("person");
/// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// # let by_age = t.index("age", Indexer::value(|p: &Person| p.age));
/// # let people = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// let mut w = db.write(&[&people]);
/// for (id, age) in [("a", 30), ("b", 30), ("c", 31)] {
///     w.insert(&people, Person { id: id.into(), age })?;
/// }
/// let thirty = w.iter(&by_age, &30)?;
/// w.delete_all(&by_age, &30)?; // does not disturb `thirty`
/// assert_eq!(thirty.len(), 2);
/// let ids: Vec<String> = thirty.rev().map(|p| p.id.clone()).collect();
/// assert_eq!(ids, ["b", "a"]);
/// # let _ = by_id;
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct RowIter<T> {
    inner: Rows<T>,
}

/// The rows of an index tree (primary or secondary: both hold the objects
/// with their revisions).
enum Rows<T> {
    Primary(tree::Values<Versioned<T>>),
}

impl<T> Iterator for RowIter<T> {
    type Item = Arc<T>;
    #[inline]
    fn next(&mut self) -> Option<Arc<T>> {
        match &mut self.inner {
            Rows::Primary(i) => i.next().map(|v| v.object),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Rows::Primary(i) => i.size_hint(),
        }
    }
}

impl<T> DoubleEndedIterator for RowIter<T> {
    #[inline]
    fn next_back(&mut self) -> Option<Arc<T>> {
        match &mut self.inner {
            Rows::Primary(i) => i.next_back().map(|v| v.object),
        }
    }
}

impl<T> ExactSizeIterator for RowIter<T> {}
impl<T> FusedIterator for RowIter<T> {}

/// Objects of one query, borrowed from the transaction for as long as it is
/// borrowed: no reference count is touched per row (the zero-copy sibling of
/// [`RowIter`]). Double-ended and of exact size.
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// # struct Person { id: String, age: i64 }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Person>("person");
/// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// # let people = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// # let mut w = db.write(&[&people]);
/// # w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// # w.commit()?;
/// let r = db.read();
/// let total: i64 = r.all_ref(&by_id)?.map(|p| p.age).sum();
/// assert_eq!(total, 41);
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct RefIter<'s, T> {
    inner: Refs<'s, T>,
    /// The next objects in forward order, pulled from `inner` ahead of the
    /// caller and prefetched while they are scattered in memory (the tree's
    /// iterator prefetches leaves a subtree ahead, but not the objects
    /// their values point to; rows of a secondary index lie in object order
    /// only by chance, so without this every row waits for one cache miss
    /// on its object: `range_age` in `examples/workload.rs`).
    ahead: ReadAhead<&'s T>,
}

/// The address of a stored object, for the read-ahead of owned results.
#[inline]
fn object_addr<T>(obj: &Arc<T>) -> *const u8 {
    Arc::as_ptr(obj).cast()
}

impl<'s, T> RefIter<'s, T> {
    fn new(inner: Refs<'s, T>) -> Self {
        RefIter {
            inner,
            ahead: ReadAhead::new(std::mem::size_of::<T>()),
        }
    }

    #[inline]
    fn pull_front(inner: &mut Refs<'s, T>) -> Option<&'s T> {
        match inner {
            Refs::Primary(i) => i.next().map(|(_, v)| &*v.object),
        }
    }

    #[inline]
    fn pull_back(&mut self) -> Option<&'s T> {
        match &mut self.inner {
            Refs::Primary(i) => i.next_back().map(|(_, v)| &*v.object),
        }
    }

    fn inner_len(&self) -> usize {
        match &self.inner {
            Refs::Primary(i) => i.len(),
        }
    }
}

enum Refs<'s, T> {
    Primary(tree::Iter<'s, Versioned<T>>),
}

impl<'s, T> Iterator for RefIter<'s, T> {
    type Item = &'s T;
    #[inline]
    fn next(&mut self) -> Option<&'s T> {
        // Order: the objects in `ahead`, then what `inner` has left.
        let inner = &mut self.inner;
        self.ahead.next(
            || Self::pull_front(inner),
            |obj| std::ptr::from_ref(obj).cast(),
        )
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.inner_len() + self.ahead.len();
        (n, Some(n))
    }
}

impl<'s, T> DoubleEndedIterator for RefIter<'s, T> {
    #[inline]
    fn next_back(&mut self) -> Option<&'s T> {
        self.pull_back().or_else(|| self.ahead.pop_back())
    }
}

impl<T> ExactSizeIterator for RefIter<'_, T> {}
impl<T> FusedIterator for RefIter<'_, T> {}

/// Objects with their revisions, in the order of the table's primary key
/// or of modification; owns its version. Double-ended and of exact size.
pub struct VersionedIter<T> {
    inner: Versions<T>,
}

enum Versions<T> {
    /// Rows in primary-key order.
    Rows(tree::Values<Versioned<T>>),
    /// Keys of the by-revision tree, looked up in the rows.
    ByRevision(tree::IntoIter<()>, Tree<Versioned<T>>),
}

impl<T> Versions<T> {
    fn row(rows: &Tree<Versioned<T>>, key: &[u8]) -> Option<Versioned<T>> {
        rows.get(crate::table::revision_key_pk(key)?).cloned()
    }
}

impl<T> Iterator for VersionedIter<T> {
    type Item = Versioned<T>;
    #[inline]
    fn next(&mut self) -> Option<Versioned<T>> {
        match &mut self.inner {
            Versions::Rows(i) => i.next(),
            Versions::ByRevision(i, rows) => {
                let (k, ()) = i.next()?;
                Versions::row(rows, &k)
            }
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Versions::Rows(i) => i.size_hint(),
            Versions::ByRevision(i, _) => i.size_hint(),
        }
    }
}

impl<T> DoubleEndedIterator for VersionedIter<T> {
    #[inline]
    fn next_back(&mut self) -> Option<Versioned<T>> {
        match &mut self.inner {
            Versions::Rows(i) => i.next_back(),
            Versions::ByRevision(i, rows) => {
                let (k, ()) = i.next_back()?;
                Versions::row(rows, &k)
            }
        }
    }
}

impl<T> ExactSizeIterator for VersionedIter<T> {}
impl<T> FusedIterator for VersionedIter<T> {}

/// A value stored in an index tree: the object with its revisions (every
/// index, primary or secondary, stores rows so).
pub(crate) trait Stored<T>: Clone + Sized {
    fn obj(&self) -> &Arc<T>;
    fn rows(it: tree::IntoIter<Self>) -> RowIter<T>;
    fn refs(it: tree::Iter<'_, Self>) -> RefIter<'_, T>;
}

impl<T> Stored<T> for Versioned<T> {
    #[inline]
    fn obj(&self) -> &Arc<T> {
        &self.object
    }
    fn rows(it: tree::IntoIter<Self>) -> RowIter<T> {
        RowIter {
            inner: Rows::Primary(
                it.values()
                    .read_ahead(|v| object_addr(&v.object), std::mem::size_of::<T>()),
            ),
        }
    }
    fn refs(it: tree::Iter<'_, Self>) -> RefIter<'_, T> {
        RefIter::new(Refs::Primary(it))
    }
}

/// The tree of one index: the primary rows or a secondary index.
pub(crate) enum IndexTree<'s, T> {
    Primary(&'s Tree<Versioned<T>>),
    Secondary(&'s Tree<Versioned<T>>),
}

/// Runs `$body` with `$t` bound to the index's tree, whichever kind it is.
macro_rules! on_tree {
    ($tree:expr, |$t:ident| $body:expr) => {
        match $tree {
            IndexTree::Primary($t) => $body,
            IndexTree::Secondary($t) => $body,
        }
    };
}

fn state_of<'s, S: sealed::Source + ?Sized, T: Send + Sync + 'static>(
    src: &'s S,
    schema: u64,
    table: usize,
    name: &str,
) -> Result<&'s TableState<T>> {
    let state = src
        .state(schema, table)
        .ok_or_else(|| Error::ForeignHandle(name.to_string()))?;
    Ok(state_ref::<T>(state, name))
}

pub(crate) fn index_tree<'s, S: sealed::Source + ?Sized, T: Send + Sync + 'static, K: ?Sized>(
    src: &'s S,
    idx: &Index<T, K>,
) -> Result<IndexTree<'s, T>> {
    let st = state_of::<S, T>(src, idx.schema, idx.table, &idx.table_name)?;
    if idx.pos == st.primary {
        return Ok(IndexTree::Primary(&st.rows));
    }
    st.indexes
        .get(idx.pos)
        .map(IndexTree::Secondary)
        .ok_or_else(|| Error::ForeignHandle(idx.table_name.to_string()))
}

/// Encoded lower and upper bounds.
pub(crate) type EncodedRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The encoded bounds of a range query, or `None` when it is empty.
pub(crate) fn encode_range<T, K: Encode + ?Sized>(
    idx: &Index<T, K>,
    lo: Bound<&K>,
    hi: Bound<&K>,
) -> Option<EncodedRange> {
    // Complete encodings are self-delimiting: the entries equal to `k` are
    // exactly those starting with enc(k), and they all sort below
    // successor(enc(k)).
    let lo = match lo {
        Bound::Included(k) => Bound::Included(idx.encode(k, false)),
        Bound::Excluded(k) => Bound::Included(successor(&idx.encode(k, false))?),
        Bound::Unbounded => Bound::Unbounded,
    };
    let hi = match hi {
        Bound::Included(k) => match successor(&idx.encode(k, false)) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        },
        Bound::Excluded(k) => Bound::Excluded(idx.encode(k, false)),
        Bound::Unbounded => Bound::Unbounded,
    };
    Some((lo, hi))
}

/// The queries of read and write transactions. Every query names an index
/// handle and takes keys of that index's type; results own their version.
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// struct Svc { name: String, port: u16 }
/// let mut schema = Schema::builder();
/// let mut t = schema.table::<Svc>("svc");
/// let by_name = t.primary("name", Indexer::string(|s: &Svc| s.name.as_str()));
/// let by_port = t.index("port", Indexer::value(|s: &Svc| s.port));
/// let svc = schema.add(t)?;
/// let db = Db::new(schema.build()?);
/// let mut w = db.write(&[&svc]);
/// for (name, port) in [("api", 80), ("api-internal", 8080), ("db", 5432)] {
///     w.insert(&svc, Svc { name: name.into(), port })?;
/// }
/// w.commit()?;
/// let r = db.read();
/// let api: Vec<String> = r.prefix(&by_name, "api")?.map(|s| s.name.clone()).collect();
/// assert_eq!(api, ["api", "api-internal"]);
/// assert_eq!(r.lower_bound(&by_port, &1000)?.next().unwrap().name, "db");
/// assert_eq!(r.last(&by_port, &8080)?.unwrap().name, "api-internal");
/// # Ok::<(), pandodb::Error>(())
/// ```
pub trait Query: sealed::Source {
    /// The object whose key in `idx` equals `key` (the first one, for a
    /// non-unique index).
    fn get<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<Arc<T>>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| idx.with_key(
            key,
            |enc| {
                if idx.unique {
                    t.get(enc).map(|v| v.obj().clone())
                } else {
                    t.first_prefix(enc).map(|(_, v)| v.obj().clone())
                }
            }
        )))
    }

    /// Like [`Query::get`], but borrowed from the transaction (no reference
    /// count touched): for lookups whose result is not kept.
    fn get_ref<'s, T: Send + Sync + 'static, K: Encode + ?Sized>(
        &'s self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<&'s T>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| idx.with_key(
            key,
            |enc| {
                if idx.unique {
                    t.get(enc).map(|v| &**v.obj())
                } else {
                    t.first_prefix(enc).map(|(_, v)| &**v.obj())
                }
            }
        )))
    }

    /// Like [`Query::iter`], borrowed from the transaction.
    fn iter_ref<'s, T: Send + Sync + 'static, K: Encode + ?Sized>(
        &'s self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<RefIter<'s, T>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| {
            Stored::refs(idx.with_key(key, |enc| t.prefix(enc)))
        }))
    }

    /// Like [`Query::all`], borrowed from the transaction.
    fn all_ref<'s, T: Send + Sync + 'static, K: ?Sized>(
        &'s self,
        idx: &Index<T, K>,
    ) -> Result<RefIter<'s, T>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| Stored::refs(t.iter())))
    }

    /// Like [`Query::lower_bound`], borrowed from the transaction.
    fn lower_bound_ref<'s, T: Send + Sync + 'static, K: Encode + ?Sized>(
        &'s self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<RefIter<'s, T>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| {
            Stored::refs(idx.with_key(key, |lo| t.lower_bound(lo)))
        }))
    }

    /// Same as [`Query::get`].
    fn first<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<Arc<T>>> {
        self.get(idx, key)
    }

    /// The last object (in index order) whose key equals `key`.
    fn last<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<Arc<T>>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| idx
            .with_key(key, |enc| t
                .last_prefix(enc)
                .map(|(_, v)| v.obj().clone()))))
    }

    /// Every object whose key in `idx` equals `key`.
    fn iter<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<RowIter<T>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| {
            Stored::rows(idx.with_key(key, |enc| t.owned_prefix(enc)))
        }))
    }

    /// Every object, in the order of `idx`.
    fn all<T: Send + Sync + 'static, K: ?Sized>(&self, idx: &Index<T, K>) -> Result<RowIter<T>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| Stored::rows(
            t.owned_iter()
        )))
    }

    /// Every object whose key starts with `prefix`. Strings and byte strings
    /// match by their leading bytes; a tuple (compound) key matches when its
    /// leading elements are equal and its last one starts with the last
    /// element of `prefix` (`("eu", "par")` matches `("eu", "paris")`; for
    /// fewer elements, query [`Index::leading`](crate::Index::leading));
    /// integers and other keys match only when equal.
    fn prefix<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<RowIter<T>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| Stored::rows(
            idx.with_encoded(prefix, true, |p| t.owned_prefix(p))
        )))
    }

    /// Every object whose key is `>= key`, ascending.
    fn lower_bound<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<RowIter<T>> {
        self.range(idx, Bound::Included(key), Bound::Unbounded)
    }

    /// Every object whose key is `<= key`, descending.
    fn reverse_lower_bound<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<std::iter::Rev<RowIter<T>>> {
        Ok(self
            .range(idx, Bound::Unbounded, Bound::Included(key))?
            .rev())
    }

    /// Every object whose key lies within the bounds, ascending.
    fn range<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        lo: Bound<&K>,
        hi: Bound<&K>,
    ) -> Result<RowIter<T>> {
        let tree = index_tree(self, idx)?;
        let Some((lo, hi)) = encode_range(idx, lo, hi) else {
            return Ok(on_tree!(tree, |t| Stored::rows(
                t.owned_range(&b""[..]..&b""[..])
            )));
        };
        let bounds = (
            lo.as_ref().map(Vec::as_slice),
            hi.as_ref().map(Vec::as_slice),
        );
        Ok(on_tree!(tree, |t| Stored::rows(t.owned_range(bounds))))
    }

    /// Objects of a UUID index whose UUID's hex form starts with `hex`.
    fn uuid_prefix<T: Send + Sync + 'static>(
        &self,
        idx: &Index<T, crate::Uuid>,
        hex: &str,
    ) -> Result<RowIter<T>> {
        let tree = index_tree(self, idx)?;
        let (lo, hi) = UuidPrefix::parse(hex)?.key_range();
        let hi = hi
            .as_ref()
            .map_or(Bound::Unbounded, |h| Bound::Excluded(h.as_slice()));
        let bounds = (Bound::Included(lo.as_slice()), hi);
        Ok(on_tree!(tree, |t| Stored::rows(t.owned_range(bounds))))
    }

    /// The object of a string index whose key is the longest one that is a
    /// prefix of `key` (`key` itself included).
    fn longest_prefix<T: Send + Sync + 'static>(
        &self,
        idx: &Index<T, str>,
        key: &str,
    ) -> Result<Option<Arc<T>>> {
        Ok(on_tree!(index_tree(self, idx)?, |t| {
            let mut best = None;
            for end in (0..=key.len()).filter(|&i| key.is_char_boundary(i)) {
                let part = &key[..end];
                if t.count_prefix(&idx.encode(part, true)) == 0 {
                    break;
                }
                if let Some((_, v)) = t.first_prefix(&idx.encode(part, false)) {
                    best = Some(v.obj().clone());
                }
            }
            best
        }))
    }

    /// Number of objects whose key equals `key`, in O(key length).
    fn count<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<usize> {
        Ok(on_tree!(index_tree(self, idx)?, |t| idx
            .with_key(key, |enc| t.count_prefix(enc))))
    }

    /// Number of objects whose key starts with `prefix`, in O(prefix length).
    fn count_prefix<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<usize> {
        Ok(on_tree!(index_tree(self, idx)?, |t| idx.with_encoded(
            prefix,
            true,
            |p| t.count_prefix(p)
        )))
    }

    /// Number of entries in an index (objects, for the primary index; one
    /// per key for multi-value indexes).
    fn index_len<T: Send + Sync + 'static, K: ?Sized>(&self, idx: &Index<T, K>) -> Result<usize> {
        Ok(on_tree!(index_tree(self, idx)?, |t| t.len()))
    }

    /// Number of objects in `table`, in O(1).
    fn len<T: Send + Sync + 'static>(&self, table: &Table<T>) -> Result<usize> {
        let st = state_of::<Self, T>(self, table.schema, table.id(), table.name())?;
        Ok(st.rows.len())
    }

    /// Like [`Query::get`], with the object's revisions.
    fn get_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<Versioned<T>>> {
        // Every index holds the rows with their revisions.
        Ok(on_tree!(index_tree(self, idx)?, |t| idx.with_key(
            key,
            |enc| {
                if idx.unique {
                    t.get(enc).cloned()
                } else {
                    t.first_prefix(enc).map(|(_, v)| v.clone())
                }
            }
        )))
    }

    /// Every object of `table` whose modified revision is greater than
    /// `revision`, in the order they were modified (oldest first; objects
    /// written by one commit in primary-key order). Deleted objects are not
    /// listed: the change feed reports deletions.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// # struct Person { id: String }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<Person>("person");
    /// # t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    /// # let people = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// for id in ["a", "b", "a"] {
    ///     let mut w = db.write(&[&people]);
    ///     w.insert(&people, Person { id: id.into() })?;
    ///     w.commit()?; // revisions 1, 2, 3
    /// }
    /// let recent: Vec<_> = db.read().modified_since(&people, 1)?.map(|v| (v.object.id.clone(), v.modified)).collect();
    /// assert_eq!(recent, [("b".to_string(), 2), ("a".to_string(), 3)]);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    fn modified_since<T: Send + Sync + 'static>(
        &self,
        table: &Table<T>,
        revision: u64,
    ) -> Result<VersionedIter<T>> {
        let st = state_of::<Self, T>(self, table.schema, table.id(), table.name())?;
        let inner = match revision.checked_add(1) {
            Some(from) => {
                let mut lo = Vec::with_capacity(17);
                crate::table::revision_prefix(&mut lo, from);
                st.by_revision
                    .owned_range((Bound::Included(lo.as_slice()), Bound::Unbounded))
            }
            None => st.by_revision.owned_range(&b""[..]..&b""[..]),
        };
        Ok(VersionedIter {
            inner: Versions::ByRevision(inner, st.rows.clone()),
        })
    }

    /// The objects `filter` selects (conditions across the indexes of one
    /// table: intersections, unions, set matches), in primary-key order,
    /// planned from the conditions' counts so that the smallest condition
    /// drives, whatever order they were written in. See [`Filter`].
    fn select<T: Send + Sync + 'static>(&self, filter: &Filter<T>) -> Result<Selection<T>> {
        select::select(self, filter)
    }

    /// Number of objects `filter` selects (the same as counting
    /// [`Query::select`]; no object is cloned).
    fn select_count<T: Send + Sync + 'static>(&self, filter: &Filter<T>) -> Result<usize> {
        Ok(self.select(filter)?.count())
    }

    /// Every object of `table` with its revisions, in primary-key order.
    fn all_versioned<T: Send + Sync + 'static>(
        &self,
        table: &Table<T>,
    ) -> Result<VersionedIter<T>> {
        let st = state_of::<Self, T>(self, table.schema, table.id(), table.name())?;
        Ok(VersionedIter {
            inner: Versions::Rows(st.rows.owned_iter().values()),
        })
    }
}
