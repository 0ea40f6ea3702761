//! The commit protocol, in one place: per-table writer locks, the
//! published root, and publishing a write transaction's states as the next
//! revision: ordered (renumbered if another writer came first, appended to
//! the feed and, in durable mode, to the log), synced (`Durability::Sync`:
//! only once its record is on disk), visible (one atomic root swap, in
//! revision order), the locks released and the watches fired. The lending
//! ledgers of the private states are not settled by the commit: it leaves
//! them to the next write transaction, which settles every commit left
//! unsettled before it copies anything ([`DbInner::settle_unsettled`]), so
//! `commit()` returns, and wakes watchers, without freeing the version it
//! replaced, and a reader still on that version has had the time between
//! two commits to let go of it (the ledgers' fast path needs it gone).

mod close;
mod history;
mod lock_async;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::Event;

use crate::error::{Error, Result};
use crate::feed::Feed;
use crate::index::KeyLog;
use crate::persist::durable::Durable;
use crate::persist::format::{delete_op, put_op, record_tables};
use crate::persist::{Durability, SnapshotInfo};
use crate::root::Root;
use crate::schema::Schema;
use crate::stats::CommitTiming;
use crate::sync::{Broken, Condvar, Mutex, PoisonError, RootCell, lock};
use crate::table::{AnyState, Change, Settle};
use crate::watch::TableWatches;

/// What a write transaction hands to the commit.
pub(crate) struct PendingCommit {
    /// The new private states of the tables it wrote.
    pub(crate) states: Vec<(usize, AnyState)>,
    /// The revision the rows were stamped with.
    pub(crate) predicted: u64,
    /// Per written table: the primary keys written (for renumbering) and,
    /// for watched tables, the index keys changed.
    pub(crate) logs: Vec<(usize, KeyLog, Option<KeyLog>)>,
    /// The changes, for the feed (when it is on).
    pub(crate) changes: Option<(Vec<Change>, usize)>,
    /// The commit's log record (durable mode).
    pub(crate) record: Option<Vec<u8>>,
    /// The version the transaction started from. The committer hands over
    /// its handle so that, once the new version is published, the
    /// ledgers of the private states can be settled against base states
    /// nobody else holds (see `tree::Ledger`).
    pub(crate) base: Arc<Root>,
}

/// A commit published to the in-memory order but not yet visible (waiting
/// for its log record to be durable).
struct PendingVisible {
    pub(crate) revision: u64,
    pub(crate) root: Arc<Root>,
    pub(crate) changes: Option<(Vec<Change>, usize)>,
    pub(crate) keys: Vec<(usize, Option<KeyLog>)>,
}

/// A commit whose ledgers are not settled yet (see [`DbInner::settle_unsettled`]).
/// Fields drop in order: unsettled ledgers restore the counts (see
/// `tree::Ledger`) while the published states and the base still live.
struct Unsettled {
    /// The ledgers of the private states, by table id.
    ledgers: Vec<(usize, Box<dyn Settle>)>,
    /// The published private states: their trees hold the lent handles.
    keep: Vec<AnyState>,
    /// The version the transaction started from.
    base: Arc<Root>,
    /// The revision the commit published.
    revision: u64,
}

/// The writer lock of one table. Held by at most one write transaction;
/// an owned handle (not a guard borrowing the database), so a write
/// transaction has no lifetime.
#[derive(Default)]
pub(crate) struct TableLock {
    /// Whether a write transaction holds the lock, and how many wait for it.
    state: Mutex<LockState>,
    freed: Condvar,
    /// Wakes the async waiters (`acquire_async`, in `lock_async.rs`).
    freed_async: Event,
}

#[derive(Default)]
struct LockState {
    locked: bool,
    waiters: usize,
    /// Async waiters listening on `freed_async`.
    async_waiters: usize,
}

impl TableLock {
    pub(crate) fn acquire(&self) {
        let mut st = lock(&self.state);
        while st.locked {
            st.waiters += 1;
            st = self.freed.wait(st).unwrap_or_else(PoisonError::into_inner);
            st.waiters -= 1;
        }
        st.locked = true;
    }

