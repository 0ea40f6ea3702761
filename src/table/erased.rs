//! The one type-erased table: what the schema, the commit and persistence
//! keep of a table whose row type they do not know. A state of the wrong
//! type is a bug, and every downcast here says so loudly.

use std::any::Any;
use std::sync::Arc;

use super::bulk::Bulk;
use super::write::{LoadCtx, load_row, primary_key, unload_row};
use super::{Change, SPARE_LEDGERS, SPARE_ROOM, TableDef, TableState, Versioned};
use crate::error::{Error, Result};
use crate::index::KeyLog;
use crate::tree::{Ledger, Tree};

/// A table state whose row type only its table knows: what a root, a write
/// transaction and persistence hold.
pub(crate) type AnyState = Arc<dyn Any + Send + Sync>;

/// The typed state behind an erased one. Every state is made by its own
/// table's definition, so another type is a bug in pandodb, never a user
/// error: it panics saying so rather than acting on an empty table.
pub(crate) fn state_ref<'a, T: 'static>(
    state: &'a (dyn Any + Send + Sync),
    table: &str,
) -> &'a TableState<T> {
    match state.downcast_ref::<TableState<T>>() {
        Some(s) => s,
        None => wrong_type(table),
    }
}

/// [`state_ref`], mutably.
pub(crate) fn state_mut<'a, T: 'static>(
    state: &'a mut (dyn Any + Send + Sync),
    table: &str,
) -> &'a mut TableState<T> {
    match state.downcast_mut::<TableState<T>>() {
        Some(s) => s,
        None => wrong_type(table),
    }
}

#[cold]
fn wrong_type(table: &str) -> ! {
    panic!("pandodb bug: a value of the wrong type was handed to table {table:?}")
}

/// The ledgers of a published private table state, one per tree.
pub(crate) struct TableLedgers<T> {
    /// The table, which keeps the ledgers once they are settled (emptied)
    /// for its next transactions.
    pub(super) def: Arc<TableDef<T>>,
    pub(super) set: Ledgers<T>,
}

/// One ledger per tree of a table state (`None`: a tree that did not lend).
pub(crate) struct Ledgers<T> {
    pub(super) rows: Option<Box<Ledger<Versioned<T>>>>,
    pub(super) by_revision: Option<Box<Ledger<()>>>,
    pub(super) indexes: Vec<Option<Box<Ledger<Versioned<T>>>>>,
}

