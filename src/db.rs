//! The database: the published root (one atomic pointer), the per-table
//! writer locks, and the commit protocol that publishes a new root.

mod asyncs;
mod history;

use std::sync::Arc;
use std::time::Duration;

use crate::commit::DbInner;
use crate::error::{Error, Result};
use crate::feed::{Feed, Retention, Subscription};
use crate::persist::durable::{Durable, PastStates};
use crate::persist::{Durability, SnapshotInfo};
use crate::root::Root;
use crate::schema::{Schema, Table};
use crate::stats::Stats;
use crate::storage::fs::{StdFs, Vfs};
use crate::sync::Broken;
use crate::table::AnyState;
use crate::txn::{ReadTxn, WriteTxn};
use crate::watch::TableWatches;

/// How a database is set up beyond its schema.
///
/// ```
/// use pandodb::{Db, Indexer, Options, Retention, Schema};
/// # struct Person { id: String }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Person>("person");
/// # t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
/// # schema.add(t)?;
/// let db = Db::with_options(schema.build()?, Options::default().feed_retention(Retention::commits(100)));
/// # let _ = db;
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// How much history the change feed keeps.
    pub feed_retention: Retention,
    /// When a commit of a database opened from a directory is on disk.
    pub durability: Durability,
    /// Take a checkpoint (snapshot, then drop the log it covers) after this
    /// many bytes of log (0: only on demand). Default 64 MiB.
    pub checkpoint_bytes: u64,
    /// A commit that takes this long or longer logs a `tracing` warning
    /// (see `docs/GUIDE.md`, "Observing"). Default 100 ms.
    pub slow_commit: Duration,
    /// How many revisions before the current one [`Db::read_at`] can
    /// read. Default 0 (the current one only): a kept revision keeps the
    /// version each commit replaces alive, so the commit cannot free the
    /// nodes it copied cheaply (single-object updates at a million rows
    /// cost about twice as much; see `docs/PERFORMANCE.md`).
    pub read_history: usize,
    /// The file system (a simulated one in tests).
    pub(crate) vfs: VfsHandle,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            feed_retention: Retention::default(),
            durability: Durability::default(),
            checkpoint_bytes: 64 << 20,
            slow_commit: Duration::from_millis(100),
            read_history: 0,
            vfs: VfsHandle(Arc::new(StdFs)),
        }
    }
}

/// The file system of a durable database.
#[derive(Clone)]
pub(crate) struct VfsHandle(pub(crate) Arc<dyn Vfs>);

impl std::fmt::Debug for VfsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vfs")
    }
}

impl Options {
    /// Sets how much history the change feed keeps.
    pub fn feed_retention(mut self, r: Retention) -> Options {
        self.feed_retention = r;
        self
    }

    /// Sets when commits are on disk (databases opened from a directory).
    pub fn durability(mut self, d: Durability) -> Options {
        self.durability = d;
        self
    }

    /// Sets the log size that triggers an automatic checkpoint (0: never).
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Options {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Sets the latency from which a commit logs a `tracing` warning
    /// (`Duration::ZERO`: every commit; `Duration::MAX`: none).
    pub fn slow_commit(mut self, threshold: Duration) -> Options {
        self.slow_commit = threshold;
        self
    }

    /// Sets how many revisions before the current one [`Db::read_at`]
    /// can read (0: only the current one).
    pub fn read_history(mut self, revisions: usize) -> Options {
        self.read_history = revisions;
        self
    }

    /// Uses another file system (tests and fuzzing: the simulated one).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Options {
        self.vfs = VfsHandle(vfs);
        self
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
/// together. `Send + Sync`, so that a `&[&dyn TableRef]` held across an
/// `.await` keeps the future `Send`.
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
pub trait TableRef: Send + Sync {
    /// Id of the table within its schema.
    #[doc(hidden)]
    fn table_id(&self) -> usize;
    /// Id of the schema the table belongs to.
    #[doc(hidden)]
    fn schema_id(&self) -> u64;
}

impl<T: Send + Sync> TableRef for Table<T> {
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
        Self::with_options(schema, Options::default())
    }

    /// An empty database with the given schema and options.
    pub fn with_options(schema: Schema, options: Options) -> Db {
        Self::empty(schema, options, Broken::default())
    }

    /// The loom model's deliberately broken database (publishes without
    /// the publish lock). Only exists under `--cfg loom`.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn new_broken_for_loom(schema: Schema) -> Db {
        let broken = Broken {
            publish: true,
            watch: false,
        };
        Self::empty(schema, Options::default(), broken)
    }

