//! The differential harness shared by `tests/tree_model.rs` (proptest) and
//! `fuzz/fuzz_targets/tree_vs_btreemap.rs` (cargo-fuzz): it applies one
//! [`Op`] to a [`Tree`] and to a `BTreeMap` model, compares every answer,
//! and checks the structural invariants and every kept older version.
//!
//! Every check returns `Err(description)` instead of panicking, so proptest
//! can shrink quietly; the fuzz target turns an `Err` into a panic.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::ops::Bound;

use pandodb::tree::{Tree, TreeTxn};

/// The reference model.
pub type Model = BTreeMap<Vec<u8>, u32>;

/// How many older versions are kept at most.
pub const MAX_KEPT: usize = 8;

/// Which owning iterator an [`Op::Owned`] exercises.
#[derive(Debug, Clone)]
pub enum OwnedKind {
    /// `owned_iter()`.
    All,
    /// `owned_range((lo, hi))`.
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
    /// `owned_prefix(p)`.
    Prefix(Vec<u8>),
    /// `Tree::into_iter()` on a clone.
    IntoIter,
    /// `owned_iter().values()`.
    Values,
}

/// One mutation inside a [`Op::Txn`] batch.
#[derive(Debug, Clone)]
pub enum TxnOp {
    /// `txn.insert(k, v)`.
    Insert(Vec<u8>, u32),
    /// `txn.remove(k)`.
    Remove(Vec<u8>),
    /// `txn.remove_prefix(p)`.
    RemovePrefix(Vec<u8>),
    /// `txn.get(k)` through `Deref` (reads see the batch's own writes).
    Get(Vec<u8>),
}

/// One step of a differential run. Iteration ops carry a `steps` pattern:
/// `true` calls `next()`, `false` calls `next_back()` on the same iterator,
/// then the rest is drained forward.
#[derive(Debug, Clone)]
pub enum Op {
    /// `insert(k, v)`, compares the replaced value.
    Insert(Vec<u8>, u32),
    /// `remove(k)`, compares the removed value.
    Remove(Vec<u8>),
    /// `remove_prefix(p)`, compares the count.
    RemovePrefix(Vec<u8>),
    /// `get(k)` and `contains_key(k)`.
    Get(Vec<u8>),
    /// `count_prefix(p)`, `first_prefix(p)` and `last_prefix(p)`.
    CountPrefix(Vec<u8>),
    /// `first()`, `last()`, `is_empty()`.
    FirstLast,
    /// `longest_prefix(k)`.
    LongestPrefix(Vec<u8>),
    /// `lower_bound(k)`: its length and the first `n` items.
    LowerBound(Vec<u8>, usize),
    /// `reverse_lower_bound(k)`: its length and the first `n` items.
    ReverseLowerBound(Vec<u8>, usize),
    /// `prefix(p)` driven by a next/next_back pattern, and fully reversed.
    Prefix(Vec<u8>, Vec<bool>),
    /// `range` with the given bounds (through the matching range syntax when
    /// there is one), driven by a next/next_back pattern.
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>, Vec<bool>),
    /// `iter()` forward, reversed, and driven by a pattern.
    FullIter(Vec<bool>),
    /// An owning iterator made, then the tree mutated (remove_prefix of
    /// `mutate` and an insert of it), then the iterator driven: it must
    /// still yield the version it was made from.
    Owned {
        /// Which owning iterator.
        kind: OwnedKind,
        /// The next/next_back pattern.
        steps: Vec<bool>,
        /// The prefix removed and the key inserted before driving.
        mutate: Vec<u8>,
    },
    /// Keeps the current version (clone) with its model; when `MAX_KEPT`
    /// are kept, first drops the one at `index % len`.
    Keep(usize),
    /// Drops the kept version at `index % len`.
    DropKept(usize),
    /// Makes the kept version at `index % len` the current one (branching
    /// history: later writes must not touch the kept one).
    Checkout(usize),
    /// A batch through `txn()`, committed or abandoned.
    Txn(Vec<TxnOp>, bool),
    /// Inserts `prefix ++ [b]` for `b` in `lo..lo + n` (clamped to 255), and
    /// `prefix ++ [b, 0]` too when `twice`: grows a node to 48/256 children.
    Fanout {
        /// Common prefix of the new keys.
        prefix: Vec<u8>,
        /// First byte.
        lo: u8,
        /// How many bytes.
        n: u16,
        /// Also insert one key below each new child.
        twice: bool,
        /// The value of every new key.
        value: u32,
    },
    /// Removes `prefix ++ [b]` one at a time (with every key below it when
    /// `whole`, through `remove_prefix`) for every `step`-th `b` in
    /// `lo..lo + n`, ascending or descending: shrinks a node step by step.
    Unfanout {
        /// Common prefix of the removed keys.
        prefix: Vec<u8>,
        /// First byte.
        lo: u8,
        /// How many bytes.
        n: u16,
        /// Stride (0 is taken as 1).
        step: u8,
        /// Remove from the high end down.
        rev: bool,
        /// `remove_prefix(prefix ++ [b])` instead of `remove(prefix ++ [b])`.
        whole: bool,
    },
}

macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($ctx:tt)+) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            return Err(format!(
                "{}: tree {:?} != model {:?}",
                format_args!($($ctx)+),
                l,
                r
            ));
        }
    }};
}

/// The tree under test, its model, the kept versions and a step counter.
pub struct Harness {
    tree: Tree<u32>,
    model: Model,
    kept: Vec<(Tree<u32>, Model)>,
    steps: usize,
    full_check_every: usize,
}

fn to_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    b.as_ref().map(Vec::as_slice)
}

/// The model's entries inside `(lo, hi)`; empty (no panic) for an inverted
/// or degenerate range, as the tree answers.
fn model_range(model: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Vec<(Vec<u8>, u32)> {
    if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
        (lo, hi)
    {
        let both_included = matches!((lo, hi), (Bound::Included(_), Bound::Included(_)));
        if a > b || (a == b && !both_included) {
            return Vec::new();
        }
    }
    model
        .range::<[u8], _>((to_ref(lo), to_ref(hi)))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn model_prefix(model: &Model, p: &[u8]) -> Vec<(Vec<u8>, u32)> {
    model
        .range::<[u8], _>((Bound::Included(p), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(p))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Drives `it` with the next/next_back `steps`, then drains it forward,
/// checking every item, `len()` after every call, and fused ends.
fn drive<T, I>(mut it: I, expected: Vec<T>, steps: &[bool], what: &str) -> Result<(), String>
where
    T: PartialEq + Debug,
    I: DoubleEndedIterator<Item = T> + ExactSizeIterator,
{
    let mut want: VecDeque<T> = expected.into();
    ensure_eq!(it.len(), want.len(), "{what}: initial len");
    ensure_eq!(
        it.size_hint(),
        (want.len(), Some(want.len())),
        "{what}: size_hint"
    );
    for (i, &front) in steps.iter().enumerate() {
        let (got, exp) = if front {
            (it.next(), want.pop_front())
        } else {
            (it.next_back(), want.pop_back())
        };
        ensure_eq!(
            got,
            exp,
            "{what}: step {i} ({})",
            if front { "next" } else { "next_back" }
        );
        ensure_eq!(it.len(), want.len(), "{what}: len after step {i}");
    }
    while let Some(exp) = want.pop_front() {
        ensure_eq!(it.next(), Some(exp), "{what}: draining forward");
    }
    ensure_eq!(it.len(), 0, "{what}: len at the end");
    ensure_eq!(it.next(), None, "{what}: next() after the end");
    ensure_eq!(it.next_back(), None, "{what}: next_back() after the end");
    Ok(())
}

fn entries(t: &Tree<u32>) -> impl DoubleEndedIterator<Item = (Vec<u8>, u32)> + ExactSizeIterator {
    t.iter().map(|(k, v)| (k.to_vec(), *v))
}

fn model_entries(m: &Model) -> Vec<(Vec<u8>, u32)> {
    m.iter().map(|(k, v)| (k.clone(), *v)).collect()
}

/// Full forward comparison of one version with its model (and its
/// invariants).
fn compare_full(t: &Tree<u32>, m: &Model, what: &str) -> Result<(), String> {
    t.check_invariants()
        .map_err(|e| format!("{what}: invariant: {e}"))?;
    ensure_eq!(t.len(), m.len(), "{what}: len");
    ensure_eq!(t.iter().len(), m.len(), "{what}: iter().len()");
    let mut it = t.iter();
    for (i, (k, v)) in m.iter().enumerate() {
        match it.next() {
            Some((tk, tv)) if tk == k.as_slice() && tv == v => {}
            got => {
                return Err(format!(
                    "{what}: entry {i}: tree {got:?} != model {:?}",
                    (k, v)
                ));
            }
        }
    }
    ensure_eq!(it.next(), None, "{what}: extra entries");
    Ok(())
}

fn model_remove_prefix(m: &mut Model, p: &[u8]) -> usize {
    let doomed: Vec<Vec<u8>> = model_prefix(m, p).into_iter().map(|(k, _)| k).collect();
    for k in &doomed {
        m.remove(k);
    }
    doomed.len()
}

fn fanout_bytes(lo: u8, n: u16) -> std::ops::RangeInclusive<u8> {
    let hi = (u16::from(lo) + n.max(1) - 1).min(255) as u8;
    lo..=hi
}

impl Harness {
    /// A fresh harness over an empty tree. Kept versions are compared in
    /// full every `full_check_every` steps (and by [`Harness::finish`]);
    /// the current version's invariants and every length are checked on
    /// every step.
    pub fn new(full_check_every: usize) -> Self {
        Harness {
            tree: Tree::new(),
            model: Model::new(),
            kept: Vec::new(),
            steps: 0,
            full_check_every: full_check_every.max(1),
        }
    }

    /// Applies `op` to the tree and the model, compares, then checks.
    pub fn step(&mut self, op: &Op) -> Result<(), String> {
        self.apply(op)
            .map_err(|e| format!("step {} ({op:?}): {e}", self.steps))?;
        self.steps += 1;
        self.check(self.steps.is_multiple_of(self.full_check_every))
            .map_err(|e| format!("after step {} ({op:?}): {e}", self.steps - 1))
    }

    /// Compares the current and every kept version in full.
    pub fn finish(&self) -> Result<(), String> {
        self.check(true).map_err(|e| format!("at the end: {e}"))
    }

    fn check(&self, full: bool) -> Result<(), String> {
        self.tree
            .check_invariants()
            .map_err(|e| format!("invariant: {e}"))?;
        ensure_eq!(self.tree.len(), self.model.len(), "len");
        ensure_eq!(self.tree.is_empty(), self.model.is_empty(), "is_empty");
        for (i, (t, m)) in self.kept.iter().enumerate() {
            ensure_eq!(t.len(), m.len(), "kept version {i}: len");
        }
        if full {
            compare_full(&self.tree, &self.model, "current version")?;
            for (i, (t, m)) in self.kept.iter().enumerate() {
                compare_full(t, m, &format!("kept version {i}"))?;
            }
        }
        Ok(())
    }

    fn insert(&mut self, k: &[u8], v: u32) -> Result<(), String> {
        ensure_eq!(
            self.tree.insert(k, v),
            self.model.insert(k.to_vec(), v),
            "insert {k:?}"
        );
        Ok(())
    }

    fn remove(&mut self, k: &[u8]) -> Result<(), String> {
        ensure_eq!(self.tree.remove(k), self.model.remove(k), "remove {k:?}");
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        let (t, m) = (&mut self.tree, &mut self.model);
        match op {
            Op::Insert(k, v) => self.insert(k, *v)?,
            Op::Remove(k) => self.remove(k)?,
            Op::RemovePrefix(p) => {
                ensure_eq!(
                    t.remove_prefix(p),
                    model_remove_prefix(m, p),
                    "remove_prefix"
                );
            }
            Op::Get(k) => {
                ensure_eq!(t.get(k), m.get(k), "get");
                ensure_eq!(t.contains_key(k), m.contains_key(k), "contains_key");
            }
            Op::CountPrefix(p) => {
                let want = model_prefix(m, p);
                ensure_eq!(t.count_prefix(p), want.len(), "count_prefix");
                let edge = |e: Option<&(Vec<u8>, u32)>| e.map(|(k, v)| (k.clone(), *v));
                let got = |e: Option<(&[u8], &u32)>| e.map(|(k, v)| (k.to_vec(), *v));
                ensure_eq!(got(t.first_prefix(p)), edge(want.first()), "first_prefix");
                ensure_eq!(got(t.last_prefix(p)), edge(want.last()), "last_prefix");
            }
            Op::FirstLast => {
                let (mf, ml) = (m.first_key_value(), m.last_key_value());
                ensure_eq!(t.first(), mf.map(|(k, v)| (k.as_slice(), v)), "first");
                ensure_eq!(t.last(), ml.map(|(k, v)| (k.as_slice(), v)), "last");
            }
            Op::LongestPrefix(k) => {
                let want = (0..=k.len())
                    .rev()
                    .find_map(|i| m.get_key_value(&k[..i]))
                    .map(|(k, v)| (k.as_slice(), v));
                ensure_eq!(t.longest_prefix(k), want, "longest_prefix");
            }
            Op::LowerBound(k, n) => {
                let want: Vec<(Vec<u8>, u32)> =
                    model_range(m, &Bound::Included(k.clone()), &Bound::Unbounded);
                ensure_eq!(t.lower_bound(k).len(), want.len(), "lower_bound len");
                let got: Vec<(Vec<u8>, u32)> = t
                    .lower_bound(k)
                    .take(*n)
                    .map(|(k, v)| (k.to_vec(), *v))
                    .collect();
                ensure_eq!(got, want[..want.len().min(*n)], "lower_bound items");
            }
            Op::ReverseLowerBound(k, n) => {
                let mut want: Vec<(Vec<u8>, u32)> =
                    model_range(m, &Bound::Unbounded, &Bound::Included(k.clone()));
                want.reverse();
                ensure_eq!(
                    t.reverse_lower_bound(k).len(),
                    want.len(),
                    "reverse_lower_bound len"
                );
                let got: Vec<(Vec<u8>, u32)> = t
                    .reverse_lower_bound(k)
                    .take(*n)
                    .map(|(k, v)| (k.to_vec(), *v))
                    .collect();
                ensure_eq!(got, want[..want.len().min(*n)], "reverse_lower_bound items");
            }
            Op::Prefix(p, steps) => {
                let want = model_prefix(m, p);
                let it = t.prefix(p).map(|(k, v)| (k.to_vec(), *v));
                drive(it, want.clone(), steps, "prefix")?;
                let rev: Vec<(Vec<u8>, u32)> = want.into_iter().rev().collect();
                let it = t.prefix(p).rev().map(|(k, v)| (k.to_vec(), *v));
                drive(it, rev, &[], "prefix reversed")?;
            }
            Op::Range(lo, hi, steps) => {
                let want = model_range(m, lo, hi);
                let it = match (lo, hi) {
                    (Bound::Included(a), Bound::Excluded(b)) => t.range(a.as_slice()..b.as_slice()),
                    (Bound::Included(a), Bound::Included(b)) => {
                        t.range(a.as_slice()..=b.as_slice())
                    }
                    (Bound::Included(a), Bound::Unbounded) => t.range(a.as_slice()..),
                    (Bound::Unbounded, Bound::Excluded(b)) => t.range(..b.as_slice()),
                    (Bound::Unbounded, Bound::Included(b)) => t.range(..=b.as_slice()),
                    (Bound::Unbounded, Bound::Unbounded) => t.range(..),
                    _ => t.range((to_ref(lo), to_ref(hi))),
                };
                drive(
                    it.map(|(k, v)| (k.to_vec(), *v)),
                    want.clone(),
                    steps,
                    "range",
                )?;
                // The tuple form must agree with the range syntax.
                let it = t.range((to_ref(lo), to_ref(hi))).rev();
                let rev: Vec<(Vec<u8>, u32)> = want.into_iter().rev().collect();
                drive(
                    it.map(|(k, v)| (k.to_vec(), *v)),
                    rev,
                    &[],
                    "range tuple reversed",
                )?;
            }
            Op::FullIter(steps) => {
                let want = model_entries(m);
                drive(entries(t), want.clone(), steps, "iter")?;
                let rev: Vec<(Vec<u8>, u32)> = want.into_iter().rev().collect();
                drive(entries(t).rev(), rev, &[], "iter reversed")?;
                let by_ref: Vec<(Vec<u8>, u32)> =
                    (&*t).into_iter().map(|(k, v)| (k.to_vec(), *v)).collect();
                ensure_eq!(by_ref, model_entries(m), "IntoIterator for &Tree");
            }
            Op::Owned {
                kind,
                steps,
                mutate,
            } => self.owned(kind, steps, mutate)?,
            Op::Keep(i) => {
                if self.kept.len() >= MAX_KEPT {
                    let at = i % self.kept.len();
                    self.kept.remove(at);
                }
                let copy = self.tree.clone();
                if !copy.ptr_eq(&self.tree) {
                    return Err("a clone is not ptr_eq to its original".into());
                }
                self.kept.push((copy, self.model.clone()));
            }
            Op::DropKept(i) => {
                if !self.kept.is_empty() {
                    let at = i % self.kept.len();
                    self.kept.remove(at);
                }
            }
            Op::Checkout(i) => {
                if !self.kept.is_empty() {
                    let (t, m) = &self.kept[i % self.kept.len()];
                    self.tree = t.clone();
                    self.model = m.clone();
                }
            }
            Op::Txn(ops, commit) => self.txn(ops, *commit)?,
            Op::Fanout {
                prefix,
                lo,
                n,
                twice,
                value,
            } => {
                let mut key = prefix.clone();
                for b in fanout_bytes(*lo, *n) {
                    key.push(b);
                    self.insert(&key, *value)?;
                    if *twice {
                        key.push(0);
                        self.insert(&key, value.wrapping_add(1))?;
                        key.pop();
                    }
                    key.pop();
                }
            }
            Op::Unfanout {
                prefix,
                lo,
                n,
                step,
                rev,
                whole,
            } => {
                let stride = usize::from((*step).max(1));
                let mut bytes: Vec<u8> = fanout_bytes(*lo, *n).step_by(stride).collect();
                if *rev {
                    bytes.reverse();
                }
                let mut key = prefix.clone();
                for b in bytes {
                    key.push(b);
                    if *whole {
                        ensure_eq!(
                            self.tree.remove_prefix(&key),
                            model_remove_prefix(&mut self.model, &key),
                            "unfanout remove_prefix {key:?}"
                        );
                    } else {
                        self.remove(&key)?;
                    }
                    self.tree
                        .check_invariants()
                        .map_err(|e| format!("unfanout after removing {key:?}: {e}"))?;
                    key.pop();
                }
            }
        }
        Ok(())
    }

    fn owned(&mut self, kind: &OwnedKind, steps: &[bool], mutate: &[u8]) -> Result<(), String> {
        let before = self.model.clone();
        // Make the iterator, then mutate the tree before driving it.
        enum Made {
            Pairs(pandodb::tree::IntoIter<u32>, Vec<(Vec<u8>, u32)>),
            Values(pandodb::tree::Values<u32>, Vec<u32>),
        }
        let made = match kind {
            OwnedKind::All => Made::Pairs(self.tree.owned_iter(), model_entries(&before)),
            OwnedKind::Range(lo, hi) => Made::Pairs(
                self.tree.owned_range((to_ref(lo), to_ref(hi))),
                model_range(&before, lo, hi),
            ),
            OwnedKind::Prefix(p) => {
                Made::Pairs(self.tree.owned_prefix(p), model_prefix(&before, p))
            }
            OwnedKind::IntoIter => {
                Made::Pairs(self.tree.clone().into_iter(), model_entries(&before))
            }
            OwnedKind::Values => Made::Values(
                self.tree.owned_iter().values(),
                before.values().copied().collect(),
            ),
        };
        ensure_eq!(
            self.tree.remove_prefix(mutate),
            model_remove_prefix(&mut self.model, mutate),
            "remove_prefix while an owned iterator lives"
        );
        self.insert(mutate, 7)?;
        self.tree
            .check_invariants()
            .map_err(|e| format!("invariant while an owned iterator lives: {e}"))?;
        match made {
            Made::Pairs(it, want) => drive(
                it.map(|(k, v)| (k.to_vec(), v)),
                want,
                steps,
                &format!("owned {kind:?}"),
            ),
            Made::Values(it, want) => drive(it, want, steps, "owned values"),
        }
    }

    fn txn(&mut self, ops: &[TxnOp], commit: bool) -> Result<(), String> {
        // Odd-length batches take the version over (`into_txn`, lending
        // its nodes' children to the copies); one in two of those keeps a
        // reader clone of the base, which makes the commit restore counts
        // instead of taking the fast path.
        let lending = ops.len() % 2 == 1;
        let reader =
            (lending && ops.len() % 4 == 1).then(|| (self.tree.clone(), self.model.clone()));
        let mut txn = if lending {
            std::mem::take(&mut self.tree).into_txn()
        } else {
            self.tree.txn()
        };
        let mut local = self.model.clone();
        for (i, op) in ops.iter().enumerate() {
            match op {
                TxnOp::Insert(k, v) => {
                    ensure_eq!(
                        txn.insert(k, *v),
                        local.insert(k.clone(), *v),
                        "txn op {i} insert"
                    );
                }
                TxnOp::Remove(k) => {
                    ensure_eq!(txn.remove(k), local.remove(k), "txn op {i} remove");
                }
                TxnOp::RemovePrefix(p) => {
                    ensure_eq!(
                        txn.remove_prefix(p),
                        model_remove_prefix(&mut local, p),
                        "txn op {i} remove_prefix"
                    );
                }
                TxnOp::Get(k) => {
                    ensure_eq!(txn.get(k), local.get(k), "txn op {i} get");
                }
            }
            ensure_eq!(txn.len(), local.len(), "txn len after op {i}");
        }
        if let Some(base) = txn.base() {
            compare_full(base, &self.model, "taken-over base during a txn")?;
        }
        if let Some((r, m)) = &reader {
            compare_full(r, m, "reader of the base during a txn")?;
        }
        self.finish_txn(txn, local, commit)?;
        if let Some((r, m)) = &reader {
            compare_full(r, m, "reader of the base after the txn")?;
        }
        Ok(())
    }

    fn finish_txn(&mut self, txn: TreeTxn<u32>, local: Model, commit: bool) -> Result<(), String> {
        txn.check_invariants()
            .map_err(|e| format!("txn invariant before commit: {e}"))?;
        // The base version never sees the batch.
        if txn.base().is_none() {
            compare_full(&self.tree, &self.model, "base version during a txn")?;
        }
        if commit {
            self.tree = txn.commit();
            self.model = local;
            compare_full(&self.tree, &self.model, "committed txn")?;
        } else {
            if let Some(base) = txn.abort() {
                self.tree = base;
            }
            compare_full(
                &self.tree,
                &self.model,
                "base version after an abandoned txn",
            )?;
        }
        Ok(())
    }
}

// ---- VersionedTree: a line of versions with pins --------------------------

/// An operation on a `VersionedTree` and the versions it keeps.
#[derive(Debug, Clone)]
pub enum LineOp {
    /// A transaction of these writes, committed or aborted.
    Txn(Vec<TxnOp>, bool),
    /// Take a version of the current revision (kept up to 8).
    Keep,
    /// Drop the kept version at this index (modulo their number).
    Drop(usize),
    /// Free what no kept version reaches.
    Reclaim,
    /// Take an owning iterator of the current version (over the keys
    /// starting with the prefix, if any) and drop the version it came from
    /// (kept up to 4).
    OwnedIter(Option<Vec<u8>>),
    /// Read the kept iterator at this index (modulo their number) to its
    /// end, from the front (`true`) or the back by the pattern, and check
    /// it against the model it was taken from.
    ReadIter(usize, Vec<bool>),
}

pub type LineModel = std::collections::BTreeMap<Vec<u8>, u32>;

/// An owning iterator kept by `run_line`, with the pairs it must yield.
type KeptIter = (pandodb::tree::VersionIter<u32>, Vec<(Vec<u8>, u32)>);

pub fn same(view: pandodb::tree::View<'_, u32>, model: &LineModel) -> Result<(), String> {
    view.check_invariants()?;
    let got: Vec<(&[u8], &u32)> = view.iter().collect();
    let want: Vec<(&[u8], &u32)> = model.iter().map(|(k, v)| (&k[..], v)).collect();
    if got != want {
        return Err(format!("read {got:?}, the model holds {want:?}"));
    }
    Ok(())
}

/// Runs `ops` on a `VersionedTree` against a model of every kept version;
/// kept versions are read back in full every `full_check_every` steps and
/// at the end, and nothing may wait once none is held.
pub fn run_line(ops: &[LineOp], full_check_every: usize) -> Result<(), String> {
    use pandodb::tree::{Version, VersionedTree};
    let mut line: VersionedTree<u32> = VersionedTree::new();
    let mut model = LineModel::new();
    let mut kept: Vec<(Version<u32>, LineModel)> = Vec::new();
    let mut iters: Vec<KeptIter> = Vec::new();
    let read = |it: pandodb::tree::VersionIter<u32>,
                want: Vec<(Vec<u8>, u32)>,
                steps: &[bool]|
     -> Result<(), String> {
        let mut it = it;
        if it.len() != want.len() {
            return Err(format!(
                "an owned iterator has {} entries, not {}",
                it.len(),
                want.len()
            ));
        }
        let (mut front, mut back) = (Vec::new(), Vec::new());
        for i in 0.. {
            let forward = steps.get(i % steps.len().max(1)).copied().unwrap_or(true);
            let item = if forward { it.next() } else { it.next_back() };
            let Some((k, v)) = item else { break };
            if forward {
                front.push((k.to_vec(), v));
            } else {
                back.push((k.to_vec(), v));
            }
        }
        back.reverse();
        front.extend(back);
        if front != want {
            return Err(format!("an owned iterator read {front:?}, not {want:?}"));
        }
        Ok(())
    };
    for (step, op) in ops.iter().enumerate() {
        match op {
            LineOp::Txn(writes, commit) => {
                let mut txn = line.txn();
                let mut next = model.clone();
                for w in writes {
                    match w {
                        TxnOp::Insert(k, v) => {
                            if txn.insert(k, *v) != next.insert(k.clone(), *v) {
                                return Err(format!("insert {k:?}: wrong old value"));
                            }
                        }
                        TxnOp::Remove(k) => {
                            if txn.remove(k) != next.remove(k) {
                                return Err(format!("remove {k:?}: wrong old value"));
                            }
                        }
                        TxnOp::RemovePrefix(p) => {
                            let before = next.len();
                            next.retain(|k, _| !k.starts_with(p));
                            if txn.remove_prefix(p) != before - next.len() {
                                return Err(format!("remove_prefix {p:?}: wrong count"));
                            }
                        }
                        TxnOp::Get(k) => {
                            if txn.view().get(k) != next.get(k) {
                                return Err(format!("get {k:?} in the transaction"));
                            }
                        }
                    }
                }
                same(txn.view(), &next)?;
                if *commit {
                    txn.commit();
                    model = next;
                }
            }
            LineOp::Keep => {
                if kept.len() < 8 {
                    kept.push((line.version(), model.clone()));
                }
            }
            LineOp::Drop(i) => {
                if !kept.is_empty() {
                    kept.swap_remove(i % kept.len());
                }
            }
            LineOp::Reclaim => {
                line.reclaim();
            }
            LineOp::OwnedIter(prefix) => {
                if iters.len() < 4 {
                    let v = line.version();
                    let (it, want) = match prefix {
                        Some(p) => (
                            v.owned_prefix(p),
                            model
                                .iter()
                                .filter(|(k, _)| k.starts_with(p))
                                .map(|(k, v)| (k.clone(), *v))
                                .collect(),
                        ),
                        None => (
                            v.owned_iter(),
                            model.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                        ),
                    };
                    drop(v);
                    iters.push((it, want));
                }
            }
            LineOp::ReadIter(i, steps) => {
                if !iters.is_empty() {
                    let (it, want) = iters.swap_remove(i % iters.len());
                    read(it, want, steps)?;
                }
            }
        }
        same(line.view(), &model)?;
        if step % full_check_every.max(1) == 0 {
            for (v, m) in &kept {
                same(v.view(), m).map_err(|e| format!("version {}: {e}", v.revision()))?;
            }
        }
    }
    for (v, m) in &kept {
        same(v.view(), m).map_err(|e| format!("version {}: {e}", v.revision()))?;
    }
    for (it, want) in iters {
        read(it, want, &[true, false])?;
    }
    drop(kept);
    line.reclaim();
    if line.waiting_garbage() != 0 || line.pinned_revisions() != 0 {
        return Err(format!(
            "{} pieces of garbage wait with no version held",
            line.waiting_garbage()
        ));
    }
    Ok(())
}
