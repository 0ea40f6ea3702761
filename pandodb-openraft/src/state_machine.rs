//! [`PandoStateMachine`]: openraft's `RaftStateMachine` over a pandodb
//! database, and its snapshot builder.

// openraft's traits fix the error type (`StorageError`, ~190 bytes).
#![allow(clippy::result_large_err)]

use std::fmt;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, RaftTypeConfig, StorageError,
    StorageIOError, StoredMembership,
};
use pandodb::{Db, ReadTxn, WriteTxn};

use crate::meta::{MetaTable, RaftMeta};
use crate::purge_guard::PurgeGuard;
use crate::snapshot_dir::SnapshotDir;

/// What the application's apply function decided about its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied<R> {
    /// Commit the writes made in the transaction, with the entry; respond `R`.
    Commit(R),
    /// Discard the writes made in the transaction (the entry is still
    /// recorded as applied, in a transaction of its own); respond `R`. Use
    /// it to make a command all-or-nothing when a write in the middle fails.
    Rollback(R),
}

/// The application's side of the state machine: how a committed command
/// changes the database. Implemented for every closure
/// `Fn(&mut WriteTxn, &C::D) -> Applied<C::R>` when `C::R: Default`.
///
/// **Determinism.** Every replica runs `apply` on the same commands in the
/// same order and must reach the same state: use only the command and what
/// the transaction reads. No clocks, no randomness, no environment, no
/// iteration over hash maps, no state outside the database.
pub trait Apply<C: RaftTypeConfig>: Send + Sync + 'static {
    /// Applies one committed command inside the write transaction of its
    /// entry (which may write every table) and returns the response that
    /// openraft hands to the client that proposed it.
    fn apply(&self, txn: &mut WriteTxn, command: &C::D) -> Applied<C::R>;

    /// The response for an entry that carries no command: blank and
    /// membership entries, and entries skipped as already applied.
    fn empty_response(&self) -> C::R;

    /// Called after `apply` returned [`Applied::Rollback`], in the fresh
    /// write transaction that records the entry as applied (the rolled
    /// back writes are gone): what is written here is committed with the
    /// entry. Does nothing by default; [`Dedup`](crate::Dedup) records the
    /// request's response here. The determinism rules of `apply` hold.
    fn rolled_back(&self, txn: &mut WriteTxn, command: &C::D, response: &C::R) {
        let _ = (txn, command, response);
    }
}

impl<C, F> Apply<C> for F
where
    C: RaftTypeConfig,
    C::R: Default,
    F: Fn(&mut WriteTxn, &C::D) -> Applied<C::R> + Send + Sync + 'static,
{
    fn apply(&self, txn: &mut WriteTxn, command: &C::D) -> Applied<C::R> {
        self(txn, command)
    }

    fn empty_response(&self) -> C::R {
        C::R::default()
    }
}

/// The last snapshot built or installed: served to followers that need it.
struct StoredSnapshot<C: RaftTypeConfig> {
    meta: SnapshotMeta<C::NodeId, C::Node>,
    bytes: Arc<Vec<u8>>,
}

type Current<C> = Arc<Mutex<Option<StoredSnapshot<C>>>>;

fn lock<C: RaftTypeConfig>(c: &Current<C>) -> MutexGuard<'_, Option<StoredSnapshot<C>>> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps `new` as the current snapshot unless the current one is newer;
/// with a snapshot directory, writes it there durably first (under the
/// lock, so that files are written in the order of their snapshots).
fn offer<C: RaftTypeConfig>(
    current: &Current<C>,
    dir: Option<&SnapshotDir>,
    new: StoredSnapshot<C>,
) -> pandodb::Result<()> {
    let mut cur = lock(current);
    if cur
        .as_ref()
        .is_none_or(|c| c.meta.last_log_id <= new.meta.last_log_id)
    {
        if let Some(dir) = dir {
            dir.save::<C>(&new.meta, &new.bytes)?;
        }
        *cur = Some(new);
    }
    Ok(())
}

/// Runs `f` on a blocking thread when there is a Tokio runtime (file I/O
/// and serialization are not for the runtime's workers), else inline.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> pandodb::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => match rt.spawn_blocking(f).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        Err(_) => f().map_err(|e| e.to_string()),
    }
}

fn read_err<NID: openraft::NodeId>(e: pandodb::Error) -> StorageError<NID> {
    StorageIOError::read_state_machine(&e).into()
}

/// A pandodb database driven by openraft: implements
/// [`RaftStateMachine`] (storage v2) for a type config `C` whose entries
/// are [`openraft::Entry`] and whose snapshot data is `Cursor<Vec<u8>>`.
///
/// Every applied entry is one pandodb commit (one revision): `A::apply`'s
/// writes for a normal entry, plus the meta row recording the entry's log
/// id (and membership). All writes to the database must go through the
/// log: a commit made by anyone else would make the replicas' revisions,
/// and so their snapshots, differ; apply detects it and fails.
///
/// Reads need nothing from the state machine: keep a clone of the [`Db`]
/// and call `db.read()`.
pub struct PandoStateMachine<C: RaftTypeConfig, A> {
    db: Db,
    meta: MetaTable<C>,
    app: A,
    last_applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
    /// The database's revision after the last entry this state machine
    /// applied or installed.
    revision: u64,
    current: Current<C>,
    /// Where snapshots are persisted ([`PandoStateMachine::open_persisted`]).
    dir: Option<Arc<SnapshotDir>>,
}

