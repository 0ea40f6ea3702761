//! Schemas: tables of typed objects and their indexes, declared with a
//! builder and validated once, plus the typed handles ([`Table`], [`Index`])
//! that queries and writes take.

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::index::{Indexer, KeySink, key::Encode};
use crate::tree::{Ledger, Tree};

static NEXT_SCHEMA_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) type ExtractFn<T> = dyn Fn(&T, &mut KeySink) + Send + Sync;

/// One declared index of a table.
pub(crate) struct IndexDef<T> {
    pub(crate) name: String,
    pub(crate) unique: bool,
    pub(crate) case_insensitive: bool,
    pub(crate) extract: Arc<ExtractFn<T>>,
}

/// A validated table: its name and indexes (`indexes[primary]` is the
/// primary index).
pub(crate) struct TableDef<T> {
    pub(crate) id: usize,
    pub(crate) name: String,
    /// The name again, shared by every change record.
    pub(crate) shared_name: Arc<str>,
    pub(crate) primary: usize,
    pub(crate) indexes: Vec<IndexDef<T>>,
    pub(crate) codec: Option<Codec<T>>,
    pub(crate) version: u32,
}

/// An object together with its revisions: the revision of the commit that
/// created it (etcd's `create_revision`) and of the last commit that wrote
/// it (`mod_revision`).
///
/// Inside a write transaction, objects it wrote show the revision the
/// transaction expects to commit as (`base_revision() + 1`); if another
/// writer of other tables commits first, the commit renumbers them.
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// # struct Person { id: String, age: i64 }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Person>("person");
/// # let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// # let people = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// let mut w = db.write(&[&people]);
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// w.commit()?; // revision 1
/// let mut w = db.write(&[&people]);
/// w.insert(&people, Person { id: "ann".into(), age: 42 })?;
/// w.commit()?; // revision 2
/// let ann = db.read().get_versioned(&by_id, "ann")?.unwrap();
/// assert_eq!((ann.created, ann.modified, ann.object.age), (1, 2, 42));
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Debug)]
pub struct Versioned<T> {
    /// The object.
    pub object: Arc<T>,
    /// Revision of the commit that inserted it.
    pub created: u64,
    /// Revision of the last commit that wrote it.
    pub modified: u64,
}

impl<T> Clone for Versioned<T> {
    #[inline]
    fn clone(&self) -> Self {
        Versioned {
            object: self.object.clone(),
            created: self.created,
            modified: self.modified,
        }
    }
}

/// The key of an object in the by-revision tree: its modified revision
/// (see [`revision_prefix`]) followed by its primary key.
pub(crate) fn revision_key(buf: &mut Vec<u8>, revision: u64, pk: &[u8]) {
    buf.clear();
    revision_prefix(buf, revision);
    buf.extend_from_slice(pk);
}

/// The primary key inside a [`revision_key`] (`None` for a key too short
/// to be one).
pub(crate) fn revision_key_pk(key: &[u8]) -> Option<&[u8]> {
    key.get(1 + usize::from(*key.first()?)..)
}

/// The revision part of [`revision_key`]: the number of significant
/// nibbles (1 to 16), then those nibbles, most significant first, one per
/// byte.
///
/// Order: a revision with more significant nibbles is larger, and among
/// revisions with as many, nibble order is numeric order; the part is
/// self-delimiting, so keys sort by revision, then primary key.
///
/// Size: revisions below 2^20 take 6 bytes, not the 16 of a fixed width:
/// 10 bytes less in each leaf of the tree (one per object).
///
/// Nibbles keep the fan-out of the nodes where consecutive revisions
/// branch at 16: every commit copies the rightmost path of this tree, and
/// with whole bytes that path would hold a 256-child node.
pub(crate) fn revision_prefix(buf: &mut Vec<u8>, revision: u64) {
    let nibbles = (16 - revision.leading_zeros() / 4).max(1);
    buf.push(nibbles as u8);
    for i in (0..nibbles).rev() {
        buf.push(((revision >> (4 * i)) & 0x0f) as u8);
    }
}