    pub(crate) fn release(&self) {
        let mut st = lock(&self.state);
        st.locked = false;
        let (waiters, async_waiters) = (st.waiters, st.async_waiters);
        drop(st);
        // A condvar notification is a system call even with no waiter:
        // skip it when nobody waits (one per commit otherwise).
        if waiters > 0 {
            self.freed.notify_one();
        }
        // Both kinds may be woken for one release: the loser waits again.
        if async_waiters > 0 {
            self.freed_async.notify(1);
        }
    }
}

pub(crate) struct DbInner {
    pub(crate) schema: Schema,
    root: RootCell<Root>,
    pub(crate) locks: Box<[TableLock]>,
    /// Serializes the read-modify-write of the root between writers of
    /// disjoint tables; held only for the pointer swap.
    ///
    /// In durable mode it also holds the newest ordered root, which may be
    /// ahead of the visible one while its log record is being synced: the
    /// next commit builds on it.
    publish: Mutex<Option<Arc<Root>>>,
    pub(crate) watches: Arc<[TableWatches]>,
    pub(crate) feed: Arc<Feed>,
    /// The directory, log and checkpoints of a database opened from a
    /// directory.
    pub(crate) durable: Option<Durable>,
    /// Durable commits ordered but not yet visible, in revision order.
    pending: Mutex<VecDeque<PendingVisible>>,
    /// Commits whose ledgers the next write transaction settles, oldest
    /// first.
    unsettled: Mutex<Vec<Unsettled>>,
    /// Commit latencies and the slow-commit threshold (`Db::stats`).
    pub(crate) timing: CommitTiming,
    /// A deliberately broken variant for the loom model: publish without
    /// the publish lock (a lost update the model must catch).
    /// Loom's deliberately broken publish (see [`Broken`]).
    broken: Broken,
    /// Set (under the publish mutex) by `close`: commits are refused.
    closed: AtomicBool,
    /// The last published roots, for reads at a past revision.
    history: history::History,
}

/// Settles the ledgers of the private states a commit published, against
/// the states of `base`, the version its transaction started from. When
/// the new version is visible (`visible`: no new reader can reach `base`)
/// and nothing else holds `base` or one of its states any more, that
/// state's ledgers take the fast path; the others restore their counts.
fn settle(mut base: Arc<Root>, ledgers: Vec<(usize, Box<dyn Settle>)>, visible: bool) {
    if ledgers.is_empty() {
        return;
    }
    let mut root = if visible {
        Arc::get_mut(&mut base)
    } else {
        None
    };
    for (id, l) in ledgers {
        let state = root
            .as_deref_mut()
            .and_then(|r| r.tables.get_mut(id))
            .and_then(Arc::get_mut);
        l.settle(state);
    }
}

impl DbInner {
    /// A database core holding `tables` at `revision`.
    pub(crate) fn new(
        schema: Schema,
        feed: Feed,
        tables: Box<[AnyState]>,
        revision: u64,
        durable: Option<Durable>,
        broken: Broken,
    ) -> DbInner {
        let locks = schema.tables.iter().map(|_| TableLock::default()).collect();
        let watches: Arc<[TableWatches]> = schema
            .tables
            .iter()
            .map(|t| TableWatches::new(t.index_count(), broken))
            .collect();
        DbInner {
            root: RootCell::new(Root {
                revision,
                tables,
                watches: watches.clone(),
                schema: schema.clone(),
            }),
            schema,
            locks,
            publish: Mutex::new(None),
            watches,
            feed: Arc::new(feed),
            durable,
            pending: Mutex::new(VecDeque::new()),
            unsettled: Mutex::new(Vec::new()),
            timing: CommitTiming::new(std::time::Duration::MAX),
            broken,
            closed: AtomicBool::new(false),
            history: history::History::new(0),
        }
    }

