//! Durable mode: a directory holding the newest snapshot and the
//! write-ahead log after it. This module owns opening (load the snapshot,
//! replay the log), the commit path's log append and group-commit sync,
//! making durable commits visible in revision order, fail-stop on I/O
//! errors, and checkpoints (snapshot, then drop the log it covers).
//!
//! Directory layout: `snap-<revision, 20 digits>.pdb` snapshot files (see
//! `storage::snapfile`), `wal-<first revision, 20 digits>.log` log segments
//! (see `storage::log`), `*.tmp` leftovers of interrupted snapshots,
//! removed on open, and `LOCK`, locked while a process has the database open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::feed::{Entry, Feed, Retention, now_ms};
use crate::root::Root;
use crate::schema::Schema;
use crate::stats::{Recorder, micros};
use crate::storage::fs::Vfs;
use crate::storage::log::{self, LogWriter};
use crate::storage::snapfile::{self, open_snapshot_file, write_snapshot_file};
use crate::sync::{Condvar, Mutex, PoisonError, lock};
use crate::table::{AnyState, TableLoader};

use super::SnapshotInfo;
use super::format::Op;
use super::history::{parse_history_name, read_history, write_history};
use super::recover::{self, DirFiles};
use super::snapshot::{header_of, read_from, write_rows};

/// When `commit()` returns relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `commit()` returns after the commit's log record is on disk
    /// (fdatasync; a new log file's directory is synced too), and no reader
    /// sees a commit before that. Concurrent committers share one sync.
    #[default]
    Sync,
    /// Commits are visible at once and written to the log; the log is
    /// synced at most every interval (by the committer that finds the last
    /// sync older than that, or a background thread). A crash loses at most
    /// about one interval of acknowledged commits.
    Batched(Duration),
    /// Memory only: nothing is logged; the directory changes only at a
    /// checkpoint (`Db::checkpoint`).
    None,
}

/// The name of the snapshot file of `revision`.
pub(crate) fn snapshot_name(revision: u64) -> String {
    format!("snap-{revision:020}.pdb")
}

/// The revision in a snapshot file name.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".pdb")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The log writer and what has been synced.
struct LogState {
    writer: LogWriter,
    synced: u64,
    last_sync: Instant,
}

/// The group-commit state: the revision synced so far and whether a
/// committer is syncing the next group.
#[derive(Default)]
struct GroupState {
    synced: u64,
    syncing: bool,
}

/// The durable side of a database.
pub(crate) struct Durable {
    /// Held while the database is open (one process per directory);
    /// released by `close`.
    dir_lock: Mutex<Option<Box<dyn Send + Sync>>>,
    /// Set by `close`: every write is refused with `Error::Closed`.
    closed: AtomicBool,
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    pub(crate) mode: Durability,
    /// Records appended by committers (under the publish lock, in revision
    /// order) and not yet handed to the log writer.
    queue: Mutex<Vec<(u64, Vec<u8>)>>,
    /// The log writer; held for the whole write + fdatasync of a group.
    log: Mutex<LogState>,
    /// Group commit: whether a group is being synced, and up to where.
    group: Mutex<GroupState>,
    group_done: Condvar,
    /// The first I/O error: from then on every write is refused.
    failed: Mutex<Option<String>>,
    stopped: AtomicBool,
    /// One checkpoint at a time.
    checkpointing: Mutex<()>,
    /// Log bytes appended since the last checkpoint, and the threshold of
    /// an automatic one (0: never).
    since_checkpoint: AtomicU64,
    checkpoint_bytes: u64,
    /// Segments are rotated at this size (recovery reads one at a time).
    segment_bytes: u64,
    /// The latency of each log sync (write + fdatasync of a group).
    pub(crate) sync_latency: Recorder,
}

/// What opening a directory found.
pub(crate) struct Opened {
    pub(crate) durable: Durable,
    pub(crate) states: Vec<AnyState>,
    pub(crate) revision: u64,
    /// The change feed, its history rebuilt: the commits the checkpoint
    /// kept, then those replayed from the log.
    pub(crate) feed: Feed,
    /// The table states of the last revisions before `revision` that the
    /// replay went through (at most the read history asked for), oldest
    /// first, consecutive.
    pub(crate) past: Vec<PastStates>,
}

