//! Watches: one-shot notifications that a query's result may have changed.
//!
//! This module owns the watch handles ([`Watch`], [`WatchSet`]), the
//! per-table registry of watched keys and key ranges, and the matching of a
//! commit's changed index keys against it. Nothing is stored in the trees:
//! unwatched data costs nothing, and a write transaction logs the index keys
//! it changes only for tables that have watches.
//!
//! The protocol (see `docs/ARCHITECTURE.md`, "Watches"): a commit first
//! publishes its root, then, per changed table and under that table's
//! registry lock, fires the watches its keys match and records the keys in
//! a short ring of recent commits. Registering a watch taken from a read
//! transaction at revision `r` happens under the same lock and first checks
//! the ring for commits after `r` (or fires at once when the ring no longer
//! covers them), so a commit racing with a registration is never missed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};

use crate::index::KeyLog;
use crate::sync::{Broken, Mutex, lock};

/// What a watch covers, in the encoded key space of one index.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Exactly this key.
    Exact(Vec<u8>),
    /// Every key starting with these bytes (`[]`: the whole index).
    Prefix(Vec<u8>),
    /// Every key within the bounds.
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
}

impl Target {
    fn matches(&self, key: &[u8]) -> bool {
        match self {
            Target::Exact(k) => k.as_slice() == key,
            Target::Prefix(p) => key.starts_with(p),
            Target::Range(lo, hi) => in_range(lo, hi, key),
        }
    }
}

