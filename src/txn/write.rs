//! Write transactions: per-table writer locks, a private copy-on-write
//! version of the locked tables, index maintenance with unique checks, and
//! the commit that publishes everything at once.

use std::any::Any;
use std::sync::Arc;

use crate::db::{DbInner, Root};
use crate::error::{Error, Result};
use crate::index::KeySink;
use crate::index::key::Encode;
use crate::schema::{Index, Table, TableDef, TableState};

type Hook = Box<dyn FnOnce() + Send>;

/// A locked table's private state, with the transaction's scratch buffers and
/// change list.
type TableMut<'a, T> = (
    &'a mut TableState<T>,
    &'a mut Scratch,
    &'a mut Option<Vec<Change>>,
);

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
    table: Arc<str>,
    before: Option<Arc<dyn Any + Send + Sync>>,
    after: Option<Arc<dyn Any + Send + Sync>>,
}

impl Change {
    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
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
        let kind = match (&self.before, &self.after) {
            (None, Some(_)) => "insert",
            (Some(_), Some(_)) => "update",
            _ => "delete",
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
    hooks: Vec<Hook>,
    changes: Option<Vec<Change>>,
    wrote: bool,
    scratch: Scratch,
}

impl WriteTxn {
    pub(crate) fn begin(db: Arc<DbInner>, locked: Vec<usize>) -> Self {
        for &id in &locked {
            db.locks[id].acquire();
        }
        // Loaded after the locks: nobody else can commit these tables now.
        let base = db.load();
        WriteTxn {
            states: (0..base.tables.len()).map(|_| None).collect(),
            db,
            base,
            locked,
            hooks: Vec::new(),
            changes: None,
            wrote: false,
            scratch: SCRATCH.with(|c| c.take()).unwrap_or_default(),
        }
    }

    /// Records every changed object; the list comes back from
    /// [`WriteTxn::commit`].
    pub fn track_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
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
            *slot = Some(self.db.schema.tables[id].thaw(&self.base.tables[id]));
        }
        let state = slot
            .as_mut()
            .and_then(Arc::get_mut)
            .and_then(|s| s.downcast_mut::<TableState<T>>())
            .ok_or_else(|| Error::UnknownTable(table.name().to_string()))?;
        Ok((state, &mut self.scratch, &mut self.changes))
    }

    /// Inserts `obj`, replacing the object with the same primary key;
    /// returns the replaced object. On a unique-index conflict or a missing
    /// primary key it fails and leaves the transaction as it was.
    pub fn insert<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: impl Into<Arc<T>>,
    ) -> Result<Option<Arc<T>>> {
        let def = table.def.clone();
        let (state, scratch, changes) = self.table_mut(table)?;
        let obj = obj.into();
        let old = insert_obj(&def, state, scratch, obj.clone())?;
        if let Some(c) = changes {
            c.push(change(&def.name, old.clone(), Some(obj)));
        }
        self.wrote = true;
        Ok(old)
    }

    /// Deletes the object with the same primary key as `obj`; returns it.
    pub fn delete<T: Send + Sync + 'static>(
        &mut self,
        table: &Table<T>,
        obj: &T,
    ) -> Result<Option<Arc<T>>> {
        let def = table.def.clone();
        let (state, scratch, changes) = self.table_mut(table)?;
        let pk = primary_key(&def, &mut scratch.new, obj)?;
        let old = delete_pk(&def, state, scratch, &pk);
        if let (Some(c), Some(o)) = (changes, &old) {
            c.push(change(&def.name, Some(o.clone()), None));
        }
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
        let revision = if self.wrote {
            self.db.publish(changed)
        } else {
            self.base.revision
        };
        self.release();
        for hook in std::mem::take(&mut self.hooks) {
            hook();
        }
        Ok(Commit {
            revision,
            changes: self.changes.take().unwrap_or_default(),
        })
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

fn change<T: Send + Sync + 'static>(
    table: &str,
    before: Option<Arc<T>>,
    after: Option<Arc<T>>,
) -> Change {
    Change {
        table: table.into(),
        before: before.map(|o| o as Arc<dyn Any + Send + Sync>),
        after: after.map(|o| o as Arc<dyn Any + Send + Sync>),
    }
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

fn primary_key<T>(def: &TableDef<T>, sinks: &mut Vec<KeySink>, obj: &T) -> Result<Vec<u8>> {
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

fn insert_obj<T>(
    def: &TableDef<T>,
    state: &mut TableState<T>,
    scratch: &mut Scratch,
    obj: Arc<T>,
) -> Result<Option<Arc<T>>> {
    extract(def, &mut scratch.new, &obj);
    let pk = single_key(def, &scratch.new[def.primary])?;
    let old = state.indexes[def.primary].get(&pk).cloned();
    // Check every unique index before changing anything.
    for (i, ix) in def.indexes.iter().enumerate() {
        if !ix.unique || i == def.primary {
            continue;
        }
        for k in scratch.new[i].keys() {
            if let Some(holder) = state.indexes[i].get(k) {
                if !old.as_ref().is_some_and(|o| Arc::ptr_eq(o, holder)) {
                    return Err(Error::UniqueViolation {
                        table: def.name.clone(),
                        index: ix.name.clone(),
                        key: crate::index::key::display(k),
                    });
                }
            }
        }
    }
    if let Some(old) = &old {
        extract(def, &mut scratch.old, old);
        for (i, ix) in def.indexes.iter().enumerate() {
            if i == def.primary {
                continue;
            }
            for k in scratch.old[i].keys() {
                let stored = entry_key(ix.unique, k, &pk, &mut scratch.key);
                state.indexes[i].remove(stored);
            }
        }
    }
    for (i, ix) in def.indexes.iter().enumerate() {
        if i == def.primary {
            continue;
        }
        for k in scratch.new[i].keys() {
            // A plain insert (it looks the key up first): the key should be
            // new, but a user indexer that is not a pure function of the
            // object could have left a stale entry behind.
            let stored = entry_key(ix.unique, k, &pk, &mut scratch.key);
            state.indexes[i].insert(stored, obj.clone());
        }
    }
    // `old` was looked up under these very `pk` bytes: the key is new
    // exactly when there was no old object.
    let grows = old.is_none();
    state.indexes[def.primary].insert_known(&pk, obj, grows);
    Ok(old)
}

fn delete_pk<T>(
    def: &TableDef<T>,
    state: &mut TableState<T>,
    scratch: &mut Scratch,
    pk: &[u8],
) -> Option<Arc<T>> {
    let old = state.indexes[def.primary].get(pk)?.clone();
    // User indexers run before anything changes: one that panics leaves the
    // transaction as it was.
    extract(def, &mut scratch.old, &old);
    for (i, ix) in def.indexes.iter().enumerate() {
        if i == def.primary {
            continue;
        }
        for k in scratch.old[i].keys() {
            let stored = entry_key(ix.unique, k, pk, &mut scratch.key);
            state.indexes[i].remove(stored);
        }
    }
    state.indexes[def.primary].remove(pk);
    Some(old)
}
