//! The watch handles: [`Watch`] (one watch, shared by its clones),
//! [`WatchSet`] (many watches, one waiter; also a `Stream`), and the cell
//! and waiter behind them. A cell fires once, or is closed with its
//! database; a waiter records which of its watches fired, and whether the
//! wait ended otherwise (the set dropped, a database closed).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener, Listener};
use futures_core::Stream;

use crate::error::{Error, Result};
use crate::sync::{Mutex, lock};

/// The shared state of one watch.
pub(super) struct Cell {
    state: Mutex<CellState>,
    /// How many registry entries hold it: 1, or one per target of a watch
    /// on several targets (`TableWatches::register_all`), which no other
    /// watch shares.
    entries: usize,
}

#[derive(Default)]
struct CellState {
    fired: bool,
    /// Its database was closed or dropped before it fired.
    closed: bool,
    /// Watch sets waiting on this watch, with the watch's index in each
    /// (the first inline: most watches have one waiter).
    first: Option<(Arc<Waiter>, usize)>,
    more: Vec<(Arc<Waiter>, usize)>,
}

/// The signal of one [`WatchSet`]: the index of the first watch that
/// fired, every index in firing order (for the stream), and whether the
/// wait ended otherwise (`gone`: the set dropped, a database closed).
pub(super) struct Waiter {
    first: AtomicUsize,
    all: Mutex<Vec<usize>>,
    gone: AtomicU8,
    event: Event,
}

/// Values of `Waiter::gone`.
const LIVE: u8 = 0;
const SET_DROPPED: u8 = 1;
const DB_CLOSED: u8 = 2;

const NONE: usize = usize::MAX;

impl Waiter {
    fn new() -> Arc<Waiter> {
        Arc::new(Waiter {
            first: AtomicUsize::new(NONE),
            all: Mutex::new(Vec::new()),
            gone: AtomicU8::new(LIVE),
            event: Event::new(),
        })
    }

    fn signal(&self, id: usize) {
        let _ = self
            .first
            .compare_exchange(NONE, id, Ordering::AcqRel, Ordering::Acquire);
        lock(&self.all).push(id);
        self.event.notify(usize::MAX);
    }

    /// Ends the wait without a firing (`why`: `SET_DROPPED`, `DB_CLOSED`).
    fn end(&self, why: u8) {
        let _ = self
            .gone
            .compare_exchange(LIVE, why, Ordering::AcqRel, Ordering::Acquire);
        self.event.notify(usize::MAX);
    }

    /// Why the wait ended without a firing, if it did.
    fn gone(&self) -> Option<Error> {
        match self.gone.load(Ordering::Acquire) {
            LIVE => None,
            SET_DROPPED => Some(Error::Closed("the watch set was dropped".into())),
            _ => Some(Error::db_closed()),
        }
    }

    fn fired(&self) -> Option<usize> {
        match self.first.load(Ordering::Acquire) {
            NONE => None,
            id => Some(id),
        }
    }

    /// Blocks until a watch fires (`Ok`: the first that did), the wait
    /// ends otherwise (`Err`: a database closed) or `deadline` passes
    /// (`None`).
    fn wait_deadline(&self, deadline: Option<Instant>) -> Option<Result<usize>> {
        loop {
            if let Some(r) = self.outcome() {
                return Some(r);
            }
            let listener = self.event.listen();
            if let Some(r) = self.outcome() {
                return Some(r);
            }
            match deadline {
                None => listener.wait(),
                Some(d) => {
                    if listener.wait_deadline(d).is_none() {
                        return self.outcome();
                    }
                }
            }
        }
    }

    /// The first watch that fired or, failing that, why the wait ended.
    fn outcome(&self) -> Option<Result<usize>> {
        match (self.fired(), self.gone()) {
            (Some(id), _) => Some(Ok(id)),
            (None, Some(e)) => Some(Err(e)),
            (None, None) => None,
        }
    }

    async fn wait_async(&self) -> Result<usize> {
        loop {
            if let Some(r) = self.outcome() {
                return r;
            }
            let listener = self.event.listen();
            if let Some(r) = self.outcome() {
                return r;
            }
            listener.await;
        }
    }
}

impl Cell {
    pub(super) fn new() -> Arc<Cell> {
        Self::with_entries(1)
    }

    /// A cell that `entries` registry entries will hold.
    pub(super) fn with_entries(entries: usize) -> Arc<Cell> {
        Arc::new(Cell {
            state: Mutex::new(CellState::default()),
            entries,
        })
    }

    /// How many registry entries hold it (see [`Cell::with_entries`]).
    pub(super) fn entries(&self) -> usize {
        self.entries
    }

    /// Whether no handle holds it any more, only the registry: it can be
    /// swept.
    pub(super) fn abandoned(this: &Arc<Cell>) -> bool {
        Arc::strong_count(this) <= this.entries
    }

    pub(super) fn fire(&self) {
        let (first, more) = {
            let mut st = lock(&self.state);
            if st.fired || st.closed {
                return;
            }
            st.fired = true;
            (st.first.take(), std::mem::take(&mut st.more))
        };
        for (w, id) in first.into_iter().chain(more) {
            w.signal(id);
        }
    }