/// The state of one table in one version. `rows` maps the primary key to
/// the object and its revisions; `by_revision` holds the keys of the same
/// rows (no values: a lookup in `rows` gives the row) under
/// [`revision_key`]; `indexes` holds one tree per secondary index (the slot
/// of the primary index stays empty). Unique keys map to the object;
/// non-unique keys are the encoded value followed by the encoded primary key.
pub(crate) struct TableState<T> {
    pub(crate) def: Arc<TableDef<T>>,
    pub(crate) primary: usize,
    pub(crate) rows: Tree<Versioned<T>>,
    pub(crate) by_revision: Tree<()>,
    pub(crate) indexes: Box<[Tree<Arc<T>>]>,
}

impl<T> Clone for TableState<T> {
    fn clone(&self) -> Self {
        TableState {
            def: self.def.clone(),
            primary: self.primary,
            rows: self.rows.clone(),
            by_revision: self.by_revision.clone(),
            indexes: self.indexes.clone(),
        }
    }
}

impl<T> TableState<T> {
    /// The private copy a write transaction writes to: every tree lends
    /// (see [`Ledger`]) until [`TableState::take_ledgers`].
    pub(crate) fn lending_clone(&self) -> Self {
        TableState {
            def: self.def.clone(),
            primary: self.primary,
            rows: self.rows.lending_clone(),
            by_revision: self.by_revision.lending_clone(),
            indexes: self.indexes.iter().map(Tree::lending_clone).collect(),
        }
    }

    /// Ends the lending of a private copy about to be published; the
    /// ledgers are settled once the base version is gone (or dropped).
    pub(crate) fn take_ledgers(&mut self) -> TableLedgers<T> {
        TableLedgers {
            rows: self.rows.take_ledger(),
            by_revision: self.by_revision.take_ledger(),
            indexes: self.indexes.iter_mut().map(Tree::take_ledger).collect(),
        }
    }

    /// Renumbers the rows this transaction wrote from revision `from` (the
    /// one it expected) to `to` (the one it got): `pks` lists their primary
    /// keys, possibly repeated, possibly deleted since.
    pub(crate) fn restamp<'a>(&mut self, pks: impl Iterator<Item = &'a [u8]>, from: u64, to: u64) {
        let mut key = Vec::new();
        for pk in pks {
            let Some(row) = self.rows.get(pk) else {
                continue;
            };
            if row.modified != from {
                continue; // already renumbered (the key was listed twice)
            }
            let mut row = row.clone();
            revision_key(&mut key, from, pk);
            self.by_revision.remove(&key);
            row.modified = to;
            if row.created == from {
                row.created = to;
            }
            revision_key(&mut key, to, pk);
            self.by_revision.insert(&key, ());
            self.rows.insert_known(pk, row, false);
        }
    }
}

/// The ledgers of a published private table state, one per tree.
pub(crate) struct TableLedgers<T> {
    rows: Option<Box<Ledger<Versioned<T>>>>,
    by_revision: Option<Box<Ledger<()>>>,
    indexes: Vec<Option<Box<Ledger<Arc<T>>>>>,
}

/// Settles the ledgers of one committed table (type-erased).
pub(crate) trait Settle: Send {
    /// Settles with the base state the transaction copied: `Some` when the
    /// caller holds the only handle on it (no reader can reach it any
    /// more), `None` otherwise (the ledgers restore the counts). Returns
    /// how many trees took the fast path.
    fn settle(self: Box<Self>, base: Option<&mut (dyn Any + Send + Sync)>) -> usize;
}

impl<T: Send + Sync + 'static> Settle for TableLedgers<T> {
    fn settle(self: Box<Self>, base: Option<&mut (dyn Any + Send + Sync)>) -> usize {
        let TableLedgers {
            rows,
            by_revision,
            indexes,
        } = *self;
        let Some(base) = base.and_then(|b| b.downcast_mut::<TableState<T>>()) else {
            return 0; // the ledgers drop here and restore the counts
        };
        let mut fast = 0;
        if let Some(l) = rows {
            fast += usize::from((*l).settle(base.rows.root_mut()));
        }
        if let Some(l) = by_revision {
            fast += usize::from((*l).settle(base.by_revision.root_mut()));
        }
        for (l, t) in indexes.into_iter().zip(base.indexes.iter_mut()) {
            if let Some(l) = l {
                fast += usize::from((*l).settle(t.root_mut()));
            }
        }
        fast
    }
}

