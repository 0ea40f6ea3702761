//! Answering a [`Filter`]: the plan and the primary-key-ordered streams it
//! is made of.
//!
//! Every condition is a stream of rows in primary-key order: the entries of
//! one key of a non-unique index are `value ++ primary key`, so they come in
//! that order; a primary-key prefix is a range of the rows; what has no such
//! order (a prefix of a secondary index, a key of a unique one) is read and
//! sorted. An all-of is planned from the conditions' counts (each
//! O(key length): `Tree::count_prefix`): the smallest drives; a condition
//! at most [`LEAP_RATIO`] times larger is merged with it by seeks
//! (leapfrog: each stream seeks to the largest primary key seen, stepping a
//! few entries before descending); a larger one is probed on the driver's
//! rows (`Expr::test`: a key by a point lookup of its entry, which leaves
//! the object untouched). An any-of is a merge of its conditions' streams.
//!
//! Measured and not kept: walking the probe lookups of the next 16 driver
//! rows together (`tree::Descent`, as writes warm their paths) made
//! `tags_and_auto` no faster (190–213 µs without, 194–272 µs with, at N =
//! 1M; `docs/PERFORMANCE.md`): consecutive probes are independent, so the
//! processor overlaps their misses already.

use std::iter::FusedIterator;
use std::ops::Bound;
use std::sync::Arc;

use super::filter::{Expr, Filter, Probe, SetMatch};
use super::{Stored, sealed, state_of};
use crate::error::{Error, Result};
use crate::index::KeyBuf;
use crate::table::write::primary_key;
use crate::table::{TableState, Versioned};
use crate::tree::{IntoIter, Key, Tree, prefetch};

/// A stream seeking forward first steps over this many entries, then
/// descends from the root (`lower_bound`).
const STEPS: usize = 4;

/// An all-of merges a condition with its driver when the condition has at
/// most this many times the driver's rows; a larger one is probed.
pub(crate) const LEAP_RATIO: usize = 4;

/// The entries of one tree that start with `prefix`, in key order, whose
/// primary key is the key without its first `strip` bytes.
struct Cursor<V> {
    tree: Tree<V>,
    prefix: Vec<u8>,
    strip: usize,
    it: IntoIter<V>,
    head: Option<Key<V>>,
    buf: Vec<u8>,
}

impl<V> Cursor<V> {
    fn new(tree: &Tree<V>, prefix: Vec<u8>, strip: bool) -> Self {
        let it = tree.owned_prefix(&prefix);
        let strip = if strip { prefix.len() } else { 0 };
        let mut c = Cursor {
            tree: tree.clone(),
            prefix,
            strip,
            it,
            head: None,
            buf: Vec::new(),
        };
        c.pull();
        c
    }

    #[inline]
    fn pull(&mut self) {
        self.head = self.it.next_key().filter(|k| k.starts_with(&self.prefix));
    }

    #[inline]
    fn pk(&self) -> Option<&[u8]> {
        self.head.as_ref().map(|k| &k[self.strip..])
    }

    fn advance(&mut self) {
        if self.head.is_some() {
            self.pull();
        }
    }

    fn seek(&mut self, target: &[u8]) {
        for _ in 0..STEPS {
            match self.pk() {
                Some(p) if p < target => self.pull(),
                _ => return,
            }
        }
        if self.pk().is_none_or(|p| p >= target) {
            return;
        }
        self.buf.clear();
        if self.strip > 0 {
            self.buf.extend_from_slice(&self.prefix);
            self.buf.extend_from_slice(target);
        } else {
            self.buf.extend_from_slice(target.max(&self.prefix));
        }
        let from = Bound::Included(self.buf.as_slice());
        self.it = self.tree.owned_range((from, Bound::Unbounded));
        self.pull();
    }
}