fn in_range(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>, key: &[u8]) -> bool {
    let above = match lo {
        Bound::Included(l) => key >= l.as_slice(),
        Bound::Excluded(l) => key > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => key <= h.as_slice(),
        Bound::Excluded(h) => key < h.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

/// The shared state of one watch.
struct Cell {
    state: Mutex<CellState>,
}

#[derive(Default)]
struct CellState {
    fired: bool,
    /// Watch sets waiting on this watch, with the watch's index in each
    /// (the first inline: most watches have one waiter).
    first: Option<(Arc<Waiter>, usize)>,
    more: Vec<(Arc<Waiter>, usize)>,
}

/// The signal of one [`WatchSet`]: the index of the first watch that fired.
struct Waiter {
    first: AtomicUsize,
    event: Event,
}

const NONE: usize = usize::MAX;

impl Waiter {
    fn new() -> Arc<Waiter> {
        Arc::new(Waiter {
            first: AtomicUsize::new(NONE),
            event: Event::new(),
        })
    }

    fn signal(&self, id: usize) {
        let _ = self
            .first
            .compare_exchange(NONE, id, Ordering::AcqRel, Ordering::Acquire);
        self.event.notify(usize::MAX);
    }

    fn fired(&self) -> Option<usize> {
        match self.first.load(Ordering::Acquire) {
            NONE => None,
            id => Some(id),
        }
    }

    fn wait_deadline(&self, deadline: Option<Instant>) -> Option<usize> {
        loop {
            if let Some(id) = self.fired() {
                return Some(id);
            }
            let listener = self.event.listen();
            if let Some(id) = self.fired() {
                return Some(id);
            }
            match deadline {
                None => listener.wait(),
                Some(d) => {
                    if listener.wait_deadline(d).is_none() {
                        return self.fired();
                    }
                }
            }
        }
    }

    async fn wait_async(&self) -> usize {
        loop {
            if let Some(id) = self.fired() {
                return id;
            }
            let listener = self.event.listen();
            if let Some(id) = self.fired() {
                return id;
            }
            listener.await;
        }
    }
}

impl Cell {
    fn new() -> Arc<Cell> {
        Arc::new(Cell {
            state: Mutex::new(CellState::default()),
        })
    }

    fn fire(&self) {
        let (first, more) = {
            let mut st = lock(&self.state);
            if st.fired {
                return;
            }
            st.fired = true;
            (st.first.take(), std::mem::take(&mut st.more))
        };
        for (w, id) in first.into_iter().chain(more) {
            w.signal(id);
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
/// a [`WatchSet`].
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
/// assert!(watch.wait_timeout(Duration::from_secs(10)));
/// assert_eq!(db.read().get(&by_key, "mode")?.unwrap().value, "fast");
/// # writer.join().unwrap();
/// # Ok::<(), pandodb::Error>(())
/// ```
#[derive(Clone)]
pub struct Watch {
    cell: Arc<Cell>,
}

impl Watch {
    /// Whether the watch has fired.
    pub fn is_fired(&self) -> bool {
        self.cell.is_fired()
    }

    /// Blocks until the watch fires.
    pub fn wait(&self) {
        let w = Waiter::new();
        self.cell.attach(&w, 0);
        w.wait_deadline(None);
    }

    /// Blocks until the watch fires or `timeout` passes; returns whether it
    /// fired.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let w = Waiter::new();
        self.cell.attach(&w, 0);
        let fired = w.wait_deadline(Some(Instant::now() + timeout)).is_some();
        if !fired {
            self.cell.detach(&w);
        }
        fired
    }

    /// A future that completes when the watch fires; works with any async
    /// runtime.
    pub fn fired(&self) -> impl Future<Output = ()> + Send + 'static {
        let w = Waiter::new();
        self.cell.attach(&w, 0);
        // Detaches the waiter if the future is dropped before it completes.
        let guard = Attached {
            cell: self.cell.clone(),
            waiter: w,
        };
        async move {
            guard.waiter.wait_async().await;
        }
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
/// assert_eq!(set.wait_timeout(Duration::from_millis(1)), None);
/// let mut w = db.write(&[&cfg]);
/// w.insert(&cfg, Cfg { key: "b".into() })?;
/// w.commit()?;
/// assert_eq!(set.wait_timeout(Duration::from_secs(10)), Some(1));
/// # Ok::<(), pandodb::Error>(())
/// ```
pub struct WatchSet {
    waiter: Arc<Waiter>,
    /// Keeps the watches alive (a registry drops watches nobody holds).
    cells: Vec<Arc<Cell>>,
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
    pub fn wait(&self) -> usize {
        self.waiter
            .wait_deadline(None)
            .expect("waiting without a deadline returns only once fired")
    }

    /// Blocks until a watch fires or `timeout` passes; returns the index of
    /// the first watch that fired, or `None` on timeout.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<usize> {
        self.waiter.wait_deadline(Some(Instant::now() + timeout))
    }

    /// A future resolving to the index of the first watch that fired; works
    /// with any async runtime.
    pub fn wait_async(&self) -> impl Future<Output = usize> + Send + 'static {
        let w = self.waiter.clone();
        async move { w.wait_async().await }
    }
}

impl Drop for WatchSet {
    fn drop(&mut self) {
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

/// A range watch: the revision its reader saw, lower and upper bound, and
/// the watch.
type RangeWatch = (u64, Bound<Vec<u8>>, Bound<Vec<u8>>, Arc<Cell>);

/// The watches registered on one key or prefix, each with the revision its
/// reader saw: a commit fires only those that saw an older revision (a
/// reader that already sees a commit is not woken by it). Readers of the
/// same revision share one cell, so registering a key already watched at
/// that revision allocates nothing.
struct Watched {
    seen: u64,
    cell: Arc<Cell>,
    more: Vec<(u64, Arc<Cell>)>,
}

impl Watched {
    /// The cell for readers of `seen`, and whether it is new.
    fn cell_for(&mut self, seen: u64) -> (Arc<Cell>, bool) {
        if self.seen == seen {
            return (self.cell.clone(), false);
        }
        if let Some((_, c)) = self.more.iter().find(|(s, _)| *s == seen) {
            return (c.clone(), false);
        }
        let cell = Cell::new();
        self.more.push((seen, cell.clone()));
        (cell, true)
    }

    /// Fires the watches older than `revision`; returns how many fired and
    /// what remains (watches of readers that already see `revision`).
    fn fire(self, revision: u64) -> (usize, Option<Watched>) {
        let mut n = 0;
        let mut left: Vec<(u64, Arc<Cell>)> = Vec::new();
        for (seen, cell) in std::iter::once((self.seen, self.cell)).chain(self.more) {
            if seen < revision {
                cell.fire();
                n += 1;
            } else {
                left.push((seen, cell));
            }
        }
        (n, Watched::from_list(left))
    }

    fn from_list(mut list: Vec<(u64, Arc<Cell>)>) -> Option<Watched> {
        let (seen, cell) = list.pop()?;
        Some(Watched {
            seen,
            cell,
            more: list,
        })
    }

    fn len(&self) -> usize {
        1 + self.more.len()
    }

    /// Drops the cells nobody holds; `None` when none is left.
    fn sweep(self) -> Option<Watched> {
        let live: Vec<(u64, Arc<Cell>)> = std::iter::once((self.seen, self.cell))
            .chain(self.more)
            .filter(|(_, c)| Arc::strong_count(c) > 1)
            .collect();
        Watched::from_list(live)
    }
}

/// The watches of one index.
#[derive(Default)]
struct IndexWatches {
    exact: HashMap<Box<[u8]>, Watched>,
    prefix: HashMap<Box<[u8]>, Watched>,
    /// Distinct prefix lengths in `prefix`, with how many prefixes have
    /// each: a changed key is looked up once per length, not once per byte.
    prefix_lens: BTreeMap<usize, usize>,
    ranges: Vec<RangeWatch>,
}

impl IndexWatches {
    /// The cell for `target` seen at `seen`: an existing one, or a new one
    /// (then `true`).
    fn add(&mut self, target: Target, seen: u64) -> (Arc<Cell>, bool) {
        let (map, key) = match target {
            Target::Exact(k) => (&mut self.exact, k),
            Target::Prefix(p) => {
                if !self.prefix.contains_key(p.as_slice()) {
                    *self.prefix_lens.entry(p.len()).or_default() += 1;
                }
                (&mut self.prefix, p)
            }
            Target::Range(lo, hi) => {
                let cell = Cell::new();
                self.ranges.push((seen, lo, hi, cell.clone()));
                return (cell, true);
            }
        };
        if let Some(w) = map.get_mut(key.as_slice()) {
            return w.cell_for(seen);
        }
        let cell = Cell::new();
        map.insert(
            key.into(),
            Watched {
                seen,
                cell: cell.clone(),
                more: Vec::new(),
            },
        );
        (cell, true)
    }

    /// Fires the watches covering `key` that saw a revision older than
    /// `revision`; returns how many.
    fn fire(&mut self, key: &[u8], revision: u64) -> usize {
        let mut n = 0;
        if !self.exact.is_empty()
            && let Some((k, w)) = self.exact.remove_entry(key)
        {
            let (fired, left) = w.fire(revision);
            n += fired;
            if let Some(left) = left {
                self.exact.insert(k, left);
            }
        }
        if !self.prefix.is_empty() {
            let mut emptied = Vec::new();
            for (&len, _) in self.prefix_lens.range(..=key.len()) {
                if let Some((k, w)) = self.prefix.remove_entry(&key[..len]) {
                    let (fired, left) = w.fire(revision);
                    n += fired;
                    match left {
                        Some(left) => {
                            self.prefix.insert(k, left);
                        }
                        None => emptied.push(len),
                    }
                }
            }
            for len in emptied {
                if let Some(c) = self.prefix_lens.get_mut(&len) {
                    *c -= 1;
                    if *c == 0 {
                        self.prefix_lens.remove(&len);
                    }
                }
            }
        }
        if !self.ranges.is_empty() {
            self.ranges.retain(|(seen, lo, hi, cell)| {
                if *seen < revision && in_range(lo, hi, key) {
                    cell.fire();
                    n += 1;
                    false
                } else {
                    true
                }
            });
        }
        n
    }

    /// Fires every watch that saw a revision older than `revision`.
    fn fire_everything(&mut self, revision: u64) -> usize {
        let mut n = 0;
        for map in [&mut self.exact, &mut self.prefix] {
            let old = std::mem::take(map);
            for (k, w) in old {
                let (fired, left) = w.fire(revision);
                n += fired;
                if let Some(left) = left {
                    map.insert(k, left);
                }
            }
        }
        self.prefix_lens.clear();
        for k in self.prefix.keys() {
            *self.prefix_lens.entry(k.len()).or_default() += 1;
        }
        self.ranges.retain(|(seen, _, _, cell)| {
            if *seen < revision {
                cell.fire();
                n += 1;
                false
            } else {
                true
            }
        });
        n
    }

    /// Drops watches nobody holds any more (their handles were dropped
    /// before they fired); returns how many remain.
    fn sweep(&mut self) -> usize {
        let mut n = 0;
        for map in [&mut self.exact, &mut self.prefix] {
            let old = std::mem::take(map);
            for (k, w) in old {
                if let Some(w) = w.sweep() {
                    n += w.len();
                    map.insert(k, w);
                }
            }
        }
        self.prefix_lens.clear();
        for k in self.prefix.keys() {
            *self.prefix_lens.entry(k.len()).or_default() += 1;
        }
        self.ranges.retain(|(_, _, _, c)| Arc::strong_count(c) > 1);
        n + self.ranges.len()
    }
}

/// How many recent commits' keys a table keeps to check watches registered
/// from a slightly older read transaction.
const RECENT: usize = 32;

struct Registry {
    indexes: Vec<IndexWatches>,
    /// Keys of the latest commits of this table (by revision), for the
    /// registration check.
    recent: VecDeque<(u64, Arc<KeyLog>)>,
    /// The latest revision of a commit of this table whose keys are not in
    /// `recent` (evicted, or not logged because nobody watched).
    unknown_upto: u64,
    /// Watches registered and not yet fired or swept.
    count: usize,
    /// Sweep abandoned watches when `count` reaches this.
    sweep_at: usize,
}

/// The watch registry of one table.
pub(crate) struct TableWatches {
    /// Registered watches (read without the lock by writers deciding
    /// whether to log their keys).
    active: AtomicUsize,
    registry: Mutex<Registry>,
    /// Loom's deliberately broken registration (see [`Broken`]).
    broken: Broken,
}

impl TableWatches {
    pub(crate) fn new(indexes: usize, broken: Broken) -> TableWatches {
        TableWatches {
            broken,
            active: AtomicUsize::new(0),
            registry: Mutex::new(Registry {
                indexes: (0..indexes).map(|_| IndexWatches::default()).collect(),
                recent: VecDeque::new(),
                unknown_upto: 0,
                count: 0,
                sweep_at: 1024,
            }),
        }
    }

    /// Whether writers should log the index keys they change.
    #[inline]
    pub(crate) fn watched(&self) -> bool {
        self.active.load(Ordering::Acquire) > 0
    }

    /// A watch on `target` of index `index`, for a reader that saw revision
    /// `seen`.
    pub(crate) fn register(&self, index: usize, target: Target, seen: u64) -> Watch {
        let mut reg = lock(&self.registry);
        // Commits after `seen` that already ran their notification: check
        // them now, or fire if their keys are not known any more.
        let seen = if self.broken.watch() { u64::MAX } else { seen };
        let missed = reg.unknown_upto > seen
            || reg.recent.iter().any(|(rev, keys)| {
                *rev > seen
                    && (keys.overflowed()
                        || keys.iter().any(|(ix, k)| ix == index && target.matches(k)))
            });
        let Some(ix) = reg.indexes.get_mut(index).filter(|_| !missed) else {
            drop(reg);
            let cell = Cell::new();
            cell.fire();
            return Watch { cell };
        };
        let (cell, new) = ix.add(target, seen);
        if !new {
            return Watch { cell };
        }
        reg.count += 1;
        if reg.count >= reg.sweep_at {
            let remaining: usize = reg.indexes.iter_mut().map(IndexWatches::sweep).sum();
            reg.count = remaining;
            reg.sweep_at = (remaining * 2).max(1024);
        }
        self.active.store(reg.count, Ordering::Release);
        Watch { cell }
    }

    /// Runs after a commit of revision `revision` changing this table was
    /// published: fires the watches its keys match (every watch of the
    /// table, when the keys were not logged).
    pub(crate) fn notify(&self, revision: u64, keys: Option<KeyLog>) {
        let mut reg = lock(&self.registry);
        let reg = &mut *reg;
        let fired = match keys {
            Some(keys) if !keys.overflowed() => {
                let mut n = 0;
                if reg.count > 0 {
                    for (ix, key) in keys.iter() {
                        if let Some(w) = reg.indexes.get_mut(ix) {
                            n += w.fire(key, revision);
                        }
                    }
                }
                reg.recent.push_back((revision, Arc::new(keys)));
                if reg.recent.len() > RECENT
                    && let Some((rev, _)) = reg.recent.pop_front()
                {
                    reg.unknown_upto = reg.unknown_upto.max(rev);
                }
                n
            }
            _ => {
                reg.unknown_upto = reg.unknown_upto.max(revision);
                reg.indexes
                    .iter_mut()
                    .map(|w| w.fire_everything(revision))
                    .sum()
            }
        };
        reg.count = reg.count.saturating_sub(fired);
        self.active.store(reg.count, Ordering::Release);
    }

    /// Watches currently registered and the approximate heap bytes of the
    /// registry (recent key logs included).
    pub(crate) fn stats(&self) -> (usize, usize) {
        let reg = lock(&self.registry);
        let cell = std::mem::size_of::<Cell>() + 16;
        // A hash map entry: the boxed key (16), the `Watched` (48) and a
        // control byte, at the map's load factor (7/8).
        let entry = (16 + 48 + 1) * 8 / 7;
        let mut bytes = 0;
        for ix in &reg.indexes {
            for (k, w) in ix.exact.iter().chain(ix.prefix.iter()) {
                bytes += entry + k.len() + w.len() * cell + w.more.capacity() * 16;
            }
            bytes += ix.ranges.capacity() * std::mem::size_of::<RangeWatch>();
            for (_, lo, hi, _) in &ix.ranges {
                for b in [lo, hi] {
                    if let Bound::Included(v) | Bound::Excluded(v) = b {
                        bytes += v.capacity();
                    }
                }
                bytes += cell;
            }
        }
        bytes += reg
            .recent
            .iter()
            .map(|(_, k)| k.heap_bytes())
            .sum::<usize>();
        (reg.count, bytes)
    }
}
