//! The database: the published root (one atomic pointer), the per-table
//! writer locks, and the commit protocol that publishes a new root.

use std::any::Any;
use std::sync::Arc;

use crate::sync::{Condvar, Mutex, MutexGuard, PoisonError, RootCell};

use crate::schema::{Schema, Table};
use crate::txn::{ReadTxn, WriteTxn};

/// One immutable version of the whole database: per table, one tree per
/// index, and the revision of the commit that made it.
pub(crate) struct Root {
    pub(crate) revision: u64,
    pub(crate) tables: Box<[Arc<dyn Any + Send + Sync>]>,
}

/// The writer lock of one table. Held by at most one write transaction;
/// an owned handle (not a guard borrowing the database), so a write
/// transaction has no lifetime.
#[derive(Default)]
pub(crate) struct TableLock {
    locked: Mutex<bool>,
    freed: Condvar,
}

fn relock<'a, T>(
    r: Result<MutexGuard<'a, T>, PoisonError<MutexGuard<'a, T>>>,
) -> MutexGuard<'a, T> {
    // The lock protects plain flags that are always left consistent, so a
    // panic elsewhere while it was held does not invalidate them.
    r.unwrap_or_else(PoisonError::into_inner)
}

impl TableLock {
    pub(crate) fn acquire(&self) {
        let mut locked = relock(self.locked.lock());
        while *locked {
            locked = self
                .freed
                .wait(locked)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *locked = true;
    }

    pub(crate) fn release(&self) {
        *relock(self.locked.lock()) = false;
        self.freed.notify_one();
    }
}

pub(crate) struct DbInner {
    pub(crate) schema: Schema,
    root: RootCell<Root>,
    pub(crate) locks: Box<[TableLock]>,
    /// Serializes the read-modify-write of the root between writers of
    /// disjoint tables; held only for the pointer swap.
    publish: Mutex<()>,
    /// A deliberately broken variant for the loom model: publish without
    /// the publish lock (a lost update the model must catch).
    #[cfg(loom)]
    broken_publish: bool,
}

impl DbInner {
    pub(crate) fn load(&self) -> Arc<Root> {
        self.root.load()
    }

    /// Publishes the given table states on top of the latest root, as the
    /// next revision. The caller holds the writer locks of those tables.
    pub(crate) fn publish(&self, changed: Vec<(usize, Arc<dyn Any + Send + Sync>)>) -> u64 {
        let previous = {
            #[cfg(loom)]
            let _guard = (!self.broken_publish).then(|| relock(self.publish.lock()));
            #[cfg(not(loom))]
            let _guard = relock(self.publish.lock());
            let current = self.root.load();
            let mut tables = current.tables.clone();
            for (id, state) in changed {
                tables[id] = state;
            }
            let revision = current.revision + 1;
            // Publish the new root: from this swap on, every new reader sees it.
            (
                self.root.swap(Arc::new(Root { revision, tables })),
                revision,
            )
        };
        // Dropping the previous version can free a whole path of nodes: do it
        // after the lock, so writers of other tables are not held up by it.
        let (old, revision) = previous;
        drop(old);
        revision
    }
}

/// An embedded in-memory MVCC database: lock-free readers, writers
/// serialized per table.
///
/// ```
/// use pandodb::{Db, Indexer, Query, Schema};
/// #[derive(Debug, PartialEq)]
/// struct Person { id: String, age: i64 }
///
/// let mut schema = Schema::builder();
/// let mut t = schema.table::<Person>("person");
/// let by_id = t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// let by_age = t.index("age", Indexer::value(|p: &Person| p.age));
/// let people = schema.add(t)?;
/// let db = Db::new(schema.build()?);
///
/// let mut w = db.write(&[&people]);
/// w.insert(&people, Person { id: "ann".into(), age: 41 })?;
/// w.insert(&people, Person { id: "bob".into(), age: 41 })?;
/// let before = db.read();
/// w.commit()?;
///
/// assert_eq!(before.len(&people)?, 0); // a snapshot never changes
/// let r = db.read();
/// assert_eq!(r.count(&by_age, &41)?, 2);
/// assert_eq!(r.get(&by_id, "bob")?.unwrap().age, 41);
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<DbInner>,
}

