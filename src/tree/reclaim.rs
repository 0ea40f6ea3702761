//! Reclamation by version interval: the pins readers hold on revisions,
//! the garbage a writer retires, and the rule that decides when a piece of
//! garbage may be freed.
//!
//! A piece of garbage retired by the commit of revision `r` was reachable
//! from the versions `[born, r)` only (`born`: the revision that made it).
//! It may be freed once no pinned revision lies in that interval: a reader
//! pinned at `p` can reach it only when `born <= p < r`. This is the
//! interval rule of Böttcher et al. ("Scalable Garbage Collection for
//! In-Memory MVCC Systems", VLDB 2019), stronger than an oldest-reader rule:
//! one long-lived pin holds back only what its own version can reach, not
//! the garbage of every later version.
//!
//! The [`Registry`] is tree-agnostic (generic over [`Garbage`]), so that its
//! loom model (`tests/loom_reclaim.rs`) runs the real rule on stand-in
//! items. Every change happens under one mutex (pinning, unpinning,
//! retiring, choosing what to free); the freeing itself runs outside it.

use std::collections::BTreeMap;

use crate::sync::{Mutex, lock};

/// Something a commit replaced and that may be freed once no pinned
/// version can reach it.
pub trait Garbage: Sized {
    /// The revision that made it: the oldest version that can reach it.
    fn born(&self) -> u64;

    /// Frees it. What it alone kept alive and is garbage too from the
    /// same commit on (the entries of a removed subtree) goes to `more`,
    /// to be checked against the pins in turn.
    fn free(self, more: &mut Vec<Self>);
}

/// Pieces of garbage with the revision that retired each, stored as runs:
/// consecutive pieces of one revision share one record of it, so a piece
/// costs its own size (a word, for the tree's pieces) and a commit one
/// record more.
struct Runs<G> {
    items: Vec<G>,
    /// `(first index, revision)` of each run, in order.
    runs: Vec<(usize, u64)>,
}

impl<G> Default for Runs<G> {
    fn default() -> Self {
        Runs {
            items: Vec::new(),
            runs: Vec::new(),
        }
    }
}

impl<G> Runs<G> {
    fn push(&mut self, g: G, retired: u64) {
        if self.runs.last().map(|&(_, r)| r) != Some(retired) {
            self.runs.push((self.items.len(), retired));
        }
        self.items.push(g);
    }

    fn pop(&mut self) -> Option<(G, u64)> {
        let g = self.items.pop()?;
        let Some(&(start, retired)) = self.runs.last() else {
            unreachable!("every piece belongs to a run")
        };
        if start == self.items.len() {
            self.runs.pop();
            if self.items.is_empty() && self.items.capacity() > 4096 {
                // A burst is over: its room goes back.
                *self = Runs::default();
            }
        }
        Some((g, retired))
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    /// Moves every piece of `other` here, keeping its runs: one copy of
    /// the pieces, not one push each.
    fn append(&mut self, mut other: Runs<G>) {
        if self.items.is_empty() {
            *self = other;
            return;
        }
        let offset = self.items.len();
        for (start, retired) in other.runs.drain(..) {
            if start == 0 && self.runs.last().map(|&(_, r)| r) == Some(retired) {
                continue; // continues the last run here
            }
            self.runs.push((start + offset, retired));
        }
        self.items.append(&mut other.items);
    }
}

/// The pins and the retired garbage of one line of versions.
pub struct Registry<G> {
    /// Pinned revisions, with how many pins each has.
    pins: BTreeMap<u64, usize>,
    /// Garbage to check, with the revision that retired it.
    ready: Runs<G>,
    /// Garbage a pin holds, filed under that pin: checked again when it
    /// goes (another pin may hold it too).
    held: BTreeMap<u64, Runs<G>>,
    /// How many pieces of garbage wait (ready or held).
    waiting: usize,
    /// A deliberately broken variant for the loom model: free without
    /// looking at the pins.
    #[cfg(loom)]
    ignore_pins: bool,
}

impl<G: Garbage> Default for Registry<G> {
    fn default() -> Self {
        Registry {
            pins: BTreeMap::new(),
            ready: Runs::default(),
            held: BTreeMap::new(),
            waiting: 0,
            #[cfg(loom)]
            ignore_pins: false,
        }
    }
}

impl<G: Garbage> Registry<G> {
    /// The broken variant of the loom model: garbage is freed whatever
    /// the pins.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn broken_ignoring_pins() -> Self {
        Registry {
            ignore_pins: true,
            ..Registry::default()
        }
    }

    /// Pins `revision`: nothing its version can reach is freed until as
    /// many [`Registry::unpin`]s.
    pub fn pin(&mut self, revision: u64) {
        *self.pins.entry(revision).or_insert(0) += 1;
    }