impl<C: RaftTypeConfig, A> fmt::Debug for PandoStateMachine<C, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PandoStateMachine")
            .field("last_applied", &self.last_applied)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig, A: Apply<C>> PandoStateMachine<C, A> {
    /// A state machine over `db`, whose schema registered `meta` with
    /// [`register_meta`](crate::register_meta). The last applied log id and
    /// the membership are read from the database: a fresh database starts
    /// from nothing; one restored from a snapshot (or opened from a
    /// directory) resumes where its state was, and openraft replays the
    /// log from there.
    pub fn new(db: Db, meta: MetaTable<C>, app: A) -> pandodb::Result<Self> {
        let (m, revision) = meta.read(&db.read())?;
        Ok(PandoStateMachine {
            db,
            meta,
            app,
            last_applied: m.last_applied,
            membership: m.membership,
            revision,
            current: Arc::default(),
            dir: None,
        })
    }

    /// A state machine whose snapshots are persisted in `snapshot_dir` (a
    /// directory of its own, created if missing): every snapshot built or
    /// installed is written there durably (temporary file, fsync, rename,
    /// directory fsync) before openraft hears of it, so openraft, which
    /// purges the log only up to its last snapshot, never purges past what
    /// is on disk, whatever the database's durability.
    ///
    /// On open, the newest snapshot of the directory becomes the current
    /// one (what `get_current_snapshot` returns); when it is ahead of `db`
    /// (a [`Db::new`], or a database opened in a durability that lost
    /// entries), it is installed into `db` first, and openraft replays the
    /// log from there. A database ahead of it (opened in
    /// `Durability::Sync`) is kept as it is. Leftover temporary files are
    /// removed. A damaged snapshot file is
    /// [`pandodb::Error::Corrupt`], never a panic; one whose data does not
    /// match its metadata is `Corrupt` too.
    ///
    /// `docs/RAFT.md` lists the supported combinations of database
    /// durability, log store and snapshots, and what each costs.
    pub fn open_persisted(
        db: Db,
        meta: MetaTable<C>,
        app: A,
        snapshot_dir: impl AsRef<Path>,
    ) -> pandodb::Result<Self> {
        let dir = SnapshotDir::open(snapshot_dir.as_ref())?;
        let loaded = dir.load::<C>()?;
        let mut sm = Self::new(db, meta, app)?;
        sm.dir = Some(Arc::new(dir));
        let Some((smeta, bytes)) = loaded else {
            return Ok(sm);
        };
        let index = |l: &Option<LogId<C::NodeId>>| l.as_ref().map(|l| l.index);
        if index(&smeta.last_log_id) > index(&sm.last_applied) {
            let revision = sm.db.install_snapshot(&bytes[..])?;
            let (m, _) = sm.meta.read(&sm.db.read())?;
            if m.last_applied != smeta.last_log_id {
                return Err(pandodb::Error::Corrupt {
                    file: snapshot_dir.as_ref().display().to_string(),
                    offset: 0,
                    detail: format!(
                        "the snapshot's data was applied up to {:?}, its metadata says {:?}",
                        m.last_applied, smeta.last_log_id
                    ),
                });
            }
            sm.revision = revision;
            sm.last_applied = m.last_applied;
            sm.membership = m.membership;
        }
        *lock(&sm.current) = Some(StoredSnapshot {
            meta: smeta,
            bytes: Arc::new(bytes),
        });
        Ok(sm)
    }

    /// How far the snapshots this state machine persisted cover the log
    /// (`None` without a snapshot directory): give it to
    /// [`DurableLogStore::hold_purges_until_persisted`](crate::DurableLogStore::hold_purges_until_persisted)
    /// so that the log is never purged past what is on disk.
    pub fn purge_guard(&self) -> Option<PurgeGuard> {
        self.dir.as_ref().map(|d| d.guard().clone())
    }

    /// The database (a cheap handle: clone it to read).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The meta table.
    pub fn meta(&self) -> &MetaTable<C> {
        &self.meta
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The log id of the last applied entry.
    pub fn last_applied(&self) -> Option<LogId<C::NodeId>> {
        self.last_applied.clone()
    }

    /// The bytes of the current snapshot (the last one built or installed).
    pub fn current_snapshot_bytes(&self) -> Option<Arc<Vec<u8>>> {
        lock(&self.current).as_ref().map(|s| s.bytes.clone())
    }

    /// Applies one entry as one commit; returns its response.
    fn apply_one(&mut self, entry: &Entry<C>) -> Result<C::R, StorageError<C::NodeId>> {
        let log_id = entry.log_id.clone();
        if self
            .last_applied
            .as_ref()
            .is_some_and(|a| log_id.index <= a.index)
        {
            return Ok(self.app.empty_response());
        }
        let apply_err = |e: &dyn fmt::Display| -> StorageError<C::NodeId> {
            StorageIOError::apply(log_id.clone(), AnyError::error(e.to_string())).into()
        };
        let found = self.db.revision();
        if found != self.revision {
            return Err(apply_err(&format!(
                "the database is at revision {found} but the state machine left it at {}: \
                 it was written outside the Raft log",
                self.revision
            )));
        }
        let mut meta = RaftMeta::<C> {
            last_applied: Some(log_id.clone()),
            membership: self.membership.clone(),
            ..RaftMeta::default()
        };
        let mut w = self.db.write_all();
        let response = match &entry.payload {
            EntryPayload::Blank => self.app.empty_response(),
            EntryPayload::Normal(cmd) => match self.app.apply(&mut w, cmd) {
                Applied::Commit(r) => r,
                Applied::Rollback(r) => {
                    drop(w);
                    w = self.db.write_all();
                    self.app.rolled_back(&mut w, cmd, &r);
                    r
                }
            },
            EntryPayload::Membership(m) => {
                meta.membership = StoredMembership::new(Some(log_id.clone()), m.clone());
                self.app.empty_response()
            }
        };
        w.insert(&self.meta.table, meta.clone())
            .map_err(|e| apply_err(&e))?;
        let commit = w.commit().map_err(|e| apply_err(&e))?;
        if commit.revision != self.revision + 1 {
            return Err(apply_err(&format!(
                "entry committed as revision {} instead of {}",
                commit.revision,
                self.revision + 1
            )));
        }
        self.revision = commit.revision;
        self.last_applied = meta.last_applied;
        self.membership = meta.membership;
        Ok(response)
    }
}

impl<C, A> RaftStateMachine<C> for PandoStateMachine<C, A>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    A: Apply<C>,
{
    type SnapshotBuilder = PandoSnapshotBuilder<C>;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        Ok((self.last_applied.clone(), self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        entries.into_iter().map(|e| self.apply_one(&e)).collect()
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        PandoSnapshotBuilder {
            view: self.db.read(),
            meta: self.meta.clone(),
            current: self.current.clone(),
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let bytes = snapshot.into_inner();
        let snap_err = |e: &dyn fmt::Display| -> StorageError<C::NodeId> {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(e.to_string()))
                .into()
        };
        let revision = self
            .db
            .install_snapshot(&bytes[..])
            .map_err(|e| snap_err(&e))?;
        let (m, _) = self.meta.read(&self.db.read()).map_err(read_err)?;
        self.revision = revision;
        let mismatch = m.last_applied != meta.last_log_id;
        let msg = format!(
            "the snapshot's data was applied up to {:?}, its metadata says {:?}",
            m.last_applied, meta.last_log_id
        );
        self.last_applied = m.last_applied;
        self.membership = m.membership;
        if mismatch {
            return Err(snap_err(&msg));
        }
        let (current, dir) = (self.current.clone(), self.dir.clone());
        let stored = StoredSnapshot {
            meta: meta.clone(),
            bytes: Arc::new(bytes),
        };
        off_runtime(move || offer(&current, dir.as_deref(), stored))
            .await
            .map_err(|e| {
                StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e)).into()
            })
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        Ok(lock(&self.current).as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.bytes.as_ref().clone())),
        }))
    }
}

