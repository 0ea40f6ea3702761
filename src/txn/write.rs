//! Write transactions: per-table writer locks, a private copy-on-write
//! version of the locked tables, index maintenance with unique checks, and
//! the commit that publishes everything at once.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use crate::commit::{DbInner, PendingCommit};
use crate::error::{Error, Result};
use crate::index::KeyLog;
use crate::index::key::Encode;
use crate::root::Root;
use crate::schema::{Index, Table};
use crate::table::bulk::insert_many;
use crate::table::write::{
    Changes, Cond, Scratch, TableLog, TableMut, check, delete_pk, insert_obj, primary_key,
};
use crate::table::{AnyState, Change, TableDef, Versioned, state_mut};

type Hook = Box<dyn FnOnce() + Send>;

/// What a commit produced.
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
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// assert_eq!(w.commit()?.revision, 1);
/// // A transaction that wrote nothing publishes nothing.
/// assert_eq!(db.write(&[&people]).commit()?.revision, 1);
/// # let _ = (by_id, by_age);
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Commit {
    /// The revision of the new version (unchanged when nothing was written).
    pub revision: u64,
    /// The changed objects, when [`WriteTxn::track_changes`] was called.
    pub changes: Vec<Change>,
}

/// A write transaction: reads see its own writes; `commit` publishes all
/// of them atomically; dropping it (or [`WriteTxn::abort`]) discards them.
///
/// It holds the writer locks of the tables it named until it ends.
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
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// assert_eq!(w.get(&by_id, "ann")?.unwrap().age, 41); // reads its own writes
/// w.defer(|| println!("committed"));
/// w.commit()?;
///
/// let mut w = db.write(&[&people]);
/// w.delete_all(&by_id, "ann")?;
/// drop(w); // aborts
/// assert_eq!(db.read().len(&people)?, 1);
/// # let _ = by_age;
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct WriteTxn {
    db: Arc<DbInner>,
    base: Arc<Root>,
    locked: Vec<usize>,
    states: Vec<Option<AnyState>>,
    logs: Vec<TableLog>,
    hooks: Vec<Hook>,
    /// Recorded when the change feed is on or the caller asked for them.
    changes: Option<Changes>,
    /// Whether the caller asked for the changes (`track_changes`).
    tracked: bool,
    wrote: bool,
    scratch: Scratch,
}

impl WriteTxn {
    pub(crate) fn begin(db: Arc<DbInner>, locked: Vec<usize>) -> Self {
        for &id in &locked {
            db.locks[id].acquire();
        }
        Self::begin_locked(db, locked)
    }

    /// Begins a transaction holding the writer locks `locked` (sorted),
    /// which the caller took; it releases them when it ends.
    pub(crate) fn begin_locked(db: Arc<DbInner>, locked: Vec<usize>) -> Self {
        // The ledgers earlier commits left (see `DbInner::settle_unsettled`)
        // are settled before this transaction copies any node.
        db.settle_unsettled();
        // Loaded after the locks: nobody else can commit these tables now.
        let base = db.load_latest();
        // The change records feed the change feed and the durable log.
        let feed = db.records_changes();
        WriteTxn {
            states: (0..base.tables.len()).map(|_| None).collect(),
            logs: (0..base.tables.len())
                .map(|_| TableLog::default())
                .collect(),
            db,
            base,
            locked,
            hooks: Vec::new(),
            changes: feed.then(Changes::default),
            tracked: false,
            wrote: false,
            scratch: SCRATCH.with(|c| c.take()).unwrap_or_default(),
        }
    }

    /// Records every changed object; the list comes back from
    /// [`WriteTxn::commit`].
    pub fn track_changes(&mut self) {
        self.tracked = true;
        self.changes.get_or_insert_with(Changes::default);
    }

    /// Runs `f` after this transaction commits (never if it aborts), after
    /// the new version is visible to readers.
    pub fn defer(&mut self, f: impl FnOnce() + Send + 'static) {
        self.hooks.push(Box::new(f));
    }

    /// The revision this transaction started from.
    pub fn base_revision(&self) -> u64 {
        self.base.revision
    }

