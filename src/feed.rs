//! The change feed: every commit's changes, retained in revision order for
//! a configurable window, and the [`Subscription`]s that read them.
//!
//! Commits append one batch each, under the publish lock (so batches are in
//! revision order, with no gaps); subscribers read the retained log under
//! its own short lock and never hold up a writer: a subscriber that falls
//! behind the retained window gets [`Error::Compacted`] instead.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use event_listener::{Event, EventListener, Listener};
use futures_core::Stream;

use crate::error::{Error, Result};
use crate::sync::{Mutex, lock};
use crate::table::Change;

/// How much history the change feed keeps: the newest commits within
/// every limit (a number of commits, estimated bytes and, optionally, an
/// age). A commit whose changes alone exceed the byte limit is not kept
/// (a subscriber behind it gets [`Error::Compacted`]).
///
/// In durable mode the retained history survives restarts: checkpoints
/// write it beside the snapshot and opening rebuilds it from there and
/// from the log (see [`Db::open`](crate::Db::open)).
///
/// ```
/// use std::time::Duration;
/// use pandodb::{Options, Retention};
/// let opts = Options::default().feed_retention(
///     Retention::commits(100)
///         .max_bytes(1 << 20)
///         .max_age(Duration::from_secs(3600)),
/// );
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    commits: usize,
    bytes: usize,
    age: Option<Duration>,
}

impl Default for Retention {
    /// The last 10,000 commits, up to an estimated 64 MiB, of any age.
    fn default() -> Self {
        Retention {
            commits: 10_000,
            bytes: 64 << 20,
            age: None,
        }
    }
}

impl Retention {
    /// Keep the last `n` commits (0 turns the feed off: nothing is recorded
    /// and every subscription is answered with [`Error::Compacted`]).
    pub fn commits(n: usize) -> Retention {
        Retention {
            commits: n,
            bytes: usize::MAX,
            age: None,
        }
    }

    /// Keep commits while their estimated size stays within `n` bytes (the
    /// estimate counts the change records and the objects' `size_of`, not
    /// their heap contents).
    pub fn bytes(n: usize) -> Retention {
        Retention {
            commits: usize::MAX,
            bytes: n,
            age: None,
        }
    }

    /// Keep commits made within the last `age` (by the wall clock; commits
    /// replayed from the log when a durable database opens count their
    /// age from the opening, so a restart never drops them early).
    pub fn age(age: Duration) -> Retention {
        Retention {
            commits: usize::MAX,
            bytes: usize::MAX,
            age: Some(age),
        }
    }

    /// Adds a byte limit to a commit-count limit.
    pub fn max_bytes(self, n: usize) -> Retention {
        Retention { bytes: n, ..self }
    }

    /// Adds an age limit: commits older than `age` are dropped (when the
    /// next commit arrives or a subscriber looks).
    pub fn max_age(self, age: Duration) -> Retention {
        Retention {
            age: Some(age),
            ..self
        }
    }

    /// Whether anything is recorded.
    pub(crate) fn enabled(&self) -> bool {
        self.commits > 0 && self.bytes > 0
    }
}

/// The changes of one commit, as a subscription delivers them: only the
/// subscribed tables' changes, in the order the transaction made them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Batch {
    /// The commit's revision.
    pub revision: u64,
    /// The changes.
    pub changes: Vec<Change>,
}

/// One retained commit: its revision, when it was appended (milliseconds
/// since the Unix epoch), its changes and their estimated bytes (the
/// retention's measure, overhead included).
pub(crate) struct Entry {
    pub(crate) revision: u64,
    pub(crate) at_ms: u64,
    pub(crate) changes: Vec<Change>,
    pub(crate) bytes: usize,
}

/// The wall clock in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Log {
    entries: VecDeque<Arc<Entry>>,
    bytes: usize,
    /// Every revision up to this one is no longer retained.
    compacted_upto: u64,
    /// The database was closed or dropped: no batch will come.
    closed: bool,
}

/// The retained log and its wake-up event.
pub(crate) struct Feed {
    retention: Retention,
    /// Whether commits are stamped with the wall clock: for an age limit,
    /// or for a durable database's checkpoints (which keep the stamps).
    stamped: bool,
    log: Mutex<Log>,
    event: Event,
}

