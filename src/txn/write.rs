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
    warm: WarmKeys,
}

/// Most index entries one write walks ahead of time (see [`warm_paths`]).
const WARM_MAX: usize = 8;

/// The stored index keys a write is about to look up, kept side by side
/// so that their paths can be walked together first (see [`warm_paths`]).
///
/// A key close to the last one looked at for the same tree of the same
/// table (of the same length, differing over at most [`WARM_NEAR`] bytes:
/// ascending ids, or `u{i}@example.com`) is left out: its path is most
/// likely still cached, and walking it again would only cost time
/// (measured with every path walked: +12 % on an ascending bulk load). "Looked at" counts the
/// keys of writes that then failed a condition, and old keys removed; the
/// buffers are kept per thread, and a write to another table starts them
/// afresh. Keys longer than [`WARM_KEY_MAX`] are never walked or copied.
#[derive(Default)]
struct WarmKeys {
    buf: Vec<u8>,
    /// (index, start, end) of each key in `buf`.
    spans: Vec<(usize, usize, usize)>,
    /// A by-revision key.
    rev: Vec<u8>,
    /// The table the last keys below belong to (its definition's address).
    table: usize,
    /// The last key looked at per index tree, and in the by-revision tree.
    last: Vec<Vec<u8>>,
    last_rev: Vec<u8>,
}

/// Longest key (stored form) a write walks ahead of time.
const WARM_KEY_MAX: usize = 256;

/// Keys that differ from the previous one in this many bytes or fewer
/// (from the first byte that differs to the last) count as close (see
/// [`WarmKeys`]).
const WARM_NEAR: usize = 3;

/// Whether `key` is far from `last` (see [`WarmKeys`]): of another length,
/// or differing over more than [`WARM_NEAR`] bytes. `last` becomes `key`.
fn far(last: &mut Vec<u8>, key: &[u8]) -> bool {
    if last.len() != key.len() {
        last.clear();
        last.extend_from_slice(key);
        return true;
    }
    match differing(last, key) {
        None => false,
        Some((first, end)) => {
            last[first..end].copy_from_slice(&key[first..end]);
            end - first > WARM_NEAR
        }
    }
}

/// For `a` and `b` of the same length: the range from the first byte
/// where they differ to the last (`None` when equal). Eight bytes at a
/// time; the last eight overlap the ones before when the length is not a
/// multiple of eight.
fn differing(a: &[u8], b: &[u8]) -> Option<(usize, usize)> {
    let n = a.len().min(b.len());
    if n < 8 {
        let first = (0..n).find(|&i| a[i] != b[i])?;
        let last = (0..n).rfind(|&i| a[i] != b[i])?;
        return Some((first, last + 1));
    }
    let word =
        |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let mut first = None;
    let mut end = 0;
    let mut at = 0;
    loop {
        let d = word(a, at) ^ word(b, at);
        if d != 0 {
            // Byte j of the word is bits 8j..8j+8. An overlapping last word
            // cannot move `first`: the words before it covered its start.
            first.get_or_insert(at + d.trailing_zeros() as usize / 8);
            end = at + 8 - d.leading_zeros() as usize / 8;
        }
        if at + 8 == n {
            return first.map(|f| (f, end));
        }
        at = (at + 8).min(n - 8);
    }
}

impl WarmKeys {
    /// Starts the keys of one write to the table defined at `def`.
    fn start<T>(&mut self, def: &TableDef<T>) {
        self.buf.clear();
        self.spans.clear();
        let table = std::ptr::from_ref(def).addr();
        if self.table != table {
            self.table = table;
            self.last.iter_mut().for_each(Vec::clear);
            self.last_rev.clear();
        }
    }