/// The table states of one past revision.
pub(crate) type PastStates = (u64, Box<[AnyState]>);

/// What a checkpoint keeps of the change feed: the revision before the
/// first retained commit, and the retained commits up to the checkpoint.
pub(crate) type FeedHistory = (u64, Vec<Arc<Entry>>);

impl Durable {
    /// Opens (or creates) the directory: loads the newest snapshot, replays
    /// the log after it, and returns the state and the durable side.
    pub(crate) fn open(
        vfs: Arc<dyn Vfs>,
        dir: &Path,
        schema: &Schema,
        mode: Durability,
        checkpoint_bytes: u64,
        retention: Retention,
        read_history: usize,
    ) -> Result<Opened> {
        let _span = tracing::info_span!("pandodb.open", dir = %dir.display()).entered();
        let start = Instant::now();
        vfs.create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), &e))?;
        let dir_lock = vfs.lock_dir(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => Error::AlreadyOpen(dir.display().to_string()),
            _ => Error::io(format!("locking {}", dir.display()), &e),
        })?;
        snapfile::remove_temp_files(&*vfs, dir)?;
        let files = DirFiles::list(&*vfs, dir)?;
        let (mut revision, states) = match files.newest_snapshot() {
            Some(rev) => {
                let path = recover::snapshot_path(dir, rev);
                let reader = open_snapshot_file(&*vfs, &path)?;
                let (info, states) = read_snapshot(reader, schema)?;
                recover::check_snapshot_revision(&path, rev, info.revision)?;
                (rev, states)
            }
            None => (
                0,
                schema
                    .tables
                    .iter()
                    .map(|t| t.clone().empty_state())
                    .collect(),
            ),
        };
        let snapshot_rev = revision;
        let feed = open_feed(&*vfs, dir, snapshot_rev, schema, retention)?;
        let tracked = feed.enabled();
        // The states of the last `read_history + 1` revisions replayed (the
        // newest is the opened state itself, dropped at the end).
        let mut past: std::collections::VecDeque<PastStates> = std::collections::VecDeque::new();
        if read_history > 0 {
            past.push_back((revision, states.clone().into()));
        }
        let opened_ms = now_ms();
        let mut loaders: Vec<Option<Box<dyn TableLoader>>> =
            schema.tables.iter().map(|_| None).collect();
        let segments = files.segments;
        let segment_count = segments.len();
        let mut records = 0u64;
        let (writer, found) = log::recover_segments(vfs.clone(), dir, segments, |rev, payload| {
            let next = recover::next_record(dir, 0, rev, payload, revision, snapshot_rev)?;
            let Some((names, ops)) = next else {
                return Ok(());
            };
            let file = dir.display().to_string();
            // The record's tables, by name, in this schema.
            let mut map = Vec::with_capacity(names.len());
            for (name, version) in &names {
                let Some(t) = schema.tables.iter().position(|t| t.name() == *name) else {
                    return Err(Error::SchemaMismatch(format!(
                        "log record {rev} writes table {name:?}, which is not in the schema"
                    )));
                };
                map.push((t, *version));
            }
            let (mut changes, mut bytes) = (Vec::new(), 0);
            for op in ops {
                let table = match op {
                    Op::Put { table, .. } | Op::Delete { table, .. } => table,
                };
                let (t, version) = usize::try_from(table)
                    .ok()
                    .and_then(|i| map.get(i).copied())
                    .ok_or_else(|| Error::Corrupt {
                        file: file.clone(),
                        offset: 0,
                        detail: format!("log record {rev} names table #{table}"),
                    })?;
                let loader = loaders[t]
                    .get_or_insert_with(|| schema.tables[t].clone().loader(Some(&states[t])));
                let change = match op {
                    Op::Put { created, data, .. } => {
                        let created = if created == 0 { rev } else { created };
                        let put = if tracked {
                            loader.put_change(version, created, rev, data).map(Some)
                        } else {
                            loader.put(version, created, rev, data).map(|()| None)
                        };
                        put.map_err(|e| match e {
                            Error::Codec(m) => Error::Corrupt {
                                file: file.clone(),
                                offset: 0,
                                detail: format!("log record {rev}: {m}"),
                            },
                            other => other,
                        })?
                    }
                    Op::Delete { pk, .. } if tracked => loader.delete_change(pk)?,
                    Op::Delete { pk, .. } => loader.delete(pk).map(|()| None)?,
                };
                if let Some((c, b)) = change {
                    changes.push(c);
                    bytes += b;
                }
            }
            feed.append_at(rev, opened_ms, changes, bytes);
            revision = rev;
            records += 1;
            if read_history > 0 {
                let mut tables = Vec::with_capacity(states.len());
                for (s, l) in states.iter().zip(loaders.iter_mut()) {
                    tables.push(match l {
                        Some(l) => l.snapshot()?,
                        None => s.clone(),
                    });
                }
                past.push_back((rev, tables.into()));
                if past.len() > read_history + 1 {
                    past.pop_front();
                }
            }
            Ok(())
        })?;
        if let Some(detail) = recover::log_start_gap(found.first_prev, snapshot_rev) {
            return Err(Error::Corrupt {
                file: dir.display().to_string(),
                offset: 0,
                detail,
            });
        }
        let mut states = states;
        for (t, l) in loaders.into_iter().enumerate() {
            if let Some(l) = l {
                states[t] = l.finish()?;
            }
        }
        let durable = Durable {
            dir_lock: Mutex::new(dir_lock),
            closed: AtomicBool::new(false),
            vfs,
            dir: dir.to_path_buf(),
            mode,
            queue: Mutex::new(Vec::new()),
            log: Mutex::new(LogState {
                writer,
                synced: revision,
                last_sync: Instant::now(),
            }),
            group: Mutex::new(GroupState {
                synced: revision,
                syncing: false,
            }),
            group_done: Condvar::new(),
            failed: Mutex::new(None),
            stopped: AtomicBool::new(false),
            checkpointing: Mutex::new(()),
            since_checkpoint: AtomicU64::new(0),
            checkpoint_bytes,
            segment_bytes: 64 << 20,
            sync_latency: Recorder::default(),
        };
        tracing::info!(
            snapshot_revision = snapshot_rev,
            segments = segment_count,
            records,
            revision,
            elapsed_us = micros(start.elapsed()),
            "pandodb: recovered"
        );
        // The newest is the opened state.
        past.pop_back();
        Ok(Opened {
            durable,
            states,
            revision,
            feed,
            past: past.into(),
        })
    }

    /// Fails with [`Error::WritesStopped`] after an earlier I/O error.
    /// Fails with [`Error::Closed`] once closed.
    pub(crate) fn check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::db_closed());
        }
        if self.stopped.load(Ordering::Acquire) {
            let why = lock(&self.failed).clone().unwrap_or_default();
            return Err(Error::WritesStopped(why));
        }
        Ok(())
    }

    /// Refuses every later write and releases the directory lock (the
    /// caller synced what was committed).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(lock(&self.dir_lock).take());
    }

    fn stop(&self, e: &Error) {
        let mut f = lock(&self.failed);
        let first = f.is_none();
        if first {
            *f = Some(e.to_string());
        }
        self.stopped.store(true, Ordering::Release);
        drop(f);
        if first {
            // Outside the lock: the subscriber may take its time.
            tracing::error!(
                error = %e,
                dir = %self.dir.display(),
                "pandodb: writes stopped"
            );
        }
    }

    /// Whether commits must wait for the log before they become visible.
    pub(crate) fn waits(&self) -> bool {
        self.mode == Durability::Sync
    }

    /// Queues the record of the commit of `revision` (called under the
    /// publish lock, so records queue in revision order).
    pub(crate) fn append(&self, revision: u64, record: Vec<u8>) {
        if self.mode == Durability::None {
            return;
        }
        self.since_checkpoint
            .fetch_add(record.len() as u64 + 20, Ordering::Relaxed);
        lock(&self.queue).push((revision, record));
    }

    /// Makes every record up to `revision` durable: the first committer to
    /// get the log writer writes and syncs every queued record (its own and
    /// those queued meanwhile: one fdatasync for the group).
    ///
    /// Waiters sleep on a condition variable and all wake when a group is
    /// synced; one of those still not covered leads the next group. (Waiting
    /// on the log writer's mutex instead would pass it from waiter to waiter
    /// one wake-up at a time, holding up the next group.)
    pub(crate) fn sync_upto(&self, revision: u64) -> Result<()> {
        let mut st = lock(&self.group);
        loop {
            self.check()?;
            if st.synced >= revision {
                return Ok(());
            }
            if !st.syncing {
                break;
            }
            st = self
                .group_done
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        // Lead the next group, and the ones queued meanwhile (a few rounds:
        // this thread is already awake, a waiter would first have to be
        // woken).
        st.syncing = true;
        drop(st);
        let mut rounds = 0;
        let result = loop {
            let synced = {
                let mut log = lock(&self.log);
                self.write_queued(&mut log).map(|()| log.synced)
            };
            let Ok(synced) = synced else { break synced };
            {
                let mut st = lock(&self.group);
                st.synced = st.synced.max(synced);
            }
            self.group_done.notify_all();
            rounds += 1;
            let more = !lock(&self.queue).is_empty();
            if synced >= revision && (!more || rounds >= 4) {
                break Ok(synced);
            }
            if synced < revision && !more {
                // Our record was taken by a group that failed: writes are
                // stopped (never loop waiting for a record that is gone).
                if let Err(e) = self.check() {
                    break Err(e);
                }
                break Err(Error::WritesStopped(format!(
                    "the log record of revision {revision} was not written"
                )));
            }
        };
        if let Err(e) = &result {
            // Stopped before the next leader can start.
            self.stop(e);
        }
        lock(&self.group).syncing = false;
        self.group_done.notify_all();
        result.map(|_| ())
    }

    /// Writes and syncs the queued records (the caller holds the log).
    fn write_queued(&self, log: &mut LogState) -> Result<()> {
        let queued = std::mem::take(&mut *lock(&self.queue));
        let Some(&(last, _)) = queued.last() else {
            return Ok(());
        };
        let start = Instant::now();
        for (rev, rec) in &queued {
            log.writer.append(*rev, rec)?;
        }
        log.writer.sync()?;
        log.synced = last;
        log.last_sync = Instant::now();
        self.sync_latency.record(log.last_sync - start);
        if log.writer.segment_len() > self.segment_bytes {
            log.writer.rotate()?;
        }
        Ok(())
    }

    /// Batched mode: syncs if the last sync is older than the interval (or
    /// always, with `force`).
    pub(crate) fn sync_if_due(&self, force: bool) -> Result<()> {
        let Durability::Batched(every) = self.mode else {
            return Ok(());
        };
        let mut log = lock(&self.log);
        self.check()?;
        if !force && log.last_sync.elapsed() < every {
            return Ok(());
        }
        let result = self.write_queued(&mut log);
        if let Err(e) = &result {
            self.stop(e);
        }
        result
    }

    /// The revision synced so far.
    ///
    /// Reads the group state only: the log writer's mutex is held for a
    /// whole fdatasync, and committers returning must not wait for the next
    /// group's.
    pub(crate) fn synced(&self) -> u64 {
        lock(&self.group).synced
    }

    /// Whether enough log was written since the last checkpoint to take one.
    pub(crate) fn checkpoint_due(&self) -> bool {
        self.checkpoint_bytes > 0
            && self.since_checkpoint.load(Ordering::Relaxed) >= self.checkpoint_bytes
    }

    /// Writes a snapshot of `root` (which must be durable) to the directory,
    /// then drops the log segments and older snapshots it covers. A crash at
    /// any point leaves a directory that opens to the same state.
    /// `history` is what the change feed retains up to the snapshot's
    /// revision: written first, beside it, so that opening rebuilds the
    /// feed (see `super::history`).
    pub(crate) fn checkpoint(
        &self,
        root: &Root,
        schema: &Schema,
        history: &FeedHistory,
    ) -> Result<SnapshotInfo> {
        let _one = lock(&self.checkpointing);
        self.check()?;
        let start = Instant::now();
        // Any I/O error on the way stops writes: the directory may be in
        // an intermediate (but recoverable) state.
        let info = self
            .write_checkpoint(root, schema, history)
            .inspect_err(|e| self.stop(e))?;
        tracing::info!(
            dir = %self.dir.display(),
            revision = info.revision,
            rows = info.rows,
            bytes = info.bytes,
            elapsed_us = micros(start.elapsed()),
            "pandodb: checkpoint"
        );
        Ok(info)
    }

    fn write_checkpoint(
        &self,
        root: &Root,
        schema: &Schema,
        history: &FeedHistory,
    ) -> Result<SnapshotInfo> {
        let header = header_of(root, schema)?;
        let (from, entries) = history;
        write_history(&*self.vfs, &self.dir, root.revision, *from, entries, schema)?;
        let name = snapshot_name(root.revision);
        let before = self.since_checkpoint.load(Ordering::Relaxed);
        let info = write_snapshot_file(&*self.vfs, &self.dir, &name, &header.encode(), |w| {
            write_rows(root, schema, w)
        })?;
        let bytes = self
            .vfs
            .open(&self.dir.join(&name))
            .and_then(|mut f| f.size())
            .unwrap_or(0);
        self.since_checkpoint.fetch_sub(before, Ordering::Relaxed);
        {
            let mut log = lock(&self.log);
            let removed = log
                .writer
                .rotate()
                .and_then(|()| log.writer.remove_segments_below(root.revision + 1));
            removed?;
        }
        // Older snapshots (and their feed histories) are covered by this
        // one.
        let names = self
            .vfs
            .list_dir(&self.dir)
            .map_err(|e| Error::io(format!("listing {}", self.dir.display()), &e))?;
        let mut removed = false;
        for n in names {
            let rev = parse_snapshot_name(&n).or_else(|| parse_history_name(&n));
            if rev.is_some_and(|r| r < root.revision) {
                let p = self.dir.join(&n);
                self.vfs
                    .remove(&p)
                    .map_err(|e| Error::io(format!("removing {}", p.display()), &e))?;
                removed = true;
            }
        }
        if removed {
            self.vfs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io(format!("syncing {}", self.dir.display()), &e))?;
        }
        Ok(SnapshotInfo {
            revision: root.revision,
            rows: info.records,
            bytes,
        })
    }
}