/// Receives a stored row: created and modified revisions, primary key,
/// encoded object.
pub(crate) type RowVisitor<'a> = dyn FnMut(u64, u64, &[u8], &[u8]) -> Result<()> + 'a;

/// The type-erased view the schema and the database keep of a table.
pub(crate) trait AnyTable: Send + Sync {
    fn name(&self) -> &str;
    fn empty_state(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Copies a published state into a private one (O(1): the trees are
    /// shared until written). The copy is uniquely owned, so the write
    /// transaction mutates it through `Arc::get_mut` and publishes it as is.
    fn thaw(self: Arc<Self>, state: &Arc<dyn Any + Send + Sync>) -> Arc<dyn Any + Send + Sync>;
    /// [`TableState::take_ledgers`] through the type-erased state.
    fn take_ledgers(&self, state: &mut (dyn Any + Send + Sync)) -> Option<Box<dyn Settle>>;
    /// [`TableState::restamp`] through the type-erased state.
    fn restamp(
        &self,
        state: &mut (dyn Any + Send + Sync),
        pks: &crate::watch::KeyLog,
        from: u64,
        to: u64,
    );
    /// The typed definition behind this trait object, as `Any`.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Number of indexes (the primary one included).
    fn index_count(&self) -> usize;
    /// Index names and whether each is unique, the primary one first.
    fn index_names(&self) -> Vec<(String, bool)>;
    /// The row type's version and whether the table has a codec.
    fn codec_info(&self) -> (u32, bool);
    /// Number of rows of a state.
    fn row_count(&self, state: &(dyn Any + Send + Sync)) -> usize;
    /// Calls `f(created, modified, primary key, encoded object)` for every
    /// row of `state`, in primary-key order.
    fn for_each_row(&self, state: &(dyn Any + Send + Sync), f: &mut RowVisitor<'_>) -> Result<()>;
    /// Encodes an object of this table (from a change record) and its
    /// primary key.
    fn encode_object(
        &self,
        obj: &(dyn Any + Send + Sync),
        pk: &mut Vec<u8>,
        data: &mut Vec<u8>,
    ) -> Result<()>;
    /// A loader writing rows into a private copy of `base` (or an empty
    /// state).
    fn loader(self: Arc<Self>, base: Option<&Arc<dyn Any + Send + Sync>>) -> Box<dyn TableLoader>;
}

/// Writes stored rows into a table state (restoring a snapshot, replaying
/// the log), rebuilding every index.
pub(crate) trait TableLoader {
    /// Inserts (or replaces) the row encoded as `data` (row type version
    /// `version`), with the given revisions.
    fn put(&mut self, version: u32, created: u64, modified: u64, data: &[u8]) -> Result<()>;
    /// Deletes the row with this primary key (if any).
    fn delete(&mut self, pk: &[u8]) -> Result<()>;
    /// The finished state.
    fn finish(self: Box<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Send + Sync + 'static> AnyTable for TableDef<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn empty_state(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        Arc::new(TableState::<T> {
            primary: self.primary,
            def: self.clone(),
            rows: Tree::new(),
            by_revision: Tree::new(),
            indexes: self.indexes.iter().map(|_| Tree::new()).collect(),
        })
    }
    fn thaw(self: Arc<Self>, state: &Arc<dyn Any + Send + Sync>) -> Arc<dyn Any + Send + Sync> {
        match state.downcast_ref::<TableState<T>>() {
            Some(s) => Arc::new(s.lending_clone()),
            None => self.empty_state(),
        }
    }
    fn take_ledgers(&self, state: &mut (dyn Any + Send + Sync)) -> Option<Box<dyn Settle>> {
        let s = state.downcast_mut::<TableState<T>>()?;
        Some(Box::new(s.take_ledgers()))
    }
    fn restamp(
        &self,
        state: &mut (dyn Any + Send + Sync),
        pks: &crate::watch::KeyLog,
        from: u64,
        to: u64,
    ) {
        if let Some(s) = state.downcast_mut::<TableState<T>>() {
            s.restamp(pks.iter().map(|(_, k)| k), from, to);
        }
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn index_count(&self) -> usize {
        self.indexes.len()
    }
    fn index_names(&self) -> Vec<(String, bool)> {
        let mut v = vec![(
            self.indexes[self.primary].name.clone(),
            self.indexes[self.primary].unique,
        )];
        for (i, ix) in self.indexes.iter().enumerate() {
            if i != self.primary {
                v.push((ix.name.clone(), ix.unique));
            }
        }
        v
    }
    fn codec_info(&self) -> (u32, bool) {
        (self.version, self.codec.is_some())
    }
    fn row_count(&self, state: &(dyn Any + Send + Sync)) -> usize {
        state
            .downcast_ref::<TableState<T>>()
            .map_or(0, |s| s.rows.len())
    }
    fn for_each_row(&self, state: &(dyn Any + Send + Sync), f: &mut RowVisitor<'_>) -> Result<()> {
        let codec = self.codec()?;
        let Some(state) = state.downcast_ref::<TableState<T>>() else {
            return Err(Error::UnknownTable(self.name.clone()));
        };
        let mut buf = Vec::new();
        for (pk, row) in state.rows.iter() {
            buf.clear();
            (codec.encode)(&row.object, &mut buf).map_err(|e| self.codec_error(&e))?;
            f(row.created, row.modified, pk, &buf)?;
        }
        Ok(())
    }
    fn encode_object(
        &self,
        obj: &(dyn Any + Send + Sync),
        pk: &mut Vec<u8>,
        data: &mut Vec<u8>,
    ) -> Result<()> {
        let codec = self.codec()?;
        let Some(obj) = obj.downcast_ref::<T>() else {
            return Err(Error::UnknownTable(self.name.clone()));
        };
        let mut sinks = Vec::new();
        *pk = crate::txn::primary_key(self, &mut sinks, obj)?;
        (codec.encode)(obj, data).map_err(|e| self.codec_error(&e))
    }
    fn loader(self: Arc<Self>, base: Option<&Arc<dyn Any + Send + Sync>>) -> Box<dyn TableLoader> {
        let state = match base.and_then(|b| b.downcast_ref::<TableState<T>>()) {
            Some(s) => s.clone(),
            None => TableState {
                def: self.clone(),
                primary: self.primary,
                rows: Tree::new(),
                by_revision: Tree::new(),
                indexes: self.indexes.iter().map(|_| Tree::new()).collect(),
            },
        };
        Box::new(Loader {
            def: self,
            state,
            ctx: crate::txn::LoadCtx::default(),
        })
    }
}

impl<T> TableDef<T> {
    fn codec(&self) -> Result<&Codec<T>> {
        self.codec.as_ref().ok_or_else(|| {
            Error::Schema(format!(
                "table {:?} has no codec: call TableBuilder::serde to store it",
                self.name
            ))
        })
    }

    fn codec_error(&self, e: &str) -> Error {
        Error::Codec(format!("table {:?}: {e}", self.name))
    }
}

/// [`TableLoader`] of one typed table.
struct Loader<T> {
    def: Arc<TableDef<T>>,
    state: TableState<T>,
    ctx: crate::txn::LoadCtx,
}

impl<T: Send + Sync + 'static> TableLoader for Loader<T> {
    fn put(&mut self, version: u32, created: u64, modified: u64, data: &[u8]) -> Result<()> {
        let def = &self.def;
        let codec = def.codec()?;
        let obj = if version == def.version {
            (codec.decode)(data)
        } else if version < def.version {
            match &codec.migrate {
                Some(m) => m(version, data),
                None => {
                    return Err(Error::SchemaMismatch(format!(
                        "table {:?}: rows of version {version} need a migration to version {} \
                         (TableBuilder::migrate)",
                        def.name, def.version
                    )));
                }
            }
        } else {
            return Err(Error::SchemaMismatch(format!(
                "table {:?}: rows of version {version} are newer than this schema's version {}",
                def.name, def.version
            )));
        }
        .map_err(|e| def.codec_error(&e))?;
        crate::txn::load_row(
            def,
            &mut self.state,
            &mut self.ctx,
            Arc::new(obj),
            created,
            modified,
        )
    }

    fn delete(&mut self, pk: &[u8]) -> Result<()> {
        crate::txn::unload_row(&self.def, &mut self.state, &mut self.ctx, pk);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Arc<dyn Any + Send + Sync> {
        Arc::new(self.state)
    }
}

/// A handle to a table of objects of type `T`; cheap to clone. Returned by
/// [`SchemaBuilder::add`]; writes and [`Query::len`](crate::Query::len) take it.
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
/// assert_eq!(people.name(), "person");
/// assert_eq!(db.read().len(&people)?, 0);
/// # let _ = (by_id, by_age);
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct Table<T> {
    pub(crate) schema: u64,
    pub(crate) def: Arc<TableDef<T>>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Table {
            schema: self.schema,
            def: self.def.clone(),
        }
    }
}

impl<T> Table<T> {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub(crate) fn id(&self) -> usize {
        self.def.id
    }
}

impl<T> std::fmt::Debug for Table<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({:?})", self.def.name)
    }
}