/// Something a write transaction can lock: a [`Table`] handle. `db.write`
/// takes a slice of them, so tables of different object types can be locked
/// together.
///
/// ```
/// # use pandodb::{Db, Indexer, Schema, TableRef};
/// # struct A { id: u8 } struct B { id: u8 }
/// # let mut s = Schema::builder();
/// # let mut a = s.table::<A>("a"); a.primary("id", Indexer::value(|x: &A| x.id));
/// # let mut b = s.table::<B>("b"); b.primary("id", Indexer::value(|x: &B| x.id));
/// # let (a, b) = (s.add(a)?, s.add(b)?);
/// # let db = Db::new(s.build()?);
/// let tables: [&dyn TableRef; 2] = [&a, &b];
/// let mut w = db.write(&tables);
/// w.insert(&a, A { id: 1 })?;
/// w.insert(&b, B { id: 1 })?;
/// w.commit()?;
/// # Ok::<(), pandodb::Error>(())
/// ```
pub trait TableRef {
    /// Id of the table within its schema.
    #[doc(hidden)]
    fn table_id(&self) -> usize;
    /// Id of the schema the table belongs to.
    #[doc(hidden)]
    fn schema_id(&self) -> u64;
}

impl<T> TableRef for Table<T> {
    fn table_id(&self) -> usize {
        self.id()
    }
    fn schema_id(&self) -> u64 {
        self.schema
    }
}

impl Db {
    /// An empty database with the given schema.
    pub fn new(schema: Schema) -> Db {
        Self::with_publish(
            schema,
            #[cfg(loom)]
            false,
        )
    }

    /// The loom model's deliberately broken database (publishes without
    /// the publish lock). Only exists under `--cfg loom`.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn new_broken_for_loom(schema: Schema) -> Db {
        Self::with_publish(schema, true)
    }

    fn with_publish(schema: Schema, #[cfg(loom)] broken_publish: bool) -> Db {
        let tables = schema.tables.iter().map(|t| t.empty_state()).collect();
        let locks = schema.tables.iter().map(|_| TableLock::default()).collect();
        Db {
            inner: Arc::new(DbInner {
                schema,
                root: RootCell::new(Root {
                    revision: 0,
                    tables,
                }),
                locks,
                publish: Mutex::new(()),
                #[cfg(loom)]
                broken_publish,
            }),
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// A read transaction: the latest committed version, frozen. Lock-free,
    /// never blocked by writers; cheap enough to take per lookup.
    pub fn read(&self) -> ReadTxn {
        ReadTxn::new(self.inner.load(), self.inner.schema.id)
    }

    /// An O(1) snapshot of the latest version that can be kept and read
    /// forever (the same thing as a read transaction).
    pub fn snapshot(&self) -> ReadTxn {
        self.read()
    }

    /// The revision of the latest commit (0 before the first).
    pub fn revision(&self) -> u64 {
        self.inner.load().revision
    }

    /// A write transaction that may write the named tables. Blocks while
    /// another write transaction holds one of them; writers of disjoint
    /// tables run in parallel. Handles of another schema are ignored (a
    /// write to them fails with [`Error::UnknownTable`](crate::Error)).
    ///
    /// A thread that calls `write` for a table while it still holds an
    /// unfinished write transaction on that table waits for itself forever:
    /// commit or drop the first one before beginning the next.
    pub fn write(&self, tables: &[&dyn TableRef]) -> WriteTxn {
        let mut ids: Vec<usize> = tables
            .iter()
            .filter(|t| t.schema_id() == self.inner.schema.id)
            .map(|t| t.table_id())
            .filter(|&id| id < self.inner.locks.len())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        WriteTxn::begin(self.inner.clone(), ids)
    }

    /// A write transaction that may write every table.
    pub fn write_all(&self) -> WriteTxn {
        WriteTxn::begin(self.inner.clone(), (0..self.inner.locks.len()).collect())
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("schema", &self.inner.schema)
            .field("revision", &self.revision())
            .finish()
    }
}
