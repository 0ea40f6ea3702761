//! Write transactions: per-table writer locks, a private copy-on-write
//! version of the locked tables, index maintenance with unique checks, and
//! the commit that publishes everything at once.

use std::any::Any;
use std::sync::Arc;

use crate::db::{DbInner, PendingCommit, Root};
use crate::error::{Error, Result};
use crate::index::KeySink;
use crate::index::key::Encode;
use crate::schema::{Index, Table, TableDef, TableState, Versioned, revision_key};
use crate::watch::KeyLog;

type Hook = Box<dyn FnOnce() + Send>;

/// What a write transaction notes per written table.
#[derive(Default)]
struct TableLog {
    /// Primary keys written (to renumber them if the commit's revision is
    /// not the one expected).
    pks: KeyLog,
    /// Every index key changed, when the table had watches.
    keys: Option<KeyLog>,
}

/// The changes recorded so far and their estimated size.
#[derive(Default)]
struct Changes {
    list: Vec<Change>,
    bytes: usize,
}

/// A locked table's private state, with the transaction's scratch buffers,
/// key log and change list.
struct TableMut<'a, T> {
    state: &'a mut TableState<T>,
    scratch: &'a mut Scratch,
    log: &'a mut TableLog,
    changes: Option<&'a mut Changes>,
    revision: u64,
    /// The created revision to give a row (restoring stored rows), instead
    /// of keeping the replaced row's or taking `revision`.
    created: Option<u64>,
}

/// What loading stored rows reuses between rows.
#[derive(Default)]
pub(crate) struct LoadCtx {
    scratch: Scratch,
    log: TableLog,
}

impl LoadCtx {
    /// A state to load rows into, with a fresh key log (loading logs
    /// nothing that is kept).
    fn table_mut<'a, T>(
        &'a mut self,
        state: &'a mut TableState<T>,
        revision: u64,
        created: Option<u64>,
    ) -> TableMut<'a, T> {
        // Reused row after row: cleared, not replaced (no allocation).
        self.log.pks.clear();
        self.log.keys = None;
        TableMut {
            state,
            scratch: &mut self.scratch,
            log: &mut self.log,
            changes: None,
            revision,
            created,
        }
    }
}

/// Inserts a stored row (snapshot restore, log replay) with its revisions,
/// maintaining every index (a unique conflict is an error).
pub(crate) fn load_row<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    state: &mut TableState<T>,
    ctx: &mut LoadCtx,
    obj: Arc<T>,
    created: u64,
    modified: u64,
) -> Result<()> {
    let m = ctx.table_mut(state, modified, Some(created));
    insert_obj(def, m, obj, Cond::Any).map(|_| ())
}

/// Deletes a stored row by primary key (log replay).
pub(crate) fn unload_row<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    state: &mut TableState<T>,
    ctx: &mut LoadCtx,
    pk: &[u8],
) {
    delete_pk(def, ctx.table_mut(state, 0, None), pk);
}

/// The condition of a conditional write.
#[derive(Clone, Copy)]
enum Cond {
    /// None: write whatever is there.
    Any,
    /// Only if no object has the primary key.
    Absent,
    /// Only if the object's modified revision is this.
    Modified(u64),
}

/// One object changed by a committed transaction.
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
/// w.track_changes();
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// let commit = w.commit()?;
/// let change = &commit.changes[0];
/// assert_eq!(change.table(), "person");
/// assert!(change.before::<Person>().is_none());
/// assert_eq!(change.after::<Person>().unwrap().age, 41);
/// # let _ = (by_id, by_age);
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct Change {
    table_id: usize,
    /// The created revision of the row written (`after`), for the log.
    created: u64,
    table: Arc<str>,
    before: Option<Arc<dyn Any + Send + Sync>>,
    after: Option<Arc<dyn Any + Send + Sync>>,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new object.
    Insert,
    /// An object replaced by another with the same primary key.
    Update,
    /// An object deleted.
    Delete,
}

impl Change {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table's position in the schema.
    pub(crate) fn table_id(&self) -> usize {
        self.table_id
    }

    /// Insert, update or delete.
    pub fn kind(&self) -> ChangeKind {
        match (&self.before, &self.after) {
            (None, _) => ChangeKind::Insert,
            (Some(_), Some(_)) => ChangeKind::Update,
            (Some(_), None) => ChangeKind::Delete,
        }
    }