/// Rows in primary-key order, positioned on the current one (`pk` is
/// `None` once exhausted).
enum Stream<T> {
    Empty,
    /// One key of a non-unique secondary index.
    Entries(Cursor<Versioned<T>>),
    /// A primary key, or a prefix of the primary keys.
    Rows(Cursor<Versioned<T>>),
    /// Rows read and sorted by primary key.
    Sorted(Vec<(Vec<u8>, Arc<T>)>, usize),
    Union(Union<T>),
    Join(Box<Join<T>>),
}

impl<T> Stream<T> {
    fn pk(&self) -> Option<&[u8]> {
        match self {
            Stream::Empty => None,
            Stream::Entries(c) => c.pk(),
            Stream::Rows(c) => c.pk(),
            Stream::Sorted(v, at) => v.get(*at).map(|(k, _)| k.as_slice()),
            Stream::Union(u) => u.cur.and_then(|i| u.parts[i].pk()),
            Stream::Join(j) => j.pk(),
        }
    }

    fn obj(&self) -> Option<&Arc<T>> {
        match self {
            Stream::Empty => None,
            Stream::Entries(c) => c.head.as_ref().map(|k| k.value().obj()),
            Stream::Rows(c) => c.head.as_ref().map(|k| k.value().obj()),
            Stream::Sorted(v, at) => v.get(*at).map(|(_, o)| o),
            Stream::Union(u) => u.cur.and_then(|i| u.parts[i].obj()),
            Stream::Join(j) => {
                if j.done {
                    None
                } else {
                    j.lead[0].obj()
                }
            }
        }
    }

    fn advance(&mut self, probe: &mut Probe<T>) {
        match self {
            Stream::Empty => {}
            Stream::Entries(c) => c.advance(),
            Stream::Rows(c) => c.advance(),
            Stream::Sorted(v, at) => *at = (*at + 1).min(v.len()),
            Stream::Union(u) => u.advance(probe),
            Stream::Join(j) => {
                if !j.done {
                    j.lead[0].advance(probe);
                    j.settle(probe);
                }
            }
        }
    }

    /// Moves to the first row whose primary key is `>= target`.
    fn seek(&mut self, target: &[u8], probe: &mut Probe<T>) {
        match self {
            Stream::Empty => {}
            Stream::Entries(c) => c.seek(target),
            Stream::Rows(c) => c.seek(target),
            Stream::Sorted(v, at) => {
                if v.get(*at).is_some_and(|(k, _)| k.as_slice() < target) {
                    *at += v[*at..].partition_point(|(k, _)| k.as_slice() < target);
                }
            }
            Stream::Union(u) => {
                for p in &mut u.parts {
                    p.seek(target, probe);
                }
                u.pick();
            }
            Stream::Join(j) => {
                if !j.done {
                    j.lead[0].seek(target, probe);
                    j.settle(probe);
                }
            }
        }
    }
}

/// Any-of: the merge of several streams, each row once.
struct Union<T> {
    parts: Vec<Stream<T>>,
    /// The part holding the smallest primary key.
    cur: Option<usize>,
    /// Another part holds it too.
    tie: bool,
    buf: Vec<u8>,
}

impl<T> Union<T> {
    /// Finds the part holding the smallest primary key, and whether
    /// another part holds it too.
    fn pick(&mut self) {
        let mut best: Option<(usize, &[u8])> = None;
        let mut tie = false;
        for (i, p) in self.parts.iter().enumerate() {
            if let Some(k) = p.pk() {
                match best {
                    Some((_, b)) if k > b => {}
                    Some((_, b)) if k == b => tie = true,
                    _ => {
                        best = Some((i, k));
                        tie = false;
                    }
                }
            }
        }
        self.cur = best.map(|(i, _)| i);
        self.tie = tie;
    }