    /// Adds the stored form of `key` in index `i` (see [`entry_key`]),
    /// unless it is close to the last one, too long, or [`WARM_MAX`] keys
    /// are held.
    fn push(&mut self, i: usize, unique: bool, key: &[u8], pk: &[u8]) {
        let len = key.len() + if unique { 0 } else { pk.len() };
        if self.spans.len() == WARM_MAX || len > WARM_KEY_MAX {
            return;
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(key);
        if !unique {
            self.buf.extend_from_slice(pk);
        }
        if self.last.len() <= i {
            self.last.resize_with(i + 1, Vec::new);
        }
        if far(&mut self.last[i], &self.buf[start..]) {
            self.spans.push((i, start, self.buf.len()));
        } else {
            self.buf.truncate(start);
        }
    }

    /// `pk`, unless it is close to the last primary key (of index
    /// `primary`).
    fn row<'k>(&mut self, primary: usize, pk: &'k [u8]) -> Option<&'k [u8]> {
        if pk.len() > WARM_KEY_MAX {
            return None;
        }
        if self.last.len() <= primary {
            self.last.resize_with(primary + 1, Vec::new);
        }
        far(&mut self.last[primary], pk).then_some(pk)
    }

    /// Makes `rev` the by-revision key of `pk` at `revision`; returns
    /// whether it is far from the last.
    fn by_revision(&mut self, revision: u64, pk: &[u8]) -> bool {
        if pk.len() > WARM_KEY_MAX {
            return false;
        }
        revision_key(&mut self.rev, revision, pk);
        far(&mut self.last_rev, &self.rev)
    }
}