    /// The loom model's database with a deliberately broken watch
    /// registration (it ignores commits since the reader's revision). Only
    /// exists under `--cfg loom`.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn new_broken_watch_for_loom(schema: Schema) -> Db {
        let broken = Broken {
            publish: false,
            watch: true,
        };
        Self::empty(schema, Options::default(), broken)
    }

    fn empty(schema: Schema, options: Options, broken: Broken) -> Db {
        let tables = schema
            .tables
            .iter()
            .map(|t| t.clone().empty_state())
            .collect();
        Self::from_states(schema, options, tables, 0, None, broken)
    }

    /// A database holding the given table states at `revision`.
    fn from_states(
        schema: Schema,
        options: Options,
        tables: Box<[AnyState]>,
        revision: u64,
        durable: Option<Durable>,
        broken: Broken,
    ) -> Db {
        let feed = Feed::new(options.feed_retention, revision);
        Self::with_feed(
            schema,
            options,
            tables,
            revision,
            durable,
            (feed, Vec::new()),
            broken,
        )
    }

    /// [`Db::from_states`] with a change feed and the states of past
    /// revisions for the read history (both rebuilt on open).
    fn with_feed(
        schema: Schema,
        options: Options,
        tables: Box<[AnyState]>,
        revision: u64,
        durable: Option<Durable>,
        (feed, past): (Feed, Vec<PastStates>),
        broken: Broken,
    ) -> Db {
        Db {
            inner: Arc::new(
                DbInner::new(schema, feed, tables, revision, durable, broken)
                    .slow_commit(options.slow_commit)
                    .read_history(options.read_history, past),
            ),
        }
    }

    /// Opens (or creates) a durable database in directory `dir`: loads the
    /// newest snapshot, replays the write-ahead log after its revision, and
    /// is ready. With [`Durability::Sync`] (the default) `commit()` returns
    /// only once its record is on disk, and no reader sees a commit before
    /// that; concurrent committers share one fdatasync. Every table needs
    /// [`TableBuilder::serde`](crate::TableBuilder::serde).
    ///
    /// A torn last log record (a crash mid-write) is cut off; damage
    /// anywhere else is [`Error::Corrupt`](crate::Error) naming the file and
    /// offset. After an I/O error on the write path, the failing commit
    /// returns the error and every later commit
    /// [`Error::WritesStopped`](crate::Error) until the database is
    /// reopened; reads keep working.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Options, Query, Schema};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Secret { path: String, value: String }
    /// fn schema() -> (Schema, pandodb::Table<Secret>, pandodb::Index<Secret, str>) {
    ///     let mut s = Schema::builder();
    ///     let mut t = s.table::<Secret>("secret");
    ///     let by_path = t.primary("path", Indexer::string(|x: &Secret| x.path.as_str()));
    ///     t.serde();
    ///     let secrets = s.add(t).unwrap();
    ///     (s.build().unwrap(), secrets, by_path)
    /// }
    /// let dir = std::env::temp_dir().join(format!("pandodb-doc-open-{}", std::process::id()));
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// {
    ///     let (s, secrets, _) = schema();
    ///     let db = Db::open(&dir, s, Options::default())?;
    ///     let mut w = db.write(&[&secrets]);
    ///     w.insert(&secrets, Secret { path: "db/password".into(), value: "hunter2".into() })?;
    ///     w.commit()?; // on disk when this returns
    /// }
    /// let (s, _, by_path) = schema();
    /// let db = Db::open(&dir, s, Options::default())?; // rehydrated
    /// assert_eq!(db.read().get(&by_path, "db/password")?.unwrap().value, "hunter2");
    /// # drop(db); std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn open(dir: impl AsRef<std::path::Path>, schema: Schema, options: Options) -> Result<Db> {
        schema.require_codecs()?;
        let opened = Durable::open(
            options.vfs.0.clone(),
            dir.as_ref(),
            &schema,
            options.durability,
            options.checkpoint_bytes,
            options.feed_retention,
            options.read_history,
        )?;
        let batched = match options.durability {
            Durability::Batched(every) => Some(every),
            _ => None,
        };
        let db = Self::with_feed(
            schema,
            options,
            opened.states.into(),
            opened.revision,
            Some(opened.durable),
            (opened.feed, opened.past),
            Broken::default(),
        );
        if let Some(every) = batched {
            // Syncs what committers left unsynced in quiet periods.
            let weak = Arc::downgrade(&db.inner);
            std::thread::Builder::new()
                .name("pandodb-flush".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(every);
                        let Some(inner) = weak.upgrade() else { break };
                        if let Some(d) = &inner.durable
                            && d.sync_if_due(true).is_err()
                        {
                            break;
                        }
                    }
                })
                .map_err(|e| Error::io("starting the flush thread", &e))?;
        }
        Ok(db)
    }

    /// Writes a checkpoint of a database opened from a directory: a snapshot
    /// of the latest durable version (to a temporary file, synced, renamed,
    /// directory synced), then removes the log segments and older snapshots
    /// it covers. Commits go on meanwhile. Checkpoints also happen on their
    /// own after [`Options::checkpoint_bytes`] of log.
    pub fn checkpoint(&self) -> Result<SnapshotInfo> {
        self.inner.checkpoint()
    }

    /// Writes a snapshot of the latest version to `w` (see
    /// [`ReadTxn::snapshot_to`]).
    pub fn snapshot_to(&self, w: impl std::io::Write) -> Result<SnapshotInfo> {
        self.read().snapshot_to(w)
    }

    /// A database holding the snapshot read from `r`, with `schema` (every
    /// table needs [`TableBuilder::serde`](crate::TableBuilder::serde)).
    /// Streams: one block of the snapshot is in memory at a time, and every
    /// index is rebuilt as rows arrive. Tables of the schema that the
    /// snapshot lacks start empty; indexes added since are built; rows of an
    /// older row version go through the table's migration hook.
    ///
    /// Damaged bytes, another schema or a newer format give a typed error
    /// ([`Error::Corrupt`](crate::Error) with the offset,
    /// [`Error::SchemaMismatch`](crate::Error),
    /// [`Error::UnsupportedVersion`](crate::Error)), never wrong data.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { name: String, age: u32 }
    /// fn schema() -> (Schema, pandodb::Table<User>, pandodb::Index<User, str>) {
    ///     let mut s = Schema::builder();
    ///     let mut t = s.table::<User>("user");
    ///     let by_name = t.primary("name", Indexer::string(|u: &User| u.name.as_str()));
    ///     t.serde();
    ///     let users = s.add(t).unwrap();
    ///     (s.build().unwrap(), users, by_name)
    /// }
    /// let (s, users, _) = schema();
    /// let db = Db::new(s);
    /// let mut w = db.write(&[&users]);
    /// w.insert(&users, User { name: "ann".into(), age: 41 })?;
    /// w.commit()?;
    /// let mut bytes = Vec::new();
    /// let info = db.snapshot_to(&mut bytes)?;
    /// assert_eq!((info.revision, info.rows), (1, 1));
    ///
    /// let (s, _, by_name) = schema();
    /// let copy = Db::restore_from(&bytes[..], s)?;
    /// assert_eq!(copy.revision(), 1);
    /// assert_eq!(copy.read().get(&by_name, "ann")?.unwrap().age, 41);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn restore_from(r: impl std::io::Read, schema: Schema) -> Result<Db> {
        Self::restore_with_options(r, schema, Options::default())
    }

    /// [`Db::restore_from`] with options.
    pub fn restore_with_options(
        r: impl std::io::Read,
        schema: Schema,
        options: Options,
    ) -> Result<Db> {
        schema.require_codecs()?;
        let (info, states) = crate::persist::snapshot::read_states(r, "<snapshot>", &schema)?;
        Ok(Self::from_states(
            schema,
            options,
            states.into(),
            info.revision,
            None,
            Broken::default(),
        ))
    }

    /// Replaces the whole state with the snapshot read from `r`, atomically:
    /// readers see either the old state or the new one, never a mix. Takes
    /// every writer lock for the duration. The database's revision becomes
    /// the snapshot's, which must not be older than the current one. Every
    /// watch fires; change-feed subscribers get
    /// [`Error::Compacted`](crate::Error) (the history before the snapshot
    /// is gone). On error nothing changes. Returns the new revision.
    pub fn install_snapshot(&self, r: impl std::io::Read) -> Result<u64> {
        let all = self.write_all();
        self.inner.check_open()?;
        let (info, states) =
            crate::persist::snapshot::read_states(r, "<snapshot>", &self.inner.schema)?;
        // Commits that released their locks but are still syncing first.
        let current = self.inner.flush_pending()?;
        if info.revision < current {
            return Err(Error::StaleSnapshot {
                snapshot: info.revision,
                current,
            });
        }
        let states: Box<[AnyState]> = states.into();
        if let Some(d) = &self.inner.durable {
            // On disk before it is visible: a checkpoint of the new state
            // (which also drops the log it supersedes).
            let root = Root {
                revision: info.revision,
                tables: states.clone(),
                watches: self.inner.watches.clone(),
                schema: self.inner.schema.clone(),
            };
            // The feed's history ends here too.
            d.checkpoint(&root, &self.inner.schema, &(info.revision, Vec::new()))?;
        }
        self.inner.replace_all(states, info.revision);
        drop(all);
        Ok(info.revision)
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// A read transaction: the latest committed version, frozen. Lock-free,
    /// never blocked by writers; cheap enough to take per lookup, and an
    /// O(1) view that can be kept and read for as long as needed (only a
    /// snapshot *file* is written, by [`snapshot_to`](Db::snapshot_to)).
    pub fn read(&self) -> ReadTxn {
        ReadTxn::new(self.inner.load(), self.inner.schema.id)
    }

    /// A read transaction at revision `rev` or later: the read to retry a
    /// compare-and-swap with. In [`Durability::Sync`] a writer builds on
    /// commits that are ordered but still syncing, so a conditional write
    /// can conflict with a revision no plain [`read`](Db::read) sees yet;
    /// re-reading at least at the refused transaction's
    /// [`base_revision`](crate::WriteTxn::base_revision) sees what refused
    /// it. Waits only for commits already made (sharing their log sync);
    /// in the other modes a made commit is visible at once and this never
    /// waits. Fails with [`Error::RevisionNotReached`] for a revision no
    /// commit has reached, and with the durable error that stopped writes
    /// if the awaited sync failed.
    ///
    /// ```
    /// # use pandodb::{Db, Error, Indexer, Query, Schema};
    /// # #[derive(Clone)] struct Counter { name: String, n: u64 }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<Counter>("counter");
    /// # let by_name = t.primary("name", Indexer::string(|c: &Counter| c.name.as_str()));
    /// # let counters = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// # let mut w = db.write(&[&counters]);
    /// # w.insert(&counters, Counter { name: "hits".into(), n: 0 })?;
    /// # w.commit()?;
    /// let mut at_least = 0;
    /// loop {
    ///     let seen = db.read_at_least(at_least)?.get_versioned(&by_name, "hits")?.unwrap();
    ///     let mut next = (*seen.object).clone();
    ///     next.n += 1;
    ///     let mut w = db.write(&[&counters]);
    ///     match w.update_if(&counters, next, seen.modified) {
    ///         Ok(_) => {
    ///             w.commit()?;
    ///             break;
    ///         }
    ///         // Re-read at least what the refusing transaction saw.
    ///         Err(Error::Conflict { .. }) => at_least = w.base_revision(),
    ///         Err(e) => return Err(e),
    ///     };
    /// }
    /// assert_eq!(db.read().get(&by_name, "hits")?.unwrap().n, 1);
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn read_at_least(&self, rev: u64) -> Result<ReadTxn> {
        Ok(ReadTxn::new(
            self.inner.load_at_least(rev)?,
            self.inner.schema.id,
        ))
    }

    /// The revision of the latest commit (0 before the first).
    pub fn revision(&self) -> u64 {
        self.inner.load().revision
    }

    /// A write transaction that may write the named tables. Blocks while
    /// another write transaction holds one of them; writers of disjoint
    /// tables run in parallel. Handles of another schema are ignored (a
    /// write to them fails with [`Error::ForeignHandle`](crate::Error)).
    ///
    /// A thread that calls `write` for a table while it still holds an
    /// unfinished write transaction on that table waits for itself forever:
    /// commit or drop the first one before beginning the next.
    pub fn write(&self, tables: &[&dyn TableRef]) -> WriteTxn {
        WriteTxn::begin(self.inner.clone(), self.lock_ids(tables))
    }

    /// The writer locks `tables` name, sorted (the order every writer takes
    /// them in, so none deadlocks).
    fn lock_ids(&self, tables: &[&dyn TableRef]) -> Vec<usize> {
        let mut ids: Vec<usize> = tables
            .iter()
            .filter(|t| t.schema_id() == self.inner.schema.id)
            .map(|t| t.table_id())
            .filter(|&id| id < self.inner.locks.len())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Subscribes to the change feed of the given tables (all tables when
    /// the slice is empty), from revision `from` on: the subscription
    /// yields one batch per commit with a revision `>= from` that changed
    /// one of them. Fails with [`Error::Compacted`](crate::Error) when `from`
    /// is older than the retained history.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Query, Schema};
    /// # struct Person { id: String }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<Person>("person");
    /// # t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    /// # let people = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// let mut feed = db.subscribe(&[&people], db.revision() + 1)?;
    /// let mut w = db.write(&[&people]);
    /// w.insert(&people, Person { id: "ann".into() })?;
    /// w.commit()?;
    /// let batch = feed.try_next()?.unwrap();
    /// assert_eq!(batch.revision, 1);
    /// assert_eq!(batch.changes[0].after::<Person>()?.unwrap().id, "ann");
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn subscribe(&self, tables: &[&dyn TableRef], from: u64) -> Result<Subscription> {
        self.inner.check_open()?;
        let ids = tables
            .iter()
            .filter(|t| t.schema_id() == self.inner.schema.id)
            .map(|t| t.table_id())
            .collect();
        Subscription::new(self.inner.feed.clone(), ids, from)
    }

    /// The number of registered (not yet fired) watches and an estimate of
    /// the heap bytes the watch registries use.
    pub fn watch_stats(&self) -> (usize, usize) {
        self.inner
            .watches
            .iter()
            .map(TableWatches::stats)
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    /// The database's figures now: revision, rows per table, watches,
    /// the change feed's retained history, and the commit and log-sync
    /// latency histograms (see [`Stats`]). Cheap: nothing walks the data.
    ///
    /// ```
    /// # use pandodb::{Db, Indexer, Schema};
    /// # struct Person { id: String }
    /// # let mut schema = Schema::builder();
    /// # let mut t = schema.table::<Person>("person");
    /// # t.primary("id", Indexer::string(|p: &Person| p.id.as_str()));
    /// # let people = schema.add(t)?;
    /// # let db = Db::new(schema.build()?);
    /// let mut w = db.write(&[&people]);
    /// w.insert(&people, Person { id: "ann".into() })?;
    /// w.commit()?;
    /// let stats = db.stats();
    /// assert_eq!((stats.revision, stats.rows["person"]), (1, 1));
    /// assert_eq!(stats.commit_latency.count(), 1);
    /// let p99 = stats.commit_latency.quantile(0.99).unwrap();
    /// # let _ = p99;
    /// # Ok::<(), pandodb::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let root = self.inner.load();
        let rows = self
            .inner
            .schema
            .tables
            .iter()
            .zip(root.tables.iter())
            .map(|(t, s)| (t.name().to_string(), t.row_count(&**s)))
            .collect();
        let (watches, watch_bytes) = self.watch_stats();
        let (feed_commits, feed_bytes) = self.inner.feed.stats();
        Stats {
            revision: root.revision,
            rows,
            watches,
            watch_bytes,
            feed_commits,
            feed_bytes,
            commit_latency: self.inner.timing.latency.snapshot(),
            sync_latency: self
                .inner
                .durable
                .as_ref()
                .map(|d| d.sync_latency.snapshot()),
        }
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