impl<T> Default for Ledgers<T> {
    fn default() -> Self {
        Ledgers {
            rows: None,
            by_revision: None,
            indexes: Vec::new(),
        }
    }
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
    fn settle(mut self: Box<Self>, base: Option<&mut (dyn Any + Send + Sync)>) -> usize {
        let mut base = base.map(|b| state_mut::<T>(b, "<settled>"));
        let mut fast = 0;
        let mut room = 0;
        let set = &mut self.set;
        if let Some(l) = &mut set.rows {
            fast += usize::from(l.settle_keep(base.as_mut().map(|b| b.rows.root_mut())));
            room += l.room();
        }
        if let Some(l) = &mut set.by_revision {
            fast += usize::from(l.settle_keep(base.as_mut().map(|b| b.by_revision.root_mut())));
            room += l.room();
        }
        for (i, l) in set.indexes.iter_mut().enumerate() {
            if let Some(l) = l {
                let root = base
                    .as_mut()
                    .and_then(|b| b.indexes.get_mut(i))
                    .map(Tree::root_mut);
                fast += usize::from(l.settle_keep(root));
                room += l.room();
            }
        }
        // Settled, the ledgers are empty: the table keeps them for its
        // next transactions (unless it has enough, or they grew large).
        if room <= SPARE_ROOM {
            let mut spare = self.def.spare();
            if spare.len() < SPARE_LEDGERS {
                spare.push(std::mem::take(&mut self.set));
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
    fn empty_state(self: Arc<Self>) -> AnyState;
    /// Copies a published state into a private one (O(1): the trees are
    /// shared until written). The copy is uniquely owned, so the write
    /// transaction mutates it through `Arc::get_mut` and publishes it as is.
    fn thaw(&self, state: &AnyState) -> AnyState;
    /// [`TableState::take_ledgers`] through the type-erased state.
    fn take_ledgers(&self, state: &mut (dyn Any + Send + Sync)) -> Box<dyn Settle>;
    /// [`TableState::renumber`] through the type-erased state.
    fn renumber(&self, state: &mut (dyn Any + Send + Sync), pks: &KeyLog, from: u64, to: u64);
    /// The typed definition behind this trait object, as `Any`.
    fn into_any(self: Arc<Self>) -> AnyState;
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
    fn loader(self: Arc<Self>, base: Option<&AnyState>) -> Box<dyn TableLoader>;
    /// Decodes an object of this table stored with row type `version`
    /// (migrating an older one).
    fn decode_object(&self, version: u32, data: &[u8]) -> Result<AnyObject>;
    /// A change record of this table and its estimated bytes (the feed's
    /// measure).
    fn change(
        &self,
        created: u64,
        before: Option<AnyObject>,
        after: Option<AnyObject>,
    ) -> (Change, usize);
}

/// An object of some table, type-erased.
pub(crate) type AnyObject = Arc<dyn Any + Send + Sync>;

/// Writes stored rows into a table state (restoring a snapshot, replaying
/// the log), rebuilding every index.
pub(crate) trait TableLoader {
    /// Inserts (or replaces) the row encoded as `data` (row type version
    /// `version`), with the given revisions.
    fn put(&mut self, version: u32, created: u64, modified: u64, data: &[u8]) -> Result<()>;
    /// Deletes the row with this primary key (if any).
    fn delete(&mut self, pk: &[u8]) -> Result<()>;
    /// [`TableLoader::put`], returning the change it made and its
    /// estimated bytes (rebuilding the change feed from the log).
    fn put_change(
        &mut self,
        version: u32,
        created: u64,
        modified: u64,
        data: &[u8],
    ) -> Result<(Change, usize)>;
    /// [`TableLoader::delete`], returning the change it made (`None`: no
    /// such row) and its estimated bytes.
    fn delete_change(&mut self, pk: &[u8]) -> Result<Option<(Change, usize)>>;
    /// The state so far, as a version of its own (O(1) once the loader
    /// writes row by row: the trees are shared until it writes again).
    fn snapshot(&mut self) -> Result<AnyState>;
    /// The finished state (an error when rows loaded in bulk break a
    /// unique index).
    fn finish(self: Box<Self>) -> Result<AnyState>;
}

impl<T: Send + Sync + 'static> AnyTable for TableDef<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn empty_state(self: Arc<Self>) -> AnyState {
        Arc::new(TableState::<T> {
            primary: self.primary,
            def: self.clone(),
            rows: Tree::new(),
            by_revision: Tree::new(),
            indexes: self.indexes.iter().map(|_| Tree::new()).collect(),
        })
    }
    fn thaw(&self, state: &AnyState) -> AnyState {
        Arc::new(state_ref::<T>(&**state, &self.name).lending_clone())
    }
    fn take_ledgers(&self, state: &mut (dyn Any + Send + Sync)) -> Box<dyn Settle> {
        Box::new(state_mut::<T>(state, &self.name).take_ledgers())
    }
    fn renumber(&self, state: &mut (dyn Any + Send + Sync), pks: &KeyLog, from: u64, to: u64) {
        state_mut::<T>(state, &self.name).renumber(pks.iter().map(|(_, k)| k), from, to);
    }
    fn into_any(self: Arc<Self>) -> AnyState {
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
        state_ref::<T>(state, &self.name).rows.len()
    }
    fn for_each_row(&self, state: &(dyn Any + Send + Sync), f: &mut RowVisitor<'_>) -> Result<()> {
        let codec = self.codec()?;
        let state = state_ref::<T>(state, &self.name);
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
            wrong_type(&self.name)
        };
        let mut sinks = Vec::new();
        *pk = primary_key(self, &mut sinks, obj)?;
        (codec.encode)(obj, data).map_err(|e| self.codec_error(&e))
    }
    fn loader(self: Arc<Self>, base: Option<&AnyState>) -> Box<dyn TableLoader> {
        let mode = match base {
            Some(b) => Mode::Rows(state_ref::<T>(&**b, &self.name).clone()),
            // From nothing: rows in primary-key order are built bottom-up.
            None => Mode::Bulk(Box::new(Bulk::new(self.clone()))),
        };
        Box::new(Loader {
            def: self,
            mode,
            ctx: LoadCtx::default(),
        })
    }
    fn decode_object(&self, version: u32, data: &[u8]) -> Result<AnyObject> {
        Ok(Arc::new(self.decode_row(version, data)?))
    }
    fn change(
        &self,
        created: u64,
        before: Option<AnyObject>,
        after: Option<AnyObject>,
    ) -> (Change, usize) {
        let objects = usize::from(before.is_some()) + usize::from(after.is_some());
        let bytes = std::mem::size_of::<Change>() + objects * std::mem::size_of::<T>();
        let change = Change {
            table_id: self.id,
            created,
            table: self.shared_name.clone(),
            before,
            after,
        };
        (change, bytes)
    }
}

