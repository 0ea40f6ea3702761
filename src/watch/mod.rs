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

mod handle;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::index::KeyLog;
use crate::sync::{Broken, Mutex, lock};

use handle::Cell;
pub use handle::{Watch, WatchSet};

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
        // A cell of a watch on several targets is never shared.
        if self.seen == seen && self.cell.entries() == 1 {
            return (self.cell.clone(), false);
        }
        if let Some((_, c)) = self
            .more
            .iter()
            .find(|(s, c)| *s == seen && c.entries() == 1)
        {
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
            .filter(|(_, c)| !Cell::abandoned(c))
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

    /// Adds `cell` (a watch on several targets) on `target`, seen at `seen`.
    fn add_cell(&mut self, target: Target, seen: u64, cell: Arc<Cell>) {
        let (map, key) = match target {
            Target::Exact(k) => (&mut self.exact, k),
            Target::Prefix(p) => {
                if !self.prefix.contains_key(p.as_slice()) {
                    *self.prefix_lens.entry(p.len()).or_default() += 1;
                }
                (&mut self.prefix, p)
            }
            Target::Range(lo, hi) => {
                self.ranges.push((seen, lo, hi, cell));
                return;
            }
        };
        match map.get_mut(key.as_slice()) {
            Some(w) => w.more.push((seen, cell)),
            None => {
                map.insert(
                    key.into(),
                    Watched {
                        seen,
                        cell,
                        more: Vec::new(),
                    },
                );
            }
        }
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
        self.ranges.retain(|(_, _, _, c)| !Cell::abandoned(c));
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
    /// The database was closed or dropped: watches are closed, not
    /// registered.
    closed: bool,
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
                closed: false,
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
        if reg.closed {
            drop(reg);
            let cell = Cell::new();
            cell.close();
            return Watch { cell };
        }
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

    /// One watch on several targets `(index, target)` of this table, for a
    /// reader that saw revision `seen`: it fires on the first later commit
    /// that matches any of them. Its cell is registered under every target
    /// and shared with no other watch.
    pub(crate) fn register_all(&self, mut targets: Vec<(usize, Target)>, seen: u64) -> Watch {
        if targets.len() == 1
            && let Some((index, target)) = targets.pop()
        {
            return self.register(index, target, seen);
        }
        let mut reg = lock(&self.registry);
        let cell = Cell::with_entries(targets.len());
        if reg.closed {
            drop(reg);
            cell.close();
            return Watch { cell };
        }
        let seen = if self.broken.watch() { u64::MAX } else { seen };
        let n = reg.indexes.len();
        let missed = targets.iter().any(|(ix, _)| *ix >= n)
            || reg.unknown_upto > seen
            || reg.recent.iter().any(|(rev, keys)| {
                *rev > seen
                    && (keys.overflowed()
                        || keys
                            .iter()
                            .any(|(ix, k)| targets.iter().any(|(i, t)| *i == ix && t.matches(k))))
            });
        if missed {
            drop(reg);
            cell.fire();
            return Watch { cell };
        }
        reg.count += targets.len();
        for (ix, target) in targets {
            reg.indexes[ix].add_cell(target, seen, cell.clone());
        }
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

    /// The database was closed or dropped: every registered watch is
    /// closed (its futures resolve with `Error::Closed`), and so is every
    /// watch registered later.
    pub(crate) fn close(&self) {
        let mut reg = lock(&self.registry);
        reg.closed = true;
        for ix in &mut reg.indexes {
            let ix = std::mem::take(ix);
            for w in ix.exact.into_values().chain(ix.prefix.into_values()) {
                for (_, cell) in std::iter::once((w.seen, w.cell)).chain(w.more) {
                    cell.close();
                }
            }
            for (_, _, _, cell) in ix.ranges {
                cell.close();
            }
        }
        reg.count = 0;
        self.active.store(0, Ordering::Release);
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