    fn advance(&mut self, probe: &mut Probe<T>) {
        let Some(cur) = self.cur else { return };
        if self.tie {
            self.buf.clear();
            self.buf
                .extend_from_slice(self.parts[cur].pk().unwrap_or_default());
            for p in &mut self.parts {
                if p.pk() == Some(self.buf.as_slice()) {
                    p.advance(probe);
                }
            }
        } else {
            let part = &mut self.parts[cur];
            part.advance(probe);
            // Its next row is handed out after the other parts' current
            // ones: ask for the object's lines (count and fields) now.
            if let Some(o) = part.obj() {
                prefetch(Arc::as_ptr(o).cast::<u8>().wrapping_sub(16));
            }
        }
        self.pick();
    }
}

/// All-of: the streams of `lead` merged by seeks (`lead[0]` drives), each
/// row they agree on tested against `probes`.
struct Join<T> {
    lead: Vec<Stream<T>>,
    probes: Vec<Expr>,
    target: Vec<u8>,
    done: bool,
}

impl<T> Join<T> {
    fn pk(&self) -> Option<&[u8]> {
        if self.done { None } else { self.lead[0].pk() }
    }

    /// From the current positions, moves to the first row every stream has
    /// and every probe accepts.
    fn settle(&mut self, probe: &mut Probe<T>) {
        loop {
            let Some(p) = self.lead[0].pk() else {
                self.done = true;
                return;
            };
            self.target.clear();
            self.target.extend_from_slice(p);
            let n = self.lead.len();
            let (mut agree, mut i) = (1, 1 % n);
            while agree < n {
                let s = &mut self.lead[i];
                s.seek(&self.target, probe);
                match s.pk() {
                    None => {
                        self.done = true;
                        return;
                    }
                    Some(q) if q == self.target.as_slice() => agree += 1,
                    Some(q) => {
                        self.target.clear();
                        self.target.extend_from_slice(q);
                        agree = 1;
                    }
                }
                i = (i + 1) % n;
            }
            if self.probes.is_empty() {
                return;
            }
            let (Some(pk), Some(obj)) = (self.lead[0].pk(), self.lead[0].obj()) else {
                self.done = true;
                return;
            };
            probe.next_row();
            if self.probes.iter().all(|e| e.test(pk, obj, probe)) {
                return;
            }
            self.lead[0].advance(probe);
        }
    }
}

/// Builds the streams of a filter on one snapshot of a table.
struct Planner<'s, T> {
    st: &'s TableState<T>,
    sinks: Vec<KeyBuf>,
}

impl<T: Send + Sync + 'static> Planner<'_, T> {
    fn index(&self, pos: usize) -> Result<&Tree<Versioned<T>>> {
        self.st
            .indexes
            .get(pos)
            .ok_or_else(|| Error::ForeignHandle(self.st.def.name.clone()))
    }

    /// How many rows `e` can match at most, in O(key length) per key.
    fn estimate(&self, e: &Expr) -> Result<usize> {
        let primary = self.st.primary;
        Ok(match e {
            Expr::Key { pos, key, .. } if *pos == primary => {
                usize::from(self.st.rows.contains_key(key))
            }
            Expr::Key {
                pos,
                unique: true,
                key,
            } => usize::from(self.index(*pos)?.contains_key(key)),
            Expr::Key { pos, key, .. } => self.index(*pos)?.count_prefix(key),
            Expr::Prefix { pos, prefix } if *pos == primary => self.st.rows.count_prefix(prefix),
            Expr::Prefix { pos, prefix } => self.index(*pos)?.count_prefix(prefix),
            Expr::All(v) if v.is_empty() => self.st.rows.len(),
            Expr::All(v) => {
                let mut min = usize::MAX;
                for c in v {
                    min = min.min(self.estimate(c)?);
                }
                min
            }
            Expr::Any(v) => {
                let mut sum = 0usize;
                for c in v {
                    sum = sum.saturating_add(self.estimate(c)?);
                }
                sum
            }
            Expr::Set { mode, keys, .. } => {
                let parts = Self::set_keys(e);
                match mode {
                    SetMatch::Superset if keys.is_empty() => self.st.rows.len(),
                    SetMatch::Exact if keys.is_empty() => 0,
                    SetMatch::Superset | SetMatch::Exact => self.estimate(&Expr::All(parts))?,
                    SetMatch::Any | SetMatch::Subset => self.estimate(&Expr::Any(parts))?,
                }
            }
        })
    }