impl Feed {
    pub(crate) fn new(retention: Retention, revision: u64) -> Feed {
        Feed {
            retention,
            stamped: retention.age.is_some(),
            log: Mutex::new(Log {
                entries: VecDeque::new(),
                bytes: 0,
                compacted_upto: revision,
                closed: false,
            }),
            event: Event::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.retention.enabled()
    }

    /// Stamps every commit with the wall clock (a durable database: its
    /// checkpoints keep the stamps, for an age limit set later).
    pub(crate) fn stamped(mut self) -> Feed {
        self.stamped = true;
        self
    }

    /// Records the changes of the commit of `revision`. Called under the
    /// publish lock, in revision order.
    pub(crate) fn append(&self, revision: u64, changes: Vec<Change>, bytes: usize) {
        // Without an age limit or checkpoints nothing reads the stamp:
        // no clock read per commit.
        let at_ms = if self.stamped { now_ms() } else { 0 };
        self.append_at(revision, at_ms, changes, bytes);
    }

    /// [`Feed::append`] of a commit appended at `at_ms` (rebuilding the
    /// history on open). `bytes` excludes the per-commit overhead.
    pub(crate) fn append_at(&self, revision: u64, at_ms: u64, changes: Vec<Change>, bytes: usize) {
        {
            let mut log = lock(&self.log);
            if !self.retention.enabled() {
                log.compacted_upto = revision;
                return;
            }
            let bytes = bytes + std::mem::size_of::<Entry>() + 32;
            log.bytes += bytes;
            log.entries.push_back(Arc::new(Entry {
                revision,
                at_ms,
                changes,
                bytes,
            }));
            self.trim(&mut log);
        }
        self.event.notify(usize::MAX);
    }

    /// Drops what the retention no longer keeps: over the commit limit, the
    /// oldest (the newest stays); over the byte limit, even the newest (a
    /// single commit larger than the whole budget is not kept); and every
    /// commit older than the age limit.
    fn trim(&self, log: &mut Log) {
        let r = &self.retention;
        let too_old = r.age.map(|age| {
            let age = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
            now_ms().saturating_sub(age)
        });
        while (log.entries.len() > 1 && log.entries.len() > r.commits)
            || (!log.entries.is_empty() && log.bytes > r.bytes)
            || log
                .entries
                .front()
                .zip(too_old)
                .is_some_and(|(e, limit)| e.at_ms < limit)
        {
            if let Some(old) = log.entries.pop_front() {
                log.bytes -= old.bytes;
                log.compacted_upto = old.revision;
            }
        }
    }

    /// Applies the age limit now (nothing else changes without a commit).
    fn expire(&self) {
        if self.retention.age.is_some() {
            self.trim(&mut lock(&self.log));
        }
    }

    /// The retained commits up to `revision` and the revision before the
    /// first of them (what a checkpoint at `revision` writes beside its
    /// snapshot).
    pub(crate) fn retained_upto(&self, revision: u64) -> (u64, Vec<Arc<Entry>>) {
        self.expire();
        let log = lock(&self.log);
        let entries: Vec<Arc<Entry>> = log
            .entries
            .iter()
            .take_while(|e| e.revision <= revision)
            .cloned()
            .collect();
        let from = entries
            .first()
            .map_or(revision, |e| e.revision - 1)
            .min(revision);
        (from, entries)
    }

    /// Drops the whole history: revisions up to `revision` are gone (a
    /// snapshot replaced the state).
    pub(crate) fn reset(&self, revision: u64) {
        {
            let mut log = lock(&self.log);
            log.entries.clear();
            log.bytes = 0;
            log.compacted_upto = revision;
        }
        self.event.notify(usize::MAX);
    }

    /// The number of retained commits and their estimated bytes.
    pub(crate) fn stats(&self) -> (usize, usize) {
        self.expire();
        let log = lock(&self.log);
        (log.entries.len(), log.bytes)
    }

    /// The database was closed or dropped: subscribers get what is
    /// retained, then [`Error::Closed`].
    pub(crate) fn close(&self) {
        lock(&self.log).closed = true;
        self.event.notify(usize::MAX);
    }

    /// The oldest revision still retained (the next one to be committed
    /// when nothing is).
    pub(crate) fn oldest(&self) -> u64 {
        self.expire();
        lock(&self.log).compacted_upto + 1
    }
}

/// A reader of the change feed: yields every commit that changed one of its
/// tables, in revision order, one [`Batch`] per commit, from the revision it
/// was opened at. Made by [`Db::subscribe`](crate::Db::subscribe).
///
/// Blocking: iterate it (each item a `Result<Batch>`) or call
/// [`Subscription::next_timeout`]; async: [`Subscription::next_async`], or
/// [`Subscription::into_stream`], a [`Stream`] of `Result<Batch>` (which,
/// like the iterator, ends after an error).
/// A subscriber that falls so far behind that its next revision is no
/// longer retained gets [`Error::Compacted`] and can resubscribe from
/// [`Subscription::revision`] after restoring from a snapshot. Once the
/// database is closed or its last handle dropped, a subscriber gets the
/// batches still retained, then [`Error::Closed`].
pub struct Subscription {
    feed: Arc<Feed>,
    tables: Vec<usize>,
    next: u64,
    failed: bool,
}

impl Subscription {
    pub(crate) fn new(feed: Arc<Feed>, tables: Vec<usize>, from: u64) -> Result<Subscription> {
        let oldest = feed.oldest();
        if from < oldest {
            return Err(Error::Compacted { oldest });
        }
        Ok(Subscription {
            feed,
            tables,
            next: from,
            failed: false,
        })
    }

