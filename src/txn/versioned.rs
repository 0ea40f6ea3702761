//! Rows with their revisions from every query form ([`VersionedQuery`]).
//!
//! Every index tree, primary or secondary, holds each row as the primary
//! tree does (the object and its created and modified revisions), so these
//! queries read the revisions where they find the object: no lookup per
//! row.

use std::iter::FusedIterator;
use std::ops::Bound;

use super::{IndexTree, Query, encode_range, index_tree, object_addr};
use crate::error::Result;
use crate::index::key::Encode;
use crate::schema::Index;
use crate::table::Versioned;
use crate::tree::{self, Tree};

/// Rows with their revisions, in the order of the index queried; owns its
/// version. Double-ended and of exact size. Made by [`VersionedQuery`].
pub struct VersionedRows<T> {
    inner: tree::Values<Versioned<T>>,
}

impl<T> Iterator for VersionedRows<T> {
    type Item = Versioned<T>;
    #[inline]
    fn next(&mut self) -> Option<Versioned<T>> {
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> DoubleEndedIterator for VersionedRows<T> {
    #[inline]
    fn next_back(&mut self) -> Option<Versioned<T>> {
        self.inner.next_back()
    }
}

impl<T> ExactSizeIterator for VersionedRows<T> {}
impl<T> FusedIterator for VersionedRows<T> {}

/// The rows `picked` from the tree of `idx`.
fn rows_of<S, T, K>(src: &S, idx: &Index<T, K>, picked: Picked) -> Result<VersionedRows<T>>
where
    S: Query + ?Sized,
    T: Send + Sync + 'static,
    K: ?Sized,
{
    let (IndexTree::Primary(t) | IndexTree::Secondary(t)) = index_tree(src, idx)?;
    // Reading ahead of the caller, as `RowIter` does: rows of a secondary
    // index are scattered in memory.
    let inner = picked
        .apply(t)
        .values()
        .read_ahead(|v| object_addr(&v.object), std::mem::size_of::<T>());
    Ok(VersionedRows { inner })
}

/// Which entries of an index tree a query takes, in encoded keys.
enum Picked {
    Prefix(Vec<u8>),
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
    All,
    Nothing,
}

impl Picked {
    fn apply<V: Clone>(&self, t: &Tree<V>) -> tree::IntoIter<V> {
        match self {
            Picked::Prefix(p) => t.owned_prefix(p),
            Picked::Range(lo, hi) => t.owned_range((
                lo.as_ref().map(Vec::as_slice),
                hi.as_ref().map(Vec::as_slice),
            )),
            Picked::All => t.owned_iter(),
            Picked::Nothing => t.owned_range(&b""[..]..&b""[..]),
        }
    }
}

/// Every query form with each row's revisions ([`Versioned`]: the object,
/// the revision that created it and the last one that wrote it), for read
/// and write transactions alike (implemented for every [`Query`]). The
/// plain forms are [`Query::iter`], [`Query::prefix`], [`Query::range`],
/// [`Query::lower_bound`], [`Query::reverse_lower_bound`], [`Query::all`],
/// [`Query::first`] and [`Query::last`]; [`Query::get_versioned`] is the
/// single lookup.
///
/// Every index holds the revisions beside the objects, so a versioned
/// query costs what its plain owned form does.
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema, VersionedQuery};
/// # struct Svc { name: String, port: u16 }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Svc>("svc");
/// # let by_name = t.primary("name", Indexer::string(|s: &Svc| s.name.as_str()));
/// # let by_port = t.index("port", Indexer::value(|s: &Svc| s.port));
/// # let svc = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// for (name, port) in [("api", 80), ("api-internal", 8080), ("api", 81)] {
///     let mut w = db.write(&[&svc]);
///     w.insert(&svc, Svc { name: name.into(), port })?;
///     w.commit()?; // revisions 1, 2, 3
/// }
/// let r = db.read();
/// let api: Vec<_> = r
///     .prefix_versioned(&by_name, "api")?
///     .map(|v| (v.object.name.clone(), v.created, v.modified))
///     .collect();
/// assert_eq!(api, [("api".into(), 1, 3), ("api-internal".into(), 2, 2)]);
/// let high = r.lower_bound_versioned(&by_port, &1000)?.next().unwrap();
/// assert_eq!((high.object.port, high.modified), (8080, 2));
/// # Ok::<(), pandodb::Error>(())
/// ```
pub trait VersionedQuery: Query {
    /// [`Query::iter`] with revisions: every row whose key equals `key`.
    fn iter_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<VersionedRows<T>> {
        let enc = idx.with_key(key, <[u8]>::to_vec);
        rows_of(self, idx, Picked::Prefix(enc))
    }

    /// [`Query::prefix`] with revisions.
    fn prefix_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<VersionedRows<T>> {
        let enc = idx.with_encoded(prefix, true, <[u8]>::to_vec);
        rows_of(self, idx, Picked::Prefix(enc))
    }

    /// [`Query::range`] with revisions.
    fn range_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        lo: Bound<&K>,
        hi: Bound<&K>,
    ) -> Result<VersionedRows<T>> {
        let picked = match encode_range(idx, lo, hi) {
            Some((lo, hi)) => Picked::Range(lo, hi),
            None => Picked::Nothing,
        };
        rows_of(self, idx, picked)
    }

    /// [`Query::lower_bound`] with revisions.
    fn lower_bound_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<VersionedRows<T>> {
        self.range_versioned(idx, Bound::Included(key), Bound::Unbounded)
    }

    /// [`Query::reverse_lower_bound`] with revisions.
    fn reverse_lower_bound_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<std::iter::Rev<VersionedRows<T>>> {
        Ok(self
            .range_versioned(idx, Bound::Unbounded, Bound::Included(key))?
            .rev())
    }

    /// [`Query::all`] with revisions: every row in the order of `idx`.
    fn index_versioned<T: Send + Sync + 'static, K: ?Sized>(
        &self,
        idx: &Index<T, K>,
    ) -> Result<VersionedRows<T>> {
        rows_of(self, idx, Picked::All)
    }

    /// [`Query::first`] with revisions.
    fn first_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<Versioned<T>>> {
        Ok(self.iter_versioned(idx, key)?.next())
    }

    /// [`Query::last`] with revisions.
    fn last_versioned<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<Option<Versioned<T>>> {
        Ok(self.iter_versioned(idx, key)?.next_back())
    }
}

impl<Q: Query + ?Sized> VersionedQuery for Q {}