    /// The object before the change (`None`: it was inserted).
    pub fn before<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.before.clone().and_then(|o| o.downcast().ok())
    }

    /// The object after the change (`None`: it was deleted).
    pub fn after<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.after.clone().and_then(|o| o.downcast().ok())
    }
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind() {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        };
        write!(f, "Change({} {kind})", self.table)
    }
}

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

/// Reusable key buffers (one per index) so writes do not allocate per key.
#[derive(Default)]
struct Scratch {
    new: Vec<KeySink>,
    old: Vec<KeySink>,
    key: Vec<u8>,
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
    states: Vec<Option<Arc<dyn Any + Send + Sync>>>,
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
        // Loaded after the locks: nobody else can commit these tables now.
        let base = db.load_latest();
        // The change records feed the change feed and the durable log.
        let feed = db.feed.enabled()
            || db
                .durable
                .as_ref()
                .is_some_and(|d| d.mode != crate::persist::Durability::None);
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
            return Err(Error::UnknownTable(table.name().to_string()));
        }
        if self.locked.binary_search(&id).is_err() {
            return Err(Error::TableNotLocked(table.name().to_string()));
        }
        let slot = &mut self.states[id];
        if slot.is_none() {
            *slot = Some(
                self.db.schema.tables[id]
                    .clone()
                    .thaw(&self.base.tables[id]),
            );
            if self.db.watches[id].watched() {
                self.logs[id].keys = Some(KeyLog::default());
            }
        }
        let state = slot
            .as_mut()
            .and_then(Arc::get_mut)
            .and_then(|s| s.downcast_mut::<TableState<T>>())
            .ok_or_else(|| Error::UnknownTable(table.name().to_string()))?;
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
        old.map(|v| v.object)
            .ok_or_else(|| Error::Schema("update_if: the condition admitted no object".into()))
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
        old.map(|v| v.object)
            .ok_or_else(|| Error::Schema("delete_if: the condition admitted no object".into()))
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
            return Err(Error::UnknownTable(idx.table_name.to_string()));
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
            return Err(Error::UnknownTable(idx.table_name.to_string()));
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
            self.release();
            self.run_hooks();
            return Ok(Commit {
                revision: self.base.revision,
                changes: tracked,
            });
        }
        let predicted = self.base.revision + 1;
        let record = match &self.db.durable {
            Some(d) if d.mode != crate::persist::Durability::None => {
                match self.log_record(&changes.list, predicted) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        self.release();
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        let logs = changed
            .iter()
            .map(|&(id, _)| {
                let log = std::mem::take(&mut self.logs[id]);
                (id, log.pks, log.keys)
            })
            .collect();
        let feed = self.db.feed.enabled();
        let db = self.db.clone();
        let revision = db.publish(
            PendingCommit {
                states: changed,
                predicted,
                logs,
                changes: feed.then_some((changes.list, changes.bytes)),
                record,
            },
            || self.release(),
        )?;
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

    /// The commit's log record: its changes in order, objects encoded by
    /// their tables' codecs.
    fn log_record(&self, changes: &[Change], predicted: u64) -> Result<Vec<u8>> {
        use crate::persist::format::{delete_op, put_op, record_tables};
        // The tables named, in order of first use.
        let mut ids: Vec<usize> = Vec::new();
        for c in changes {
            if !ids.contains(&c.table_id) {
                ids.push(c.table_id);
            }
        }
        let tables = &self.db.schema.tables;
        let names: Vec<(&str, u32)> = ids
            .iter()
            .map(|&id| (tables[id].name(), tables[id].codec_info().0))
            .collect();
        let mut rec = Vec::new();
        record_tables(&mut rec, &names);
        let (mut pk, mut data) = (Vec::new(), Vec::new());
        for c in changes {
            let def = &tables[c.table_id];
            let pos = ids.iter().position(|&id| id == c.table_id).unwrap_or(0);
            let obj = c.after.as_ref().or(c.before.as_ref());
            let Some(obj) = obj else { continue };
            data.clear();
            def.encode_object(&**obj, &mut pk, &mut data)?;
            match &c.after {
                Some(_) => {
                    // Created by this commit: "the record's own revision".
                    let created = if c.created == predicted { 0 } else { c.created };
                    put_op(&mut rec, pos, created, &pk, &data);
                }
                None => delete_op(&mut rec, pos, &pk),
            }
        }
        Ok(rec)
    }

    /// Discards every write (the same as dropping the transaction).
    pub fn abort(self) {}

    fn release(&mut self) {
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

fn record<T: Send + Sync + 'static>(
    changes: Option<&mut Changes>,
    def: &TableDef<T>,
    before: Option<&Arc<T>>,
    after: Option<&Arc<T>>,
    created: u64,
) {
    if let Some(c) = changes {
        let objects = usize::from(before.is_some()) + usize::from(after.is_some());
        c.bytes += std::mem::size_of::<Change>() + objects * std::mem::size_of::<T>();
        c.list.push(Change {
            table_id: def.id,
            created,
            table: def.shared_name.clone(),
            before: before.map(|o| o.clone() as Arc<dyn Any + Send + Sync>),
            after: after.map(|o| o.clone() as Arc<dyn Any + Send + Sync>),
        });
    }
}

/// Fails with [`Error::Conflict`] unless `current` satisfies `cond`.
fn check<T>(
    def: &TableDef<T>,
    pk: &[u8],
    current: Option<&Versioned<T>>,
    cond: Cond,
) -> Result<()> {
    let ok = match cond {
        Cond::Any => true,
        Cond::Absent => current.is_none(),
        Cond::Modified(rev) => current.is_some_and(|c| c.modified == rev),
    };
    if ok {
        return Ok(());
    }
    Err(Error::Conflict {
        table: def.name.clone(),
        key: crate::index::key::display(pk),
        expected: match cond {
            Cond::Modified(rev) => Some(rev),
            _ => None,
        },
        current: current.map(|c| c.modified),
    })
}

/// Fills one sink per index with the keys of `obj` (sorted, deduplicated).
fn extract<T>(def: &TableDef<T>, sinks: &mut Vec<KeySink>, obj: &T) {
    sinks.resize_with(def.indexes.len(), KeySink::default);
    for (ix, sink) in def.indexes.iter().zip(sinks.iter_mut()) {
        sink.clear(ix.case_insensitive);
        (ix.extract)(obj, sink);
        sink.dedup();
    }
}

pub(crate) fn primary_key<T>(
    def: &TableDef<T>,
    sinks: &mut Vec<KeySink>,
    obj: &T,
) -> Result<Vec<u8>> {
    sinks.resize_with(def.indexes.len(), KeySink::default);
    let ix = &def.indexes[def.primary];
    let sink = &mut sinks[def.primary];
    sink.clear(ix.case_insensitive);
    (ix.extract)(obj, sink);
    single_key(def, sink)
}

fn single_key<T>(def: &TableDef<T>, sink: &KeySink) -> Result<Vec<u8>> {
    let mut keys = sink.keys();
    match (keys.next(), keys.next()) {
        (Some(k), None) => Ok(k.to_vec()),
        (first, _) => Err(Error::MissingKey {
            table: def.name.clone(),
            index: def.indexes[def.primary].name.clone(),
            detail: match first {
                None => "the primary index yielded no key".into(),
                Some(_) => "the primary index yielded more than one key".into(),
            },
        }),
    }
}

/// The stored key of `key` in a non-unique index: value, then primary key.
fn entry_key<'b>(unique: bool, key: &'b [u8], pk: &[u8], buf: &'b mut Vec<u8>) -> &'b [u8] {
    if unique {
        key
    } else {
        buf.clear();
        buf.extend_from_slice(key);
        buf.extend_from_slice(pk);
        buf
    }
}

/// The longest index key an object may produce (1 GiB). A stored entry is
/// at most a key plus a primary key (or 16 bytes of revision plus a primary
/// key), which keeps it under the tree's 4 GiB key limit.
const MAX_KEY_BYTES: usize = 1 << 30;

fn insert_obj<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    m: TableMut<'_, T>,
    obj: Arc<T>,
    cond: Cond,
) -> Result<Option<Versioned<T>>> {
    let TableMut {
        state,
        scratch,
        log,
        changes,
        revision,
        created,
    } = m;
    extract(def, &mut scratch.new, &obj);
    for (ix, sink) in def.indexes.iter().zip(&scratch.new) {
        if let Some(k) = sink.keys().find(|k| k.len() > MAX_KEY_BYTES) {
            return Err(Error::InvalidKey(format!(
                "table {}, index {}: a key of {} bytes is over the limit of {MAX_KEY_BYTES}",
                def.name,
                ix.name,
                k.len()
            )));
        }
    }
    let pk = single_key(def, &scratch.new[def.primary])?;
    let old = state.rows.get(&pk).cloned();
    check(def, &pk, old.as_ref(), cond)?;
    // Check every unique index before changing anything.
    for (i, ix) in def.indexes.iter().enumerate() {
        if !ix.unique || i == def.primary {
            continue;
        }
        for k in scratch.new[i].keys() {
            if let Some(holder) = state.indexes[i].get(k)
                && !old.as_ref().is_some_and(|o| Arc::ptr_eq(&o.object, holder))
            {
                return Err(Error::UniqueViolation {
                    table: def.name.clone(),
                    index: ix.name.clone(),
                    key: crate::index::key::display(k),
                });
            }
        }
    }
    if let Some(old) = &old {
        extract(def, &mut scratch.old, &old.object);
        for (i, ix) in def.indexes.iter().enumerate() {
            if i == def.primary {
                continue;
            }
            for k in scratch.old[i].keys() {
                // A key the new object keeps is overwritten below (one
                // descent instead of a removal and a re-insertion). The
                // sinks are sorted by `extract`.
                if scratch.new[i].contains_sorted(k) {
                    continue;
                }
                let stored = entry_key(ix.unique, k, &pk, &mut scratch.key);
                state.indexes[i].remove(stored);
                if let Some(keys) = &mut log.keys {
                    keys.push(i, stored);
                }
            }
        }
        revision_key(&mut scratch.key, old.modified, &pk);
        state.by_revision.remove(&scratch.key);
    }
    for (i, ix) in def.indexes.iter().enumerate() {
        if i == def.primary {
            continue;
        }
        for k in scratch.new[i].keys() {
            // A plain insert (it looks the key up first): the key is new, or
            // one the old object had too (its value is replaced), or a stale
            // entry left by a user indexer that is not a pure function.
            let stored = entry_key(ix.unique, k, &pk, &mut scratch.key);
            state.indexes[i].insert(stored, obj.clone());
            if let Some(keys) = &mut log.keys {
                keys.push(i, stored);
            }
        }
    }
    let created = created.unwrap_or(old.as_ref().map_or(revision, |o| o.created));
    record(
        changes,
        def,
        old.as_ref().map(|o| &o.object),
        Some(&obj),
        created,
    );
    let row = Versioned {
        object: obj,
        created,
        modified: revision,
    };
    revision_key(&mut scratch.key, revision, &pk);
    state.by_revision.insert_known(&scratch.key, (), true);
    // `old` was looked up under these very `pk` bytes: the key is new
    // exactly when there was no old object.
    let grows = old.is_none();
    state.rows.insert_known(&pk, row, grows);
    log.pks.push(def.primary, &pk);
    if let Some(keys) = &mut log.keys {
        keys.push(def.primary, &pk);
    }
    Ok(old)
}

fn delete_pk<T: Send + Sync + 'static>(
    def: &TableDef<T>,
    m: TableMut<'_, T>,
    pk: &[u8],
) -> Option<Versioned<T>> {
    let TableMut {
        state,
        scratch,
        log,
        changes,
        ..
    } = m;
    let old = state.rows.get(pk)?.clone();
    // User indexers run before anything changes: one that panics leaves the
    // transaction as it was.
    extract(def, &mut scratch.old, &old.object);
    for (i, ix) in def.indexes.iter().enumerate() {
        if i == def.primary {
            continue;
        }
        for k in scratch.old[i].keys() {
            let stored = entry_key(ix.unique, k, pk, &mut scratch.key);
            state.indexes[i].remove(stored);
            if let Some(keys) = &mut log.keys {
                keys.push(i, stored);
            }
        }
    }
    revision_key(&mut scratch.key, old.modified, pk);
    state.by_revision.remove(&scratch.key);
    state.rows.remove(pk);
    if let Some(keys) = &mut log.keys {
        keys.push(def.primary, pk);
    }
    record(changes, def, Some(&old.object), None, 0);
    Some(old)
}