    /// The next revision this subscription will look at.
    pub fn revision(&self) -> u64 {
        self.next
    }

    /// This subscription as a [`Stream`] of `Result<Batch>`, yielding
    /// batches as commits arrive without blocking a thread (any runtime).
    pub fn into_stream(self) -> SubscriptionStream {
        SubscriptionStream {
            sub: self,
            listener: None,
        }
    }

    /// The next batch if one is retained, without blocking.
    pub fn try_next(&mut self) -> Result<Option<Batch>> {
        self.feed.expire();
        let log = lock(&self.feed.log);
        if self.next <= log.compacted_upto {
            self.failed = true;
            return Err(Error::Compacted {
                oldest: log.compacted_upto + 1,
            });
        }
        // Revisions in the log are consecutive.
        let front = log.entries.front().map_or(u64::MAX, |e| e.revision);
        let mut i = usize::try_from(self.next.saturating_sub(front)).unwrap_or(usize::MAX);
        while let Some(e) = log.entries.get(i) {
            self.next = e.revision + 1;
            let changes: Vec<Change> = e
                .changes
                .iter()
                .filter(|c| self.tables.is_empty() || self.tables.contains(&c.table_id()))
                .cloned()
                .collect();
            if !changes.is_empty() {
                return Ok(Some(Batch {
                    revision: e.revision,
                    changes,
                }));
            }
            i += 1;
        }
        if log.closed {
            self.failed = true;
            return Err(Error::db_closed());
        }
        Ok(None)
    }

    /// Blocks until a batch arrives or `timeout` passes (`Ok(None)`).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Batch>> {
        self.next_deadline(Some(Instant::now() + timeout))
    }

    fn next_deadline(&mut self, deadline: Option<Instant>) -> Result<Option<Batch>> {
        loop {
            if let Some(b) = self.try_next()? {
                return Ok(Some(b));
            }
            let listener = self.feed.event.listen();
            if let Some(b) = self.try_next()? {
                return Ok(Some(b));
            }
            match deadline {
                None => listener.wait(),
                Some(d) => {
                    if listener.wait_deadline(d).is_none() {
                        return self.try_next();
                    }
                }
            }
        }
    }

    /// Waits (asynchronously, on any runtime) for the next batch.
    pub async fn next_async(&mut self) -> Result<Batch> {
        loop {
            if let Some(b) = self.try_next()? {
                return Ok(b);
            }
            let listener = self.feed.event.listen();
            if let Some(b) = self.try_next()? {
                return Ok(b);
            }
            listener.await;
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<Batch>;

    /// Blocks until the next batch; after an error, the iterator ends.
    fn next(&mut self) -> Option<Result<Batch>> {
        if self.failed {
            return None;
        }
        match self.next_deadline(None) {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// A [`Subscription`] as a [`Stream`] of `Result<Batch>`
/// ([`Subscription::into_stream`]): the same batches in the same order;
/// after an error ([`Error::Compacted`], [`Error::Closed`]) it ends.
pub struct SubscriptionStream {
    sub: Subscription,
    /// The wake-up while it waits.
    listener: Option<EventListener>,
}

impl SubscriptionStream {
    /// The next revision it will look at.
    pub fn revision(&self) -> u64 {
        self.sub.next
    }
}

impl Stream for SubscriptionStream {
    type Item = Result<Batch>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Batch>>> {
        let this = self.get_mut();
        loop {
            if this.sub.failed {
                return Poll::Ready(None);
            }
            match this.sub.try_next() {
                Ok(Some(b)) => {
                    this.listener = None;
                    return Poll::Ready(Some(Ok(b)));
                }
                Err(e) => {
                    this.sub.failed = true;
                    this.listener = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(None) => {}
            }
            // Listening, then looking again, misses no append.
            match &mut this.listener {
                None => this.listener = Some(this.sub.feed.event.listen()),
                Some(l) => match Pin::new(l).poll(cx) {
                    Poll::Ready(()) => this.listener = None,
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
    }
}

impl std::fmt::Debug for SubscriptionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SubscriptionStream")
            .field(&self.sub)
            .finish()
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("tables", &self.tables)
            .field("next", &self.next)
            .finish()
    }
}