/// Ties an index handle to its object and key types without owning either.
type IndexMarker<T, K> = (fn() -> T, fn(&K));

/// A handle to one index of a `Table<T>`, queried with keys of type `K`.
/// Returned by the [`TableBuilder`] methods; every query takes one.
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
/// assert_eq!((by_id.name(), by_id.is_unique()), ("id", true));
/// assert_eq!((by_age.name(), by_age.is_unique()), ("age", false));
/// let r = db.read();
/// let _: Option<std::sync::Arc<Person>> = r.get(&by_id, "ann")?; // K = str
/// let _ = r.count(&by_age, &41)?; // K = i64
/// # let _ = people;
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct Index<T, K: ?Sized> {
    pub(crate) schema: u64,
    pub(crate) table: usize,
    pub(crate) pos: usize,
    pub(crate) name: Arc<str>,
    pub(crate) table_name: Arc<str>,
    pub(crate) unique: bool,
    pub(crate) case_insensitive: bool,
    _p: PhantomData<IndexMarker<T, K>>,
}

impl<T, K: ?Sized> Clone for Index<T, K> {
    fn clone(&self) -> Self {
        self.retype(self.unique)
    }
}

impl<T, K: ?Sized> std::fmt::Debug for Index<T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({}.{})", self.table_name, self.name)
    }
}

