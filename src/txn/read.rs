//! Read transactions: one frozen version of the database.

use std::any::Any;
use std::ops::Bound;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::index::key::Encode;
use crate::root::Root;
use crate::schema::{Index, Table};
use crate::txn::{Filter, Query, RowIter, Selection, encode_range};
use crate::watch::{Target, Watch};

/// A read transaction: a consistent snapshot of one committed version.
///
/// Taking one is lock-free (one atomic load); holding one pins that version
/// and nothing else, so writers are never blocked by it. It is `Send` and
/// `Sync`, and has no write methods. Query it through [`Query`](crate::Query).
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
/// let snapshot = db.read();
/// let mut w = db.write(&[&people]);
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// w.commit()?;
/// assert_eq!(snapshot.len(&people)?, 0); // frozen at revision 0
/// let r = db.read();
/// std::thread::spawn(move || assert_eq!(r.count(&by_age, &41).unwrap(), 1)).join().unwrap();
/// # let _ = by_id;
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct ReadTxn {
    root: Arc<Root>,
    schema: u64,
}

impl ReadTxn {
    pub(crate) fn new(root: Arc<Root>, schema: u64) -> Self {
        ReadTxn { root, schema }
    }

    /// The revision of the commit this snapshot shows (0: the empty
    /// database).
    pub fn revision(&self) -> u64 {
        self.root.revision
    }

    /// Writes a snapshot of this version to `w`: every row of every table
    /// (objects encoded with serde + postcard, see `docs/FORMAT.md`), in
    /// checksummed blocks, streamed (one block in memory). Taking it costs
    /// nothing up front and blocks no writer: the snapshot is this frozen
    /// version. Every table needs
    /// [`TableBuilder::serde`](crate::TableBuilder::serde).
    pub fn snapshot_to(&self, w: impl std::io::Write) -> Result<crate::SnapshotInfo> {
        crate::persist::snapshot::write_root(&self.root, &self.root.schema, w)
    }

    /// Registers a watch on `target` in the encoded key space of `idx`.
    fn watch_on<T, K: ?Sized>(&self, idx: &Index<T, K>, target: Target) -> Result<Watch> {
        let tables = &self.root.watches;
        match tables.get(idx.table) {
            Some(t) if idx.schema == self.schema => {
                Ok(t.register(idx.pos, target, self.root.revision))
            }
            _ => Err(Error::ForeignHandle(idx.table_name.to_string())),
        }
    }

    /// The target of a query for the objects whose key equals `key`.
    fn key_target<T, K: Encode + ?Sized>(idx: &Index<T, K>, key: &K) -> Target {
        let enc = idx.encode(key, false);
        if idx.unique {
            Target::Exact(enc)
        } else {
            Target::Prefix(enc)
        }
    }

    /// [`Query::get`] and a watch that fires when its answer may change
    /// (also when an object with that key appears).
    pub fn get_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<(Option<Arc<T>>, Watch)> {
        let found = self.get(idx, key)?;
        Ok((found, self.watch_on(idx, Self::key_target(idx, key))?))
    }

    /// [`Query::first`] with a watch (the same as [`ReadTxn::get_watch`]).
    pub fn first_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<(Option<Arc<T>>, Watch)> {
        self.get_watch(idx, key)
    }

    /// [`Query::last`] with a watch.
    pub fn last_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<(Option<Arc<T>>, Watch)> {
        let found = self.last(idx, key)?;
        Ok((found, self.watch_on(idx, Self::key_target(idx, key))?))
    }

    /// [`Query::iter`] with a watch.
    pub fn iter_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<(RowIter<T>, Watch)> {
        let rows = self.iter(idx, key)?;
        Ok((rows, self.watch_on(idx, Self::key_target(idx, key))?))
    }

    /// [`Query::count`] with a watch.
    pub fn count_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<(usize, Watch)> {
        let n = self.count(idx, key)?;
        Ok((n, self.watch_on(idx, Self::key_target(idx, key))?))
    }

    /// [`Query::prefix`] with a watch: it fires only when an object whose
    /// key starts with `prefix` changes, appears or goes.
    pub fn prefix_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<(RowIter<T>, Watch)> {
        let rows = self.prefix(idx, prefix)?;
        let target = Target::Prefix(idx.encode(prefix, true));
        Ok((rows, self.watch_on(idx, target)?))
    }

    /// [`Query::count_prefix`] with a watch.
    pub fn count_prefix_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<(usize, Watch)> {
        let n = self.count_prefix(idx, prefix)?;
        let target = Target::Prefix(idx.encode(prefix, true));
        Ok((n, self.watch_on(idx, target)?))
    }

    /// [`Query::all`] with a watch on the whole index.
    pub fn all_watch<T: Send + Sync + 'static, K: ?Sized>(
        &self,
        idx: &Index<T, K>,
    ) -> Result<(RowIter<T>, Watch)> {
        let rows = self.all(idx)?;
        Ok((rows, self.watch_on(idx, Target::Prefix(Vec::new()))?))
    }

    /// [`Query::lower_bound`] with a watch on every key `>= key`.
    pub fn lower_bound_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<(RowIter<T>, Watch)> {
        self.range_watch(idx, Bound::Included(key), Bound::Unbounded)
    }

    /// [`Query::range`] with a watch on the range.
    pub fn range_watch<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &self,
        idx: &Index<T, K>,
        lo: Bound<&K>,
        hi: Bound<&K>,
    ) -> Result<(RowIter<T>, Watch)> {
        let rows = self.range(idx, lo, hi)?;
        let target = match encode_range(idx, lo, hi) {
            Some((lo, hi)) => Target::Range(lo, hi),
            // An empty range: a watch that only an impossible key fires.
            None => Target::Range(Bound::Excluded(Vec::new()), Bound::Excluded(Vec::new())),
        };
        Ok((rows, self.watch_on(idx, target)?))
    }

    /// [`Query::select`] with one watch that fires on the first later
    /// commit that may change its result: one that writes a row having, before
    /// or after the write, a key or prefix the filter names (not on writes to
    /// rows the filter cannot select).
    pub fn select_watch<T: Send + Sync + 'static>(
        &self,
        filter: &Filter<T>,
    ) -> Result<(Selection<T>, Watch)> {
        let rows = self.select(filter)?;
        let id = filter.table_id()?;
        let table = match self.root.watches.get(id.table) {
            Some(t) if id.schema == self.schema => t,
            _ => return Err(Error::ForeignHandle(id.name.to_string())),
        };
        let primary = super::state_of::<Self, T>(self, id.schema, id.table, &id.name)?.primary;
        let mut targets = Vec::new();
        filter.expr.watch_targets(primary, &mut targets);
        Ok((rows, table.register_all(targets, self.root.revision)))
    }

    /// A watch that fires on the next commit that changes `table` (after
    /// this transaction's revision).
    pub fn table_watch<T: Send + Sync + 'static>(&self, table: &Table<T>) -> Result<Watch> {
        let tables = &self.root.watches;
        match tables.get(table.id()) {
            Some(t) if table.schema == self.schema => Ok(t.register(
                table.def.primary,
                Target::Prefix(Vec::new()),
                self.root.revision,
            )),
            _ => Err(Error::ForeignHandle(table.name().to_string())),
        }
    }
}

impl super::sealed::Source for ReadTxn {
    #[inline]
    fn state(&self, schema: u64, id: usize) -> Option<&(dyn Any + Send + Sync)> {
        if schema != self.schema {
            return None;
        }
        self.root.tables.get(id).map(|s| &**s)
    }
}

impl super::Query for ReadTxn {}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("revision", &self.root.revision)
            .finish()
    }
}