    fn table_mut<T: Send + Sync + 'static>(&mut self, table: &Table<T>) -> Result<TableMut<'_, T>> {
        let id = table.id();
        if table.schema != self.db.schema.id {
            return Err(Error::ForeignHandle(table.name().to_string()));
        }
        if self.locked.binary_search(&id).is_err() {
            return Err(Error::TableNotLocked(table.name().to_string()));
        }
        let slot = &mut self.states[id];
        if slot.is_none() {
            *slot = Some(self.db.schema.tables[id].thaw(&self.base.tables[id]));
            if self.db.watches[id].watched() {
                self.logs[id].keys = Some(KeyLog::default());
            }
        }
        // The private state is this transaction's alone (`thaw` made it).
        let Some(state) = slot.as_mut().and_then(Arc::get_mut) else {
            unreachable!("a write transaction's private state is shared")
        };
        let state = state_mut::<T>(state, table.name());
        Ok(TableMut {
            state,
            scratch: &mut self.scratch,
            log: &mut self.logs[id],
            changes: self.changes.as_mut(),
            revision: self.base.revision + 1,
            created: None,
        })
    }

    /// Inserts `obj`, replacing the object with the same primary key;
    /// returns the replaced object. On a unique-index conflict or a missing
    /// primary key it fails and leaves the transaction as it was.
    pub fn insert<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: impl Into<Arc<T>>,
    ) -> Result<Option<Arc<T>>> {
        Ok(self
            .write_obj(table, obj.into(), Cond::Any)?
            .map(|v| v.object))
    }

    /// Inserts every object of `objects`: the result is that of
    /// [`WriteTxn::insert`] of each in turn, except that of several objects
    /// with one primary key only the last counts (the earlier ones are
    /// skipped, as if replaced before anything could see them, so they
    /// cannot cause a unique conflict). All or nothing: on an error (a
    /// unique-index conflict, a missing or invalid key) the transaction is
    /// left as it was. Returns how many objects were given.
    ///
    /// Into a table with no rows in this transaction, the table is built
    /// bottom-up: the objects are sorted by primary key (unless they come
    /// sorted), each tree is built once, node by node, and the secondary
    /// indexes on separate threads, which is several times faster than
    /// inserting one by one. Into a table with rows, the objects are
    /// inserted one by one.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// # struct User { id: u32, team: String }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<User>("user");
    /// # let by_id = t.primary("id", Indexer::value(|u: &User| u.id));
    /// # let by_team = t.index("team", Indexer::string(|u: &User| u.team.as_str()));
    /// # let users = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// let mut w = db.write(&[&users]);
    /// let loaded = w.insert_all(&users, (0..10_000u32).rev().map(|id| User {
    ///     id,
    ///     team: format!("team-{}", id % 10),
    /// }))?;
    /// assert_eq!(loaded, 10_000);
    /// w.commit()?;
    /// let r = db.read();
    /// assert_eq!(r.first(&by_id, &0)?.unwrap().team, "team-0");
    /// assert_eq!(r.count(&by_team, "team-3")?, 1_000);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn insert_all<T: Send + Sync + 'static, O: Into<Arc<T>>>(
        &mut self,
        table: &Table<T>,
        objects: impl IntoIterator<Item = O>,
    ) -> Result<usize> {
        let def = table.def.clone();
        let objs: Vec<Arc<T>> = objects.into_iter().map(Into::into).collect();
        if objs.is_empty() {
            return Ok(0);
        }
        let m = self.table_mut(table)?;
        let n = insert_many(&def, m, objs)?;
        self.wrote = true;
        Ok(n)
    }

    /// Inserts `obj` only if no object has its primary key; otherwise fails
    /// with [`Error::Conflict`] (carrying the existing object's modified
    /// revision) and leaves the transaction as it was.
    ///
    /// ```
    /// # use pandodb::{Db, Error, Indexer, Query, Schema};
    /// # struct User { name: String }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<User>("user");
    /// # t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    /// # let users = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// let mut w = db.write(&[&users]);
    /// w.insert_if_absent(&users, User { name: "bob".into() })?;
    /// let again = w.insert_if_absent(&users, User { name: "bob".into() });
    /// assert!(matches!(again, Err(Error::Conflict { current: Some(_), .. })));
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn insert_if_absent<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: impl Into<Arc<T>>,
    ) -> Result<()> {
        self.write_obj(table, obj.into(), Cond::Absent).map(|_| ())
    }

    /// Replaces the object with `obj`'s primary key only if its modified
    /// revision is `expected` (as read from [`Versioned::modified`]);
    /// returns the replaced object. Fails with [`Error::Conflict`] when the
    /// object changed since, or is gone, and leaves the transaction as it
    /// was: a stale read-modify-write never wins.
    ///
    /// ```
    /// # use pandodb::{Db, Error, Indexer, Query, Schema};
    /// # struct User { name: String, admin: bool }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<User>("user");
    /// # let by_name = t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    /// # let users = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// # let mut w = db.write(&[&users]);
    /// # w.insert(&users, User { name: "bob".into(), admin: false })?;
    /// # w.commit()?;
    /// let seen = db.read().get_versioned(&by_name, "bob")?.unwrap();
    /// // Meanwhile bob is deleted.
    /// let mut w = db.write(&[&users]);
    /// w.delete_all(&by_name, "bob")?;
    /// w.commit()?;
    /// // The stale write-back is refused.
    /// let mut w = db.write(&[&users]);
    /// let stale = w.update_if(&users, User { name: "bob".into(), admin: true }, seen.modified);
    /// assert!(matches!(stale, Err(Error::Conflict { current: None, .. })));
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn update_if<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: impl Into<Arc<T>>,
        expected: u64,
    ) -> Result<Arc<T>> {
        let old = self.write_obj(table, obj.into(), Cond::Modified(expected))?;
        match old {
            Some(v) => Ok(v.object),
            None => unreachable!("update_if: a met Modified condition implies an object"),
        }
    }

    fn write_obj<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: Arc<T>,
        cond: Cond,
    ) -> Result<Option<Versioned<T>>> {
        let def = table.def.clone();
        let m = self.table_mut(table)?;
        let old = insert_obj(&def, m, obj, cond)?;
        self.wrote = true;
        Ok(old)
    }

    /// Deletes the object with the same primary key as `obj`; returns it.
    pub fn delete<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: &T,
    ) -> Result<Option<Arc<T>>> {
        Ok(self.delete_obj(table, obj, Cond::Any)?.map(|v| v.object))
    }

    /// Deletes the object with `obj`'s primary key only if its modified
    /// revision is `expected`; returns it. Fails with [`Error::Conflict`]
    /// when it changed since or is gone, leaving the transaction as it was.
    pub fn delete_if<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: &T,
        expected: u64,
    ) -> Result<Arc<T>> {
        let old = self.delete_obj(table, obj, Cond::Modified(expected))?;
        match old {
            Some(v) => Ok(v.object),
            None => unreachable!("delete_if: a met Modified condition implies an object"),
        }
    }

    fn delete_obj<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: &T,
        cond: Cond,
    ) -> Result<Option<Versioned<T>>> {
        let def = table.def.clone();
        let m = self.table_mut(table)?;
        let pk = primary_key(&def, &mut m.scratch.new, obj)?;
        check(&def, &pk, m.state.rows.get(&pk), cond)?;
        let old = delete_pk(&def, m, &pk);
        self.wrote |= old.is_some();
        Ok(old)
    }

    /// Deletes every object whose key in `idx` equals `key`; returns how many.
    pub fn delete_all<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &mut self,
        idx: &Index<T, K>,
        key: &K,
    ) -> Result<usize> {
        self.check_locked(idx)?;
        let victims: Vec<Arc<T>> = super::Query::iter(self, idx, key)?.collect();
        self.delete_objects(idx, victims)
    }

    /// Deletes every object whose key in `idx` starts with `prefix`.
    pub fn delete_prefix<T: Send + Sync + 'static, K: Encode + ?Sized>(
        &mut self,
        idx: &Index<T, K>,
        prefix: &K,
    ) -> Result<usize> {
        self.check_locked(idx)?;
        let victims: Vec<Arc<T>> = super::Query::prefix(self, idx, prefix)?.collect();
        self.delete_objects(idx, victims)
    }

    /// Fails unless the index belongs to this schema and its table is locked.
    fn check_locked<T, K: ?Sized>(&self, idx: &Index<T, K>) -> Result<()> {
        if idx.schema != self.db.schema.id {
            return Err(Error::ForeignHandle(idx.table_name.to_string()));
        }
        if self.locked.binary_search(&idx.table).is_err() {
            return Err(Error::TableNotLocked(idx.table_name.to_string()));
        }
        Ok(())
    }

    fn delete_objects<T: Send + Sync + 'static, K: ?Sized>(
        &mut self,
        idx: &Index<T, K>,
        victims: Vec<Arc<T>>,
    ) -> Result<usize> {
        let Some(def) = self.table_def::<T>(idx.table) else {
            return Err(Error::ForeignHandle(idx.table_name.to_string()));
        };
        let table = crate::schema::Table {
            schema: idx.schema,
            def,
        };
        // A multi-value index can list one object under several keys:
        // count objects actually deleted.
        let mut n = 0;
        for v in victims {
            n += usize::from(self.delete(&table, &v)?.is_some());
        }
        Ok(n)
    }

    fn table_def<T: Send + Sync + 'static>(&self, id: usize) -> Option<Arc<TableDef<T>>> {
        // The schema stores `TableDef<T>` behind a trait object; recover the
        // typed definition through `Any`.
        let any = self.db.schema.tables.get(id)?.clone().into_any();
        any.downcast::<TableDef<T>>().ok()
    }

    /// Publishes every write as one new version, then runs the deferred
    /// hooks. Returns the new revision and, if tracked, the changes.
    pub fn commit(mut self) -> Result<Commit> {
        let mut changed = Vec::new();
        for (id, state) in self.states.iter_mut().enumerate() {
            if let Some(s) = state.take() {
                changed.push((id, s));
            }
        }
        let changes = self.changes.take().unwrap_or_default();
        let tracked = if self.tracked {
            changes.list.clone()
        } else {
            Vec::new()
        };
        if !self.wrote {
            // Private states go before the locks (see `release`).
            drop(changed);
            self.release();
            self.run_hooks();
            return Ok(Commit {
                revision: self.base.revision,
                changes: tracked,
            });
        }
        let start = Instant::now();
        let predicted = self.base.revision + 1;
        let record = match self.db.log_record(&changes.list, predicted) {
            Ok(r) => r,
            Err(e) => {
                drop(changed);
                self.release();
                return Err(e);
            }
        };
        let logs = changed
            .iter()
            .map(|&(id, _)| {
                let log = std::mem::take(&mut self.logs[id]);
                (id, log.pks, log.keys)
            })
            .collect();
        let feed = self.db.feed.enabled();
        let tables = changed.len();
        let db = self.db.clone();
        // The base goes with the commit (see `PendingCommit::base`); this
        // transaction keeps a stand-in with the same revision.
        let stand_in = Arc::new(Root {
            revision: self.base.revision,
            tables: Box::new([]),
            watches: self.base.watches.clone(),
            schema: self.base.schema.clone(),
        });
        let base = std::mem::replace(&mut self.base, stand_in);
        let revision = db.publish(
            PendingCommit {
                states: changed,
                predicted,
                logs,
                changes: feed.then_some((changes.list, changes.bytes)),
                record,
                base,
            },
            || self.release(),
        )?;
        db.timing.done(revision, tables, start.elapsed());
        self.run_hooks();
        Ok(Commit {
            revision,
            changes: tracked,
        })
    }

    fn run_hooks(&mut self) {
        for hook in std::mem::take(&mut self.hooks) {
            hook();
        }
    }

    /// Discards every write (the same as dropping the transaction).
    pub fn abort(self) {}

    /// Releases the writer locks. The private states must be gone (or
    /// published, their ledgers queued for the next writer) by then: their
    /// trees may lend from base nodes (see `tree::Ledger`), whose counts
    /// the next writer of the same tables relies on.
    fn release(&mut self) {
        self.states.iter_mut().for_each(|s| *s = None);
        for id in std::mem::take(&mut self.locked) {
            self.db.locks[id].release();
        }
    }
}

impl Drop for WriteTxn {
    fn drop(&mut self) {
        self.release();
        let scratch = std::mem::take(&mut self.scratch);
        SCRATCH.with(|c| c.set(Some(scratch)));
    }
}

thread_local! {
    /// Key buffers kept between the write transactions of a thread.
    static SCRATCH: std::cell::Cell<Option<Scratch>> = const { std::cell::Cell::new(None) };
}

impl super::sealed::Source for WriteTxn {
    #[inline]
    fn state(&self, schema: u64, id: usize) -> Option<&(dyn Any + Send + Sync)> {
        if schema != self.db.schema.id {
            return None;
        }
        match self.states.get(id)? {
            Some(s) => Some(&**s),
            None => self.base.tables.get(id).map(|s| &**s),
        }
    }
}

impl super::Query for WriteTxn {}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("base_revision", &self.base.revision)
            .field("tables", &self.locked)
            .finish()
    }
}
