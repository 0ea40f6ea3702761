//! [`DurableLogStore`]: a Raft log on disk, kept in a pandodb database
//! opened from a directory with [`Durability::Sync`].

// openraft's traits fix the error type (`StorageError`, ~190 bytes).
#![allow(clippy::result_large_err)]

use crate::purge_guard::PurgeGuard;
use std::fmt::{self, Debug};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    LogId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError, StorageIOError,
    Vote,
};
use pandodb::{Db, Durability, Index, Indexer, Options, Query, Schema, Table};
use serde::{Deserialize, Serialize};

/// One log entry: a row of the `raft_log` table, keyed by its index.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct LogRow<C: RaftTypeConfig> {
    index: u64,
    entry: C::Entry,
}

/// The primary key of the state table's only row.
const STATE_KEY: &str = "log";

/// The vote, the committed log id and the last purged log id: the only row
/// of the `raft_log_state` table.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct LogStateRow<C: RaftTypeConfig> {
    key: String,
    vote: Option<Vote<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    last_purged: Option<LogId<C::NodeId>>,
}

impl<C: RaftTypeConfig> Default for LogStateRow<C> {
    fn default() -> Self {
        LogStateRow {
            key: STATE_KEY.to_string(),
            vote: None,
            committed: None,
            last_purged: None,
        }
    }
}

impl<C: RaftTypeConfig> Clone for LogStateRow<C> {
    fn clone(&self) -> Self {
        LogStateRow {
            key: self.key.clone(),
            vote: self.vote.clone(),
            committed: self.committed.clone(),
            last_purged: self.last_purged.clone(),
        }
    }
}

/// How long a purge held by [`DurableLogStore::hold_purges_until_persisted`]
/// waits for a persisted snapshot that covers it before it keeps the
/// entries.
pub const PURGE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

struct Inner<C: RaftTypeConfig> {
    db: Db,
    dir: PathBuf,
    log: Table<LogRow<C>>,
    by_index: Index<LogRow<C>, u64>,
    state: Table<LogStateRow<C>>,
    state_by_key: Index<LogStateRow<C>, str>,
    /// Set by [`DurableLogStore::hold_purges_until_persisted`].
    guard: std::sync::OnceLock<PurgeGuard>,
}

/// A durable Raft log: entries, vote, committed log id and last purged log
/// id in a pandodb database opened from a directory in
/// [`Durability::Sync`] (pandodb's own write-ahead log and checkpoints; no
/// other storage engine).
///
/// - **Append.** Each [`RaftLogStorage::append`] batch is one write
///   transaction, so one fdatasync; openraft is told the entries are
///   flushed (the `LogFlushed` callback) only after the commit returned,
///   i.e. once they are on disk.
/// - **Vote and committed.** [`RaftLogStorage::save_vote`] and
///   [`RaftLogStorage::save_committed`] are on disk when they return.
/// - **Truncate and purge** are one transaction each (purge also records
///   the last purged log id in the same commit), so a crash leaves either
///   the log before or the log after, never a gap.
///
/// Entries are held in memory too (pandodb is an in-memory database); a
/// purge frees them. Clones share the same log. The directory is locked
/// while a store is open: to reopen it in the same process, drop every
/// clone first (openraft holds clones until `Raft::shutdown` returns);
/// [`DurableLogStore::open`] fails with
/// [`pandodb::Error::AlreadyOpen`] meanwhile.
///
/// ```
/// use pandodb_openraft::DurableLogStore;
/// openraft::declare_raft_types!(
///     Config: D = String, R = (), SnapshotData = std::io::Cursor<Vec<u8>>
/// );
///
/// let dir = std::env::temp_dir().join(format!("pandodb-doc-log-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let log = DurableLogStore::<Config>::open(&dir)?;
/// // Hand `log` to `openraft::Raft::new(..)` with a state machine.
/// # drop(log); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct DurableLogStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