    /// Keeps the roots of the last `revisions` revisions before the
    /// current one readable (`Db::read_at`), starting with the table
    /// states of `past` revisions (oldest first, consecutive, ending just
    /// before the current one: what opening replayed).
    pub(crate) fn read_history(
        mut self,
        revisions: usize,
        past: Vec<(u64, Box<[AnyState]>)>,
    ) -> DbInner {
        self.history = history::History::new(revisions);
        for (revision, tables) in past {
            self.history.push(&Arc::new(Root {
                revision,
                tables,
                watches: self.watches.clone(),
                schema: self.schema.clone(),
            }));
        }
        self.history.push(&self.root.load());
        self
    }

    /// Sets the latency from which a commit logs a warning.
    pub(crate) fn slow_commit(mut self, threshold: std::time::Duration) -> DbInner {
        self.timing.slow = threshold;
        self
    }

    /// Whether commits are written to the durable log.
    fn logs(&self) -> bool {
        self.durable
            .as_ref()
            .is_some_and(|d| d.mode != Durability::None)
    }

    /// Whether a write transaction must record its changes: for the change
    /// feed or the durable log.
    pub(crate) fn records_changes(&self) -> bool {
        self.feed.enabled() || self.logs()
    }

    /// The commit's log record (`None` unless the database logs): its
    /// changes in order, objects encoded by their tables' codecs.
    pub(crate) fn log_record(&self, changes: &[Change], predicted: u64) -> Result<Option<Vec<u8>>> {
        if !self.logs() {
            return Ok(None);
        }
        // The tables named, in order of first use.
        let mut ids: Vec<usize> = Vec::new();
        for c in changes {
            if !ids.contains(&c.table_id) {
                ids.push(c.table_id);
            }
        }
        let tables = &self.schema.tables;
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
        // Refused here, before the commit is ordered: the log writer would
        // refuse the record later, when the commit may already be visible.
        if rec.len() > crate::storage::MAX_RECORD {
            return Err(Error::TooLarge {
                bytes: rec.len() as u64,
                limit: crate::storage::MAX_RECORD as u64,
            });
        }
        Ok(Some(rec))
    }

    pub(crate) fn load(&self) -> Arc<Root> {
        self.root.load()
    }

    /// The root a write transaction starts from: the newest ordered one
    /// (in durable mode possibly not visible yet).
    pub(crate) fn load_latest(&self) -> Arc<Root> {
        if self.durable.as_ref().is_some_and(Durable::waits)
            && let Some(r) = lock(&self.publish).as_ref()
        {
            return r.clone();
        }
        self.root.load()
    }