    /// The keys of a set match, as key conditions.
    fn set_keys(e: &Expr) -> Vec<Expr> {
        let Expr::Set {
            pos, unique, keys, ..
        } = e
        else {
            return Vec::new();
        };
        keys.iter()
            .map(|k| Expr::Key {
                pos: *pos,
                unique: *unique,
                key: k.clone(),
            })
            .collect()
    }

    /// Whether `e`'s stream comes in primary-key order without reading and
    /// sorting all of it first.
    fn ordered(&self, e: &Expr) -> bool {
        match e {
            Expr::Prefix { pos, .. } => *pos == self.st.primary,
            Expr::All(v) | Expr::Any(v) => v.iter().all(|c| self.ordered(c)),
            Expr::Key { .. } | Expr::Set { .. } => true,
        }
    }

    fn all_rows(&self) -> Stream<T> {
        Stream::Rows(Cursor::new(&self.st.rows, Vec::new(), false))
    }

    fn build(&mut self, e: &Expr, probe: &mut Probe<T>) -> Result<Stream<T>> {
        let primary = self.st.primary;
        Ok(match e {
            Expr::Key { pos, key, .. } | Expr::Prefix { pos, prefix: key } if *pos == primary => {
                Stream::Rows(Cursor::new(&self.st.rows, key.clone(), false))
            }
            Expr::Key {
                pos,
                unique: false,
                key,
            } => Stream::Entries(Cursor::new(self.index(*pos)?, key.clone(), true)),
            Expr::Key { pos, key, .. } | Expr::Prefix { pos, prefix: key } => {
                self.sorted(*pos, key)?
            }
            Expr::All(v) => self.all(v, Vec::new(), probe)?,
            Expr::Any(v) => self.union(v, probe)?,
            Expr::Set { mode, keys, .. } => {
                let parts = Self::set_keys(e);
                match mode {
                    SetMatch::Superset => self.all(&parts, Vec::new(), probe)?,
                    SetMatch::Any => self.union(&parts, probe)?,
                    _ if keys.is_empty() => Stream::Empty,
                    SetMatch::Exact => self.all(&parts, vec![e.clone()], probe)?,
                    SetMatch::Subset => {
                        let any = self.union(&parts, probe)?;
                        join(vec![any], vec![e.clone()], probe)
                    }
                }
            }
        })
    }

    /// The rows with a key starting with `prefix` in index `pos`, read and
    /// sorted by primary key.
    fn sorted(&mut self, pos: usize, prefix: &[u8]) -> Result<Stream<T>> {
        let tree = self.index(pos)?.clone();
        let mut rows = Vec::with_capacity(tree.count_prefix(prefix));
        for (_, row) in tree.prefix(prefix) {
            rows.push((
                primary_key(&self.st.def, &mut self.sinks, &row.object)?,
                row.object.clone(),
            ));
        }
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        rows.dedup_by(|a, b| a.0 == b.0);
        Ok(Stream::Sorted(rows, 0))
    }

    fn union(&mut self, v: &[Expr], probe: &mut Probe<T>) -> Result<Stream<T>> {
        let mut parts = Vec::with_capacity(v.len());
        for c in v {
            if self.estimate(c)? > 0 {
                parts.push(self.build(c, probe)?);
            }
        }
        Ok(match parts.len() {
            0 => Stream::Empty,
            1 => parts.pop().unwrap_or(Stream::Empty),
            _ => {
                let mut u = Union {
                    parts,
                    cur: None,
                    tie: false,
                    buf: Vec::new(),
                };
                u.pick();
                Stream::Union(u)
            }
        })
    }