    /// Takes back one pin of `revision`; the garbage it held is checked
    /// again once no pin of that revision is left.
    pub fn unpin(&mut self, revision: u64) {
        let Some(n) = self.pins.get_mut(&revision) else {
            debug_assert!(false, "unpin: revision {revision} is not pinned");
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.pins.remove(&revision);
            if let Some(held) = self.held.remove(&revision) {
                self.ready.append(held);
            }
        }
    }

    /// Retires `items`, replaced by the commit of `revision`.
    pub fn retire(&mut self, items: impl IntoIterator<Item = G>, revision: u64) {
        let before = self.ready.len();
        for g in items {
            self.ready.push(g, revision);
        }
        self.waiting += self.ready.len() - before;
    }

    /// Moves up to `max` pieces of garbage no pin holds into `out` (they
    /// leave the registry: the caller frees them); the others are filed
    /// under a pin that holds them.
    pub fn take_free(&mut self, max: usize, out: &mut Vec<(G, u64)>) {
        let start = out.len();
        while out.len() - start < max {
            let Some((g, retired)) = self.ready.pop() else {
                break;
            };
            match self.holder(g.born(), retired) {
                Some(p) => self.held.entry(p).or_default().push(g, retired),
                None => out.push((g, retired)),
            }
        }
        self.waiting -= out.len() - start;
    }

    /// A pinned revision in `[born, retired)`, if any.
    fn holder(&self, born: u64, retired: u64) -> Option<u64> {
        #[cfg(loom)]
        if self.ignore_pins {
            return None;
        }
        if born >= retired {
            return None;
        }
        self.pins.range(born..retired).next().map(|(&p, _)| p)
    }

    /// How many pieces of garbage wait to be freed.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// How many distinct revisions are pinned.
    pub fn pinned(&self) -> usize {
        self.pins.len()
    }

    /// Takes every piece of garbage, pinned or not (the line and every pin
    /// are gone: nothing can reach any of it).
    fn take_all(&mut self) -> Vec<(G, u64)> {
        let mut all = Vec::with_capacity(self.waiting);
        for mut runs in std::iter::once(std::mem::take(&mut self.ready))
            .chain(std::mem::take(&mut self.held).into_values())
        {
            while let Some(piece) = runs.pop() {
                all.push(piece);
            }
        }
        self.waiting = 0;
        all
    }
}

/// The buffers of [`reclaim`], kept by its caller between calls: a call
/// then allocates nothing (growing a fresh vector on every commit took a
/// sixth of a single-key update's time, in the allocator's slow path).
pub struct Scratch<G> {
    batch: Vec<(G, u64)>,
    more: Vec<(G, u64)>,
    children: Vec<G>,
}

impl<G> Default for Scratch<G> {
    fn default() -> Self {
        Scratch {
            batch: Vec::new(),
            more: Vec::new(),
            children: Vec::new(),
        }
    }
}

/// Frees up to `budget` pieces of the garbage in `registry` that no pin
/// holds, and what they alone kept alive as it becomes free; returns how
/// many were freed. The choice is made under the registry's lock, the
/// freeing outside it.
pub fn reclaim<G: Garbage>(
    registry: &Mutex<Registry<G>>,
    budget: usize,
    scratch: &mut Scratch<G>,
) -> usize {
    let Scratch {
        batch,
        more,
        children,
    } = scratch;
    let mut freed = 0;
    while freed < budget {
        lock(registry).take_free(budget - freed, batch);
        if batch.is_empty() {
            break;
        }
        for (g, retired) in batch.drain(..) {
            g.free(children);
            freed += 1;
            more.extend(children.drain(..).map(|c| (c, retired)));
        }
        if !more.is_empty() {
            let mut reg = lock(registry);
            reg.waiting += more.len();
            for (g, retired) in more.drain(..) {
                reg.ready.push(g, retired);
            }
        }
    }
    freed
}