impl<C: RaftTypeConfig> Clone for DurableLogStore<C> {
    fn clone(&self) -> Self {
        DurableLogStore {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig> Debug for DurableLogStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableLogStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn bound<T: Copy>(b: Bound<&T>) -> Bound<T> {
    match b {
        Bound::Included(v) => Bound::Included(*v),
        Bound::Excluded(v) => Bound::Excluded(*v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl<C: RaftTypeConfig> DurableLogStore<C> {
    /// Opens (or creates) the log in directory `dir`: a pandodb database
    /// directory of its own (do not share it with another database). What
    /// an earlier store committed there is found again: entries, vote,
    /// committed and last purged log ids. Fails with a typed
    /// [`pandodb::Error`]: [`Corrupt`](pandodb::Error::Corrupt) for damaged
    /// files (a torn last record, from a crash in the middle of an append,
    /// is cut off: that append was never reported flushed),
    /// [`AlreadyOpen`](pandodb::Error::AlreadyOpen) while another store has
    /// the directory open, [`Io`](pandodb::Error::Io).
    pub fn open(dir: impl AsRef<Path>) -> pandodb::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mut s = Schema::builder();
        let mut t = s.table::<LogRow<C>>("raft_log");
        let by_index = t.primary("index", Indexer::value(|r: &LogRow<C>| r.index));
        t.serde();
        let log = s.add(t)?;
        let mut t = s.table::<LogStateRow<C>>("raft_log_state");
        let state_by_key = t.primary("key", Indexer::string(|r: &LogStateRow<C>| r.key.as_str()));
        t.serde();
        let state = s.add(t)?;
        let db = Db::open(
            &dir,
            s.build()?,
            Options::default().durability(Durability::Sync),
        )?;
        Ok(DurableLogStore {
            inner: Arc::new(Inner {
                db,
                dir,
                log,
                by_index,
                state,
                state_by_key,
                guard: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Holds every purge of this log (and of its clones) until a snapshot
    /// persisted by the state machine covers it (see [`PurgeGuard`]: openraft
    /// 0.9 may purge up to a received snapshot before the state machine has
    /// written it to disk). A purge no persisted snapshot covers within
    /// [`PURGE_PATIENCE`] keeps the entries instead: keeping more log is
    /// always safe. Returns `false` (and changes nothing) when a guard was
    /// already given.
    ///
    /// ```no_run
    /// # fn demo<C: openraft::RaftTypeConfig, A: pandodb_openraft::Apply<C>>(
    /// #     log: pandodb_openraft::DurableLogStore<C>,
    /// #     sm: &pandodb_openraft::PandoStateMachine<C, A>) {
    /// if let Some(guard) = sm.purge_guard() {
    ///     log.hold_purges_until_persisted(guard);
    /// }
    /// # }
    /// ```
    pub fn hold_purges_until_persisted(&self, guard: PurgeGuard) -> bool {
        self.inner.guard.set(guard).is_ok()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The number of entries held (not purged).
    pub fn len(&self) -> usize {
        self.inner.db.read().len(&self.inner.log).unwrap_or(0)
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id of the last purged entry.
    pub fn last_purged(&self) -> pandodb::Result<Option<LogId<C::NodeId>>> {
        Ok(self.read_state(&self.inner.db.read())?.last_purged)
    }

    fn read_state(&self, q: &impl Query) -> pandodb::Result<LogStateRow<C>> {
        Ok(q.get(&self.inner.state_by_key, STATE_KEY)?
            .map(|r| (*r).clone())
            .unwrap_or_default())
    }

    /// Rewrites the state row with `f` applied, in one durable commit.
    fn update_state(&self, f: impl FnOnce(&mut LogStateRow<C>)) -> pandodb::Result<()> {
        let mut w = self.inner.db.write(&[&self.inner.state]);
        let mut row = self.read_state(&w)?;
        f(&mut row);
        w.insert(&self.inner.state, row)?;
        w.commit()?;
        Ok(())
    }

    fn append_rows(&self, entries: impl Iterator<Item = C::Entry>) -> pandodb::Result<()> {
        let mut w = self.inner.db.write(&[&self.inner.log]);
        for entry in entries {
            let index = entry.get_log_id().index;
            w.insert(&self.inner.log, LogRow::<C> { index, entry })?;
        }
        w.commit()?;
        Ok(())
    }

    fn truncate_rows(&self, from: u64) -> pandodb::Result<()> {
        let mut w = self.inner.db.write(&[&self.inner.log]);
        let doomed: Vec<_> = w.lower_bound(&self.inner.by_index, &from)?.collect();
        for row in doomed {
            w.delete(&self.inner.log, &row)?;
        }
        w.commit()?;
        Ok(())
    }

    fn purge_rows(&self, upto: LogId<C::NodeId>) -> pandodb::Result<()> {
        let tables: [&dyn pandodb::TableRef; 2] = [&self.inner.log, &self.inner.state];
        let mut w = self.inner.db.write(&tables);
        let mut state = self.read_state(&w)?;
        if state.last_purged.as_ref().is_some_and(|p| *p >= upto) {
            return Ok(());
        }
        let doomed: Vec<_> = w
            .range(
                &self.inner.by_index,
                Bound::Unbounded,
                Bound::Included(&upto.index),
            )?
            .collect();
        for row in doomed {
            w.delete(&self.inner.log, &row)?;
        }
        state.last_purged = Some(upto);
        w.insert(&self.inner.state, state)?;
        w.commit()?;
        Ok(())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for DurableLogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let lo = bound(range.start_bound());
        let hi = bound(range.end_bound());
        let r = self.inner.db.read();
        let rows = r
            .range(&self.inner.by_index, lo.as_ref(), hi.as_ref())
            .map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(rows.map(|row| row.entry.clone()).collect())
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for DurableLogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let r = self.inner.db.read();
        let state = self
            .read_state(&r)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last = r
            .all(&self.inner.by_index)
            .map_err(|e| StorageIOError::read_logs(&e))?
            .next_back()
            .map(|row| row.entry.get_log_id().clone());
        Ok(LogState {
            last_log_id: last.or(state.last_purged.clone()),
            last_purged_log_id: state.last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.update_state(|s| s.vote = Some(vote.clone()))
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_state(&self.inner.db.read())
            .map(|s| s.vote)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.update_state(|s| s.committed = committed)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_state(&self.inner.db.read())
            .map(|s| s.committed)
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // On disk when the commit returns (Durability::Sync): only then is
        // openraft told.
        match self.append_rows(entries.into_iter()) {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.truncate_rows(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        if let Some(g) = self.inner.guard.get()
            && !g.wait_for(log_id.index, PURGE_PATIENCE).await
        {
            return Ok(()); // nothing on disk covers it yet: the entries stay
        }
        self.purge_rows(log_id)
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