/// Builds a snapshot from the frozen read view taken by
/// [`RaftStateMachine::get_snapshot_builder`]: the entries applied since do
/// not change it, and it blocks none of them.
pub struct PandoSnapshotBuilder<C: RaftTypeConfig> {
    view: ReadTxn,
    meta: MetaTable<C>,
    current: Current<C>,
    dir: Option<Arc<SnapshotDir>>,
}

impl<C: RaftTypeConfig> PandoSnapshotBuilder<C> {
    /// The revision of the view this builder snapshots.
    pub fn revision(&self) -> u64 {
        self.view.revision()
    }
}

impl<C> RaftSnapshotBuilder<C> for PandoSnapshotBuilder<C>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let (m, _) = self.meta.read(&self.view).map_err(read_err)?;
        let snapshot_id = match &m.last_applied {
            Some(l) => format!("{}-{}-r{}", l.leader_id, l.index, self.view.revision()),
            None => format!("none-r{}", self.view.revision()),
        };
        let meta = SnapshotMeta {
            last_log_id: m.last_applied,
            last_membership: m.membership,
            snapshot_id,
        };
        let (view, current, dir) = (self.view.clone(), self.current.clone(), self.dir.clone());
        let stored_meta = meta.clone();
        // Serializing a large database is CPU work, persisting it I/O:
        // both off the runtime's worker threads.
        let bytes = off_runtime(move || -> pandodb::Result<Arc<Vec<u8>>> {
            let mut bytes = Vec::new();
            view.snapshot_to(&mut bytes)?;
            let bytes = Arc::new(bytes);
            let stored = StoredSnapshot {
                meta: stored_meta,
                bytes: bytes.clone(),
            };
            offer(&current, dir.as_deref(), stored)?;
            Ok(bytes)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(None, AnyError::error(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes.as_ref().clone())),
        })
    }
}