/// Frees every piece of garbage in `registry`, pinned or not: for the
/// owner of the last handle on it, when no version can be read any more.
pub fn reclaim_all<G: Garbage>(registry: &mut Registry<G>) {
    let mut work = registry.take_all();
    let mut children = Vec::new();
    while let Some((g, retired)) = work.pop() {
        g.free(&mut children);
        work.extend(children.drain(..).map(|c| (c, retired)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A stand-in: a name, a birth, children, and a log of frees.
    struct Item {
        name: u32,
        born: u64,
        children: Vec<Item>,
        log: Rc<RefCell<Vec<u32>>>,
    }

    impl Garbage for Item {
        fn born(&self) -> u64 {
            self.born
        }
        fn free(self, more: &mut Vec<Self>) {
            self.log.borrow_mut().push(self.name);
            more.extend(self.children);
        }
    }

    fn item(log: &Rc<RefCell<Vec<u32>>>, name: u32, born: u64, children: Vec<Item>) -> Item {
        Item {
            name,
            born,
            children,
            log: log.clone(),
        }
    }

    fn freed(log: &Rc<RefCell<Vec<u32>>>) -> Vec<u32> {
        let mut v = log.borrow_mut().drain(..).collect::<Vec<_>>();
        v.sort();
        v
    }

    #[test]
    fn a_pin_holds_only_the_garbage_its_version_reaches() {
        let log = Rc::default();
        let reg = Mutex::new(Registry::default());
        lock(&reg).pin(5);
        // Reachable from [3, 8): version 5 reaches it.
        lock(&reg).retire([item(&log, 1, 3, vec![])], 8);
        // Reachable from [6, 8), [1, 4) and [5, 5): version 5 reaches none.
        lock(&reg).retire([item(&log, 2, 6, vec![])], 8);
        lock(&reg).retire([item(&log, 3, 1, vec![])], 4);
        lock(&reg).retire([item(&log, 4, 5, vec![])], 5);
        assert_eq!(reclaim(&reg, usize::MAX, &mut Scratch::default()), 3);
        assert_eq!(freed(&log), [2, 3, 4]);
        assert_eq!(lock(&reg).waiting(), 1);
        lock(&reg).unpin(5);
        assert_eq!(reclaim(&reg, usize::MAX, &mut Scratch::default()), 1);
        assert_eq!(freed(&log), [1]);
        assert_eq!(lock(&reg).waiting(), 0);
    }

    #[test]
    fn children_are_checked_against_their_own_birth() {
        let log = Rc::default();
        let reg = Mutex::new(Registry::default());
        lock(&reg).pin(2);
        // A subtree made at 6, removed at 9; one child dates from 1.
        let old = item(&log, 11, 1, vec![]);
        let new = item(&log, 12, 6, vec![]);
        lock(&reg).retire([item(&log, 10, 6, vec![old, new])], 9);
        assert_eq!(reclaim(&reg, usize::MAX, &mut Scratch::default()), 2);
        assert_eq!(freed(&log), [10, 12]);
        lock(&reg).unpin(2);
        assert_eq!(reclaim(&reg, usize::MAX, &mut Scratch::default()), 1);
        assert_eq!(freed(&log), [11]);
    }

    #[test]
    fn a_budget_bounds_one_call_and_a_second_pin_keeps_holding() {
        let log = Rc::default();
        let reg = Mutex::new(Registry::default());
        lock(&reg).retire((0..10).map(|i| item(&log, i, 0, vec![])), 1);
        assert_eq!(reclaim(&reg, 4, &mut Scratch::default()), 4);
        assert_eq!(lock(&reg).waiting(), 6);
        assert_eq!(reclaim(&reg, usize::MAX, &mut Scratch::default()), 6);
        // Two pins of one revision, and another pin in the same interval.
        let mut r = lock(&reg);
        r.pin(3);
        r.pin(3);
        r.pin(4);
        r.retire([item(&log, 20, 2, vec![])], 6);
        drop(r);
        assert_eq!(reclaim(&reg, usize::MAX, &mut Scratch::default()), 0);
        lock(&reg).unpin(3);
        lock(&reg).unpin(3);
        assert_eq!(
            reclaim(&reg, usize::MAX, &mut Scratch::default()),
            0,
            "revision 4 still reaches it"
        );
        lock(&reg).unpin(4);
        assert_eq!(reclaim(&reg, usize::MAX, &mut Scratch::default()), 1);
        assert_eq!(lock(&reg).pinned(), 0);
    }

    #[test]
    fn runs_keep_each_piece_with_its_revision_across_appends() {
        let mut a: Runs<u32> = Runs::default();
        a.push(1, 10);
        a.push(2, 10);
        a.push(3, 11);
        let mut b: Runs<u32> = Runs::default();
        b.push(4, 11);
        b.push(5, 12);
        a.append(b);
        a.append(Runs::default());
        let mut empty: Runs<u32> = Runs::default();
        let mut c: Runs<u32> = Runs::default();
        c.push(6, 13);
        empty.append(c);
        assert_eq!(empty.pop(), Some((6, 13)));
        let mut got = Vec::new();
        while let Some(p) = a.pop() {
            got.push(p);
        }
        assert_eq!(got, [(5, 12), (4, 11), (3, 11), (2, 10), (1, 10)]);
        assert!(a.runs.is_empty());
    }

    #[test]
    fn reclaim_all_frees_what_pins_held() {
        let log = Rc::default();
        let mut reg = Registry::default();
        reg.pin(1);
        reg.retire([item(&log, 1, 0, vec![item(&log, 2, 0, vec![])])], 5);
        reclaim_all(&mut reg);
        assert_eq!(freed(&log), [1, 2]);
    }
}