    /// Its database was closed or dropped: a watch that has not fired
    /// never will, and its waiters are told so.
    pub(super) fn close(&self) {
        let (first, more) = {
            let mut st = lock(&self.state);
            if st.fired || st.closed {
                return;
            }
            st.closed = true;
            (st.first.take(), std::mem::take(&mut st.more))
        };
        for (w, _) in first.into_iter().chain(more) {
            w.end(DB_CLOSED);
        }
    }

    fn is_fired(&self) -> bool {
        lock(&self.state).fired
    }

    fn detach(&self, waiter: &Arc<Waiter>) {
        let mut st = lock(&self.state);
        if st
            .first
            .as_ref()
            .is_some_and(|(w, _)| Arc::ptr_eq(w, waiter))
        {
            st.first = st.more.pop();
        }
        st.more.retain(|(w, _)| !Arc::ptr_eq(w, waiter));
    }

    /// Adds a waiter, or signals it at once if the watch already fired.
    fn attach(&self, waiter: &Arc<Waiter>, id: usize) {
        let mut st = lock(&self.state);
        if st.fired {
            drop(st);
            waiter.signal(id);
        } else if st.closed {
            drop(st);
            waiter.end(DB_CLOSED);
        } else if st.first.is_none() {
            st.first = Some((waiter.clone(), id));
        } else {
            st.more.push((waiter.clone(), id));
        }
    }
}

/// A one-shot notification that the result of the query that handed it out
/// may have changed: it fires after the first commit that changes a key the
/// query covers is published, so a read begun after it fired sees that
/// commit. Watches never miss such a commit, even one that commits while
/// the watch is being taken. Cheap to clone; every clone sees the same
/// firing.
///
/// Take watches from [`ReadTxn`](crate::ReadTxn)'s `*_watch` queries; wait
/// on one with [`Watch::wait_timeout`] or `.fired().await`, or on many with
/// a [`WatchSet`]; to follow a query's result, see
/// [`Db::watch_stream`](crate::Db::watch_stream).
///
/// When the database is closed ([`Db::close`](crate::Db::close)) or its
/// last handle dropped, a watch that has not fired never will: its waits,
/// blocking or not, end with [`Error::Closed`].
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema};
/// # use std::time::Duration;
/// # struct Cfg { key: String, value: String }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Cfg>("cfg");
/// # let by_key = t.primary("key", Indexer::string(|c: &Cfg| c.key.as_str()));
/// # let cfg = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// let (value, watch) = db.read().get_watch(&by_key, "mode")?;
/// assert!(value.is_none());
/// let writer = {
///     let (db, cfg) = (db.clone(), cfg.clone());
///     std::thread::spawn(move || {
///         let mut w = db.write(&[&cfg]);
///         w.insert(&cfg, Cfg { key: "mode".into(), value: "fast".into() }).unwrap();
///         w.commit().unwrap();
///     })
/// };
/// assert!(watch.wait_timeout(Duration::from_secs(10))?);
/// assert_eq!(db.read().get(&by_key, "mode")?.unwrap().value, "fast");
/// # writer.join().unwrap();
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct Watch {
    pub(super) cell: Arc<Cell>,
}

impl Watch {
    /// Whether the watch has fired.
    pub fn is_fired(&self) -> bool {
        self.cell.is_fired()
    }

    /// Blocks until the watch fires.
    ///
    /// # Errors
    /// [`Error::Closed`] when its database is closed or dropped before the
    /// watch fires (it never will then).
    pub fn wait(&self) -> Result<()> {
        let w = Waiter::new();
        self.cell.attach(&w, 0);
        match w.wait_deadline(None) {
            Some(r) => r.map(|_| ()),
            None => unreachable!("a wait without a deadline ends only with an outcome"),
        }
    }

    /// Blocks until the watch fires or `timeout` passes; returns whether it
    /// fired.
    ///
    /// # Errors
    /// [`Error::Closed`] when its database is closed or dropped before the
    /// watch fires: at once, without waiting for the timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        let w = Waiter::new();
        self.cell.attach(&w, 0);
        let outcome = w.wait_deadline(Some(Instant::now() + timeout));
        if outcome.is_none() {
            self.cell.detach(&w);
        }
        outcome.map_or(Ok(false), |r| r.map(|_| true))
    }

    /// A future that completes when the watch fires; works with any async
    /// runtime. Resolves with [`Error::Closed`] if the database is closed
    /// or dropped before the watch fires.
    pub fn fired(&self) -> impl Future<Output = Result<()>> + Send + 'static {
        let w = Waiter::new();
        self.cell.attach(&w, 0);
        // Detaches the waiter if the future is dropped before it completes.
        let guard = Attached {
            cell: self.cell.clone(),
            waiter: w,
        };
        async move { guard.waiter.wait_async().await.map(|_| ()) }
    }
}

/// A waiter attached to a cell, detached when dropped.
struct Attached {
    cell: Arc<Cell>,
    waiter: Arc<Waiter>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.cell.detach(&self.waiter);
    }
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("fired", &self.is_fired())
            .finish()
    }
}