    /// All-of `v`, and every one of `probes`: the smallest condition drives,
    /// those at most `LEAP_RATIO` times larger are merged with it by seeks,
    /// the others are probed on its rows.
    fn all(
        &mut self,
        v: &[Expr],
        mut probes: Vec<Expr>,
        probe: &mut Probe<T>,
    ) -> Result<Stream<T>> {
        if v.is_empty() {
            let rows = self.all_rows();
            return Ok(if probes.is_empty() {
                rows
            } else {
                join(vec![rows], probes, probe)
            });
        }
        let mut sized = Vec::with_capacity(v.len());
        for c in v {
            sized.push((self.estimate(c)?, c));
        }
        sized.sort_by_key(|(n, c)| (*n, !self.ordered(c)));
        let driver = sized[0].0;
        if driver == 0 {
            return Ok(Stream::Empty);
        }
        let mut lead = vec![self.build(sized[0].1, probe)?];
        for &(n, c) in &sized[1..] {
            if n <= driver.saturating_mul(LEAP_RATIO) && self.ordered(c) {
                lead.push(self.build(c, probe)?);
            } else {
                probes.push(c.clone());
            }
        }
        Ok(if lead.len() == 1 && probes.is_empty() {
            lead.pop().unwrap_or(Stream::Empty)
        } else {
            join(lead, probes, probe)
        })
    }
}

fn join<T>(lead: Vec<Stream<T>>, probes: Vec<Expr>, probe: &mut Probe<T>) -> Stream<T> {
    let mut j = Join {
        lead,
        probes,
        target: Vec::new(),
        done: false,
    };
    j.settle(probe);
    Stream::Join(Box::new(j))
}

/// The objects a [`Filter`] selects, in primary-key order: an ordinary
/// iterator that owns the version it reads (later writes, even of the same
/// write transaction, do not change what it yields). It finds each next
/// object when asked; [`Iterator::count`] counts without touching the
/// objects' reference counts. `size_hint` gives an upper bound from the
/// conditions' counts. Returned by [`Query::select`](crate::Query::select).
pub struct Selection<T> {
    stream: Stream<T>,
    probe: Probe<T>,
    /// The current row was handed out: move on before the next one.
    taken: bool,
    upper: usize,
}

impl<T> Iterator for Selection<T> {
    type Item = Arc<T>;

    fn next(&mut self) -> Option<Arc<T>> {
        if std::mem::take(&mut self.taken) {
            self.stream.advance(&mut self.probe);
        }
        let obj = self.stream.obj()?.clone();
        self.taken = true;
        self.upper = self.upper.saturating_sub(1);
        Some(obj)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.upper))
    }

    fn count(mut self) -> usize {
        if std::mem::take(&mut self.taken) {
            self.stream.advance(&mut self.probe);
        }
        let mut n = 0;
        while self.stream.pk().is_some() {
            n += 1;
            self.stream.advance(&mut self.probe);
        }
        n
    }
}

impl<T> FusedIterator for Selection<T> {}

impl<T> std::fmt::Debug for Selection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("at_most", &self.upper)
            .finish()
    }
}

/// Plans and starts the query of `filter` on `src`.
pub(crate) fn select<S: sealed::Source + ?Sized, T: Send + Sync + 'static>(
    src: &S,
    filter: &Filter<T>,
) -> Result<Selection<T>> {
    let id = filter.table_id()?;
    let st = state_of::<S, T>(src, id.schema, id.table, &id.name)?;
    let mut probe = Probe::new(st);
    let mut planner = Planner {
        st,
        sinks: Vec::new(),
    };
    let upper = planner.estimate(&filter.expr)?;
    let stream = if upper == 0 {
        Stream::Empty
    } else {
        planner.build(&filter.expr, &mut probe)?
    };
    Ok(Selection {
        stream,
        probe,
        taken: false,
        upper,
    })
}