impl<T, K: ?Sized> Index<T, K> {
    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the index holds at most one object per key.
    pub fn is_unique(&self) -> bool {
        self.unique
    }

    /// A view queried by a leading part of the key: never a point lookup.
    fn leading_view<Q: ?Sized>(&self) -> Index<T, Q> {
        self.retype(false)
    }

    /// The same index under another query key type.
    fn retype<Q: ?Sized>(&self, unique: bool) -> Index<T, Q> {
        Index {
            schema: self.schema,
            table: self.table,
            pos: self.pos,
            name: self.name.clone(),
            table_name: self.table_name.clone(),
            unique,
            case_insensitive: self.case_insensitive,
            _p: PhantomData,
        }
    }

    /// Encodes a query key (complete, or as a prefix).
    pub(crate) fn encode(&self, key: &K, prefix: bool) -> Vec<u8>
    where
        K: Encode,
    {
        let mut out = Vec::with_capacity(32);
        self.encode_into(key, prefix, &mut out);
        out
    }

    pub(crate) fn encode_into(&self, key: &K, prefix: bool, out: &mut Vec<u8>)
    where
        K: Encode,
    {
        match (self.case_insensitive, prefix) {
            (true, p) => key.encode_folded(out, p),
            (false, false) => key.encode(out),
            (false, true) => key.encode_prefix(out),
        }
    }

    /// Runs `f` on the complete encoding of `key`, in a reused per-thread
    /// buffer (point lookups then allocate nothing).
    pub(crate) fn with_key<R>(&self, key: &K, f: impl FnOnce(&[u8]) -> R) -> R
    where
        K: Encode,
    {
        self.with_encoded(key, false, f)
    }