    /// Commits the given table states on top of the latest root, as the next
    /// revision: orders it (and queues its log record), calls `ordered` (the
    /// committer releases its writer locks there, so the next writer of its
    /// tables can start while the record syncs), waits until the record is
    /// durable (in `Sync` mode), publishes the new root and fires the
    /// watches it matches. The caller holds the writer locks of those
    /// tables until `ordered`.
    pub(crate) fn publish(&self, commit: PendingCommit, ordered: impl FnOnce()) -> Result<u64> {
        let PendingCommit {
            states,
            predicted,
            logs,
            changes,
            record,
            base,
        } = commit;
        if let Some(d) = &self.durable
            && let Err(e) = d.check()
        {
            // The private states (and their ledgers) go before the locks:
            // the next writer of these tables copies the same base nodes.
            drop(states);
            ordered();
            return Err(e);
        }
        // The published private states stay alive here until their ledgers
        // are settled: until then their trees hold uncounted duplicates,
        // and dropping one as a plain tree would free base nodes (a failed
        // sync in durable mode can clear the pending roots holding them;
        // a panic unwinds the block below). Declared before `ledgers`, so
        // that on unwinding the ledgers restore the counts first.
        let mut keep = Vec::new();
        let mut ledgers = Vec::new();
        let (revision, published) = {
            let mut guard = (!self.broken.publish()).then(|| lock(&self.publish));
            if self.closed.load(Ordering::Acquire) {
                // Checked under the publish mutex: `close` flushes every
                // commit ordered before it, and no other is ordered.
                drop((guard, states));
                ordered();
                return Err(Error::db_closed());
            }
            let mut none = None;
            let latest = guard.as_deref_mut().unwrap_or(&mut none);
            let current = latest.clone().unwrap_or_else(|| self.root.load());
            let revision = current.revision + 1;
            let mut tables = current.tables.clone();
            for (id, mut state) in states {
                let table = &self.schema.tables[id];
                // The private state is the committer's alone: `thaw` made
                // it and the transaction only ever borrowed it. A shared
                // one could not give up its ledgers, whose settlement must
                // come before the locks go.
                let Some(s) = Arc::get_mut(&mut state) else {
                    unreachable!("publish: a private table state is shared")
                };
                if revision != predicted
                    && let Some((_, pks, _)) = logs.iter().find(|l| l.0 == id)
                {
                    // A writer of other tables committed first: renumber
                    // the rows stamped with the revision this one expected.
                    table.renumber(s, pks, predicted, revision);
                }
                ledgers.push((id, table.take_ledgers(s)));
                keep.push(state.clone());
                tables[id] = state;
            }
            let root = Arc::new(Root {
                revision,
                tables,
                watches: self.watches.clone(),
                schema: self.schema.clone(),
            });
            let keys: Vec<(usize, Option<KeyLog>)> =
                logs.into_iter().map(|(id, _, k)| (id, k)).collect();
            if let (Some(d), Some(rec)) = (&self.durable, record) {
                d.append(revision, rec);
            }
            match &self.durable {
                Some(d) if d.waits() => {
                    // Visible only once durable, in revision order.
                    *latest = Some(root.clone());
                    lock(&self.pending).push_back(PendingVisible {
                        revision,
                        root,
                        changes,
                        keys,
                    });
                    (revision, None)
                }
                _ => {
                    let (changes, bytes) = changes.unwrap_or_default();
                    self.feed.append(revision, changes, bytes);
                    let gone = self.history.push(&root);
                    // From this swap on, every new reader sees the commit.
                    (revision, Some((self.root.swap(root), keys, gone)))
                }
            }
        };
        // The ledgers are left to the next writer (`settle_unsettled`),
        // queued before the writer locks go: the next writer of these
        // tables settles them before it copies anything. The previous
        // version (and the root that left the read history) is dropped
        // after the publish lock (writers of other tables are not held up).
        let published = published.map(|(old, keys, gone)| {
            drop((old, gone));
            keys
        });
        if !ledgers.is_empty() {
            lock(&self.unsettled).push(Unsettled {
                ledgers,
                keep,
                base,
                revision,
            });
        } else {
            drop((keep, base));
        }
        match published {
            Some(keys) => {
                // Watches fire only now that the version is visible, and
                // before the locks go: a woken watcher that writes these
                // tables waits for nothing but this commit's own end.
                for (id, keys) in keys {
                    self.watches[id].notify(revision, keys);
                }
                ordered();
                if let Some(d) = &self.durable {
                    d.sync_if_due(false)?;
                }
            }
            None => {
                ordered();
                let Some(d) = &self.durable else {
                    unreachable!("only durable commits wait")
                };
                if let Err(e) = d.sync_upto(revision) {
                    self.abandon_pending();
                    return Err(e);
                }
                self.make_visible(d.synced());
            }
        }
        if let Some(d) = &self.durable
            && d.checkpoint_due()
        {
            // Best effort: an error stops writes and the next commit
            // reports it.
            let _ = self.checkpoint();
        }
        Ok(revision)
    }

    /// Settles the ledgers of every commit that left them (oldest first):
    /// a write transaction calls this once it holds its writer locks and
    /// before it loads its base, so the counts of the nodes it may copy
    /// are settled. A commit whose version is visible and whose base
    /// nobody holds any more takes the ledgers' fast path (the replaced
    /// nodes are freed without touching their children); the others
    /// restore their counts.
    pub(crate) fn settle_unsettled(&self) {
        let mut queue = lock(&self.unsettled);
        if queue.is_empty() {
            return;
        }
        let visible = self.root.load().revision;
        // Settled while the queue stays locked: a writer of another table
        // of the same commit waits until its counts are settled too.
        for u in queue.drain(..) {
            let Unsettled {
                ledgers,
                keep,
                base,
                revision,
            } = u;
            settle(base, ledgers, revision <= visible);
            drop(keep);
        }
    }