impl<T: Send + Sync + 'static> TableDef<T> {
    /// Decodes a stored object of row type `version` (migrating an older
    /// one; a newer one, or an older one without a migration, is
    /// [`Error::SchemaMismatch`]).
    fn decode_row(&self, version: u32, data: &[u8]) -> Result<T> {
        let codec = self.codec()?;
        if version == self.version {
            (codec.decode)(data)
        } else if version < self.version {
            match &codec.migrate {
                Some(m) => m(version, data),
                None => {
                    return Err(Error::SchemaMismatch(format!(
                        "table {:?}: rows of version {version} need a migration to version {} \
                         (TableBuilder::migrate)",
                        self.name, self.version
                    )));
                }
            }
        } else {
            return Err(Error::SchemaMismatch(format!(
                "table {:?}: rows of version {version} are newer than this schema's version {}",
                self.name, self.version
            )));
        }
        .map_err(|e| self.codec_error(&e))
    }
}

/// How a [`Loader`] takes rows.
enum Mode<T> {
    /// Bottom-up, while rows come in primary-key order into an empty table.
    Bulk(Box<Bulk<T>>),
    /// Row by row, through the writer.
    Rows(TableState<T>),
}

/// [`TableLoader`] of one typed table.
struct Loader<T> {
    def: Arc<TableDef<T>>,
    mode: Mode<T>,
    ctx: LoadCtx,
}

impl<T: Send + Sync + 'static> Loader<T> {
    /// Decodes and loads one row; returns the object and the row it
    /// replaced.
    fn load(
        &mut self,
        version: u32,
        created: u64,
        modified: u64,
        data: &[u8],
    ) -> Result<(Arc<T>, Option<Versioned<T>>)> {
        let obj = Arc::new(self.def.decode_row(version, data)?);
        // A row out of order goes row by row, as every row after it.
        if let Mode::Bulk(b) = &mut self.mode
            && let Ok(()) = b.push(obj.clone(), created, modified)?
        {
            return Ok((obj, None));
        }
        let state = self.mode.rows(&self.def)?;
        let old = load_row(
            &self.def,
            state,
            &mut self.ctx,
            obj.clone(),
            created,
            modified,
        )?;
        Ok((obj, old))
    }
}

impl<T: Send + Sync + 'static> Mode<T> {
    /// The state to write row by row: a bulk build so far is finished
    /// first (the rows after it may replace or delete its rows).
    fn rows(&mut self, def: &Arc<TableDef<T>>) -> Result<&mut TableState<T>> {
        if let Mode::Bulk(b) = self {
            let b = std::mem::replace(b, Box::new(Bulk::new(def.clone())));
            *self = Mode::Rows(b.finish()?);
        }
        match self {
            Mode::Rows(s) => Ok(s),
            Mode::Bulk(_) => unreachable!("the loader just left bulk mode"),
        }
    }
}

impl<T: Send + Sync + 'static> TableLoader for Loader<T> {
    fn put(&mut self, version: u32, created: u64, modified: u64, data: &[u8]) -> Result<()> {
        self.load(version, created, modified, data).map(|_| ())
    }

    fn delete(&mut self, pk: &[u8]) -> Result<()> {
        if let Mode::Bulk(b) = &self.mode
            && b.len() == 0
        {
            return Ok(()); // nothing to delete yet
        }
        let state = self.mode.rows(&self.def)?;
        unload_row(&self.def, state, &mut self.ctx, pk);
        Ok(())
    }

    fn put_change(
        &mut self,
        version: u32,
        created: u64,
        modified: u64,
        data: &[u8],
    ) -> Result<(Change, usize)> {
        let (obj, old) = self.load(version, created, modified, data)?;
        let before = old.map(|o| o.object as AnyObject);
        Ok(self.def.change(created, before, Some(obj)))
    }

    fn delete_change(&mut self, pk: &[u8]) -> Result<Option<(Change, usize)>> {
        if let Mode::Bulk(b) = &self.mode
            && b.len() == 0
        {
            return Ok(None); // nothing to delete yet
        }
        let state = self.mode.rows(&self.def)?;
        let old = unload_row(&self.def, state, &mut self.ctx, pk);
        Ok(old.map(|o| self.def.change(0, Some(o.object), None)))
    }

    fn snapshot(&mut self) -> Result<AnyState> {
        let state = self.mode.rows(&self.def)?;
        Ok(Arc::new(state.clone()))
    }

    fn finish(self: Box<Self>) -> Result<AnyState> {
        Ok(match self.mode {
            Mode::Bulk(b) => Arc::new(b.finish()?),
            Mode::Rows(s) => Arc::new(s),
        })
    }
}