    /// Runs `f` on the encoding of `key` (complete, or as a prefix) in a
    /// reused per-thread buffer.
    pub(crate) fn with_encoded<R>(&self, key: &K, prefix: bool, f: impl FnOnce(&[u8]) -> R) -> R
    where
        K: Encode,
    {
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                self.encode_into(key, prefix, &mut buf);
                f(&buf)
            }
            // Re-entered from inside `f` (an indexer querying): allocate.
            Err(_) => f(&self.encode(key, prefix)),
        })
    }
}

impl<T, A, B> Index<T, (A, B)> {
    /// The same index queried by its first component only: every query on
    /// the result is a prefix query over the compound keys (so it may match
    /// several objects even when the index is unique).
    pub fn leading(&self) -> Index<T, (A,)> {
        self.leading_view()
    }
}

impl<T, A, B, C> Index<T, (A, B, C)> {
    /// The same index queried by its first component only.
    pub fn leading(&self) -> Index<T, (A,)> {
        self.leading_view()
    }

    /// The same index queried by its first two components.
    pub fn leading2(&self) -> Index<T, (A, B)> {
        self.leading_view()
    }
}

/// Declares one table: its primary index and any secondary indexes. Hand it
/// to [`SchemaBuilder::add`] when done.
///
/// ```
/// use pandodb::{Error, Indexer, Schema};
/// struct Key { id: u64 }
/// let mut schema = Schema::builder();
/// let mut keys = schema.table::<Key>("key");
/// keys.index("id", Indexer::value(|k: &Key| k.id)); // no primary index
/// assert!(matches!(schema.add(keys), Err(Error::Schema(_))));
/// ```
pub struct TableBuilder<T> {
    schema: u64,
    id: usize,
    name: String,
    primary: Vec<usize>,
    indexes: Vec<IndexDef<T>>,
    codec: Option<Codec<T>>,
    version: u32,
}

impl<T: Send + Sync + 'static> TableBuilder<T> {
    fn push<K: ?Sized>(&mut self, name: &str, unique: bool, ix: Indexer<T, K>) -> Index<T, K> {
        self.indexes.push(IndexDef {
            name: name.to_string(),
            unique,
            case_insensitive: ix.case_insensitive,
            extract: ix.extract,
        });
        Index {
            schema: self.schema,
            table: self.id,
            pos: self.indexes.len() - 1,
            name: name.into(),
            table_name: self.name.as_str().into(),
            unique,
            case_insensitive: self.indexes[self.indexes.len() - 1].case_insensitive,
            _p: PhantomData,
        }
    }

    /// The primary index: unique, and every object must yield exactly one key.
    pub fn primary<K: ?Sized>(&mut self, name: &str, ix: Indexer<T, K>) -> Index<T, K> {
        self.primary.push(self.indexes.len());
        self.push(name, true, ix)
    }

    /// A unique secondary index: inserting an object whose key another
    /// object holds fails with [`Error::UniqueViolation`].
    pub fn unique<K: ?Sized>(&mut self, name: &str, ix: Indexer<T, K>) -> Index<T, K> {
        self.push(name, true, ix)
    }

    /// A non-unique secondary index.
    pub fn index<K: ?Sized>(&mut self, name: &str, ix: Indexer<T, K>) -> Index<T, K> {
        self.push(name, false, ix)
    }

    /// Stores this table's rows in snapshots and the durable log, encoded
    /// with serde + postcard. Every table of a database that is snapshotted
    /// or opened from a directory needs it.
    ///
    /// ```
    /// # use pandodb::{Indexer, Schema};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { name: String }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<User>("user");
    /// t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    /// t.serde().version(2);
    /// # schema.add(t)?;
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn serde(&mut self) -> &mut Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let migrate = self.codec.as_ref().and_then(|c| c.migrate.clone());
        self.codec = Some(Codec {
            encode: encode_postcard::<T>,
            decode: decode_postcard::<T>,
            migrate,
        });
        self
    }

    /// The version of the row type (default 0), stored with the table in
    /// snapshots. Loading rows of an older version goes through the
    /// [`TableBuilder::migrate`] hook; rows of a newer version are refused.
    pub fn version(&mut self, version: u32) -> &mut Self {
        self.version = version;
        self
    }

    /// Decodes rows stored by an older version of the row type: `f(version,
    /// bytes)` gets the stored version and the row's postcard bytes. Call
    /// it after [`TableBuilder::serde`].
    ///
    /// ```
    /// # use pandodb::{Indexer, Schema};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct UserV1 { name: String }
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { name: String, admin: bool }
    /// let mut schema = Schema::builder();
    /// let mut t = schema.table::<User>("user");
    /// t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    /// t.serde().version(2).migrate(|version, bytes| match version {
    ///     1 => {
    ///         let old: UserV1 = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    ///         Ok(User { name: old.name, admin: false })
    ///     }
    ///     v => Err(format!("no migration from version {v}")),
    /// });
    /// # schema.add(t)?;
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn migrate(
        &mut self,
        f: impl Fn(u32, &[u8]) -> std::result::Result<T, String> + Send + Sync + 'static,
    ) -> &mut Self {
        if let Some(c) = &mut self.codec {
            c.migrate = Some(Arc::new(f));
        }
        self
    }
}