    /// Publishes, in revision order, every ordered commit up to `synced`.
    fn make_visible(&self, synced: u64) {
        if self.durable.is_none() {
            return;
        }
        let mut done = Vec::new();
        {
            let mut pending = lock(&self.pending);
            while pending.front().is_some_and(|p| p.revision <= synced) {
                let Some(p) = pending.pop_front() else { break };
                let (changes, bytes) = p.changes.unwrap_or_default();
                self.feed.append(p.revision, changes, bytes);
                let gone = self.history.push(&p.root);
                let old = self.root.swap(p.root);
                done.push((p.revision, p.keys, (old, gone)));
            }
        }
        for (revision, keys, old) in done {
            for (id, keys) in keys {
                self.watches[id].notify(revision, keys);
            }
            drop(old);
        }
    }

    /// After a failed sync: the ordered commits never become visible, and
    /// the next writer starts from the visible root (its commit will be
    /// refused: writes are stopped).
    fn abandon_pending(&self) {
        let mut latest = lock(&self.publish);
        *latest = None;
        lock(&self.pending).clear();
    }

    /// The visible root once it is at revision `rev` or later. A commit
    /// already ordered but not visible yet (`Durability::Sync`, its log
    /// record syncing) is waited for: this thread joins or leads the sync
    /// of its group and publishes what is synced. A revision beyond every
    /// ordered commit is refused rather than waited for.
    pub(crate) fn load_at_least(&self, rev: u64) -> Result<Arc<Root>> {
        let root = self.root.load();
        if root.revision >= rev {
            return Ok(root);
        }
        let latest = lock(&self.publish)
            .as_ref()
            .map_or(root.revision, |r| r.revision.max(root.revision));
        if rev > latest {
            return Err(Error::RevisionNotReached {
                requested: rev,
                latest,
            });
        }
        let Some(d) = &self.durable else {
            unreachable!("only durable commits are ordered before they are visible")
        };
        d.sync_upto(rev)?;
        // Entries are popped and swapped in under the pending lock, so once
        // this call has taken it every synced commit is visible.
        self.make_visible(d.synced());
        let root = self.root.load();
        debug_assert!(root.revision >= rev);
        Ok(root)
    }

    /// Waits until every ordered commit is durable and visible; returns the
    /// latest revision.
    pub(crate) fn flush_pending(&self) -> Result<u64> {
        if let Some(d) = &self.durable
            && d.waits()
        {
            let latest = lock(&self.publish).as_ref().map_or(0, |r| r.revision);
            if latest > self.root.load().revision {
                d.sync_upto(latest)?;
                self.make_visible(d.synced());
            }
        }
        Ok(self.root.load().revision)
    }

    /// A checkpoint of the visible version (durable mode).
    pub(crate) fn checkpoint(&self) -> Result<SnapshotInfo> {
        let Some(d) = &self.durable else {
            return Err(Error::NotDurable("a checkpoint".into()));
        };
        let root = self.root.load();
        let history = self.feed.retained_upto(root.revision);
        d.checkpoint(&root, &self.schema, &history)
    }
}

impl DbInner {
    /// Publishes a whole new set of table states at `revision` (installing
    /// a snapshot); the caller holds every writer lock. Every watch fires
    /// and the feed's history ends here.
    pub(crate) fn replace_all(&self, tables: Box<[AnyState]>, revision: u64) {
        let (old, gone) = {
            let mut latest = lock(&self.publish);
            *latest = None;
            self.feed.reset(revision);
            let root = Arc::new(Root {
                revision,
                tables,
                watches: self.watches.clone(),
                schema: self.schema.clone(),
            });
            // The history before the snapshot is gone.
            let gone = self.history.clear();
            self.history.push(&root);
            (self.root.swap(root), gone)
        };
        for w in self.watches.iter() {
            w.notify(revision.max(old.revision + 1), None);
        }
        drop((old, gone));
    }
}