/// Many watches waited on together by one thread or task: waiting costs one
/// wake-up whatever the number of watches (100,000 watches wait on one
/// thread), and reports which watch fired first.
///
/// It is also a [`Stream`] of the index of every watch as it fires, in
/// firing order; the stream ends once every watch has fired, and after an
/// [`Error::Closed`] (a watch's database was closed or dropped).
///
/// ```
/// # use pandodb::{Db, Indexer, Query, Schema, WatchSet};
/// # use std::time::Duration;
/// # struct Cfg { key: String }
/// # let mut schema = Schema::builder();
/// # let mut t = schema.table::<Cfg>("cfg");
/// # let by_key = t.primary("key", Indexer::string(|c: &Cfg| c.key.as_str()));
/// # let cfg = schema.add(t)?;
/// # let db = Db::new(schema.build()?);
/// let r = db.read();
/// let mut set = WatchSet::new();
/// for key in ["a", "b", "c"] {
///     set.add(r.get_watch(&by_key, key)?.1);
/// }
/// assert_eq!(set.wait_timeout(Duration::from_millis(1))?, None);
/// let mut w = db.write(&[&cfg]);
/// w.insert(&cfg, Cfg { key: "b".into() })?;
/// w.commit()?;
/// assert_eq!(set.wait_timeout(Duration::from_secs(10))?, Some(1));
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct WatchSet {
    waiter: Arc<Waiter>,
    /// Keeps the watches alive (a registry drops watches nobody holds).
    cells: Vec<Arc<Cell>>,
    /// The stream's wake-up while it waits.
    listener: Option<EventListener>,
    /// How many fired indexes the stream yielded (`usize::MAX`: it ended).
    streamed: usize,
}

impl Default for WatchSet {
    fn default() -> Self {
        WatchSet::new()
    }
}

impl WatchSet {
    /// An empty set.
    pub fn new() -> WatchSet {
        WatchSet {
            waiter: Waiter::new(),
            cells: Vec::new(),
            listener: None,
            streamed: 0,
        }
    }

    /// Adds a watch; returns its index in the set (0, 1, 2, ...).
    pub fn add(&mut self, watch: Watch) -> usize {
        let id = self.cells.len();
        watch.cell.attach(&self.waiter, id);
        self.cells.push(watch.cell);
        id
    }

    /// Number of watches added.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether no watch was added.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// The index of the first watch that fired, if one has.
    pub fn fired(&self) -> Option<usize> {
        self.waiter.fired()
    }

    /// Blocks until a watch fires; returns the index of the first that did.
    /// (An empty set waits forever.)
    ///
    /// # Errors
    /// [`Error::Closed`] when the database of one of its watches is closed
    /// or dropped before a watch fired.
    pub fn wait(&self) -> Result<usize> {
        match self.waiter.wait_deadline(None) {
            Some(r) => r,
            None => unreachable!("a wait without a deadline ends only with an outcome"),
        }
    }

    /// Blocks until a watch fires or `timeout` passes; returns the index of
    /// the first watch that fired, or `None` on timeout.
    ///
    /// # Errors
    /// [`Error::Closed`] when the database of one of its watches is closed
    /// or dropped before a watch fired: at once, without waiting for the
    /// timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<usize>> {
        self.waiter
            .wait_deadline(Some(Instant::now() + timeout))
            .transpose()
    }

    /// A future resolving to the index of the first watch that fired; works
    /// with any async runtime. It owns its wait, so it may outlive the set:
    /// once the set is dropped (or a watch's database closed) before a
    /// watch fired, it resolves with [`Error::Closed`].
    pub fn wait_async(&self) -> impl Future<Output = Result<usize>> + Send + 'static {
        let w = self.waiter.clone();
        async move { w.wait_async().await }
    }
}

impl Drop for WatchSet {
    fn drop(&mut self) {
        // Futures still waiting on the set end.
        self.waiter.end(SET_DROPPED);
        // Watches shared with other holders outlive the set: leave no
        // waiter behind in them.
        for c in &self.cells {
            if Arc::strong_count(c) > 1 {
                c.detach(&self.waiter);
            }
        }
    }
}

impl std::fmt::Debug for WatchSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchSet")
            .field("len", &self.cells.len())
            .field("fired", &self.fired())
            .finish()
    }
}

impl Stream for WatchSet {
    type Item = Result<usize>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<usize>>> {
        let this = self.get_mut();
        loop {
            if this.streamed >= this.cells.len() {
                return Poll::Ready(None);
            }
            if let Some(&id) = lock(&this.waiter.all).get(this.streamed) {
                this.streamed += 1;
                this.listener = None;
                return Poll::Ready(Some(Ok(id)));
            }
            if let Some(e) = this.waiter.gone() {
                this.streamed = usize::MAX;
                return Poll::Ready(Some(Err(e)));
            }
            // Listening, then looking again, misses no signal.
            match &mut this.listener {
                None => this.listener = Some(this.waiter.event.listen()),
                Some(l) => match Pin::new(l).poll(cx) {
                    Poll::Ready(()) => this.listener = None,
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
    }
}