/// Walks the paths a write is about to take (its row at `pk`, the index
/// entries in `keys`, the by-revision entry `rev`) one level at a time in
/// turn (see [`crate::tree::Descent`]): their cache misses overlap instead
/// of adding up, and the write that follows finds them cached.
fn warm_paths<T>(
    state: &TableState<T>,
    pk: Option<&[u8]>,
    keys: &[(usize, usize, usize)],
    buf: &[u8],
    rev: Option<&[u8]>,
) {
    let walks = usize::from(pk.is_some()) + keys.len() + usize::from(rev.is_some());
    if walks < 2 {
        // Nothing to overlap: the write's own descent is as fast.
        return;
    }
    let mut row = pk.map(|k| state.rows.descent(k));
    let mut by_rev = rev.map(|k| state.by_revision.descent(k));
    let mut entries: [Option<crate::tree::Descent<'_, Arc<T>>>; WARM_MAX] =
        std::array::from_fn(|_| None);
    for (d, &(i, a, b)) in entries.iter_mut().zip(keys) {
        *d = state.indexes.get(i).map(|t| t.descent(&buf[a..b]));
    }
    loop {
        let mut more = false;
        if let Some(d) = &mut row {
            more |= d.step();
        }
        for d in entries.iter_mut().flatten() {
            more |= d.step();
        }
        if let Some(d) = &mut by_rev {
            more |= d.step();
        }
        if !more {
            return;
        }
    }
}

/// Walks the paths of a replaced or deleted row's entries (see
/// [`warm_paths`]): its old index keys in `scratch.old` (without those the
/// new object in `scratch.new` keeps, when `keeps`) and its by-revision
/// entry at revision `modified`.
fn warm_replaced<T>(
    def: &TableDef<T>,
    state: &TableState<T>,
    scratch: &mut Scratch,
    pk: &[u8],
    modified: u64,
    keeps: bool,
) {
    let w = &mut scratch.warm;
    w.start(def);
    for (i, ix) in def.indexes.iter().enumerate() {
        if i != def.primary {
            for k in scratch.old[i].keys() {
                if !(keeps && scratch.new[i].contains_sorted(k)) {
                    w.push(i, ix.unique, k, pk);
                }
            }
        }
    }
    let rev = w.by_revision(modified, pk);
    warm_paths(state, None, &w.spans, &w.buf, rev.then_some(&w.rev[..]));
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
            // Private states go before the locks (see `release`).
            drop(changed);
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
                        drop(changed);
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

    /// Releases the writer locks. The private states must be gone (or
    /// published and settled) by then: their trees may lend from base
    /// nodes (see `tree::Ledger`), whose counts the next writer of the
    /// same tables relies on.
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
/// at most a key plus a primary key (or at most 17 bytes of revision plus a
/// primary key), which keeps it under the tree's 4 GiB key limit.
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
    // A row close to the last one (ascending ids: a bulk load) has its
    // path cached, and so, most often, do its index entries: no walk.
    let w = &mut scratch.warm;
    w.start(def);
    if let Some(row) = w.row(def.primary, &pk) {
        for (i, ix) in def.indexes.iter().enumerate() {
            if i != def.primary {
                for k in scratch.new[i].keys() {
                    w.push(i, ix.unique, k, &pk);
                }
            }
        }
        warm_paths(state, Some(row), &w.spans, &w.buf, None);
    }
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
        warm_replaced(def, state, scratch, &pk, old.modified, true);
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
    warm_replaced(def, state, scratch, pk, old.modified, false);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_matches_bytewise() {
        let mut r = crate::storage::fs::XorShift::new(7);
        for _ in 0..20_000 {
            let n = (r.next_u64() % 40) as usize;
            let a: Vec<u8> = (0..n).map(|_| (r.next_u64() % 3) as u8).collect();
            let mut b = a.clone();
            for _ in 0..r.next_u64() % 3 {
                if !b.is_empty() {
                    let i = (r.next_u64() as usize) % b.len();
                    b[i] ^= 1 << (r.next_u64() % 8);
                }
            }
            let diff: Vec<usize> = (0..n).filter(|&i| a[i] != b[i]).collect();
            let naive = match (diff.first(), diff.last()) {
                (Some(&f), Some(&l)) => Some((f, l + 1)),
                _ => None,
            };
            assert_eq!(differing(&a, &b), naive, "{a:?} {b:?}");
            assert_eq!(differing(&b, &a), naive, "{a:?} {b:?}");
            let mut last = a.clone();
            far(&mut last, &b);
            assert_eq!(last, b);
        }
    }

    #[test]
    fn near_keys_differ_in_a_few_bytes() {
        let mut last = Vec::new();
        assert!(far(&mut last, b"user-00000001"));
        assert!(!far(&mut last, b"user-00000002"));
        assert!(far(&mut last, b"user-00731245"));
        let mut last = b"u00000009@example.com".to_vec();
        assert!(!far(&mut last, b"u00000010@example.com"));
        assert!(far(&mut last, b"u73520931@example.com"));
        assert_eq!(last, b"u73520931@example.com");
        // At the bound: a span of WARM_NEAR (3) bytes is close, 4 is far.
        let mut last = b"id-000099".to_vec();
        assert!(!far(&mut last, b"id-000100"));
        let mut last = b"id-000999".to_vec();
        assert!(far(&mut last, b"id-001000"));
        // Another length is far.
        assert!(far(&mut last, b"id-01000"));
    }

    #[test]
    fn warm_keys_are_the_stored_keys() {
        let mut w = WarmKeys::default();
        let pk = b"pk\0\0";
        let mut stored = Vec::new();
        // A unique key is stored as it is, a non-unique one with the
        // primary key after it; close keys and overlong ones are left out.
        w.push(1, true, b"alpha", pk);
        w.push(2, false, b"beta", pk);
        w.push(2, false, b"betb", pk);
        w.push(3, true, &[7; WARM_KEY_MAX + 1], pk);
        let got: Vec<(usize, &[u8])> = w.spans.iter().map(|&(i, a, b)| (i, &w.buf[a..b])).collect();
        let beta = entry_key(false, b"beta", pk, &mut stored).to_vec();
        assert_eq!(got, [(1, &b"alpha"[..]), (2, &beta[..])]);
        // At most WARM_MAX keys.
        for i in 0..2 * WARM_MAX {
            w.push(
                4 + i,
                true,
                format!("key-{i:04}-{}", i * 7919).as_bytes(),
                pk,
            );
        }
        assert_eq!(w.spans.len(), WARM_MAX);
        // The by-revision key is the one the removal uses.
        assert!(w.by_revision(42, pk));
        revision_key(&mut stored, 42, pk);
        assert_eq!(w.rev, stored);
        assert!(!w.by_revision(43, pk), "the next revision is close");
    }
}