/// How a table's rows are encoded in snapshots and the log.
pub(crate) struct Codec<T> {
    pub(crate) encode: fn(&T, &mut Vec<u8>) -> std::result::Result<(), String>,
    pub(crate) decode: fn(&[u8]) -> std::result::Result<T, String>,
    #[allow(clippy::type_complexity)]
    pub(crate) migrate:
        Option<Arc<dyn Fn(u32, &[u8]) -> std::result::Result<T, String> + Send + Sync>>,
}

fn encode_postcard<T: serde::Serialize>(
    obj: &T,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let buf = std::mem::take(out);
    *out = postcard::to_extend(obj, buf).map_err(|e| e.to_string())?;
    Ok(())
}

fn decode_postcard<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| e.to_string())
}

/// Builds a [`Schema`].
///
/// ```
/// use pandodb::{Indexer, Schema};
/// struct Person { id: String, email: String, age: i64 }
///
/// let mut schema = Schema::builder();
/// let mut people = schema.table::<Person>("person");
/// let by_id = people.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// let by_email = people.unique("email", Indexer::string(|p: &Person| p.email.as_str()));
/// let by_age = people.index("age", Indexer::value(|p: &Person| p.age));
/// let people = schema.add(people)?;
/// let schema = schema.build()?;
/// # let _ = (by_id, by_email, by_age, people, schema);
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct SchemaBuilder {
    id: u64,
    declared: usize,
    tables: Vec<Arc<dyn AnyTable>>,
    errors: Vec<String>,
}