/// The change feed of a directory whose newest snapshot is at `snapshot`:
/// the history the checkpoint kept (if any), the log's commits to come.
fn open_feed(
    vfs: &dyn Vfs,
    dir: &Path,
    snapshot: u64,
    schema: &Schema,
    retention: Retention,
) -> Result<Feed> {
    let kept = if snapshot > 0 && retention.enabled() {
        read_history(vfs, dir, snapshot, schema)?
    } else {
        None
    };
    let Some((from, commits)) = kept.filter(|(_, c)| !c.is_empty()) else {
        return Ok(Feed::new(retention, snapshot).stamped());
    };
    let feed = Feed::new(retention, from).stamped();
    for (revision, at_ms, changes, bytes) in commits {
        feed.append_at(revision, at_ms, changes, bytes);
    }
    Ok(feed)
}

fn read_snapshot<R: std::io::Read>(
    reader: snapfile::SnapshotReader<R>,
    schema: &Schema,
) -> Result<(SnapshotInfo, Vec<AnyState>)> {
    read_from(reader, schema)
}

impl Drop for Durable {
    fn drop(&mut self) {
        // Batched mode: what was acknowledged but not yet synced.
        if matches!(self.mode, Durability::Batched(_)) && !self.stopped.load(Ordering::Acquire) {
            let mut log = lock(&self.log);
            let _ = self.write_queued(&mut log);
        }
    }
}
