//! Transactions: [`ReadTxn`] (a frozen version), [`WriteTxn`] (a private
//! copy-on-write version, published atomically on commit) and the [`Query`]
//! methods both share.

mod read;
mod write;

use std::any::Any;
use std::iter::FusedIterator;
use std::ops::Bound;
use std::sync::Arc;

pub use read::ReadTxn;
pub use write::{Change, Commit, WriteTxn};

use crate::error::{Error, Result};
use crate::index::key::{Encode, UuidPrefix, successor};
use crate::schema::{Index, Table, TableState};
use crate::tree::{self, Tree};

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
    inner: tree::Values<Arc<T>>,
}

impl<T> Iterator for RowIter<T> {
    type Item = Arc<T>;
    #[inline]
    fn next(&mut self) -> Option<Arc<T>> {
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> DoubleEndedIterator for RowIter<T> {
    #[inline]
    fn next_back(&mut self) -> Option<Arc<T>> {
        self.inner.next_back()
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
    inner: tree::Iter<'s, Arc<T>>,
}

impl<'s, T> Iterator for RefIter<'s, T> {
    type Item = &'s T;
    #[inline]
    fn next(&mut self) -> Option<&'s T> {
        self.inner.next().map(|(_, v)| &**v)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<'s, T> DoubleEndedIterator for RefIter<'s, T> {
    #[inline]
    fn next_back(&mut self) -> Option<&'s T> {
        self.inner.next_back().map(|(_, v)| &**v)
    }
}

impl<T> ExactSizeIterator for RefIter<'_, T> {}
impl<T> FusedIterator for RefIter<'_, T> {}

fn refs<T>(inner: tree::Iter<'_, Arc<T>>) -> RefIter<'_, T> {
    RefIter { inner }
}

fn rows<T>(it: tree::IntoIter<Arc<T>>) -> RowIter<T> {
    RowIter { inner: it.values() }
}

fn state_of<'s, S: sealed::Source + ?Sized, T: Send + Sync + 'static>(
    src: &'s S,
    schema: u64,
    table: usize,
    name: &str,
) -> Result<&'s TableState<T>> {
    src.state(schema, table)
        .and_then(<dyn Any + Send + Sync>::downcast_ref::<TableState<T>>)
        .ok_or_else(|| Error::UnknownTable(name.to_string()))
}

fn index_tree<'s, S: sealed::Source + ?Sized, T: Send + Sync + 'static, K: ?Sized>(
    src: &'s S,
    idx: &Index<T, K>,
) -> Result<&'s Tree<Arc<T>>> {
    let st = state_of::<S, T>(src, idx.schema, idx.table, &idx.table_name)?;
    st.indexes
        .get(idx.pos)
        .ok_or_else(|| Error::UnknownTable(idx.table_name.to_string()))
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
        let tree = index_tree(self, idx)?;
        Ok(idx.with_key(key, |enc| {
            if idx.unique {
                tree.get(enc).cloned()
            } else {
                tree.first_prefix(enc).map(|(_, v)| v.clone())
            }
        }))
    }

    /// Like [`Query::get`], but borrowed from the transaction (no reference
    /// count touched): for lookups whose result is not kept.
    fn get_ref<'s, T: Send + Sync + 'static, K: Encode + ?Sized>(
        &'s self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<&'s T>> {
        let tree = index_tree(self, idx)?;
        Ok(idx.with_key(key, |enc| {
            if idx.unique {
                tree.get(enc).map(|v| &**v)
            } else {
                tree.first_prefix(enc).map(|(_, v)| &**v)
            }
        }))
    }

    /// Like [`Query::iter`], borrowed from the transaction.
    fn iter_ref<'s, T: Send + Sync + 'static, K: Encode + ?Sized>(
        &'s self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<RefIter<'s, T>> {
        let tree = index_tree(self, idx)?;
        Ok(refs(idx.with_key(key, |enc| tree.prefix(enc))))
    }

    /// Like [`Query::all`], borrowed from the transaction.
    fn all_ref<'s, T: Send + Sync + 'static, K: ?Sized>(
        &'s self,
        idx: &Index<T, K>,
    ) -> Result<RefIter<'s, T>> {
        Ok(refs(index_tree(self, idx)?.iter()))
    }

    /// Like [`Query::lower_bound`], borrowed from the transaction.
    fn lower_bound_ref<'s, T: Send + Sync + 'static, K: Encode + ?Sized>(
        &'s self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<RefIter<'s, T>> {
        let tree = index_tree(self, idx)?;
        Ok(refs(idx.with_key(key, |lo| tree.lower_bound(lo))))
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
        let tree = index_tree(self, idx)?;
        Ok(idx.with_key(key, |enc| tree.last_prefix(enc).map(|(_, v)| v.clone())))
    }

    /// Every object whose key in `idx` equals `key`.
    fn iter<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<RowIter<T>> {
        let tree = index_tree(self, idx)?;
        Ok(rows(idx.with_key(key, |enc| tree.owned_prefix(enc))))
    }

    /// Every object, in the order of `idx`.
    fn all<T: Send + Sync + 'static, K: ?Sized>(&self, idx: &Index<T, K>) -> Result<RowIter<T>> {
        Ok(rows(index_tree(self, idx)?.owned_iter()))
    }

    /// Every object whose key starts with `prefix` (strings and byte strings
    /// match by their leading bytes; other keys must be complete).
    fn prefix<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<RowIter<T>> {
        let tree = index_tree(self, idx)?;
        Ok(rows(
            idx.with_encoded(prefix, true, |p| tree.owned_prefix(p)),
        ))
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
        // Complete encodings are self-delimiting: the entries equal to `k`
        // are exactly those starting with enc(k), and they all sort below
        // successor(enc(k)).
        let lo = match lo {
            Bound::Included(k) => Bound::Included(idx.encode(k, false)),
            Bound::Excluded(k) => match successor(&idx.encode(k, false)) {
                Some(s) => Bound::Included(s),
                None => return Ok(rows(tree.owned_range(&b""[..]..&b""[..]))),
            },
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
        Ok(rows(tree.owned_range((
            lo.as_ref().map(Vec::as_slice),
            hi.as_ref().map(Vec::as_slice),
        ))))
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
        Ok(rows(tree.owned_range((Bound::Included(lo.as_slice()), hi))))
    }

    /// The object of a string index whose key is the longest one that is a
    /// prefix of `key` (`key` itself included).
    fn longest_prefix<T: Send + Sync + 'static>(
        &self,
        idx: &Index<T, str>,
        key: &str,
    ) -> Result<Option<Arc<T>>> {
        let tree = index_tree(self, idx)?;
        let mut best = None;
        for end in (0..=key.len()).filter(|&i| key.is_char_boundary(i)) {
            let part = &key[..end];
            if tree.count_prefix(&idx.encode(part, true)) == 0 {
                break;
            }
            if let Some((_, v)) = tree.first_prefix(&idx.encode(part, false)) {
                best = Some(v.clone());
            }
        }
        Ok(best)
    }

    /// Number of objects whose key equals `key`, in O(key length).
    fn count<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<usize> {
        let tree = index_tree(self, idx)?;
        Ok(idx.with_key(key, |enc| tree.count_prefix(enc)))
    }

    /// Number of objects whose key starts with `prefix`, in O(prefix length).
    fn count_prefix<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<usize> {
        let tree = index_tree(self, idx)?;
        Ok(idx.with_encoded(prefix, true, |p| tree.count_prefix(p)))
    }

    /// Number of entries in an index (objects, for the primary index; one
    /// per key for multi-value indexes).
    fn index_len<T: Send + Sync + 'static, K: ?Sized>(&self, idx: &Index<T, K>) -> Result<usize> {
        Ok(index_tree(self, idx)?.len())
    }

    /// Number of objects in `table`, in O(1).
    fn len<T: Send + Sync + 'static>(&self, table: &Table<T>) -> Result<usize> {
        let st = state_of::<Self, T>(self, table.schema, table.id(), table.name())?;
        Ok(st.indexes[table.def.primary].len())
    }
}