impl SchemaBuilder {
    /// Declares a table named `name` holding objects of type `T`.
    pub fn table<T: Send + Sync + 'static>(&mut self, name: &str) -> TableBuilder<T> {
        self.declared += 1;
        TableBuilder {
            schema: self.id,
            id: self.declared - 1,
            name: name.to_string(),
            primary: Vec::new(),
            indexes: Vec::new(),
            codec: None,
            version: 0,
        }
    }

    /// Validates a declared table and adds it. A failure is also kept:
    /// [`SchemaBuilder::build`] fails after it.
    pub fn add<T: Send + Sync + 'static>(&mut self, t: TableBuilder<T>) -> Result<Table<T>> {
        let added = self.try_add(t);
        match &added {
            Err(Error::Schema(m)) => self.errors.push(m.clone()),
            Err(e) => self.errors.push(e.to_string()),
            Ok(_) => {}
        }
        added
    }

    fn try_add<T: Send + Sync + 'static>(&mut self, t: TableBuilder<T>) -> Result<Table<T>> {
        let fail = |m: String| Err(Error::Schema(format!("table {:?}: {m}", t.name)));
        if t.schema != self.id {
            return fail("declared by another schema builder".into());
        }
        if t.name.is_empty() {
            return Err(Error::Schema("a table name is empty".into()));
        }
        let primary = match t.primary.as_slice() {
            [] => return fail("has no primary index".into()),
            [p] => *p,
            _ => return fail("has more than one primary index".into()),
        };
        for (i, ix) in t.indexes.iter().enumerate() {
            if ix.name.is_empty() {
                return fail("an index name is empty".into());
            }
            if t.indexes[..i].iter().any(|o| o.name == ix.name) {
                return fail(format!("index {:?} is declared twice", ix.name));
            }
        }
        if self.tables.iter().any(|x| x.name() == t.name) {
            return fail("is declared twice".into());
        }
        if self.tables.len() != t.id {
            return fail("tables must be added in the order they were declared".into());
        }
        let def = Arc::new(TableDef {
            id: t.id,
            shared_name: t.name.as_str().into(),
            name: t.name,
            primary,
            indexes: t.indexes,
            codec: t.codec,
            version: t.version,
        });
        self.tables.push(def.clone());
        Ok(Table {
            schema: self.id,
            def,
        })
    }

    /// Finishes the schema. Fails if a declared table was not added, or an
    /// earlier `add` failed.
    pub fn build(self) -> Result<Schema> {
        if let Some(e) = self.errors.first() {
            return Err(Error::Schema(e.clone()));
        }
        if self.tables.len() != self.declared {
            return Err(Error::Schema(format!(
                "{} table(s) declared but not added",
                self.declared - self.tables.len()
            )));
        }
        if self.tables.is_empty() {
            return Err(Error::Schema("the schema has no table".into()));
        }
        Ok(Schema {
            id: self.id,
            tables: self.tables.into(),
        })
    }
}

/// A validated set of tables; give it to [`Db::new`](crate::Db::new).
///
/// ```
/// # use pandodb::{Indexer, Schema};
/// # struct Person { id: String }
/// let mut b = Schema::builder();
/// let mut t = b.table::<Person>("person");
/// t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// b.add(t)?;
/// let schema = b.build()?;
/// assert_eq!(schema.table_names().collect::<Vec<_>>(), ["person"]);
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct Schema {
    pub(crate) id: u64,
    pub(crate) tables: Arc<[Arc<dyn AnyTable>]>,
}

impl Schema {
    /// Starts a schema.
    pub fn builder() -> SchemaBuilder {
        SchemaBuilder {
            id: NEXT_SCHEMA_ID.fetch_add(1, Ordering::Relaxed),
            declared: 0,
            tables: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The table names, in declaration order.
    pub fn table_names(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().map(|t| t.name())
    }
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.table_names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{revision_key, revision_prefix};
    use proptest::prelude::*;

    /// Any width, with small revisions (the common case) well represented.
    fn revision() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..300, any::<u64>(), (0u32..64).prop_map(|s| 1u64 << s)]
    }

    proptest! {
        #[test]
        fn revision_keys_sort_by_revision_then_key(
            a in revision(), b in revision(),
            pa in proptest::collection::vec(any::<u8>(), 0..6),
            pb in proptest::collection::vec(any::<u8>(), 0..6),
        ) {
            let (mut ka, mut kb) = (Vec::new(), Vec::new());
            revision_key(&mut ka, a, &pa);
            revision_key(&mut kb, b, &pb);
            prop_assert_eq!(ka.cmp(&kb), (a, &pa).cmp(&(b, &pb)));
            // The revision part is a prefix of the key, the lower bound
            // `modified_since` starts from.
            let mut p = Vec::new();
            revision_prefix(&mut p, a);
            prop_assert!(ka.starts_with(&p));
            prop_assert_eq!(super::revision_key_pk(&ka), Some(&pa[..]));
        }
    }

    #[test]
    fn revision_prefix_sizes() {
        let len = |r| {
            let mut p = Vec::new();
            revision_prefix(&mut p, r);
            p.len()
        };
        assert_eq!(len(0), 2);
        assert_eq!(len(15), 2);
        assert_eq!(len(16), 3);
        assert_eq!(len((1 << 20) - 1), 6);
        assert_eq!(len(u64::MAX), 17);
    }
}
